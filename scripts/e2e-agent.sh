#!/usr/bin/env bash
# Runs the agent end to end against a real `trustgate dev` on loopback:
# a bootstrap token, an agent keeping a one-minute certificate fresh
# (renewing at half its lifetime, so about every 30 s) and running its
# reload hook, a one-shot renewal that needs no token, and the refusals
# (token reused, other name). Bounded: every wait has a timeout; about 90 s.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
# Free loopback ports unless given.
source scripts/ports.sh
API_PORT=${API_PORT:-$(free_port)}
PUB_PORT=${PUB_PORT:-$(free_port)}
GW_PORT=${GW_PORT:-$(free_port)}
HEALTH_PORT=${HEALTH_PORT:-$(free_port)}
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; for f in dev.log agent.log; do [ -f "$work/$f" ] && { echo "--- $f" >&2; tail -20 "$work/$f" >&2; }; done; exit 1; }

go build -o "$work/trustgate" ./cmd/trustgate
tg=$work/trustgate
"$tg" dev --data "$work/data" --api-listen 127.0.0.1:$API_PORT --public-listen 127.0.0.1:$PUB_PORT --gateway-listen 127.0.0.1:$GW_PORT >"$work/dev.out" 2>"$work/dev.log" &
pids+=($!)
for _ in $(seq 1 100); do
  curl -sf --cacert "$work/data/dev/root.pem" "https://127.0.0.1:$API_PORT/healthz" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -sf --cacert "$work/data/dev/root.pem" "https://127.0.0.1:$API_PORT/healthz" >/dev/null || fail "dev not ready in 20 s"
cd "$work"
# shellcheck disable=SC1091
source data/dev/env.sh

# Same modulus/public key for a certificate and a key file.
pair_ok() { [ "$(openssl x509 -in "$1" -noout -pubkey)" = "$(openssl pkey -in "$2" -pubout)" ]; }

token=$("$tg" token create --ca demo-intermediate --profile server --name svc-a --dns svc-a.internal --max-validity 1m --expires-in 10m 2>/dev/null)
case "$token" in tgbt_*) ;; *) fail "token create printed $token" ;; esac

# The token is bound: another name is refused, and nothing is written.
set +e
"$tg" agent --token "$token" --cn svc-b --dns svc-b.internal --cert-out b.pem --key-out b.key --once 2>agent-b.log
code=$?
set -e
[ "$code" = 5 ] || fail "agent for svc-b exited $code, want 5 (auth)"
grep -q 'does not allow common name "svc-b"' agent-b.log || fail "no binding message: $(cat agent-b.log)"
[ ! -e b.pem ] || fail "a refused enrolment wrote b.pem"

# The agent: enrols, then renews every ~30 s, running the hook each time.
mkdir -p tls
"$tg" agent --token "$token" --cn svc-a --dns svc-a.internal --cert-out tls/cert.pem --key-out tls/key.pem \
  --chain-out tls/chain.pem --bundle-out tls/bundle.pem --renew-at 0.5 --health-listen 127.0.0.1:$HEALTH_PORT \
  --on-renew 'openssl x509 -in "$TRUSTGATE_CERT_FILE" -noout -serial >> renewals.log' >agent.out 2>agent.log &
agent=$!
pids+=($agent)
for _ in $(seq 1 450); do
  [ -f renewals.log ] && [ "$(wc -l < renewals.log)" -ge 3 ] && break
  kill -0 "$agent" 2>/dev/null || fail "the agent exited"
  sleep 0.2
done
[ "$(wc -l < renewals.log)" -ge 3 ] || fail "fewer than 3 certificates in 90 s: $(cat renewals.log 2>/dev/null)"
[ "$(sort -u renewals.log | wc -l)" = "$(wc -l < renewals.log)" ] || fail "a serial was repeated"
pair_ok tls/cert.pem tls/key.pem || fail "certificate and key do not match"
[ "$(stat -c %a tls/key.pem)" = 600 ] && [ "$(stat -c %a tls/bundle.pem)" = 600 ] || fail "key files are not 0600"
openssl verify -CAfile data/dev/root.pem -untrusted tls/chain.pem tls/cert.pem | grep -q OK || fail "openssl verify"
openssl x509 -in tls/cert.pem -noout -ext subjectAltName | grep -q svc-a.internal || fail "SAN"
curl -sf "http://127.0.0.1:$HEALTH_PORT/healthz" | jq -e '.status == "ok" and .certificates[0].renewals >= 3' >/dev/null || fail "agent healthz"
curl -sf "http://127.0.0.1:$HEALTH_PORT/metrics" | grep -q 'trustgate_agent_certificate_not_after_seconds{certificate="svc-a"}' || fail "agent metrics"
kill "$agent"; wait "$agent" 2>/dev/null || true

# The token was single use; the files renew without it.
set +e
"$tg" agent --token "$token" --cn svc-a --dns svc-a.internal --cert-out c.pem --key-out c.key --once 2>agent-c.log
code=$?
set -e
[ "$code" = 5 ] && grep -q "used up" agent-c.log || fail "reused token: exit $code: $(cat agent-c.log)"
before=$(openssl x509 -in tls/cert.pem -noout -serial)
sleep 1
"$tg" agent --cn svc-a --cert-out tls/cert.pem --key-out tls/key.pem --renew-at 0.01 --once 2>agent-once.log || fail "one-shot renewal: $(cat agent-once.log)"
[ "$(openssl x509 -in tls/cert.pem -noout -serial)" != "$before" ] || fail "the one-shot renewal did not renew"
pair_ok tls/cert.pem tls/key.pem || fail "certificate and key do not match after --once"
"$tg" cert list --san-contains svc-a.internal -o json | jq -e '[.certificates[] | select(.requester | startswith("renewal-of:"))] | length >= 3' >/dev/null || fail "renewals in the inventory"

echo "e2e-agent: ok ($(wc -l < renewals.log) certificates, renewed about every 30 s)"
