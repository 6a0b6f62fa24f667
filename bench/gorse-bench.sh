#!/usr/bin/env bash
# Tracking and lists through the Gorse-compatible API against the same through /api/v1,
# side by side on one server (a release build on loopback, fresh SQLite data directory):
# each load runs ROUNDS times per API (default 4), alternating which goes first, so neither
# always meets the warmer or the bigger server.
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
# The 1,000 products the loads draw from, in the catalogue before any load (otherwise the
# first Gorse batch would create them, and the loads before it would track unknown items).
seq 1 1000 | awk 'BEGIN { printf "{\"products\":[" }
  { printf "%s{\"id\":\"product-%d\",\"name\":\"Product %d\",\"category\":\"c%d\",\"price\":\"%d.00\"}", (NR > 1 ? "," : ""), $1, $1, $1 % 20, $1 }
  END { print "]}" }' | curl -sSf -XPOST "$url/api/v1/catalog/products/bulk" -H 'content-type: application/json' -d @- >/dev/null
echo "== products in the catalogue: $(curl -s "$url/api/v1/catalog/products?limit=1" | sed -n 's/.*"total":\([0-9]*\).*/\1/p')"
common=(--url "$url" --users 100000 --products 1000)
loads=(
  "batch ingest, 500 requests x 1000 events, 4 in flight|ingest --requests 500 --batch 1000 --concurrency 4"
  "single-event tracking, 20000 requests, 32 in flight|track --requests 20000 --concurrency 32"
  "personalised lists, 20000 requests, 32 in flight|recommend --requests 20000 --concurrency 32"
)
# The server's user + system CPU time so far, in clock ticks: what a load cost the server,
# apart from the load generator sharing its cores.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
for load in "${loads[@]}"; do
  read -r -a args <<<"${load#*|}"
  for round in $(seq 1 "${ROUNDS:-4}"); do
    # Odd rounds start with v1, even rounds with Gorse: each load grows the log and the
    # visitors' state, so the API that went second would always meet the bigger server.
    apis=(v1 gorse); (( round % 2 )) || apis=(gorse v1)
    for api in "${apis[@]}"; do
      echo "== round $round, $api: ${load%%|*}"
      before=$(cpu_ticks)
      "$bin" bench "${args[0]}" "${common[@]}" --api "$api" "${args[@]:1}"
      echo "  server CPU: $(( ($(cpu_ticks) - before) * 1000 / $(getconf CLK_TCK) )) ms"
    done
  done
done
echo "== events in the log: $(curl -s "$url/api/v1/activity/health" | sed -n 's/.*sequence \([0-9]*\).*/\1/p')"
echo "== server peak RSS: $(awk '/VmHWM/{print $2/1024 " MiB"}' /proc/$pid/status)"
