#!/usr/bin/env bash
# Test PKI of bench/gateway/run.sh, made with openssl: ECDSA P-256 throughout.
#
#   bench/gateway/make-pki.sh DIR
#
# DIR/
#   root.key root.crt          self-signed root CA
#   int.key int.crt            intermediate CA (pathlen 0), signed by the root
#   server.key server.crt      serverAuth leaf for 127.0.0.1 and localhost
#   server-chain.crt           server.crt + int.crt (what the servers send)
#   server-haproxy.pem         server-chain.crt + server.key (HAProxy's crt)
#   client.key client.crt      clientAuth leaf, CN=bench-client
#   client-chain.crt           client.crt + int.crt (what the client sends)
#   revoked.*                  a second client, CN=bench-revoked, whose serial
#                              run.sh puts on the intermediate's CRLs
#   revoked.serial             its serial in hex
#   ca-bundle.crt              int.crt + root.crt: the client-CA file of every
#                              server (trustgate: both are trust anchors;
#                              OpenSSL: chain to the root)
set -euo pipefail
D=${1:?usage: make-pki.sh DIR}
mkdir -p "$D"
cd "$D"
cat > openssl.cnf <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = placeholder
[root]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[int]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
authorityKeyIdentifier = keyid:always
[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectAltName = DNS:bench-client.example
authorityKeyIdentifier = keyid:always
EOF

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null; }
# a positive 128-bit serial without a leading zero byte
serial() { local s; s=$(openssl rand -hex 16); echo "4${s:1}"; }
# sign NAME SUBJECT ISSUER EXTENSIONS
sign() {
  key "$1"
  openssl req -new -config openssl.cnf -key "$1.key" -subj "$2" -out "$1.csr"
  openssl x509 -req -in "$1.csr" -CA "$3.crt" -CAkey "$3.key" -set_serial "0x$(serial)" -days 825 \
    -extfile openssl.cnf -extensions "$4" -out "$1.crt" 2>/dev/null
  rm -f "$1.csr"
}

key root
openssl req -x509 -new -config openssl.cnf -extensions root -key root.key \
  -subj "/O=Trustgate Bench/CN=Bench Root CA" -set_serial "0x$(serial)" -days 3650 -out root.crt
sign int "/O=Trustgate Bench/CN=Bench Intermediate CA" root int
sign server "/O=Trustgate Bench/CN=localhost" int server
sign client "/O=Trustgate Bench/CN=bench-client" int client
sign revoked "/O=Trustgate Bench/CN=bench-revoked" int client

cat server.crt int.crt > server-chain.crt
cat server-chain.crt server.key > server-haproxy.pem
cat client.crt int.crt > client-chain.crt
cat revoked.crt int.crt > revoked-chain.crt
cat int.crt root.crt > ca-bundle.crt
openssl x509 -in revoked.crt -noout -serial | cut -d= -f2 > revoked.serial
openssl verify -CAfile root.crt -untrusted int.crt server.crt client.crt revoked.crt >/dev/null
echo "pki: $D" >&2
