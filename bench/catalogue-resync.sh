#!/usr/bin/env bash
# What a process over PostgreSQL pays every 30 s to catch a catalogue change it missed: the
# whole catalogue read when its revision changed, one row read when it did not.
# Usage: bench/catalogue-resync.sh           (from the repository root; ~2 minutes)
#   PG=postgres://postgres@127.0.0.1:5432   the PostgreSQL server (a database is created)
#   PRODUCTS=100000                          catalogue size
#   BIN=path/to/vitrina  measure another build; no build then
# An api process on database vitrina_resync_bench with PRODUCTS products: its first two
# re-reads (30 and 60 s after start) find the catalogue as it read it at start-up, then one
# product is changed with plain SQL and the third reads it whole.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${BIN:-}" ] || cargo build --release -q -p vitrina-cli
bin=$(realpath "${BIN:-target/release/vitrina}")
pg=${PG:-postgres://postgres@127.0.0.1:5432}
n=${PRODUCTS:-100000}
db=vitrina_resync_bench
dir=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; wait 2>/dev/null || true' EXIT

echo "== machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(free -g | awk '/Mem:/{print $2}') GiB"
psql -q "$pg/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
# The store creates its schema when it opens; an empty shop, then the products by SQL.
RUST_LOG=warn "$bin" serve --addr 127.0.0.1:0 --store "$pg/$db" --no-demo >"$dir/init.out" 2>&1 &
pid=$!
until grep -q listening "$dir/init.out"; do sleep 0.2; done
kill $pid; wait $pid 2>/dev/null || true; pid=
psql -q "$pg/$db" -c "INSERT INTO products (id, name, category, price, attributes, in_stock, hidden, created_ms, updated_ms)
  SELECT 'p-' || i, 'product ' || i, 'c-' || (i % 200), (i % 1000) || '.99', '{}', true, false, 0, 0
  FROM generate_series(1, $n) AS i"
echo "== $n products"

RUST_LOG=warn,vitrina_server::cluster=debug "$bin" serve --addr 127.0.0.1:18190 --store "$pg/$db" \
  --role api >"$dir/api.out" 2>"$dir/api.log" &
pid=$!
until grep -q listening "$dir/api.out"; do sleep 0.2; done
reads() { grep -c 'catalogue re-read' "$dir/api.log" || true; }
until [ "$(reads)" -ge 2 ]; do sleep 1; done
psql -q "$pg/$db" -c "UPDATE products SET hidden = true WHERE id = 'p-17'"
until [ "$(reads)" -ge 3 ]; do sleep 1; done
echo "== the three re-reads"
grep 'catalogue re-read' "$dir/api.log" | python3 -c '
import json, sys
for line in sys.stdin:
    e = json.loads(line)
    e.update(e.pop("fields", {}))
    print("%s: %.1f ms" % (e["read"], e["seconds"] * 1000))'
psql -q "$pg/postgres" -c "DROP DATABASE $db WITH (FORCE)"
