# Sourced by the scripts that test a live `vitrina serve` (.ci/api-fuzz.sh,
# compat/gorse/run.sh): start it, make a key, and check its log afterwards.

# Starts "$BIN" serve on a free loopback port over a fresh data directory (extra arguments
# go to `serve`); sets WORK (a temporary directory, removed on exit), SERVER (the pid, stopped
# on exit) and BASE (the URL).
start_server() {
  WORK="$(mktemp -d)"
  trap 'if [[ -n "${SERVER:-}" ]]; then kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null; fi; rm -rf "$WORK"' EXIT
  RUST_LOG=warn "$BIN" serve --addr 127.0.0.1:0 --data-dir "$WORK/data" "$@" >"$WORK/stdout" 2>"$WORK/server.log" &
  SERVER=$!
  for _ in $(seq 1 600); do
    grep -q "listening on" "$WORK/stdout" 2>/dev/null && break
    kill -0 "$SERVER" 2>/dev/null || { cat "$WORK/server.log"; echo "the server died" >&2; exit 1; }
    sleep 0.1
  done
  BASE="$(sed -n 's/^vitrina listening on //p' "$WORK/stdout" | head -n1)"
  [[ -n "$BASE" ]] || { echo "the server never listened" >&2; exit 1; }
}

# Creates an admin key named $1 and prints it. The first key closes an open server: from
# then on every request needs one.
admin_key() {
  curl -sf -XPOST "$BASE/api/v1/keys" -H 'content-type: application/json' -d "{\"scope\":\"admin\",\"name\":\"$1\"}" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])'
}

# Fails when the server logged an error during the run.
check_server_log() {
  if grep -q '"level":"ERROR"' "$WORK/server.log"; then
    grep '"level":"ERROR"' "$WORK/server.log" | head -20
    echo "the server logged errors during the run" >&2
    exit 1
  fi
}
