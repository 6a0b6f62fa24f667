#!/usr/bin/env bash
# The embedded SQLite store and PostgreSQL side by side, in one run, one build, the same loads:
#   1. durable batch ingest and single-event tracking (bench/serve-bench.sh), each on a fresh
#      store: a temporary data directory, then a fresh PostgreSQL database;
#   2. start-up time and the scale benchmark's serving loads (bench/scale-bench.sh with
#      LOADS=serving) on the same 20M-event shop: a fresh copy of the trained data directory,
#      then a fresh copy (CREATE DATABASE … TEMPLATE) of a database it was migrated into.
# Usage: bench/store-compare.sh            (from the repository root; needs wrk, createdb/dropdb)
#   PG=postgres://postgres@127.0.0.1:5432   the PostgreSQL server (its databases vitrina_bench_*
#                                            are dropped and made again)
#   DIR=/tmp/scale   the generated shop and its data directory (made when absent, ~10 min; the
#                    model is trained once with `vitrina train` and migrated with the data)
#   RUNS=1           scale passes per store;  SECONDS_PER_RUN=60  length of each load run
#   SKIP_INGEST=1    only the scale part;  SKIP_SCALE=1  only ingest and tracking
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p vitrina-cli
bin=$(realpath target/release/vitrina)
pg=${PG:-postgres://postgres@127.0.0.1:5432}
dir=${DIR:-/tmp/scale}
base="$dir/data"
runs=${RUNS:-1}
fresh_db() { # name [template]
  psql -q "$pg/postgres" -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)"
  psql -q "$pg/postgres" -c "CREATE DATABASE $1 ${2:+TEMPLATE $2}"
}

echo "== PostgreSQL: $(psql -At "$pg/postgres" -c 'SHOW server_version'), shared_buffers \
$(psql -At "$pg/postgres" -c 'SHOW shared_buffers'), synchronous_commit \
$(psql -At "$pg/postgres" -c 'SHOW synchronous_commit'), fsync $(psql -At "$pg/postgres" -c 'SHOW fsync')"
if [ -z "${SKIP_INGEST:-}" ]; then
  echo "#### ingest and tracking: SQLite, $(date -u +%H:%M) UTC"
  BIN="$bin" bash bench/serve-bench.sh
  echo "#### ingest and tracking: PostgreSQL, $(date -u +%H:%M) UTC"
  fresh_db vitrina_bench_ingest
  BIN="$bin" STORE="$pg/vitrina_bench_ingest" bash bench/serve-bench.sh
  echo "== rows in PostgreSQL: $(psql -At "$pg/vitrina_bench_ingest" -c 'SELECT count(*) FROM events')"
fi

[ -z "${SKIP_SCALE:-}" ] || exit 0
if [ ! -f "$base/.imported" ]; then
  DIR="$dir" BIN="$bin" IMPORT_ONLY=1 bash bench/scale-bench.sh
fi
if [ ! -f "$base/.trained" ]; then
  echo "== training on the 20M events (once; both stores serve this model)"
  /usr/bin/time -f "train: %e s, peak RSS %M KiB" "$bin" train --data-dir "$base" >/dev/null
  touch "$base/.trained"
fi
if [ ! -f "$dir/.pg-base" ]; then
  echo "== migrating the trained shop into PostgreSQL (vitrina_bench_base)"
  fresh_db vitrina_bench_base
  /usr/bin/time -f "migrate: %e s" "$bin" migrate --from "$base" --to "$pg/vitrina_bench_base"
  touch "$dir/.pg-base"
fi
for run in $(seq 1 "$runs"); do
  echo "#### scale, SQLite (run $run), $(date -u +%H:%M) UTC"
  rm -rf "$dir/compare-data" && cp -r "$base" "$dir/compare-data" && rm -f "$dir/compare-data/vitrina.lock"
  DIR="$dir" DATA="$dir/compare-data" BIN="$bin" LOADS=serving bash bench/scale-bench.sh
  echo "#### scale, PostgreSQL (run $run), $(date -u +%H:%M) UTC"
  fresh_db vitrina_bench_scale vitrina_bench_base
  DIR="$dir" BIN="$bin" STORE="$pg/vitrina_bench_scale" LOADS=serving bash bench/scale-bench.sh
done
