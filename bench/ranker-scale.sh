#!/usr/bin/env bash
# What the learned ranker costs a list at the scale of bench/scale-bench.sh (1M visitors,
# 100k products, 20M events), side by side with the blend in one run, on one model.
# Usage: bench/ranker-scale.sh            (from the repository root; needs `wrk`)
#   DIR=/tmp/scale        the generated shop; its imported data directory $DIR/data is made
#                         by `DIR=… IMPORT_ONLY=1 bash bench/scale-bench.sh` when absent
#   BIN=path/to/vitrina   the build to measure (default: a release build of this checkout)
#   RUNS=2                rounds (a pass of each ranker);  SECONDS_PER_RUN=60  length of each load run
# Steps: a copy of the imported data directory; one start trains a model on all 20M events
# with the default training config (which trains the ranker) and stops, writing a checkpoint;
# the script refuses to go on unless that model's ranker passed its gate (it serves). Then RUNS
# rounds of two passes in the order blend, learned, learned, blend, … (`ranking.ranker`, set by
# the environment variable VITRINA__RANKING__RANKER), each pass a server started from its
# checkpoint on a fresh copy of that trained directory (a pass's served lists grow the
# impression log, which would slow the passes after it): a 10 s warm-up, a mostly cached run, a cache-miss mix (wrk,
# bench/recommend.lua), and a fixed offered load of 3,000 lists/s for visitors drawn from
# all 1M (`vitrina bench recommend --rate`, mostly cache misses).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
[ -n "${BIN:-}" ] || cargo build --release -q -p vitrina-cli
bin=$(realpath "${BIN:-target/release/vitrina}")
dir=${DIR:-/tmp/scale}
runs=${RUNS:-2}
secs=${SECONDS_PER_RUN:-60}
port=${PORT:-18091}
url="http://127.0.0.1:$port"
trained="$dir/ranker-trained"
data="$dir/ranker-data"
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
if [ ! -f "$dir/data/.imported" ]; then
  DIR="$dir" DATA="$dir/data" BIN="$bin" IMPORT_ONLY=1 bash bench/scale-bench.sh
fi
echo "== machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(free -g | awk '/Mem:/{print $2}') GiB"

pid=
stop() { [ -z "$pid" ] || { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=; }; }
trap stop EXIT
start() { # ranker choice; logs to $dir/ranker-serve.<choice>.log
  local started
  started=$(date +%s.%N)
  VITRINA__RANKING__RANKER="$1" RUST_LOG=info "$bin" serve --addr "127.0.0.1:$port" --data-dir "$data" \
    >"$dir/ranker-serve.$1.log" 2>&1 &
  pid=$!
  local deadline=$(($(date +%s) + 1800))
  until curl -sf "$url/health" >/dev/null; do
    kill -0 "$pid" 2>/dev/null || { echo "the server exited: $dir/ranker-serve.$1.log" >&2; exit 1; }
    [ "$(date +%s)" -lt "$deadline" ] || { echo "not healthy after 30 min: $dir/ranker-serve.$1.log" >&2; exit 1; }
    sleep 1
  done
  echo "ready after $(echo "$(date +%s.%N) - $started" | bc) s"
}
echo "== a copy of the imported shop, and a model trained on all of it (default config)"
rm -rf "$data" "$trained" && cp -r "$dir/data" "$data" && rm -f "$data/vitrina.lock"
start learned
# /health answers once a model is active, as the start-up job finishes.
active=$(curl -s "$url/api/v1/training/models" | python3 -c 'import json,sys; print(json.load(sys.stdin)["activeVersion"])')
model=$(curl -s "$url/api/v1/training/models/$active")
echo "$model" | python3 -c 'import json,sys; m=json.load(sys.stdin)["model"]; print("model", m["version"], "trained", m.get("createdAt"), "to", m.get("finishedAt")); print("ranker:", json.dumps(m["metrics"].get("ranker")))' || true
grep -o 'learned ranker: [^"]*' "$dir/ranker-serve.learned.log" | head -3 || true
case "$model" in
  *'"serves":true'*) ;;
  *) echo "the active model $active carries no learned ranker that passed its gate: nothing to compare" >&2; exit 1 ;;
esac
stop
mv "$data" "$trained"

for round in $(seq 1 "$runs"); do
  order="blend learned"
  [ $((round % 2)) -eq 1 ] || order="learned blend"
  for ranker in $order; do
    echo "#### ranker: $ranker (round $round), $(date -u +%H:%M:%S) UTC"
    rm -rf "$data" && cp -r "$trained" "$data" && rm -f "$data/vitrina.lock"
    start "$ranker"
    warm_up
    load_run "mostly cached" 0.0 10000
    load_run "cache-miss mix" 0.25 10000
    fixed_rate "fixed rate"
    echo "== $(rss)"
    stop
  done
done
