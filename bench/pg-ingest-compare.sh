#!/usr/bin/env bash
# Ingest and tracking on PostgreSQL, several builds side by side: for each LABEL=BIN argument,
# in the order given (repeat them to alternate), a fresh database and bench/serve-bench.sh.
# Usage (from the repository root; needs psql):
#   bash bench/pg-ingest-compare.sh old=/tmp/vitrina-old new=target/release/vitrina old=… new=…
#   PG=postgres://postgres@127.0.0.1:5432   the server (its database vitrina_bench_compare is
#                                            dropped and made again before each run)
set -euo pipefail
cd "$(dirname "$0")/.."
pg=${PG:-postgres://postgres@127.0.0.1:5432}
echo "== PostgreSQL: $(psql -At "$pg/postgres" -c 'SHOW server_version'), shared_buffers \
$(psql -At "$pg/postgres" -c 'SHOW shared_buffers'), synchronous_commit \
$(psql -At "$pg/postgres" -c 'SHOW synchronous_commit'), fsync $(psql -At "$pg/postgres" -c 'SHOW fsync')"
for arm in "$@"; do
  label=${arm%%=*}
  bin=${arm#*=}
  psql -q "$pg/postgres" -c "DROP DATABASE IF EXISTS vitrina_bench_compare WITH (FORCE)"
  psql -q "$pg/postgres" -c "CREATE DATABASE vitrina_bench_compare"
  echo "#### $label ($bin), $(date -u +%H:%M:%S) UTC"
  BIN="$bin" STORE="$pg/vitrina_bench_compare" bash bench/serve-bench.sh
  echo "== rows in the log: $(psql -At "$pg/vitrina_bench_compare" -c 'SELECT count(*) FROM events')"
done
psql -q "$pg/postgres" -c "DROP DATABASE IF EXISTS vitrina_bench_compare WITH (FORCE)"
