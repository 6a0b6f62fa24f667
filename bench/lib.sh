# Helpers shared by the scale benchmarks (sourced by bench/scale-bench.sh and
# bench/ranker-scale.sh, from the repository root). They read the caller's $url (the server),
# $pid (its process), $secs (length of a load run) and $bin (the vitrina binary).

# The server's resident and peak memory.
rss() { awk '/VmRSS/{r=$2} /VmHWM/{h=$2} END{printf "RSS %.0f MiB, peak %.0f MiB\n", r/1024, h/1024}' /proc/$pid/status; }

# Lists served so far with cache="$1" (hit or miss), from /metrics.
served() { curl -s "$url/metrics" | awk -v c="$1" '$1 ~ "vitrina_recommendations_served_total" && $1 ~ "cache=\""c"\"" {s+=$2} END{print s+0}'; }

# A closed-loop wrk run (bench/recommend.lua prints p50/p99/p99.9 and the error counts):
# name, COLD share, HOT visitors. With PERF=FILE the run named $PERF_RUN (default "cache-miss
# mix") is profiled.
load_run() {
  local h0 m0 h m
  h0=$(served hit); m0=$(served miss)
  echo "== $1: wrk -t1 -c32 -d${secs}s, COLD=$2 HOT=$3"
  if [ -n "${PERF:-}" ] && [ "$1" = "${PERF_RUN:-cache-miss mix}" ]; then
    perf record -F 499 -g -p "$pid" -o "$PERF" -- sleep "$secs" >/dev/null 2>&1 &
  fi
  COLD=$2 HOT=$3 wrk -t1 -c32 -d"${secs}s" --latency -s bench/recommend.lua "$url" |
    grep -E "Requests/sec|p99.9|Socket errors|Non-2xx|requests in"
  h=$(( $(served hit) - h0 )); m=$(( $(served miss) - m0 ))
  echo "cache misses: $m of $((h + m)) ($(( 100 * m / (h + m > 0 ? h + m : 1) )) %); $(rss)"
}

# 10 s of the cache-miss mix, not measured.
warm_up() {
  echo "== warm-up (10 s, not measured)"
  COLD=0.25 HOT=10000 wrk -t1 -c32 -d10s -s bench/recommend.lua "$url" >/dev/null
}

# The same offered load, 3,000 lists/s for visitors drawn from all 1M (mostly cache misses).
fixed_rate() { # label
  echo "== $1: vitrina bench recommend --rate 3000 --duration $secs (all visitors, mostly misses)"
  "$bin" bench recommend --url "$url" --user-prefix user- --users 1000000 --concurrency 32 \
    --rate 3000 --duration "$secs" | grep -E "requests/s|latency|FAILED"
}
