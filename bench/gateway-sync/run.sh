#!/usr/bin/env bash
# Revoke-to-gateway propagation: G `trustgate gateway` processes long-poll
# a trust store of one `trustgate dev` control plane, in front of one echo
# backend (bench/gateway/backend); bench/gateway-sync/syncbench revokes N
# client certificates one after another through the API and, for each
# revoke and each gateway, measures the time from the revoke request to the
# first refused mTLS request with the revoked certificate. Loopback only;
# about N x 1.5 s after the start.
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
(cd "$REPO" && go build -o "$OUT/bin/trustgate" ./cmd/trustgate && go build -o "$OUT/bin/syncbench" ./bench/gateway-sync/syncbench &&
	go build -o "$OUT/bin/backend" ./bench/gateway/backend)

API_PORT=$(free_port)
PUB_PORT=$(free_port)
DATA="$OUT/data"
"$OUT/bin/trustgate" dev --data "$DATA" --api-listen "127.0.0.1:$API_PORT" --public-listen "127.0.0.1:$PUB_PORT" \
	--gateway-listen "" >"$OUT/dev.out" 2>"$OUT/dev.log" &
PIDS=("$!")
DEV_PID=$!
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

for _ in $(seq 1 100); do
	if [ -s "$DATA/dev/admin.token" ] && curl -fsS --cacert "$DATA/dev/root.pem" "https://127.0.0.1:$API_PORT/healthz" >/dev/null 2>&1; then
		break
	fi
	kill -0 "$DEV_PID" 2>/dev/null || die "trustgate dev exited: see $OUT/dev.log"
	sleep 0.2
done
curl -fsS --cacert "$DATA/dev/root.pem" "https://127.0.0.1:$API_PORT/healthz" >/dev/null || die "the control plane did not answer"

API="https://127.0.0.1:$API_PORT"
TOKEN=$(cat "$DATA/dev/admin.token")
STORE="syncbench-$(date +%s)"
curl -fsS --cacert "$DATA/dev/root.pem" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
	-d "{\"name\":\"$STORE\",\"cas\":[\"demo-intermediate\"]}" "$API/v1/truststores" >/dev/null || die "cannot create trust store $STORE"

BACKEND_PORT=$(free_port)
"$OUT/bin/backend" -addr "127.0.0.1:$BACKEND_PORT" >"$OUT/backend.log" 2>&1 &
PIDS+=("$!")

GWS=""
for i in $(seq 1 "$G"); do
	port=$(free_port)
	cat >"$OUT/gateway-$i.yaml" <<YAML
listeners:
  - name: bench
    address: 127.0.0.1:$port
    certificate:
      cert_file: $DATA/dev/server.pem
      key_file: $DATA/dev/server.key
    mtls:
      mode: verify
      trust_store:
        name: $STORE
    routes:
      - backend:
          url: http://127.0.0.1:$BACKEND_PORT
control_plane:
  address: $API
  token_file: $DATA/dev/admin.token
  ca_file: $DATA/dev/root.pem
  poll_interval: $POLL
  max_staleness: 1000h
$( [ "$LONG_POLL" = 0s ] || [ "$LONG_POLL" = 0 ] || echo "  long_poll: $LONG_POLL" )
connection_log: "off"
access_log: "off"
log:
  level: warn
YAML
	"$OUT/bin/trustgate" gateway --config "$OUT/gateway-$i.yaml" >"$OUT/gateway-$i.log" 2>&1 &
	PIDS+=("$!")
	GWS="$GWS${GWS:+,}127.0.0.1:$port"
done
for gw in ${GWS//,/ }; do
	for _ in $(seq 1 100); do
		(exec 3<>"/dev/tcp/${gw%:*}/${gw#*:}") 2>/dev/null && break
		sleep 0.2
	done
	(exec 3<>"/dev/tcp/${gw%:*}/${gw#*:}") 2>/dev/null || die "gateway $gw did not start: see $OUT/gateway-*.log"
done

{
	echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "cpus: $(nproc)"
	echo "model: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
	echo "uptime before: $(uptime)"
	echo "go: $(go version)"
	echo "commit: $(cd "$REPO" && git rev-parse --short HEAD)$(cd "$REPO" && git diff --quiet || echo '+dirty')"
} >"$OUT/machine.txt"

log "G=$G gateways, N=$N revocations, long_poll=$LONG_POLL, poll_interval=$POLL"
"$OUT/bin/syncbench" -addr "$API" -cacert "$DATA/dev/root.pem" -token-file "$DATA/dev/admin.token" \
	-gateways "$GWS" -store "$STORE" -n "$N" -probe "$PROBE" -v 2>"$OUT/syncbench.log" | tee "$OUT/result.json"
# How the CRLs reached the gateways: full CRLs or delta CRLs (RFC 5280
# §5.2.4) over the full CRL each gateway holds.
curl -fsS "http://127.0.0.1:$PUB_PORT/metrics" 2>/dev/null |
	grep -E '^trustgate_(truststore_snapshot_crls_total|crl_deltas_signed_total)' >"$OUT/crls.txt" || true
log "CRLs in the snapshots the control plane served (by kind) and delta CRLs it signed:"
cat "$OUT/crls.txt" >&2
echo "uptime after: $(uptime)" >>"$OUT/machine.txt"
cat "$OUT/machine.txt"
log "results in $OUT"
