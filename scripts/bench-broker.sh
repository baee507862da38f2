#!/usr/bin/env bash
# Measures the broker with `fogflow bench`: starts a release broker on a private port and data dir, runs the
# given scenarios against it, stops it by its PID and removes its data.
#
#   scripts/bench-broker.sh [scenario…]            (default: update create get notify)
#   scripts/bench-broker.sh ld-upsert ld-query ld-get   (NGSI-LD; preloaded with batch upserts)
#   ENTITIES=100000 DURATION=10 CONNECTIONS=64 scripts/bench-broker.sh update get
#   FOGFLOW__BROKER__DURABILITY=flush scripts/bench-broker.sh update
#
# Other FOGFLOW__* variables are passed to the broker. Build first: `cargo build --release`, or name another
# binary with FOGFLOW_BIN=path (to compare two builds in one sitting).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

binary=${FOGFLOW_BIN:-target/release/fogflow}
[[ -x $binary ]] || { echo "build first: cargo build --release" >&2; exit 1; }
port=${PORT:-18097}
data=$(mktemp -d)
scenarios=("$@")
((${#scenarios[@]})) || scenarios=(update create get notify)

FOGFLOW__BROKER__USE_DISCOVERY=false FOGFLOW__BROKER__HTTP_PORT=$port \
    "$binary" --role broker --data-dir "$data/store" >"$data/broker.log" 2>&1 &
broker=$!
trap 'kill "$broker" 2>/dev/null; wait "$broker" 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/ready" >/dev/null && break
    sleep 0.1
done
curl -sf "http://127.0.0.1:$port/ready" >/dev/null || { cat "$data/broker.log" >&2; exit 1; }

echo "commit $(git rev-parse --short HEAD), $(nproc) cores, $(date -u +%FT%TZ)"
for scenario in "${scenarios[@]}"; do
    "$binary" bench --url "http://127.0.0.1:$port" --scenario "$scenario" \
        --duration "${DURATION:-10}" --warmup 2 --connections "${CONNECTIONS:-64}" \
        --entities "${ENTITIES:-1000}" 2>/dev/null
    echo "resident memory of the broker: $(awk '/VmRSS/ {print $2, $3}' "/proc/$broker/status")"
done
