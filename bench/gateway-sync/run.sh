#!/usr/bin/env bash
# Revoke-to-gateway propagation: G gateways (the gateway's own code, in
# one process: bench/gateway-sync/syncbench) long-poll a trust store of one
# `trustgate dev` control plane; N client certificates are revoked one after
# another through the API, and for each revoke and each gateway the time
# from the revoke request to the first refused mTLS request with the
# revoked certificate is measured. Loopback only; about N x 2 s.
#
#   bench/gateway-sync/run.sh              # G=10 N=20
#   G=10 N=50 bench/gateway-sync/run.sh
#
# Knobs (environment):
#   G=10              gateways
#   N=20              revocations, one after another
#   LONG_POLL=30s     control_plane.long_poll of the gateways
#   POLL=1h           control_plane.poll_interval (far longer than the result)
#   PROBE=25ms        time between two probes of one gateway (the resolution)
#   OUT=DIR           where result.json, machine.txt and logs go
#                     (default /tmp/trustgate-bench-gateway-sync-<date>)
#
# The script stops only the processes it started, by PID.
set -euo pipefail

G=${G:-10}
N=${N:-20}
LONG_POLL=${LONG_POLL:-30s}
POLL=${POLL:-1h}
PROBE=${PROBE:-25ms}
OUT=${OUT:-/tmp/trustgate-bench-gateway-sync-$(date +%Y%m%d-%H%M%S)}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export PATH=$PATH:/usr/local/go/bin

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

mkdir -p "$OUT/bin"
log "building into $OUT/bin"
(cd "$REPO" && go build -o "$OUT/bin/trustgate" ./cmd/trustgate && go build -o "$OUT/bin/syncbench" ./bench/gateway-sync/syncbench)

API_PORT=$(free_port)
PUB_PORT=$(free_port)
DATA="$OUT/data"
"$OUT/bin/trustgate" dev --data "$DATA" --api-listen "127.0.0.1:$API_PORT" --public-listen "127.0.0.1:$PUB_PORT" \
	--gateway-listen "" >"$OUT/dev.out" 2>"$OUT/dev.log" &
DEV_PID=$!
cleanup() { kill "$DEV_PID" 2>/dev/null || true; wait "$DEV_PID" 2>/dev/null || true; }
trap cleanup EXIT

for _ in $(seq 1 100); do
	if [ -s "$DATA/dev/admin.token" ] && curl -fsS --cacert "$DATA/dev/root.pem" "https://127.0.0.1:$API_PORT/healthz" >/dev/null 2>&1; then
		break
	fi
	kill -0 "$DEV_PID" 2>/dev/null || die "trustgate dev exited: see $OUT/dev.log"
	sleep 0.2
done
curl -fsS --cacert "$DATA/dev/root.pem" "https://127.0.0.1:$API_PORT/healthz" >/dev/null || die "the control plane did not answer"

{
	echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "cpus: $(nproc)"
	echo "model: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
	echo "uptime before: $(uptime)"
	echo "go: $(go version)"
	echo "commit: $(cd "$REPO" && git rev-parse --short HEAD)$(cd "$REPO" && git diff --quiet || echo '+dirty')"
} >"$OUT/machine.txt"

log "G=$G gateways, N=$N revocations, long_poll=$LONG_POLL, poll_interval=$POLL"
"$OUT/bin/syncbench" -addr "https://127.0.0.1:$API_PORT" -cacert "$DATA/dev/root.pem" -token-file "$DATA/dev/admin.token" \
	-cert "$DATA/dev/server.pem" -key "$DATA/dev/server.key" -gateways "$G" -n "$N" \
	-long-poll "$LONG_POLL" -poll-interval "$POLL" -probe "$PROBE" | tee "$OUT/result.json"
echo "uptime after: $(uptime)" >>"$OUT/machine.txt"
cat "$OUT/machine.txt"
log "results in $OUT"
