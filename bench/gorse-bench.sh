#!/usr/bin/env bash
# Tracking and lists through the Gorse-compatible API against the same through /api/v1,
# side by side on one server (a release build on loopback, fresh SQLite data directory):
# each load runs twice per API, alternating, so neither gets the warmer server.
# Usage: bench/gorse-bench.sh            (from the repository root; BIN=… for another build)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BIN:-target/release/vitrina}
[[ -n "${BIN:-}" ]] || cargo build --release -q -p vitrina-cli
dir=$(mktemp -d)
port=${PORT:-18091}
url="http://127.0.0.1:$port"
RUST_LOG=warn "$bin" serve --addr "127.0.0.1:$port" --data-dir "$dir" >"$dir/serve.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 1 100); do curl -sf "$url/health" >/dev/null && break; sleep 0.1; done

echo "== machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(free -g | awk '/Mem:/{print $2}') GiB"
common=(--url "$url" --users 100000 --products 1000)
loads=(
  "batch ingest, 500 requests x 1000 events, 4 in flight|ingest --requests 500 --batch 1000 --concurrency 4"
  "single-event tracking, 20000 requests, 32 in flight|track --requests 20000 --concurrency 32"
  "personalised lists, 20000 requests, 32 in flight|recommend --requests 20000 --concurrency 32"
)
for load in "${loads[@]}"; do
  read -r -a args <<<"${load#*|}"
  for round in 1 2; do
    for api in v1 gorse; do
      echo "== round $round, $api: ${load%%|*}"
      "$bin" bench "${args[0]}" "${common[@]}" --api "$api" "${args[@]:1}"
    done
  done
done
echo "== events in the log: $(curl -s "$url/api/v1/activity/health" | sed -n 's/.*sequence \([0-9]*\).*/\1/p')"
echo "== server peak RSS: $(awk '/VmHWM/{print $2/1024 " MiB"}' /proc/$pid/status)"
