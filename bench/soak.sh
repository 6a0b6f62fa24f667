#!/usr/bin/env bash
# Soak: mixed traffic (single-event tracking and personalised lists) over many distinct
# visitors for a long time against a release build on loopback; samples the server's RSS and
# the data directory's size, so one can see whether memory levels off and disk growth is
# bounded by the impression retention.
#
# Usage (from the repository root):
#   bash bench/soak.sh                       # 30 minutes, 2,000,000 visitors
#   DURATION=300 LIST_RATE=2000 bash bench/soak.sh
# Settings (environment): DURATION (s, 1800), USERS (2000000), LIST_RATE (lists/s, 3000),
# TRACK_RATE (events/s, 1000), RETENTION_DAYS (impression retention, 0.0104 = 15 min, so that
# pruning shows within the run), EVENT_RETENTION_DAYS (event-log retention, 0 = forever, the
# default), ONLINE_VISITORS (the online-state cap, 2000000), BIN (another build: no cargo build
# then); the server prunes every 10 minutes.
# Output: a CSV of samples every 30 s (elapsed s, RSS MiB, of which transparent huge pages MiB,
# the server's threads, its open descriptors on the databases (one per SQLite connection and
# WAL), vitrina.db* MiB, impressions.db* MiB, and the gauges of events in the log, visitors online and
# visitors cached) and the two load generators' reports (requests, errors, latency).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-1800}
USERS=${USERS:-2000000}
LIST_RATE=${LIST_RATE:-3000}
TRACK_RATE=${TRACK_RATE:-1000}
RETENTION_DAYS=${RETENTION_DAYS:-0.0104}
EVENT_RETENTION_DAYS=${EVENT_RETENTION_DAYS:-0}
ONLINE_VISITORS=${ONLINE_VISITORS:-2000000}
PORT=${PORT:-18095}
[[ -n "${BIN:-}" ]] || cargo build --release -q --bin vitrina
bin=${BIN:-target/release/vitrina}
dir=$(mktemp -d)
url="http://127.0.0.1:$PORT"
VITRINA__STORAGE__IMPRESSION_RETENTION_DAYS=$RETENTION_DAYS VITRINA__STORAGE__EVENT_RETENTION_DAYS=$EVENT_RETENTION_DAYS \
VITRINA__LIMITS__ONLINE_VISITORS=$ONLINE_VISITORS RUST_LOG=warn \
  "$bin" serve --addr "127.0.0.1:$PORT" --data-dir "$dir/data" >"$dir/serve.out" 2>"$dir/serve.log" &
pid=$!
cleanup() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
for _ in $(seq 1 300); do curl -sf "$url/health" >/dev/null && break; kill -0 "$pid" || exit 1; sleep 0.1; done

mib() { du -cm "$@" 2>/dev/null | tail -n1 | cut -f1; }
echo "== machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(free -g | awk '/Mem:/{print $2}') GiB"
echo "== soak: ${DURATION}s, ${USERS} visitors, ${LIST_RATE} lists/s + ${TRACK_RATE} events/s, impression retention ${RETENTION_DAYS} days, event retention ${EVENT_RETENTION_DAYS} days, online cap ${ONLINE_VISITORS}"
"$bin" bench recommend --url "$url" --duration "$DURATION" --rate "$LIST_RATE" --concurrency 16 \
  --users "$USERS" --products 10 >"$dir/recommend.txt" &
lists=$!
"$bin" bench track --url "$url" --duration "$DURATION" --rate "$TRACK_RATE" --concurrency 8 \
  --users "$USERS" --products 10 >"$dir/track.txt" &
track=$!
# gauges NAME…: their values in one scrape of the server's /metrics, comma-separated
gauges() {
  curl -s "$url/metrics" | awk -v names="$*" 'BEGIN { n = split(names, want, " ") }
    { v[$1] = $2 } END { for (i = 1; i <= n; i++) printf "%s%d", (i > 1 ? "," : ""), v[want[i]] }'
}
echo "elapsed_s,rss_mib,anon_huge_mib,threads,db_fds,vitrina_db_mib,impressions_db_mib,events_in_log,online_visitors,cached_visitors"
start=$(date +%s)
while kill -0 "$lists" 2>/dev/null || kill -0 "$track" 2>/dev/null; do
  rss=$(awk '/VmRSS/{printf "%d", $2/1024}' "/proc/$pid/status")
  huge=$(awk '/AnonHugePages/{printf "%d", $2/1024}' "/proc/$pid/smaps_rollup")
  threads=$(awk '/^Threads/{print $2}' "/proc/$pid/status")
  fds=$({ find "/proc/$pid/fd" -lname '*.db*' 2>/dev/null || true; } | wc -l) # an fd may close mid-scan
  echo "$(( $(date +%s) - start )),$rss,$huge,$threads,$fds,$(mib "$dir"/data/vitrina.db*),$(mib "$dir"/data/impressions.db*),$(gauges vitrina_event_log_events vitrina_online_visitors vitrina_cache_entries)"
  sleep 30
done
wait "$lists" "$track"
echo "== lists";  cat "$dir/recommend.txt"
echo "== events"; cat "$dir/track.txt"
echo "== server peak RSS: $(awk '/VmHWM/{print $2/1024 " MiB"}' "/proc/$pid/status")"
curl -s "$url/metrics" | grep -E "^vitrina_(online_visitors|online_visitors_evicted_total|cache_entries|event_log_events|store_impressions_dropped_total|store_outcomes_dropped_total|store_pruned_total)" || true
echo "== server errors logged: $(grep -c '"level":"ERROR"' "$dir/serve.log" || true)"
