#!/usr/bin/env bash
# The published OpenAPI document against the real server: openapi-spec-validator, then
# schemathesis with every check on every operation (two operations run without the two
# schema-vs-acceptance checks, the Gorse-compatible API without use_after_free; see below). Needs a built `target/debug/vitrina` (the test
# run builds it). Bounded: about a minute or two on 2 cores.
#
#   bash .ci/api-fuzz.sh [examples per operation, default 30]
set -euo pipefail
cd "$(dirname "$0")/.."

EXAMPLES="${1:-30}"
VENV="target/api-fuzz-venv"
BIN="target/debug/vitrina"
[[ -x "$BIN" ]] || cargo build --locked --bin vitrina

if [[ ! -x "$VENV/bin/schemathesis" ]]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r .ci/api-fuzz-requirements.txt
fi

source .ci/live-server.sh
start_server

curl -sf "$BASE/openapi.json" >"$WORK/openapi.json"
"$VENV/bin/openapi-spec-validator" "$WORK/openapi.json"

# The first key on an open server closes it: from here on every request needs a key, and
# schemathesis checks that requests without one are refused.
KEY="$(admin_key api-fuzz)"

run() {
  "$VENV/bin/schemathesis" run "$BASE/openapi.json" --checks all -n "$EXAMPLES" --generation-deterministic \
    --request-timeout 30 -H "Authorization: Bearer $KEY" --no-color "$@"
}
# Two bodies whose validity no schema states exactly: an experiment's cross-field rules
# (traffic shares, the control naming a variant, a model that exists) and training
# hyperparameters that are 32-bit floats (a value at a published bound rounds across it).
# For them only, the checks "schema-valid is accepted" / "schema-invalid is refused" are off.
EXACTLY_UNSTATED=(--include-operation-id experiments_create --include-operation-id training_train)
run --exclude-operation-id experiments_create --exclude-operation-id training_train --exclude-tag gorse
run "${EXACTLY_UNSTATED[@]}" --exclude-checks positive_data_acceptance,negative_data_rejection
# The Gorse-compatible API answers as Gorse does where Gorse's SDKs rely on it: an unknown
# user's feedback and an unknown item's neighbours are empty lists, not 404s, so after a
# DELETE its sub-lists are still "available" (the check use_after_free); every other check runs.
run --include-tag gorse --exclude-checks use_after_free
check_server_log
echo "api fuzz: spec valid, schemathesis found nothing"
