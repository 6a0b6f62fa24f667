#!/usr/bin/env bash
# Transparent huge pages on against off, side by side: the same build, the same loads, the two
# settings alternating (off, on, off, on, …) so that drift of the machine falls on both.
# `vitrina serve` turns them off unless MIMALLOC_ALLOW_THP is set; "on" sets it to 1.
# Usage (from the repository root): bash bench/thp-compare.sh
# Settings (environment): PASSES (2), SECS (length of each list run, 30), BIN (another build:
# no cargo build then).
# Each run: a fresh demo data directory; 30 s of lists for 2,000,000 visitors (nearly every
# one a cache miss), 50,000 single events (16 in flight), 500 batches of 1,000 events (4 in
# flight); the load generators' reports and the server's RSS and peak RSS after them.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh # rss
PASSES=${PASSES:-2}
SECS=${SECS:-30}
PORT=${PORT:-18096}
[[ -n "${BIN:-}" ]] || cargo build --release -q -p vitrina-cli
bin=${BIN:-target/release/vitrina}
url="http://127.0.0.1:$PORT"
echo "== machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(free -g | awk '/Mem:/{print $2}') GiB"
run() { # label, then the environment of the server
  local label=$1 dir pid
  shift
  dir=$(mktemp -d)
  env "$@" RUST_LOG=warn "$bin" serve --addr "127.0.0.1:$PORT" --data-dir "$dir" >"$dir/out" 2>"$dir/log" &
  pid=$!
  for _ in $(seq 1 300); do curl -sf "$url/health" >/dev/null && break; kill -0 "$pid" || exit 1; sleep 0.1; done
  echo "== $label: THP_enabled $(awk '/THP_enabled/{print $2}' "/proc/$pid/status")"
  "$bin" bench recommend --url "$url" --duration "$SECS" --concurrency 16 --users 2000000 | grep -E "requests|latency"
  "$bin" bench track --url "$url" --requests 50000 --concurrency 16 --users 100000 --products 1000 | grep -E "requests|latency"
  "$bin" bench ingest --url "$url" --requests 500 --batch 1000 --concurrency 4 --users 100000 --products 1000 | grep -E "requests|latency|events"
  rss
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
}
for pass in $(seq 1 "$PASSES"); do
  run "pass $pass, huge pages off (the default)" -u MIMALLOC_ALLOW_THP
  run "pass $pass, huge pages on (MIMALLOC_ALLOW_THP=1)" MIMALLOC_ALLOW_THP=1
done
