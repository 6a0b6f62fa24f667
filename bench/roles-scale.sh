#!/usr/bin/env bash
# Roles at the scale of "Serving at scale" (1M visitors, 100k products, 20M events) over
# PostgreSQL, NATS JetStream and Redis on this machine: lists/s of one and of two api
# replicas, a replica joining from a checkpoint, and the catch-up after a 60 s NATS outage.
# Usage: bench/roles-scale.sh            (from the repository root)
#   PG=postgres://postgres@127.0.0.1:5432   the PostgreSQL server
#   DB=vitrina_roles_scale   the database (generated, imported and trained when absent)
#   DIR=/tmp/scale           where the generated shop is (reused when present)
#   NATS=nats://127.0.0.1:4222  REDIS=redis://127.0.0.1:6379
#   OUTAGE=60   seconds NATS is away;  RATE=2000   events/s tracked meanwhile
#   BIN=path/to/vitrina  measure another build; no build then
# The processes reach NATS through a socat proxy the script stops and starts again. Every
# process, PostgreSQL, NATS, Redis and the load generators share this machine's cores.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${BIN:-}" ] || cargo build --release -q -p vitrina-cli
bin=$(realpath "${BIN:-target/release/vitrina}")
pg=${PG:-postgres://postgres@127.0.0.1:5432}
db=${DB:-vitrina_roles_scale}
dir=${DIR:-/tmp/scale}
nats=${NATS:-nats://127.0.0.1:4222}
redis=${REDIS:-redis://127.0.0.1:6379}
outage=${OUTAGE:-60}
rate=${RATE:-2000}
logs=$(mktemp -d)
pids=()
proxy_port=14299
nats_hostport=${nats#nats://}
proxy() { socat TCP-LISTEN:$proxy_port,fork,reuseaddr "TCP:$nats_hostport" & proxy_pid=$!; }
cut_bus() { pkill -f "socat TCP-LISTEN:$proxy_port" || true; }
trap 'cut_bus; kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true' EXIT

echo "== machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(free -g | awk '/Mem:/{print $2}') GiB"
echo "== build: $("$bin" --version 2>/dev/null || echo "$bin"), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?') ($bin)"
store="$pg/$db"
if ! psql -qtA "$pg/postgres" -c "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
  if [ ! -f "$dir/gen/events.csv" ]; then
    echo "== generating 1M users x 100k items x 20M events"
    "$bin" gen --users 1000000 --items 100000 --events 20000000 --seed 7 --out "$dir/gen"
  fi
  psql -q "$pg/postgres" -c "CREATE DATABASE $db"
  echo "== importing into PostgreSQL"
  # A failed import drops the database, so that a rerun imports again.
  trap 'psql -q "$pg/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"' ERR
  /usr/bin/time -f "import products: %e s" "$bin" import --store "$store" --format products-csv "$dir/gen/products.csv"
  /usr/bin/time -f "import events: %e s, peak RSS %M KiB" "$bin" import --store "$store" --format events-csv "$dir/gen/events.csv"
  trap - ERR
fi

serve() { # name, port, env and args…
  local name=$1 port=$2
  shift 2
  local started
  started=$(date +%s.%N)
  env RUST_LOG=info VITRINA__RATE_LIMITS__TRACK=0 VITRINA__RATE_LIMITS__READ=0 \
    VITRINA__STORAGE__CHECKPOINT_INTERVAL_SECONDS=30 \
    "$bin" serve --addr "127.0.0.1:$port" --store "$store" --bus "nats://127.0.0.1:$proxy_port" \
    --cache "$redis" "$@" >"$logs/$name.out" 2>"$logs/$name.log" &
  pids+=($!)
  until curl -sf -o /dev/null "http://127.0.0.1:$port/openapi.json"; do
    kill -0 "${pids[-1]}" 2>/dev/null || { echo "$name exited:"; tail -5 "$logs/$name.log"; exit 1; }
    sleep 0.1
  done
  echo "$name answers after $(echo "$(date +%s.%N) - $started" | bc) s"
}
metric() { curl -s "$1/metrics" | awk -v m="$2" '$1 == m {print $2}'; }
# The sequence a replica applied, from its engine health ("… applied up to sequence N…").
applied() { curl -s "$1/api/v1/engine/health" | python3 -c 'import json,re,sys; print(re.search(r"up to sequence (\d+)", json.load(sys.stdin)["checks"][0]["detail"]).group(1))'; }
# Waits at most $2 seconds for the command $1 to succeed.
within() { local deadline=$(( $(date +%s) + $2 )); until eval "$1"; do [ "$(date +%s)" -lt $deadline ] || { echo "gave up waiting for: $1"; exit 1; }; sleep 0.05; done; }
head_seq() { curl -s "$activity/api/v1/activity/health" | python3 -c 'import json,sys; print(json.load(sys.stdin)["checks"][0]["detail"].split()[-1])'; }
rss() { awk '/VmRSS/{printf "%.0f MiB", $2/1024}' "/proc/$1/status"; }

proxy
training=http://127.0.0.1:18281 activity=http://127.0.0.1:18282 api1=http://127.0.0.1:18283 api2=http://127.0.0.1:18284
serve training 18281 --role training
if ! curl -s "$training/api/v1/training/models" | grep -q '"activeVersion":"v'; then
  echo "== training on all events (the training process)"
  curl -s -XPOST "$training/api/v1/training/train" -H 'content-type: application/json' -d '{}' >/dev/null
  sleep 2
  while curl -s "$training/api/v1/training/status" | grep -q '"current":{'; do sleep 10; done
  curl -s "$training/api/v1/training/status" | python3 -c 'import json,sys; s=json.load(sys.stdin)["lastFinished"]; print("job", s["status"], s.get("modelVersion"), s.get("startedAt"), "to", s.get("finishedAt"))'
fi
serve activity 18282 --role activity

echo; echo "== the first api replica (restores a checkpoint if an earlier run left one)"
serve api1 18283 --role api
api1_pid=${pids[-1]}
echo "   restored checkpoint at sequence $(metric $api1 vitrina_checkpoint_restored_sequence), RSS $(rss "$api1_pid")"
echo "== waiting for api1 to checkpoint what it applied (every 30 s once events arrive)"
before=$(metric $api1 vitrina_checkpoint_sequence); before=${before:-0}
"$bin" bench track --url $activity --requests 100 --concurrency 4 --users 1000 --user-prefix join- >/dev/null
within '[ -n "$(metric $api1 vitrina_checkpoint_sequence)" ] && [ "$(metric $api1 vitrina_checkpoint_sequence)" != "$before" ]' 600
echo "   checkpoint at sequence $(metric $api1 vitrina_checkpoint_sequence), $(metric $api1 vitrina_checkpoint_bytes) bytes"
echo "== a second api replica joins from that checkpoint"
serve api2 18284 --role api
api2_pid=${pids[-1]}
echo "   restored checkpoint at sequence $(metric $api2 vitrina_checkpoint_restored_sequence), applied $(applied $api2) of $(head_seq), RSS $(rss "$api2_pid")"

lists() { "$bin" bench recommend --url "$1" --duration 20 --concurrency 16 --users 1000000 --user-prefix user- --seed "$2"; }
echo; echo "== lists: one replica (20 s, 16 in flight, visitors drawn from all 1M)"
lists $api1 1
echo "== lists: both replicas at once"
lists $api1 2 >"$logs/l1" & l1=$!
lists $api2 3 >"$logs/l2" & l2=$!
wait $l1
wait $l2
echo "-- api1"; cat "$logs/l1"; echo "-- api2"; cat "$logs/l2"

echo; echo "== NATS away for ${outage} s while ${rate} events/s are tracked"
cut_bus
"$bin" bench track --url $activity --rate "$rate" --duration "$outage" --concurrency 16 --users 1000000 --user-prefix outage- >"$logs/track" 2>&1 || { cat "$logs/track"; exit 1; }
target=$(head_seq)
echo "   tracked: $(grep -m1 -i 'requests/s\|req/s' "$logs/track" || tail -1 "$logs/track")"
behind1=$(( target - $(applied $api1) )) behind2=$(( target - $(applied $api2) ))
echo "   head $target; api1 $behind1 and api2 $behind2 events behind it"
restored=$(date +%s.%N)
proxy
caught_up() { # replica, its lag: polls until it applied the head, then prints the time
  within "[ \"\$(applied $1)\" -ge $target ]" 600
  echo "   $1: $2 events behind at the restore, caught up after $(echo "$(date +%s.%N) - $restored" | bc) s"
}
caught_up $api1 "$behind1" & c1=$!
caught_up $api2 "$behind2" & c2=$!
wait $c1
wait $c2
heard() { curl -s "$1/metrics" | awk '$1 ~ /^vitrina_bus_heard_total/ {s+=$2} END {print s+0}'; }
heard_before=$(heard $api1)
within '"$bin" bench track --url $activity --requests 50 --concurrency 4 --users 1000 --user-prefix back- >/dev/null; [ "$(heard $api1)" -gt "$heard_before" ]' 120
echo "   api1 hears commits from NATS again after $(echo "$(date +%s.%N) - $restored" | bc) s"
echo "== logs in $logs"
