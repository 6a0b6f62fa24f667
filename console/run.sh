#!/usr/bin/env bash
# The console's tests: its pure modules under node's test runner, then end-to-end in headless
# Chromium (Debian's chromium, driven by playwright-core from npm) against a live
# `vitrina serve` that the tests start. Installs what they need on first use — Debian's
# chromium package and node_modules under console/e2e/ — never at test time.
#
#   bash console/run.sh                                          (screenshots in target/console-screenshots)
#   VITRINA_CONSOLE_SCREENSHOTS=docs/console bash console/run.sh (refresh the README's screenshots)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
cd "$HERE/.."

# The console's files are compiled into the binary: build it (a no-op when it is up to date)
# unless VITRINA_BIN names one.
if [[ -z "${VITRINA_BIN:-}" ]]; then
  cargo build --locked --bin vitrina
  export VITRINA_BIN="$PWD/target/debug/vitrina"
fi

export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [[ ! -x "$CHROMIUM" ]]; then
  echo "== installing Debian's chromium"
  SUDO=""; [[ "$(id -u)" == 0 ]] || SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends chromium
fi

E2E="$HERE/e2e"
if ! cmp -s "$E2E/package-lock.json" "$E2E/node_modules/.installed-lock.json" || [[ ! -d "$E2E/node_modules/playwright-core" ]]; then
  (cd "$E2E" && npm ci --no-audit --no-fund --silent)
  cp "$E2E/package-lock.json" "$E2E/node_modules/.installed-lock.json"
fi

echo "== console (node --test: units, then headless Chromium)"
(cd "$E2E" && npm test --silent)
