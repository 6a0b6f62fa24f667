#!/usr/bin/env bash
# Serving at scale: 1,000,000 visitors, 100,000 products, 20,000,000 events on this machine.
# Usage: bench/scale-bench.sh            (from the repository root; needs `wrk`: apt-get install wrk)
#   DIR=/tmp/scale   where the generated shop and the data directory live (reused when present)
#   SECONDS_PER_RUN=60  length of each load run
#   BIN=path/to/vitrina  measure another build (e.g. an older commit); no build then
#   DATA=path            the data directory to serve (default $DIR/data; imported when absent)
#   IMPORT_ONLY=1        stop once the shop is generated and imported
#   STORE=postgres://…   serve from this PostgreSQL database instead (it must already hold the
#                        shop, e.g. moved there by `vitrina migrate`; nothing is generated)
#   LOADS=serving        skip the loads that run while a training job runs
#   PERF=FILE            record a CPU profile (perf record -g, 499 Hz) of the server during the
#                        first cache-miss mix run into FILE (PERF_RUN="mostly cached": that run)
# Steps: generate the shop (`vitrina gen`), import it (`vitrina import`), start `vitrina serve`,
# train a model on all 20M events, warm up for 10 s, then with `wrk` (bench/recommend.lua): a
# mostly cached run, a run where >= 20 % of requests miss the cache, freshness
# (`vitrina bench freshness`); then the same fixed-rate load (`vitrina bench recommend
# --rate`) idle and while a training job runs, and the closed-loop cache-miss run during
# training. Prints each report, the share of cache misses (from /metrics) and the RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
[ -n "${SKIP_BUILD:-}${BIN:-}" ] || cargo build --release -q -p vitrina-cli
bin=$(realpath "${BIN:-target/release/vitrina}")
dir=${DIR:-/tmp/scale}
data=${DATA:-$dir/data}
secs=${SECONDS_PER_RUN:-60}
port=${PORT:-18090}
url="http://127.0.0.1:$port"
mkdir -p "$dir"

echo "== machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(free -g | awk '/Mem:/{print $2}') GiB"
if [ -z "${STORE:-}" ] && [ ! -f "$dir/gen/events.csv" ]; then
  echo "== generating 1M users x 100k items x 20M events"
  /usr/bin/time -f "gen: %e s, peak RSS %M KiB" \
    "$bin" gen --users 1000000 --items 100000 --events 20000000 --seed 7 --out "$dir/gen"
fi
if [ -z "${STORE:-}" ] && [ ! -f "$data/.imported" ]; then
  rm -rf "$data"
  echo "== importing"
  /usr/bin/time -f "import products: %e s" "$bin" import --data-dir "$data" --format products-csv "$dir/gen/products.csv"
  /usr/bin/time -f "import events: %e s, peak RSS %M KiB" "$bin" import --data-dir "$data" --format events-csv "$dir/gen/events.csv"
  touch "$data/.imported"
fi
[ -z "${IMPORT_ONLY:-}" ] || exit 0
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }

echo "== starting the server"
started=$(date +%s.%N)
if [ -n "${STORE:-}" ]; then store=(--store "$STORE"); else store=(--data-dir "$data"); fi
RUST_LOG=info "$bin" serve --addr "127.0.0.1:$port" "${store[@]}" >"$dir/serve.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
until curl -sf "$url/health" >/dev/null; do sleep 0.5; done
echo "ready after $(echo "$(date +%s.%N) - $started" | bc) s"

status() { curl -s "$url/api/v1/training/status"; }
wait_training() { # prints the job's phase and the server's RSS every 10 s
  while status | grep -q '"current":{'; do
    echo "  $(status | python3 -c 'import json,sys; c=json.load(sys.stdin).get("current") or {}; print(c.get("phase"), round(c.get("progress", 0), 2))' 2>/dev/null) $(rss)"
    sleep 10
  done
  status | python3 -c 'import json,sys; s=json.load(sys.stdin)["lastFinished"]; print("job", s["jobId"], s["status"], s.get("modelVersion"), "from", s.get("startedAt"), "to", s.get("finishedAt"))'
}

sleep 2
if status | grep -q '"current":{'; then echo "== waiting for the startup training"; wait_training; fi
if ! curl -s "$url/api/v1/training/models" | grep -q '"activeVersion":"v'; then
  echo "== training on all events"
  curl -s -XPOST "$url/api/v1/training/train" -H 'content-type: application/json' -d '{}' >/dev/null
  sleep 2
  wait_training
fi
echo "== idle: $(rss)"

warm_up
load_run "mostly cached" 0.0 10000
load_run "cache-miss mix" 0.25 10000
echo "== freshness: view of the top item -> first list without it"
"$bin" bench freshness --url "$url" --user-prefix user- --users 1000000 --samples 1000
echo "== $(rss)"

fixed_rate "fixed rate, idle"
[ "${LOADS:-all}" = serving ] && { echo "== after the serving loads: $(rss)"; exit 0; }
echo "== the same loads while a training job runs"
curl -s -XPOST "$url/api/v1/training/train" -H 'content-type: application/json' -d '{}' >/dev/null
sleep 5
fixed_rate "fixed rate, during training"
load_run "cache-miss mix during training" 0.25 10000
status | python3 -c 'import json,sys; c=json.load(sys.stdin).get("current") or {}; print("training still running:", c.get("phase"), c.get("progress"))'
wait_training
echo "== after training: $(rss)"
