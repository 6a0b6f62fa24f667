#!/usr/bin/env bash
# Ingest and tracking benchmarks against a release build on loopback.
# Usage: bench/serve-bench.sh            (from the repository root; BIN=… for another build)
# Starts `vitrina serve` on a fresh temporary data directory, runs the load generators
# (`vitrina bench ingest` and `vitrina bench track`, on the same machine), prints their
# reports and the server's peak RSS, and stops the server.
set -euo pipefail
cd "$(dirname "$0")/.."
# BIN=path/to/another/vitrina measures another build (e.g. an older commit) with the same load.
# STORE=postgres://user@host:port/db serves from that (empty) PostgreSQL database instead of
# the embedded SQLite store (bench/store-compare.sh runs both side by side).
bin=${BIN:-target/release/vitrina}
[[ -n "${BIN:-}" ]] || cargo build --release -q -p vitrina-cli
dir=$(mktemp -d)
port=${PORT:-18090}
url="http://127.0.0.1:$port"
RUST_LOG=warn "$bin" serve --addr "127.0.0.1:$port" --data-dir "$dir" ${STORE:+--store "$STORE"} >"$dir/serve.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 1 100); do curl -sf "$url/health" >/dev/null && break; sleep 0.1; done

echo "== machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(free -g | awk '/Mem:/{print $2}') GiB"
echo "== batch ingest: 2000 requests x 1000 events, 4 in flight"
"$bin" bench ingest --url "$url" --requests 2000 --batch 1000 --concurrency 4 --users 100000 --products 1000
echo "== batch ingest: 100 requests x 10000 events (the largest batch), 2 in flight"
"$bin" bench ingest --url "$url" --requests 100 --batch 10000 --concurrency 2 --users 100000 --products 1000
echo "== single-event tracking: 50000 requests, 32 in flight"
"$bin" bench track --url "$url" --requests 50000 --concurrency 32 --users 100000 --products 1000
echo "== single-event tracking: 50000 requests, 4 in flight"
"$bin" bench track --url "$url" --requests 50000 --concurrency 4 --users 100000 --products 1000
echo "== server peak RSS: $(awk '/VmHWM/{print $2/1024 " MiB"}' /proc/$pid/status)"
echo "== events in the log: $(curl -s "$url/api/v1/activity/health" | sed -n 's/.*sequence \([0-9]*\).*/\1/p')"
