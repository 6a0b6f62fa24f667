#!/usr/bin/env bash
# The unchanged official Gorse SDKs — pygorse (PyPI) and gorsejs (npm), pinned here — against
# a live `vitrina serve` with an API key, as a shop moving from Gorse would run them. Installs
# the SDKs on first use (into target/, never at test time), starts the server on a free port
# over a fresh data directory, runs both suites, stops the server.
#
#   bash compat/gorse/run.sh        (needs a built target/debug/vitrina; builds it if absent)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
cd "$HERE/../.."

BIN="target/debug/vitrina"
VENV="target/gorse-compat/venv"
NODE="target/gorse-compat/node"
[[ -x "$BIN" ]] || cargo build --locked --bin vitrina

if ! cmp -s "$HERE/requirements.txt" "$VENV/requirements.txt" || [[ ! -x "$VENV/bin/pytest" ]]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$HERE/requirements.txt"
  cp "$HERE/requirements.txt" "$VENV/requirements.txt"
fi
if ! cmp -s "$HERE/package-lock.json" "$NODE/package-lock.json" || [[ ! -d "$NODE/node_modules/gorsejs" ]]; then
  mkdir -p "$NODE"
  cp "$HERE/package.json" "$HERE/package-lock.json" "$NODE/"
  (cd "$NODE" && npm ci --no-audit --no-fund --silent)
fi

source .ci/live-server.sh
start_server --no-demo
# As a Gorse deployment with `api_key` set: the SDKs send it in X-API-Key.
KEY="$(admin_key gorse-sdks)"
export GORSE_ENDPOINT="$BASE" GORSE_API_KEY="$KEY"

echo "== pygorse (Python SDK)"
"$VENV/bin/pytest" -q -p no:cacheprovider "$HERE/test_pygorse.py"
echo "== gorsejs (JavaScript SDK)"
# Beside its node_modules: ES modules resolve packages from the importing file's directory.
cp "$HERE/gorsejs.test.mjs" "$NODE/"
(cd "$NODE" && node --test gorsejs.test.mjs)
check_server_log
