#!/usr/bin/env bash
# Runs the README's quick start and walk-through against a real `trustgate dev`
# on loopback ports, checks each answer, stops it with SIGINT, restarts it and
# checks that the CAs were reused. Bounded: every wait has a timeout.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
# Free loopback ports unless given.
source scripts/ports.sh
API_PORT=${API_PORT:-$(free_port)}
PUB_PORT=${PUB_PORT:-$(free_port)}
GW_PORT=${GW_PORT:-$(free_port)}
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; [ -f "$work/dev.log" ] && tail -20 "$work/dev.log" >&2; exit 1; }

go build -o "$work/trustgate" ./cmd/trustgate
tg=$work/trustgate

start() {
  "$tg" dev --data "$work/data" --api-listen 127.0.0.1:$API_PORT --public-listen 127.0.0.1:$PUB_PORT --gateway-listen 127.0.0.1:$GW_PORT >"$work/dev.out" 2>"$work/dev.log" &
  pid=$!
  for _ in $(seq 1 100); do
    curl -sf --cacert "$work/data/dev/root.pem" "https://127.0.0.1:$API_PORT/healthz" >/dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || fail "dev exited early"
    sleep 0.2
  done
  fail "dev not ready in 20 s"
}

start
for f in root.pem chain.pem server.pem server.key client.pem client.key admin.token env.sh; do
  [ -s "$work/data/dev/$f" ] || fail "missing dev/$f"
done
[ "$(stat -c %a "$work/data/dev/server.key")" = 600 ] || fail "server.key is not 0600"
grep -q "source" "$work/dev.out" || fail "dev did not print what to run next"

cd "$work"
# shellcheck disable=SC1091
source data/dev/env.sh
[ "$TRUSTGATE_ADDR" = "https://127.0.0.1:$API_PORT" ] || fail "env.sh TRUSTGATE_ADDR=$TRUSTGATE_ADDR"

curl -sf --cacert "$TRUSTGATE_CACERT" "$TRUSTGATE_ADDR/healthz" | grep -q ok || fail healthz
"$tg" ca list | grep -q demo-intermediate || fail "ca list"
curl -sf --cacert "$TRUSTGATE_CACERT" -H "Authorization: Bearer $TRUSTGATE_TOKEN" "$TRUSTGATE_ADDR/v1/cas" | jq -e '.cas | length == 2' >/dev/null || fail "GET /v1/cas"
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$TRUSTGATE_CACERT" "$TRUSTGATE_ADDR/v1/cas")
[ "$code" = 401 ] || fail "anonymous /v1/cas gave $code"

"$tg" ca create --name payments --parent demo-root --key-type ec-p384 --subject "CN=Payments CA,O=Example" --validity 2y >/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout web.key -out web.csr -subj "/CN=web.payments.internal" 2>/dev/null
"$tg" cert issue --ca payments --profile server --csr web.csr --dns web.payments.internal --validity 30d --out web.pem --chain-out web-chain.pem
openssl verify -CAfile data/dev/root.pem -untrusted web-chain.pem web.pem | grep -q OK || fail "openssl verify"
"$tg" cert issue --ca payments --profile client --cn svc-a --uri spiffe://payments.internal/svc-a --validity 24h --out svc-a.pem --key-out svc-a.key
[ "$(stat -c %a svc-a.key)" = 600 ] || fail "svc-a.key is not 0600"
openssl x509 -in svc-a.pem -noout -ext subjectAltName | grep -q "spiffe://payments.internal/svc-a" || fail "URI SAN"
serial=$(curl -sf --cacert "$TRUSTGATE_CACERT" -H "Authorization: Bearer $TRUSTGATE_TOKEN" \
  -d "{\"ca\":\"payments\",\"profile\":\"server\",\"csr\":$(jq -Rs . < web.csr),\"dns\":[\"web.payments.internal\"],\"validity\":\"7d\"}" \
  "$TRUSTGATE_ADDR/v1/certificates" | jq -r .certificate.serial)
[ -n "$serial" ] && [ "$serial" != null ] || fail "issue over curl"
"$tg" cert show "$serial" | grep -q web.payments.internal || fail "cert show"
[ "$("$tg" cert list --ca payments -o json | jq '[.certificates[] | select(.profile != "ocsp-responder")] | length')" = 3 ] || fail "cert list --ca payments"
"$tg" cert list --expiring-within 30d -o json | jq -e '.certificates | length >= 3' >/dev/null || fail "expiring-within"
"$tg" cert export "$serial" | openssl x509 -noout -serial | grep -qi "$serial" || fail "cert export"
curl -sf "http://127.0.0.1:$PUB_PORT/ca/payments.pem?chain=1" | openssl x509 -noout -subject | grep -q "Payments CA" || fail "public CA PEM"

# Revocation reaches OCSP and the CRL within a second.
curl -sf "http://127.0.0.1:$PUB_PORT/ca/payments.pem" > payments.pem
ocsp() { openssl ocsp -issuer payments.pem -cert web.pem -url "http://127.0.0.1:$PUB_PORT/ocsp/payments" -CAfile data/dev/root.pem 2>&1; }
ocsp | grep -q "web.pem: good" || fail "OCSP good"
"$tg" cert revoke "$(openssl x509 -in web.pem -noout -serial | cut -d= -f2)" --reason keyCompromise >/dev/null
sleep 1
ocsp | grep -q "web.pem: revoked" || fail "OCSP revoked"
ocsp | grep -q "Reason: keyCompromise" || fail "OCSP reason"
curl -sf "http://127.0.0.1:$PUB_PORT/crl/payments.pem" > payments-crl.pem
openssl crl -in payments-crl.pem -noout -CAfile web-chain.pem 2>&1 | grep -q "verify OK" || fail "CRL signature"
if openssl verify -crl_check -CRLfile payments-crl.pem -CAfile data/dev/root.pem -untrusted web-chain.pem web.pem >/dev/null 2>&1; then
  fail "openssl verify -crl_check accepted a revoked certificate"
fi
openssl verify -crl_check -CRLfile payments-crl.pem -CAfile data/dev/root.pem -untrusted web-chain.pem svc-a.pem | grep -q OK || fail "crl_check of a good certificate"

# The gateway: a verified client's identity reaches the backend; no certificate, no entry.
gw() { curl -s --cacert data/dev/root.pem "$@" "https://127.0.0.1:$GW_PORT/"; }
gw --cert data/dev/client.pem --key data/dev/client.key | jq -e '.headers["X-Amzn-Mtls-Clientcert-Subject"] == "CN=demo-client"' >/dev/null || fail "gateway identity"
if gw >/dev/null 2>&1; then fail "gateway let in a client without a certificate"; fi
curl -s --cacert data/dev/root.pem --cert data/dev/client.pem --key data/dev/client.key -H "X-Amzn-Mtls-Clientcert-Subject: CN=admin" "https://127.0.0.1:$GW_PORT/" \
  | jq -e '.headers["X-Amzn-Mtls-Clientcert-Subject"] == "CN=demo-client"' >/dev/null || fail "spoofed identity header reached the backend"

# Exit codes scripts rely on.
set +e
"$tg" cert show 0abc >/dev/null 2>&1; [ $? = 3 ] || fail "not-found exit code"
"$tg" ca create --name payments --parent demo-root >/dev/null 2>&1; [ $? = 4 ] || fail "conflict exit code"
TRUSTGATE_TOKEN=tgat_wrong "$tg" ca list >/dev/null 2>&1; [ $? = 5 ] || fail "auth exit code"
"$tg" cert issue --ca payments --profile server --cn x --dns "bad name" --key-out /dev/null >/dev/null 2>&1; [ $? = 7 ] || fail "invalid exit code"
"$tg" ca list --bogus >/dev/null 2>&1; [ $? = 2 ] || fail "usage exit code"
set -e

# Ctrl-C stops it cleanly; the next start reuses the CAs.
id1=$("$tg" ca show demo-root -o json | jq -r .id)
kill -INT "$pid"; wait "$pid" || fail "dev exited non-zero on SIGINT"; pid=
start
id2=$("$tg" ca show demo-root -o json | jq -r .id)
[ "$id1" = "$id2" ] || fail "demo-root was recreated on restart"
"$tg" ca list | grep -q payments || fail "payments lost across restart"
echo "e2e-quickstart: ok"
