#!/usr/bin/env bash
# Roles over PostgreSQL, NATS JetStream and Redis, beside one all-roles process over
# PostgreSQL, in one run on the same machine and the same (demo) shop.
# Usage: bench/roles-bench.sh            (from the repository root)
#   PG=postgres://postgres@127.0.0.1:5432   the PostgreSQL server (databases are created)
#   NATS=nats://127.0.0.1:4222  REDIS=redis://127.0.0.1:6379
#   BIN=path/to/vitrina  measure another build; no build then
# Deployment: training, activity and two api processes on database vitrina_roles_bench; one
# all-roles process on vitrina_roles_bench_one. Every process shares this machine's cores,
# so the figures say what the split costs and how fresh replicas are, not how it scales.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${BIN:-}" ] || cargo build --release -q -p vitrina-cli
bin=$(realpath "${BIN:-target/release/vitrina}")
pg=${PG:-postgres://postgres@127.0.0.1:5432}
nats=${NATS:-nats://127.0.0.1:4222}
redis=${REDIS:-redis://127.0.0.1:6379}
dir=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true' EXIT

for db in vitrina_roles_bench vitrina_roles_bench_one; do
  psql -q "$pg/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
done

echo "== machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(free -g | awk '/Mem:/{print $2}') GiB"
echo "== build: $("$bin" --version 2>/dev/null || echo "$bin")"

serve() { # name, port, args…
  local name=$1 port=$2
  shift 2
  RUST_LOG=warn VITRINA__RATE_LIMITS__TRACK=0 VITRINA__RATE_LIMITS__READ=0 \
    "$bin" serve --addr "127.0.0.1:$port" "$@" >"$dir/$name.out" 2>"$dir/$name.log" &
  pids+=($!)
  until grep -q listening "$dir/$name.out" 2>/dev/null; do
    kill -0 "${pids[-1]}" 2>/dev/null || { echo "$name exited:"; tail -5 "$dir/$name.log"; exit 1; }
    sleep 0.2
  done
}
split=(--store "$pg/vitrina_roles_bench" --bus "$nats" --cache "$redis")
serve training 18181 "${split[@]}" --role training
serve activity 18182 "${split[@]}" --role activity
serve api1 18183 "${split[@]}" --role api
serve api2 18184 "${split[@]}" --role api
serve one 18185 --store "$pg/vitrina_roles_bench_one"
activity=http://127.0.0.1:18182 api1=http://127.0.0.1:18183 api2=http://127.0.0.1:18184 one=http://127.0.0.1:18185

bench() { "$bin" bench "$@" --users 10000 --products 10 --seed 7; }

echo; echo "== durable batch ingest (1,000 events a request, 4 in flight, 200,000 events)"
echo "-- activity role (publishes each commit to NATS, raises watermarks in Redis)"
bench ingest --url $activity --requests 200 --concurrency 4 --batch 1000
echo "-- all roles in one process"
bench ingest --url $one --requests 200 --concurrency 4 --batch 1000

echo; echo "== single-event tracking (32 in flight, 20,000 requests)"
echo "-- activity role"
bench track --url $activity --requests 20000 --concurrency 32
echo "-- all roles in one process"
bench track --url $one --requests 20000 --concurrency 32

echo; echo "== freshness: ack of a view → first list that reflects it (500 visitors)"
echo "-- tracked at the activity process, read from the two api replicas in turn, idle"
bench freshness --url $activity --read-url $api1,$api2 --samples 500
echo "-- the same while 2,000 events/s are tracked through the activity process"
"$bin" bench track --url $activity --duration 40 --rate 2000 --concurrency 8 --users 10000 --products 10 >"$dir/load.txt" &
load=$!
sleep 2
bench freshness --url $activity --read-url $api1,$api2 --samples 500
wait $load
echo "-- all roles in one process, idle"
bench freshness --url $one --samples 500

echo; echo "== lists (32 in flight, 20,000 requests)"
echo "-- one api replica"
bench recommend --url $api1 --requests 20000 --concurrency 32
echo "-- two api replicas at once (16 in flight each; they share this machine's cores)"
bench recommend --url $api1 --requests 10000 --concurrency 16 >"$dir/r1.txt" &
r1=$!
bench recommend --url $api2 --requests 10000 --concurrency 16 >"$dir/r2.txt"
wait $r1
cat "$dir/r1.txt" "$dir/r2.txt"
echo "-- all roles in one process"
bench recommend --url $one --requests 20000 --concurrency 32

echo; echo "== the replicas' waits for watermarks, lists served (cache hit or miss), the shared cache's and the broker's counters"
for s in $api1 $api2 $activity $one; do
  echo "-- $s"
  curl -s "$s/metrics" | grep -E '^vitrina_(read_wait|watermark|bus_|shared_cache|recommendations_served_total)' || echo "   (none)"
done
