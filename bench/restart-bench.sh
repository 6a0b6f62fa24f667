#!/usr/bin/env bash
# Start-up with and without a checkpoint of the online state, on the 20M-event shop of
# bench/scale-bench.sh (generated and imported into $DIR/data when absent).
# Usage: bench/restart-bench.sh          (from the repository root)
#   DIR=/tmp/scale   where the shop lives (as in scale-bench.sh)
#   BIN=path/to/vitrina  measure another build; no build then
#   STORE=postgres://…   start from this PostgreSQL database instead (it must already hold the
#                        shop, e.g. moved there by `vitrina migrate --from $DIR/data`)
# Steps, each on the same data directory:
#   1. serve with checkpoints off (the whole log is replayed), stop;
#   2. serve with checkpoints on (no checkpoint yet: the whole log is replayed), stop: the
#      stop writes a checkpoint;
#   3. serve again: the checkpoint is restored and only the log after it replayed; stop.
# Prints, for each: seconds from launch until the server answers HTTP, the RSS then, the
# seconds SIGTERM took, and the follower's and the checkpoints' own log lines.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${BIN:-}" ] || cargo build --release -q -p vitrina-cli
bin=$(realpath "${BIN:-target/release/vitrina}")
dir=${DIR:-/tmp/scale}
data=${DATA:-$dir/data}
port=${PORT:-18091}
url="http://127.0.0.1:$port"
if [ -n "${STORE:-}" ]; then
  store=(--store "$STORE")
  psql -q "$STORE" -c "DELETE FROM artefacts WHERE path = 'checkpoints/online.vck'"
else
  [ -f "$data/.imported" ] || DIR="$dir" DATA="$data" BIN="$bin" IMPORT_ONLY=1 bash bench/scale-bench.sh
  store=(--data-dir "$data")
  rm -f "$data/checkpoints/online.vck"
fi

echo "== machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(free -g | awk '/Mem:/{print $2}') GiB"
echo "== build: $("$bin" --version 2>/dev/null || echo "$bin"), store: ${store[*]}"

start_stop() { # name, checkpoint interval (0 = off)
  local log="$dir/restart-$1.log" started pid
  started=$(date +%s.%N)
  VITRINA__STORAGE__CHECKPOINT_INTERVAL_SECONDS=$2 RUST_LOG=info \
    "$bin" serve --addr "127.0.0.1:$port" "${store[@]}" >"$log" 2>&1 &
  pid=$!
  until curl -s -o /dev/null "$url/health"; do
    kill -0 $pid 2>/dev/null || { echo "the server exited:"; tail -5 "$log"; exit 1; }
    sleep 0.2
  done
  local ready rss
  ready=$(echo "$(date +%s.%N) - $started" | bc)
  rss=$(awk '/VmRSS/{printf "%.0f", $2/1024}' /proc/$pid/status)
  started=$(date +%s.%N)
  kill -TERM $pid
  wait $pid || true
  printf '== %s: answers after %.1f s, RSS %s MiB; SIGTERM took %.1f s\n' \
    "$1" "$ready" "$rss" "$(echo "$(date +%s.%N) - $started" | bc)"
  grep -E '"(event log replayed into the engine|online state restored from its checkpoint|online state checkpointed|the online state checkpoint is unusable[^"]*)"' "$log" |
    python3 -c 'import json,sys
for l in sys.stdin:
    d=json.loads(l); m=d.pop("message", None) or d.get("fields",{}).pop("message","")
    f=d.get("fields", d); print("   ", m, {k:v for k,v in f.items() if k not in ("timestamp","level","target","message")})'
}

start_stop "checkpoints off" 0
start_stop "checkpoints on, first start" 300
[ -n "${STORE:-}" ] || ls -l "$data/checkpoints/online.vck"
start_stop "checkpoints on, restart" 300
