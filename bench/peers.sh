#!/usr/bin/env bash
# Vitrina vs peers (implicit ALS/BPR/item-kNN, numpy EASE) on the same splits, scored by
# the same (Rust) metric code. One run does everything:
#   bench/peers.sh            # both MovieLens sets × both protocols; Vitrina *and* the peers
#                             # tuned on the same validation split carved from training data
#   NO_TUNE=1 bench/peers.sh  # everyone with defaults (peers: implicit's, EASE λ=500)
#   NO_PEER_TUNE=1 bench/peers.sh  # Vitrina tuned, peers at those defaults
# Env: VITRINA_DATA (default ../shared/data), SEED (42), THREADS (2), CARGO_TARGET_DIR.
# Output: bench/out/<dataset>/<protocol>/{train,test}.txt, peer lists, vitrina.json,
# peers.jsonl, and bench/out/summary.md (printed at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${VITRINA_DATA:-../shared/data}
SEED=${SEED:-42}
THREADS=${THREADS:-2}
OUT=bench/out
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
PY=bench/.venv/bin/python

if [ ! -x "$PY" ]; then python3 -m venv bench/.venv; fi
"$PY" -m pip install -q --disable-pip-version-check implicit numpy scipy threadpoolctl

CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-$THREADS} cargo build -q -p vitrina-algo --release --examples
EX=$CARGO_TARGET_DIR/release/examples
TUNE=--tune
if [ -n "${NO_TUNE:-}" ]; then TUNE=; fi

export RAYON_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
for spec in ml-100k:movielens:u.data ml-latest-small:movielens-csv:ratings.csv; do
  IFS=: read -r name format file <<<"$spec"
  path=$DATA/$name/$file
  if [ ! -f "$path" ]; then echo "skip $name: $path not found" >&2; continue; fi
  for protocol in leave-last-out random-80-20; do
    dir=$OUT/$name/$protocol
    common=(--data "$path" --format "$format" --protocol "$protocol" --seed "$SEED")
    echo "== $name $protocol" >&2
    "$EX/export_split" "${common[@]}" --out "$dir"
    k=10; if [ "$protocol" = random-80-20 ]; then k=20; fi
    PEER_TUNE=$TUNE; if [ -n "${NO_PEER_TUNE:-}" ]; then PEER_TUNE=; fi
    "$PY" bench/peers.py --train "$dir/train.txt" --test "$dir/test.txt" --out "$dir" --threads "$THREADS" \
      --seed "$SEED" ${PEER_TUNE:+--tune --k $k}
    "$EX/score_lists" "${common[@]}" --lists "$dir/als.txt,$dir/bpr.txt,$dir/item-knn.txt,$dir/ease.txt" \
      --names implicit-als,implicit-bpr,implicit-item-knn,numpy-ease >"$dir/peers.jsonl"
    "$EX/eval" "${common[@]}" --json $TUNE >"$dir/vitrina.json" 2>"$dir/vitrina.log"
  done
done
"$PY" bench/compare.py "$OUT" | tee "$OUT/summary.md"
