#!/usr/bin/env bash
# Several control-plane nodes on one PostgreSQL, on loopback only:
#
#   1. concurrent issuance through every node: each returned certificate is
#      in the store exactly once, and no serial is duplicated;
#   2. kill -9 of the node holding the singleton-jobs lease under load: no
#      returned certificate is missing, another node takes the lease and
#      publishes within 10 s, and the CRL number still increases; a
#      revocation made through a node that does not hold the lease reaches
#      the CRLs of that node and of the others;
#   3. PostgreSQL stopped and started under load: the API answers 503 with a
#      clear error while it is down (never a 500), and recovers by itself.
#
# It runs its own throw-away PostgreSQL cluster (initdb into a temporary
# directory, on a free port; as the postgres user when run as root), so that
# stopping it disturbs no other test. Bounded: every wait has a timeout, and
# the script stops only the processes it started, by PID.
#
#   scripts/multinode.sh            # 3 nodes
#   NODES=2 scripts/multinode.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin

NODES=${NODES:-3}
WORKERS=${WORKERS:-2} # issuing loops per node
BURST=${BURST:-25}    # certificates per loop in the first phase

work=$(mktemp -d /tmp/trustgate-multinode.XXXXXX)
chmod 755 "$work" # the postgres user reaches its directory inside
pgdir=$work/pg
pids=()
pgbin=
failed=0

log() { echo "[$(date +%H:%M:%S)] $*"; }
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; failed=1; }
die() {
  echo "FAIL: $*"
  for f in "$work"/node*.log; do [ -f "$f" ] && { echo "--- $f"; grep -v "certificate issued" "$f" | tail -15; }; done
  [ -f "$pgdir/pg.log" ] && { echo "--- postgres"; tail -15 "$pgdir/pg.log"; }
  exit 1
}

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_stop() { as_pg "$pgbin/pg_ctl" -D "$pgdir/data" -m fast -w -t 30 stop >/dev/null 2>&1 || true; }

cleanup() {
  touch "$work/stop"
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  [ -n "$pgbin" ] && [ -d "$pgdir/data" ] && pg_stop
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# free_port prints a loopback TCP port nobody listens on.
free_port() {
  local p
  for _ in $(seq 1 100); do
    p=$((20000 + RANDOM % 30000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  die "no free port"
}

# wait_until SECONDS DESCRIPTION COMMAND...: polls COMMAND every 0.2 s.
wait_until() {
  local limit=$1 what=$2
  shift 2
  local end=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || die "$what: not within $limit s"
    sleep 0.2
  done
}

for t in curl jq openssl; do command -v $t >/dev/null || die "$t is required"; done
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$pgbin/initdb" ] || die "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin"

log "build"
go build -o "$work/trustgate" ./cmd/trustgate
tg=$work/trustgate

log "PostgreSQL: a cluster of our own"
mkdir -p "$pgdir"
[ "$(id -u)" = 0 ] && chown postgres: "$pgdir"
pgport=$(free_port)
as_pg "$pgbin/initdb" -D "$pgdir/data" -U postgres -A trust -E UTF8 --locale=C --no-sync >"$work/initdb.log" 2>&1 ||
  { cat "$work/initdb.log"; die "initdb"; }
pg_start() {
  as_pg "$pgbin/pg_ctl" -D "$pgdir/data" -l "$pgdir/pg.log" -w -t 30 \
    -o "-p $pgport -k $pgdir -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
}
pg_start || die "PostgreSQL did not start"
"$pgbin/createdb" -h 127.0.0.1 -p "$pgport" -U postgres trustgate || die "createdb"
psql() { "$pgbin/psql" -h 127.0.0.1 -p "$pgport" -U postgres -d trustgate -qAtX "$@"; }
export TRUSTGATE_STORE="postgres://postgres@127.0.0.1:$pgport/trustgate?sslmode=disable&connect_timeout=2"

log "init"
data=$work/data
"$tg" init --data "$data" -o json >"$work/init.json" 2>"$work/init.log" || { cat "$work/init.log"; die "init"; }
token=$(jq -r .admin_token "$work/init.json")
cacert=$data/api-ca.pem

declare -a api pub npid
pub1=$(free_port)
start_node() {
  local i=$1
  TRUSTGATE_DATA_DIR=$data TRUSTGATE_API_LISTEN=127.0.0.1:${api[$i]} \
    TRUSTGATE_PUBLIC_LISTEN=127.0.0.1:${pub[$i]} TRUSTGATE_PUBLIC_BASE_URL=http://127.0.0.1:$pub1 \
    TRUSTGATE_LOG_FORMAT=text "$tg" server >"$work/node$i.log" 2>&1 &
  npid[$i]=$!
  pids+=("$!")
}
healthy() { curl -sf --max-time 2 --cacert "$cacert" "https://127.0.0.1:${api[$1]}/healthz"; }
for i in $(seq 1 "$NODES"); do
  api[$i]=$(free_port)
  if [ "$i" = 1 ]; then pub[$i]=$pub1; else pub[$i]=$(free_port); fi
  start_node "$i"
done
for i in $(seq 1 "$NODES"); do wait_until 30 "node $i ready" healthy "$i"; done
log "$NODES nodes up"

# api_call NODE METHOD PATH [BODY]: prints "HTTP_CODE BODY" on one line.
api_call() {
  local out code
  out=$(curl -s --max-time 10 --cacert "$cacert" -H "Authorization: Bearer $token" -X "$2" \
    ${4:+-H "Content-Type: application/json" --data "$4"} -w '\n%{http_code}' "https://127.0.0.1:${api[$1]}$3" 2>/dev/null) || true
  code=${out##*$'\n'}
  echo "${code:-000} ${out%$'\n'*}" | tr -d '\n'
  echo
}
code_of() { echo "${1%% *}"; }
body_of() { echo "${1#* }"; }

r=$(api_call 1 POST /v1/cas '{"name":"mn-root","subject":"CN=Multinode Root"}')
[ "$(code_of "$r")" = 201 ] || [ "$(code_of "$r")" = 200 ] || die "create root CA: $r"
r=$(api_call 2 POST /v1/cas '{"name":"mn-ca","parent":"mn-root","subject":"CN=Multinode CA"}')
[ "$(code_of "$r")" = 201 ] || [ "$(code_of "$r")" = 200 ] || die "create CA on node 2: $r"
issue_body='{"ca":"mn-ca","profile":"client","common_name":"mn","validity":"1h"}'

# issuer NODE WORKER COUNT: issues COUNT certificates (0: until $work/stop
# exists) and appends "NODE HTTP_CODE SERIAL ERROR_CODE" per request to
# $work/results.
issuer() {
  local node=$1 w=$2 n=$3 k=0 r code body serial ecode
  while { [ "$n" = 0 ] && [ ! -e "$work/stop" ]; } || [ $k -lt "$n" ]; do
    k=$((k + 1))
    r=$(api_call "$node" POST /v1/certificates "$issue_body")
    code=$(code_of "$r")
    body=$(body_of "$r")
    serial=-
    ecode=-
    if [ "$code" = 200 ] || [ "$code" = 201 ]; then
      serial=$(echo "$body" | jq -r '.certificate.serial' 2>/dev/null || echo "?")
    else
      ecode=$(echo "$body" | jq -r '.error.code // "-"' 2>/dev/null || echo "-")
      [ "$n" = 0 ] && sleep 0.05
    fi
    echo "$node $code $serial $ecode" >>"$work/results.$node.$w"
  done
}

# check_store PHASE: every certificate returned so far is in the store
# exactly once, and no serial of mn-ca is recorded twice.
check_store() {
  cat "$work"/results.* >"$work/results"
  awk '($2==200||$2==201){print $3}' "$work/results" | sort >"$work/returned"
  psql -c "SELECT c.serial FROM certificates c JOIN cas a ON a.id = c.ca_id WHERE a.name = 'mn-ca' AND c.profile = 'client'" |
    sort >"$work/stored"
  local n missing dupret dupstore bad
  n=$(wc -l <"$work/returned")
  missing=$(comm -23 "$work/returned" "$work/stored" | wc -l)
  dupret=$(uniq -d "$work/returned" | wc -l)
  dupstore=$(uniq -d "$work/stored" | wc -l)
  bad=$(awk '$2 >= 500 && $2 != 503' "$work/results" | wc -l)
  if [ "$n" -gt 0 ] && [ "$missing" = 0 ] && [ "$dupret" = 0 ] && [ "$dupstore" = 0 ]; then
    pass "$1: $n certificates returned, each in the store exactly once, no duplicate serial"
  else
    fail "$1: $n returned, $missing missing from the store, $dupret duplicated in answers, $dupstore duplicated in the store"
  fi
  if [ "$bad" = 0 ]; then
    pass "$1: no 5xx answer other than 503"
  else
    fail "$1: $bad answers with a 5xx other than 503: $(awk '$2 >= 500 && $2 != 503 {print $2}' "$work/results" | sort | uniq -c | tr '\n' ' ')"
  fi
}

# lease_held NODE succeeds when NODE's metrics say it holds the lease. (The
# metrics are read whole first: grep -q closing the pipe early would fail
# curl, and the pipeline with it, under pipefail.)
lease_held() {
  local m
  m=$(curl -sf --max-time 2 "http://127.0.0.1:${pub[$1]}/metrics") || return 1
  grep -q '^trustgate_lease_held{lease="jobs"} 1' <<<"$m"
}

# holder prints the node that holds the singleton-jobs lease ("" if none).
holder() {
  local i
  for i in $(seq 1 "$NODES"); do
    kill -0 "${npid[$i]}" 2>/dev/null || continue
    if lease_held "$i"; then
      echo "$i"
      return
    fi
  done
}
has_holder() { [ -n "$(holder)" ]; }

# crl_number NODE prints the number of the CRL of mn-ca that NODE serves.
crl_number() {
  curl -sf --max-time 5 "http://127.0.0.1:${pub[$1]}/crl/mn-ca.crl" |
    openssl crl -inform DER -noout -crlnumber 2>/dev/null | sed -n 's/^crlNumber=//p' |
    { read -r h && echo $((16#${h#0x})); }
}

###############################################################################
log "phase 1: concurrent issuance through all $NODES nodes"
lp=()
for i in $(seq 1 "$NODES"); do
  for w in $(seq 1 "$WORKERS"); do issuer "$i" "$w" "$BURST" & lp+=("$!"); done
done
for p in "${lp[@]}"; do wait "$p"; done
check_store "concurrent issuance"

###############################################################################
log "phase 2: kill -9 of the lease holder under load"
wait_until 10 "a node holds the lease" has_holder
h=$(holder)
[ -n "$h" ] || die "no node holds the lease"
holders=0
for i in $(seq 1 "$NODES"); do
  if lease_held "$i"; then holders=$((holders + 1)); fi
done
[ "$holders" = 1 ] &&
  pass "exactly one node (node $h) holds the lease" || fail "not exactly one node holds the lease"
# A revocation through the holder publishes a CRL there.
victim=$(awk '($2==200||$2==201){print $3; exit}' "$work/results")
r=$(api_call "$h" POST "/v1/certificates/$victim/revoke" '{"reason":"keyCompromise"}')
[ "$(code_of "$r")" = 200 ] || die "revoke on node $h: $r"
sleep 1.5
n0=$(crl_number "$h") || die "no CRL on node $h"
log "node $h holds the lease and serves CRL number $n0"

rm -f "$work"/results.*
lp=()
for i in $(seq 1 "$NODES"); do
  for w in $(seq 1 "$WORKERS"); do issuer "$i" "$w" 0 & lp+=("$!"); done
done
sleep 2
kill -9 "${npid[$h]}"
t0=$SECONDS
wait "${npid[$h]}" 2>/dev/null || true # reaped quietly
log "killed node $h (pid ${npid[$h]})"
new=
while [ $((SECONDS - t0)) -le 15 ]; do
  new=$(holder)
  [ -n "$new" ] && break
  sleep 0.2
done
took=$((SECONDS - t0))
if [ -n "$new" ] && [ "$took" -le 10 ]; then
  pass "node $new took the lease ${took} s after node $h was killed"
else
  die "no node took the lease within 10 s of the kill (${took} s; holder: '${new}')"
fi
n1=
end=$((SECONDS + 10))
while [ $SECONDS -lt $end ]; do
  n1=$(crl_number "$new" || true)
  [ -n "$n1" ] && [ "$n1" -gt "$n0" ] && break
  sleep 0.2
done
if [ -n "$n1" ] && [ "$n1" -gt "$n0" ]; then
  pass "node $new publishes: CRL number $n0 -> $n1 within $((SECONDS - t0)) s of the kill"
else
  fail "after the failover node $new serves CRL number '${n1}', not above $n0"
fi
victim2=$(awk '($2==200||$2==201){print $3; exit}' "$work"/results.* 2>/dev/null | head -1)
r=$(api_call "$new" POST "/v1/certificates/$victim2/revoke" '{"reason":"superseded"}')
[ "$(code_of "$r")" = 200 ] || fail "revoke on node $new: $r"
n2=
end=$((SECONDS + 5))
while [ $SECONDS -lt $end ]; do
  n2=$(crl_number "$new" || true)
  [ -n "$n2" ] && [ "$n2" -gt "$n1" ] && break
  sleep 0.2
done
[ -n "$n2" ] && [ "$n2" -gt "$n1" ] && pass "a revocation after the failover publishes CRL number $n2 > $n1" ||
  fail "a revocation after the failover left CRL number at '${n2}' (was $n1)"
# A node that does not hold the lease publishes the revocations made
# through it (the other nodes see them when their CRLs are renewed).
for i in $(seq 1 "$NODES"); do
  [ "$i" != "$new" ] && kill -0 "${npid[$i]}" 2>/dev/null && { follower=$i; break; }
done
victim3=$(awk '($2==200||$2==201){print $3}' "$work"/results.* 2>/dev/null | sed -n 5p)
# The node builds and caches its CRL first, so that only a publication can
# add the revocation to it.
curl -sf --max-time 5 "http://127.0.0.1:${pub[$follower]}/crl/mn-ca.crl" >/dev/null || fail "no CRL on node $follower"
r=$(api_call "$follower" POST "/v1/certificates/$victim3/revoke" '{"reason":"keyCompromise"}')
[ "$(code_of "$r")" = 200 ] || fail "revoke on node $follower: $r"
listed() {
  curl -sf --max-time 5 "http://127.0.0.1:${pub[$1]}/crl/mn-ca.crl" | openssl crl -inform DER -noout -text 2>/dev/null |
    tr -d ' :' | tr 'A-Z' 'a-z' | grep -q "serialnumber0*$2\$"
}
wait_until 5 "node $follower's CRL lists the certificate revoked through it" listed "$follower" "$victim3"
pass "node $follower (not the lease holder) publishes the revocation made through it"
wait_until 5 "node $new's CRL lists the certificate revoked through node $follower" listed "$new" "$victim3"
pass "the revocation made through node $follower reaches node $new's CRL"
sleep 1
touch "$work/stop"
for p in "${lp[@]}"; do wait "$p"; done
rm -f "$work/stop"
check_store "kill -9 of the lease holder"

###############################################################################
log "phase 3: PostgreSQL stopped and started under load"
alive=()
for i in $(seq 1 "$NODES"); do kill -0 "${npid[$i]}" 2>/dev/null && alive+=("$i"); done
rm -f "$work"/results.*
lp=()
for i in "${alive[@]}"; do
  for w in $(seq 1 "$WORKERS"); do issuer "$i" "$w" 0 & lp+=("$!"); done
done
sleep 2
pg_stop
log "PostgreSQL stopped"
sleep 2
ok503=1
for i in "${alive[@]}"; do
  r=$(api_call "$i" POST /v1/certificates "$issue_body")
  code=$(code_of "$r")
  msg=$(body_of "$r" | jq -r '.error.code + ": " + .error.message' 2>/dev/null || true)
  if [ "$code" = 503 ] && [[ $msg == unavailable:*"store unavailable"* ]]; then
    log "node $i while PostgreSQL is down: $code $msg"
  else
    ok503=0
    fail "node $i while PostgreSQL is down answered $code '$msg', want 503 naming the store"
  fi
  r=$(api_call "$i" GET /v1/certificates)
  [ "$(code_of "$r")" = 503 ] || { ok503=0; fail "node $i: GET /v1/certificates while down answered $(code_of "$r")"; }
done
[ $ok503 = 1 ] && pass "every node answers 503 with a clear error while PostgreSQL is down"
sleep 1
pg_start || die "PostgreSQL did not start again"
t0=$SECONDS
log "PostgreSQL started"
for i in "${alive[@]}"; do
  issued() {
    local c
    c=$(code_of "$(api_call "$1" POST /v1/certificates "$issue_body")")
    [ "$c" = 200 ] || [ "$c" = 201 ]
  }
  wait_until 30 "node $i recovers" issued "$i"
done
pass "every node issues again $((SECONDS - t0)) s after PostgreSQL came back"
wait_until 15 "a node holds the lease again" has_holder
pass "node $(holder) holds the lease after the outage"
sleep 1
touch "$work/stop"
for p in "${lp[@]}"; do wait "$p"; done
down=$(cat "$work"/results.* | awk '$2==503' | wc -l)
[ "$down" -gt 0 ] && pass "the load saw $down answers 503 during the outage" || fail "the load saw no 503 during the outage"
notclear=$(cat "$work"/results.* | awk '$2==503 && $4!="unavailable"' | wc -l)
[ "$notclear" = 0 ] || fail "$notclear answers 503 without the error code unavailable"
check_store "PostgreSQL outage"

# Every node appended audit records, each in the transaction of its
# certificate: the one chain must still verify, and hold a record of every
# certificate issued.
for i in $(seq 1 "$NODES"); do kill -0 "${npid[$i]}" 2>/dev/null && { alive=$i; break; }; done
r=$(api_call "$alive" GET /v1/audit/verify)
if [ "$(code_of "$r")" = 200 ] && [ "$(body_of "$r" | jq -r .ok)" = true ]; then
  recs=$(body_of "$r" | jq -r .records)
  issued=$(cat "$work"/results.* | awk '$2==201' | wc -l)
  if [ "$recs" -ge "$issued" ]; then
    pass "the audit chain written by $NODES nodes concurrently verifies ($recs records)"
  else
    fail "the audit chain holds $recs records for $issued certificates"
  fi
else
  fail "audit verify: $r"
fi

for i in $(seq 1 "$NODES"); do
  if grep -q "panic" "$work/node$i.log"; then fail "node $i logged a panic"; fi
done
if [ $failed = 0 ]; then echo "PASS: multinode"; else echo "FAIL: multinode"; exit 1; fi
