#!/usr/bin/env bash
# Memory of a full retrain at scale, side by side for one or more builds of `vitrina`.
# Usage: bench/train-memory.sh [BIN ...]    (default: target/release/vitrina)
#   DIR=/tmp/scale   holds data/ from bench/scale-bench.sh (1M visitors, 100k products, 20M
#                    events, one model trained); each run works on a fresh copy of it
#   RUNS=2           runs per binary
# Per run and binary: (1) `vitrina train --threads 1` alone on the copy: wall time and peak
# RSS (/usr/bin/time); (2) `vitrina serve` on another copy with a fixed offered load
# (`vitrina bench recommend --rate 3000`, visitors drawn from all 1M) and, during that
# load, a training job through the API: the server's RSS after the load and its peak
# (VmHWM) by the end of the job. The binaries alternate, so drift hits them alike.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${DIR:-/tmp/scale}
runs=${RUNS:-2}
port=${PORT:-18091}
url="http://127.0.0.1:$port"
bins=("$@")
[ ${#bins[@]} -gt 0 ] || bins=("$PWD/target/release/vitrina")
[ -d "$dir/data" ] || { echo "no $dir/data: run bench/scale-bench.sh first" >&2; exit 1; }
work="$dir/train-memory"
pid=; loader=
cleanup() { kill $loader $pid 2>/dev/null || true; }
trap cleanup EXIT
fresh() { rm -rf "$work" && cp -r "$dir/data" "$work" && rm -f "$work/vitrina.lock"; }
echo "== machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(free -g | awk '/Mem:/{print $2}') GiB"
for run in $(seq 1 "$runs"); do
  for bin in "${bins[@]}"; do
    name="$(basename "$bin") (run $run)"
    fresh
    # Exit code 3 (rejected by the validation gate) still measured the whole job.
    /usr/bin/time -o "$dir/train-memory.time" -f "$name, vitrina train alone: %e s, peak RSS %M KiB (exit %x)" \
      "$bin" train --data-dir "$work" --threads 1 >/dev/null 2>"$dir/train-memory.err" || true
    cat "$dir/train-memory.time"
    fresh
    "$bin" serve --addr "127.0.0.1:$port" --data-dir "$work" >"$dir/train-memory.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 600); do
      curl -sf "$url/health" >/dev/null && break
      kill -0 "$pid" 2>/dev/null || { echo "the server exited: $dir/train-memory.log" >&2; exit 1; }
      sleep 0.5
    done
    kib() { awk -v k="$1" '$1 == k":" {print $2}' "/proc/$pid/status"; }
    load=("$bin" bench recommend --url "$url" --user-prefix user- --users 1000000 --concurrency 32 --rate 3000)
    "${load[@]}" --duration 40 >/dev/null
    after=$(kib VmRSS)
    "${load[@]}" --duration 600 >/dev/null &
    loader=$!
    sleep 5
    echo 5 >"/proc/$pid/clear_refs" # VmHWM := current RSS: the peak below is the job's
    curl -sf -XPOST "$url/api/v1/training/train" -H 'content-type: application/json' -d '{}' >/dev/null
    sleep 2
    while :; do
      s=$(curl -s "$url/api/v1/training/status")
      [[ $s == *'"current":{'* ]] || break
      sleep 1
    done
    status=$(curl -s "$url/api/v1/training/status" | python3 -c 'import json,sys; print(json.load(sys.stdin)["lastFinished"]["status"])')
    echo "$name, server: RSS after 40 s of load $((after / 1024)) MiB; peak by the end of the training job ($status) $(( $(kib VmHWM) / 1024 )) MiB"
    kill "$loader" 2>/dev/null || true
    wait "$loader" 2>/dev/null || true
    kill "$pid"; wait "$pid" 2>/dev/null || true
  done
done
rm -rf "$work"
