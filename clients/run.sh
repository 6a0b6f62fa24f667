#!/usr/bin/env bash
# Vitrina's own clients — Python (clients/python) and TypeScript (clients/typescript) — tested
# against a live `vitrina serve` that each suite starts itself. Installs what the tests need
# on first use (a virtualenv and node_modules under target/ and clients/typescript/, never at
# test time), installs the Python package as a user would, then runs both suites. Each suite
# ends by checking that its generated layer matches the server's /openapi.json and that its
# tests called every operation the spec lists.
#
#   bash clients/run.sh        (needs a built target/debug/vitrina; builds it if absent)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
cd "$HERE/.."

export VITRINA_BIN="$PWD/target/debug/vitrina"
VENV="target/clients/venv"
[[ -x "$VITRINA_BIN" ]] || cargo build --locked --bin vitrina

if ! cmp -s "$HERE/python/requirements-test.txt" "$VENV/requirements-test.txt" || [[ ! -x "$VENV/bin/pytest" ]]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$HERE/python/requirements-test.txt"
  cp "$HERE/python/requirements-test.txt" "$VENV/requirements-test.txt"
fi
# The package as a shop installs it (a wheel, not the source tree), rebuilt on every run.
"$VENV/bin/pip" install --quiet --disable-pip-version-check --no-build-isolation --no-deps --force-reinstall "$HERE/python"

echo "== Python client (pytest)"
(cd "$HERE/python" && "$PWD/../../$VENV/bin/pytest" -q -p no:cacheprovider tests)

echo "== TypeScript client (tsc, node --test)"
NODE_MODULES="$HERE/typescript/node_modules"
if ! cmp -s "$HERE/typescript/package-lock.json" "$NODE_MODULES/.installed-lock.json" || [[ ! -x "$NODE_MODULES/.bin/tsc" ]]; then
  (cd "$HERE/typescript" && npm ci --no-audit --no-fund --silent)
  cp "$HERE/typescript/package-lock.json" "$NODE_MODULES/.installed-lock.json"
fi
(cd "$HERE/typescript" && rm -rf dist && npm test --silent)
