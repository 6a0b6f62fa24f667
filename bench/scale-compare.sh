#!/usr/bin/env bash
# The scale benchmark side by side: two (or more) builds of `vitrina`, alternating, each pass on
# a fresh copy of the same imported data directory (so each build starts from the same bytes,
# trains its own model at first start and then runs every load of bench/scale-bench.sh).
# Usage: bench/scale-compare.sh OLD_BIN NEW_BIN [...]     (from the repository root; needs wrk)
#   DIR=/tmp/scale     the generated shop and base data directory (made by the first binary
#                      when absent: an older build imports, newer builds must open its files)
#   RUNS=2             passes per binary;  SECONDS_PER_RUN=60  length of each load run
#   PERF=/tmp/p        a CPU profile of each pass's cache-miss run: /tmp/p.<binary name>.<run>
# Output: each pass's full report under "#### <binary> (run N)".
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: bench/scale-compare.sh OLD_BIN NEW_BIN [...]" >&2; exit 2; }
dir=${DIR:-/tmp/scale}
runs=${RUNS:-2}
base="$dir/data"
copy="$dir/compare-data"
if [ ! -f "$base/.imported" ]; then
  echo "== generating and importing with $1"
  DIR="$dir" DATA="$base" BIN="$1" IMPORT_ONLY=1 bash bench/scale-bench.sh
fi
for run in $(seq 1 "$runs"); do
  for bin in "$@"; do
    echo "#### $bin (run $run), $(date -u +%H:%M) UTC"
    rm -rf "$copy" && cp -r "$base" "$copy" && rm -f "$copy/vitrina.lock"
    DIR="$dir" DATA="$copy" BIN="$bin" PERF="${PERF:+$PERF.$(basename "$bin").$run}" bash bench/scale-bench.sh
  done
done
