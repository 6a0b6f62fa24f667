#!/usr/bin/env bash
# Runs each cargo fuzz target for a set time, starting from the committed seed corpus.
#
#   bash fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 600 s, every target)
#   JOBS=2 bash fuzz/run.sh 600                           (targets two at a time)
#
# New inputs the fuzzers find go to target/fuzz-corpus/<target>/ (the committed seeds in
# fuzz/corpus/ stay as they are); a crash leaves its input in fuzz/artifacts/<target>/ and
# makes the script fail. Installs cargo-fuzz from crates.io when it is missing. cargo fuzz
# passes nightly-only compiler flags (the sanitizer); the toolchain the project builds with is
# told to allow them (RUSTC_BOOTSTRAP=1), so no nightly toolchain is needed.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-600}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(event_json import artefact bundle)
jobs="${JOBS:-1}"

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
fuzz=(cargo fuzz)

# -O: optimised with debug assertions, the way the fuzzers find the most per second.
"${fuzz[@]}" build -O

summary=target/fuzz-summary.txt
: >"$summary"
run_one() {
  local t="$1" work="target/fuzz-corpus/$1" log="target/fuzz-$1.log"
  mkdir -p "$work" "fuzz/artifacts/$t"
  local start=$SECONDS status=ok
  # -rss_limit_mb: a decoder that allocates what a length field claims fails here.
  "${fuzz[@]}" run -O "$t" "$work" "fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 >"$log" 2>&1 || status=FAILED
  local runs cov
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n1 | grep -o '[0-9]*' || echo "?")
  printf '%-11s %-6s %5ss  %12s runs  %6s edges  corpus %s files\n' \
    "$t" "$status" "$((SECONDS - start))" "$runs" "$cov" "$(ls "$work" | wc -l)" | tee -a "$summary"
  [ "$status" = ok ] || { tail -n 40 "$log" >&2; return 1; }
}

failed=0
running=0
for t in "${targets[@]}"; do
  run_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then wait -n || failed=1; running=$((running - 1)); fi
done
while [ "$running" -gt 0 ]; do wait -n || failed=1; running=$((running - 1)); done
echo "summary in $summary"
exit "$failed"
