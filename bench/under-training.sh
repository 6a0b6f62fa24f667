#!/usr/bin/env bash
# The scale benchmark's loads around a training job, for two or more arms side by side:
# alternating passes, each on a fresh copy of a trained data directory of the 20M-event shop.
# Per pass: 10 s warm-up, fixed 3,000 lists/s idle, `vitrina bench freshness`, then a training
# job with fixed 3,000 lists/s and the closed-loop cache-miss mix while it runs; at the end,
# the impression writer thread's CPU time.
# Usage: bench/under-training.sh LABEL=BIN[:VAR=VALUE] LABEL=BIN[:VAR=VALUE] ...
#   (from the repository root; needs wrk). VAR=VALUE is set in that arm's server environment.
#   TRAINED=/tmp/scale/trained  a data directory of the shop with an active model (made, when
#                               absent, from DIR's imported shop by the first arm's binary)
#   DIR=/tmp/scale  PASSES=3  SECONDS_PER_RUN=30
#   SAMPLES=1000    freshness probes per pass
#   TRAIN=0         stop each pass after the freshness probes (no training job, no loads under it)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
[ $# -ge 2 ] || { echo "usage: bench/under-training.sh LABEL=BIN[:VAR=VALUE] ..." >&2; exit 2; }
dir=${DIR:-/tmp/scale}
trained=${TRAINED:-$dir/trained}
secs=${SECONDS_PER_RUN:-30}
port=${PORT:-18090}
url="http://127.0.0.1:$port"
copy="$dir/under-training-data"

pid=""
trap '[ -z "$pid" ] || kill "$pid" 2>/dev/null || true' EXIT
start() { # binary, data directory, environment assignment (or empty)
  env ${3:+"$3"} RUST_LOG=info "$1" serve --addr "127.0.0.1:$port" --data-dir "$2" >"$dir/under-training.log" 2>&1 &
  pid=$!
  until curl -sf "$url/health" >/dev/null; do
    kill -0 "$pid" 2>/dev/null || { tail -5 "$dir/under-training.log" >&2; exit 1; }
    sleep 0.5
  done
}
# CPU time (ticks of 10 ms) of the impression writer thread, `vitrina-impressions` (its retention
# thread's name starts alike, but it is `vitrina-impressions-retention`, cut to the same 15
# characters, so the first thread of that name, which is started first, is the writer).
writer_ticks() {
  for t in /proc/"$pid"/task/*; do
    if [ "$(cat "$t/comm")" = vitrina-impress ]; then awk '{print $14 + $15}' "$t/stat"; fi
  done | head -1
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; }
training() { curl -s "$url/api/v1/training/status" | grep -q '"current":{'; }

if [ ! -f "$trained/.trained" ]; then
  [ -f "$dir/data/.imported" ] || { echo "no imported shop in $dir/data: run IMPORT_ONLY=1 bench/scale-bench.sh" >&2; exit 1; }
  first=${1#*=}; first=${first%%:*}
  echo "== training the shop once into $trained (start-up training of $first)"
  rm -rf "$trained" && cp -r "$dir/data" "$trained" && rm -f "$trained/vitrina.lock"
  bin=$first; start "$first" "$trained" ""   # /health answers once a model serves
  stop; touch "$trained/.trained"
fi
for pass in $(seq 1 "${PASSES:-3}"); do
  for arm in "$@"; do
    label=${arm%%=*}; rest=${arm#*=}; bin=${rest%%:*}; assign=""
    [ "$rest" = "$bin" ] || assign=${rest#*:}
    echo "#### pass $pass, $label ($bin${assign:+, $assign}), $(date -u +%H:%M:%S) UTC"
    rm -rf "$copy" && cp -r "$trained" "$copy" && rm -f "$copy/vitrina.lock"
    start "$bin" "$copy" "$assign"
    warm_up
    fixed_rate "fixed rate, idle"
    echo "== freshness"
    "$bin" bench freshness --url "$url" --user-prefix user- --users 1000000 --samples "${SAMPLES:-1000}"
    if [ "${TRAIN:-1}" != 0 ]; then
      curl -s -XPOST "$url/api/v1/training/train" -H 'content-type: application/json' -d '{}' >/dev/null
      sleep 5
      fixed_rate "fixed rate, during training"
      load_run "cache-miss mix during training" 0.25 10000
      while training; do sleep 5; done
    fi
    echo "== impression writer CPU: $(writer_ticks) ticks"
    stop
  done
done
