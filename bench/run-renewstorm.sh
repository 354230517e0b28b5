#!/usr/bin/env bash
# Renewal storm: N simulated agents, each with its own client certificate,
# all renew at once over mTLS (POST /v1/renew) against one `trustgate dev`
# on loopback, with the load generator (bench/renewstorm) on the same
# machine. Prints renewstorm's JSON line; exits non-zero on any error.
#
#   bench/run-renewstorm.sh            # N=10000 C=64
#   N=2000 C=32 bench/run-renewstorm.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-10000}
C=${C:-64}
API_PORT=${API_PORT:-19743}
work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
go build -o "$work/trustgate" ./cmd/trustgate
go build -o "$work/renewstorm" ./bench/renewstorm
"$work/trustgate" dev --data "$work/data" --api-listen 127.0.0.1:$API_PORT --public-listen 127.0.0.1:0 --gateway-listen "" \
  >"$work/dev.out" 2>"$work/dev.log" &
pid=$!
for _ in $(seq 1 100); do
  curl -sf --cacert "$work/data/dev/root.pem" "https://127.0.0.1:$API_PORT/healthz" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -sf --cacert "$work/data/dev/root.pem" "https://127.0.0.1:$API_PORT/healthz" >/dev/null || { tail -20 "$work/dev.log" >&2; echo "dev not ready" >&2; exit 1; }
"$work/renewstorm" -url "https://127.0.0.1:$API_PORT" -token-file "$work/data/dev/admin.token" \
  -cacert "$work/data/dev/root.pem" -ca demo-intermediate -n "$N" -c "$C"
