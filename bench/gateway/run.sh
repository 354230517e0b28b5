#!/usr/bin/env bash
# Benchmark of `trustgate gateway` against nginx and HAProxy (Debian's) as
# mTLS-terminating reverse proxies, on the same ECDSA P-256 certificates,
# the same backend and the same machine, over 127.0.0.1 only.
#
#   bench/gateway/run.sh                  # ~7 min with the defaults (~8.5 with GC_AB=1)
#   REPS=1 DUR=5 bench/gateway/run.sh     # quick look (~2.5 min)
#
# What it measures (docs/benchmarks.md, "Gateway benchmarks", explains the method):
#   handshake: new TCP connection + full TLS 1.3 mTLS handshake (X25519, no
#              resumption) + one GET with Connection: close, HS_C workers
#   request:   keep-alive connections (one per worker, KA_C workers), GETs
#              back to back
#   for trustgate also: handshakes with a CRL_N-entry CRL of the
#   intermediate loaded; that CRL replaced + SIGHUP under handshake load
#   (reload time, failed handshakes, heap); the logs on (connection and
#   access log to a file) as a variant. nginx and HAProxy with the same
#   CRL once each (PEER_CRL=1).
# Variants of trustgate (CRL on/off, logs on/off) are also measured A/B: both
# processes under load at the same time, so that both see the same machine.
# Every load run lasts WARM+DUR s (bounded by `timeout`); the rounds
# interleave the servers, so that drift on a shared machine hits them alike.
# The script prints a markdown report with medians and trustgate/peer
# ratios, and keeps raw JSON lines in $OUT.
#
# Knobs (environment):
#   REPS=3           repeats of every main run (the table shows medians)
#   DUR=10           measured seconds per run; WARM=1 warmup seconds
#   C                workers for both modes; or HS_C=8 (handshake) KA_C=32 (request)
#   WORKERS=2        nginx worker_processes / HAProxy nbthread (trustgate: GOMAXPROCS = nproc)
#   PEERS="nginx haproxy"   peers to compare with ("" = trustgate alone)
#   CRL_N=1000000    entries of the big CRL
#   PEER_CRL=1       also run nginx and HAProxy with the big CRL (1 run each)
#   LOG_VARIANT=1    also run trustgate with its logs written to a file, A/B against logs off (REPS per mode)
#   GC_AB=0          1: also A/B trustgate against itself with GC_AB_ENV (default GOGC=400), REPS per mode
#   RELOADS=3        CRL replacements + SIGHUP during the reload run (4 s apart)
#   HEADERS=alb      trustgate's identity headers: alb | xfcc | both
#   PIN=""           no CPU pinning (default). "1": servers on CPU 0, load generator + backend on CPU 1
#   TG_ENV=""        environment of the trustgate processes, e.g. TG_ENV="GOGC=400" (an experiment:
#                    the defaults are what is measured)
#   WORK=/tmp/trustgate-gwbench   binaries, PKI and CRL cache; OUT=$WORK/out-<time>: results
#   BASE_PORT=19440  ports BASE_PORT+1..+9 (servers), +40 (backend), +51..+55 (metrics)
#   INSTALL_PEERS=0  1: apt-get install the missing peers (Debian's nginx and haproxy)
# Needs: go, openssl, curl; nginx and haproxy for the peers
# (apt-get install -y nginx haproxy). Stops only the processes it started.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
export PATH=$PATH:/usr/local/go/bin:/usr/sbin:/sbin

REPS=${REPS:-3}
DUR=${DUR:-10}; DUR=${DUR%s}
WARM=${WARM:-1}; WARM=${WARM%s}
HS_C=${HS_C:-${C:-8}}
KA_C=${KA_C:-${C:-32}}
WORKERS=${WORKERS:-2}
PEERS=${PEERS-"nginx haproxy"}
CRL_N=${CRL_N:-1000000}
PEER_CRL=${PEER_CRL:-1}
LOG_VARIANT=${LOG_VARIANT:-1}
GC_AB=${GC_AB:-0}
GC_AB_ENV=${GC_AB_ENV:-GOGC=400}
RELOADS=${RELOADS:-3}
HEADERS=${HEADERS:-alb}
PIN=${PIN:-}
TG_ENV=${TG_ENV:-}
WORK=${WORK:-/tmp/trustgate-gwbench}
OUT=${OUT:-$WORK/out-$(date +%Y%m%d-%H%M%S)}
BASE_PORT=${BASE_PORT:-19440}

BIN=$WORK/bin
PKI=$WORK/pki
RUN=$OUT/run
RAW=$OUT/raw.jsonl
mkdir -p "$BIN" "$RUN"
: > "$RAW"

declare -A PORT=(
  [trustgate]=$((BASE_PORT + 1)) [trustgate-crl]=$((BASE_PORT + 2)) [trustgate-logs]=$((BASE_PORT + 3))
  [trustgate-reload]=$((BASE_PORT + 4)) [nginx]=$((BASE_PORT + 5)) [haproxy]=$((BASE_PORT + 6))
  [nginx-crl]=$((BASE_PORT + 7)) [haproxy-crl]=$((BASE_PORT + 8)) [trustgate-gc]=$((BASE_PORT + 9)))
declare -A METRICS=(
  [trustgate]=$((BASE_PORT + 51)) [trustgate-crl]=$((BASE_PORT + 52))
  [trustgate-logs]=$((BASE_PORT + 53)) [trustgate-reload]=$((BASE_PORT + 54)) [trustgate-gc]=$((BASE_PORT + 55)))
BACKEND_ADDR=127.0.0.1:$((BASE_PORT + 40))
declare -A PID_OF=()
STARTED=()

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now_ms() { date +%s%3N; }

# --- processes: started here, stopped by PID only ---------------------------
stop_pid() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local p
  for p in "${STARTED[@]}"; do stop_pid "$p"; done
  STARTED=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

SRV_CPU=() CLI_CPU=()
if [ -n "$PIN" ]; then SRV_CPU=(taskset -c 0); CLI_CPU=(taskset -c 1); fi

# start NAME CMD...: runs CMD in the background, output in $RUN/NAME.out
start() {
  local name=$1; shift
  "$@" >"$RUN/$name.out" 2>&1 &
  PID_OF[$name]=$!
  STARTED+=("$!")
}
stop() {
  local name=$1 pid=${PID_OF[$1]:-} p keep=()
  [ -n "$pid" ] || return 0
  stop_pid "$pid"
  for p in "${STARTED[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
  STARTED=("${keep[@]}")
  unset "PID_OF[$name]"
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { # port seconds [pid]: fails early when pid exits
  local i end=$(($(now_ms) + $2 * 1000))
  while [ "$(now_ms)" -lt "$end" ]; do
    port_open "$1" && return 0
    [ -n "${3:-}" ] && ! kill -0 "$3" 2>/dev/null && return 1
    sleep 0.05
  done
  return 1
}

# append_fields JSON key=value...: values are raw JSON
append_fields() {
  local line=$1 kv extra=""; shift
  for kv in "$@"; do extra+=",\"${kv%%=*}\":${kv#*=}"; done
  echo "${line%\}}${extra}}"
}
fact() { # kind key=value...
  local kind=$1; shift
  append_fields "{\"kind\":\"$kind\"}" "$@" >> "$RAW"
}

# --- build --------------------------------------------------------------------
log "building trustgate and the bench tools into $BIN"
(cd "$REPO" && go build -o "$BIN/trustgate" ./cmd/trustgate)
for t in mtlsload backend crlgen report; do
  (cd "$REPO" && go build -o "$BIN/$t" "./bench/gateway/$t")
done
have() { command -v "$1" >/dev/null 2>&1; }
for p in $PEERS; do
  if ! have "$p" && [ "${INSTALL_PEERS:-0}" = 1 ]; then
    log "installing $p from Debian"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >/dev/null
  fi
  have "$p" || die "$p not found: apt-get install -y nginx haproxy, or INSTALL_PEERS=1, or PEERS=\"\" (trustgate alone)"
done

# --- machine ------------------------------------------------------------------
{
  echo "date: $(date -Is)"
  echo "kernel: $(uname -r)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), nproc $(nproc)"
  echo "mem: $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "go: $(go version)"
  echo "openssl: $(openssl version)"
  have nginx && echo "nginx: $(nginx -v 2>&1)"
  have haproxy && echo "haproxy: $(haproxy -v 2>&1 | head -1)"
  echo "trustgate: $(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo unknown)$(cd "$REPO" && git diff --quiet HEAD -- internal cmd 2>/dev/null ||
    echo " + uncommitted changes (internal/, cmd/: diff sha256 $(git diff HEAD -- internal cmd | sha256sum | cut -c1-12))")"
  echo "loadavg before: $(cat /proc/loadavg)"
  echo "settings: REPS=$REPS DUR=$DUR WARM=$WARM HS_C=$HS_C KA_C=$KA_C WORKERS=$WORKERS CRL_N=$CRL_N HEADERS=$HEADERS PIN=${PIN:-no} TG_ENV=${TG_ENV:-none}"
} > "$OUT/machine.txt"
cat "$OUT/machine.txt" >&2

# --- PKI and CRLs (cached in $WORK) -------------------------------------------
if [ ! -s "$PKI/ca-bundle.crt" ] || ! openssl x509 -checkend 604800 -noout -in "$PKI/client.crt" >/dev/null; then
  log "making the PKI in $PKI"
  rm -rf "$PKI"
  "$HERE/make-pki.sh" "$PKI"
fi
CRLDIR=$WORK/crl-$(sha256sum "$PKI/int.key" | cut -c1-12)-$CRL_N
mkdir -p "$CRLDIR"
# crl NAME CA NUMBER ENTRIES [REVOKE]: DER + PEM, regenerated after a day
crl() {
  local name=$1 ca=$2 number=$3 n=$4 rev=${5:-}
  if [ -s "$CRLDIR/$name.der" ] && [ -s "$CRLDIR/$name.pem" ] && [ -z "$(find "$CRLDIR/$name.der" -mmin +1440)" ]; then
    fact crlgen "name=\"$name\"" "cached=true" "result=$(cat "$CRLDIR/$name.json" 2>/dev/null || echo null)"
    return 0
  fi
  local args=(-ca-cert "$PKI/$ca.crt" -ca-key "$PKI/$ca.key" -n "$n" -number "$number" -out "$CRLDIR/$name.der" -pem "$CRLDIR/$name.pem")
  [ -n "$rev" ] && args+=(-revoke "$rev")
  local t0 line; t0=$(now_ms)
  line=$("$BIN/crlgen" "${args[@]}")
  line=$(append_fields "$line" "wall_ms=$(($(now_ms) - t0))")
  echo "$line" > "$CRLDIR/$name.json"
  fact crlgen "name=\"$name\"" "cached=false" "result=$line"
  log "CRL $name: $line"
}
REVOKED=$(cat "$PKI/revoked.serial")
crl root-empty root 1 0
crl int-small int 1 0 "$REVOKED"
crl int-big-a int 2 "$CRL_N" "$REVOKED"
crl int-big-b int 3 "$CRL_N" "$REVOKED"
cat "$CRLDIR/int-big-a.pem" "$CRLDIR/root-empty.pem" > "$RUN/crl-bundle-big.pem"
fact crlfile "name=\"int-big-a\"" "der_bytes=$(stat -c %s "$CRLDIR/int-big-a.der")" "pem_bytes=$(stat -c %s "$CRLDIR/int-big-a.pem")" "entries=$((CRL_N + 1))"
line=$("$BIN/crlgen" -measure -ca-file "$PKI/ca-bundle.crt" -crl "$CRLDIR/int-big-a.der" \
  -expect-revoked "$PKI/revoked-chain.crt" -expect-ok "$PKI/client-chain.crt") || die "CRL compile check failed: $line"
fact crlmeasure "result=$line"
log "compiled by internal/truststore/verify: $line"
line=$("$BIN/crlgen" -measure -ca-file "$PKI/ca-bundle.crt" -crl "$CRLDIR/int-small.der" \
  -expect-revoked "$PKI/revoked-chain.crt" -expect-ok "$PKI/client-chain.crt") || die "CRL compile check failed: $line"
fact crlmeasure "small=true" "result=$line"

# --- servers --------------------------------------------------------------------
for name in "${!PORT[@]}"; do port_open "${PORT[$name]}" && die "port ${PORT[$name]} ($name) is in use"; done
port_open "${BACKEND_ADDR##*:}" && die "backend port ${BACKEND_ADDR##*:} is in use"

start backend "${CLI_CPU[@]}" "$BIN/backend" -addr "$BACKEND_ADDR"
wait_port "${BACKEND_ADDR##*:}" 10 || die "backend did not start"

# start_trustgate NAME CRLFILE|"" CONNLOG ACCESSLOG
start_trustgate() {
  local name=$1 crlfile=$2 connlog=$3 accesslog=$4 crlline=""
  [ -n "$crlfile" ] && crlline="crl_files: [$crlfile]"
  sed -e "s|@PORT@|${PORT[$name]}|g" -e "s|@PKI@|$PKI|g" -e "s|@BACKEND@|$BACKEND_ADDR|g" \
      -e "s|@CRL@|$crlline|g" -e "s|@METRICS@|${METRICS[$name]}|g" -e "s|@HEADERS@|$HEADERS|g" \
      -e "s|@CONNLOG@|$connlog|g" -e "s|@ACCESSLOG@|$accesslog|g" \
      "$HERE/gateway.yaml.tmpl" > "$RUN/$name.yaml"
  local t0; t0=$(now_ms)
  start "$name" env $TG_ENV ${EXTRA_ENV:-} "${SRV_CPU[@]}" "$BIN/trustgate" gateway --config "$RUN/$name.yaml"
  wait_port "${PORT[$name]}" 60 "${PID_OF[$name]}" || { tail -5 "$RUN/$name.out" >&2; die "$name did not start"; }
  fact startup "target=\"$name\"" "ms=$(($(now_ms) - t0))"
}
# start_nginx NAME CRLBUNDLE|""
start_nginx() {
  local name=$1 crl=$2 rd=$RUN/$1 crlline=""
  mkdir -p "$rd"
  [ -n "$crl" ] && crlline="ssl_crl $crl;"
  sed -e "s|@RUNDIR@|$rd|g" -e "s|@PORT@|${PORT[$name]}|g" -e "s|@PKI@|$PKI|g" -e "s|@BACKEND@|$BACKEND_ADDR|g" \
      -e "s|@WORKERS@|$WORKERS|g" -e "s|@CRL@|$crlline|g" "$HERE/nginx.conf.tmpl" > "$rd/nginx.conf"
  local t0; t0=$(now_ms)
  start "$name" "${SRV_CPU[@]}" nginx -p "$rd" -e "$rd/error.log" -c "$rd/nginx.conf"
  wait_port "${PORT[$name]}" 120 "${PID_OF[$name]}" || { tail -5 "$rd/error.log" "$RUN/$name.out" >&2; die "$name did not start"; }
  fact startup "target=\"$name\"" "ms=$(($(now_ms) - t0))"
  sleep 0.5 # the workers
}
start_haproxy() {
  local name=$1 crl=$2 rd=$RUN/$1 crlline=""
  mkdir -p "$rd"
  [ -n "$crl" ] && crlline="crl-file $crl"
  sed -e "s|@RUNDIR@|$rd|g" -e "s|@PORT@|${PORT[$name]}|g" -e "s|@PKI@|$PKI|g" -e "s|@BACKEND@|$BACKEND_ADDR|g" \
      -e "s|@THREADS@|$WORKERS|g" -e "s|@CRL@|$crlline|g" "$HERE/haproxy.cfg.tmpl" > "$rd/haproxy.cfg"
  local t0; t0=$(now_ms)
  start "$name" "${SRV_CPU[@]}" haproxy -db -f "$rd/haproxy.cfg"
  wait_port "${PORT[$name]}" 120 "${PID_OF[$name]}" || { tail -5 "$RUN/$name.out" >&2; die "$name did not start"; }
  fact startup "target=\"$name\"" "ms=$(($(now_ms) - t0))"
}
start_peer() { # peer name crl
  case $1 in
    nginx) start_nginx "$2" "$3" ;;
    haproxy) start_haproxy "$2" "$3" ;;
    *) die "unknown peer $1" ;;
  esac
}

# metric NAME PROMNAME: the value of an unlabelled series on trustgate's /metrics
metric() {
  local v
  v=$(curl -sf --max-time 5 "http://127.0.0.1:${METRICS[$1]}/metrics" | awk -v m="$2" '$1 == m {v = $2} END {if (v != "") printf "%.0f", v}') || v=""
  echo "${v:-0}"
}
rss_kb() { # PID...: resident KiB of the processes and their children
  local total=0 p c
  for p in "$@"; do
    for c in $p $(cat /proc/"$p"/task/*/children 2>/dev/null); do
      total=$((total + $(awk '/VmRSS/{print $2}' /proc/"$c"/status 2>/dev/null || echo 0)))
    done
  done
  echo "$total"
}
heap_fact() { # NAME WHEN
  fact heap "target=\"$1\"" "when=\"$2\"" "heap_inuse=$(metric "$1" go_memstats_heap_inuse_bytes)" \
    "next_gc=$(metric "$1" go_memstats_next_gc_bytes)" "rss=$(metric "$1" process_resident_memory_bytes)"
}

# once TARGET CHAIN KEY: one handshake + request; prints ok/error
once() {
  "$BIN/mtlsload" -once -mode handshake -addr "127.0.0.1:${PORT[$1]}" -cert "$2" -key "$3" -ca "$PKI/root.crt" \
    -expect-subject bench- 2>&1 || true
}
# check_revocation TARGET EXPECT(accepted|refused): the revoked client
check_revocation() {
  local out; out=$(once "$1" "$PKI/revoked-chain.crt" "$PKI/revoked.key")
  local got=refused; [[ $out == ok* ]] && got=accepted
  fact check "target=\"$1\"" "what=\"revoked client\"" "expect=\"$2\"" "got=\"$got\"" "detail=\"${out//\"/\'}\""
  [ "$got" = "$2" ] || die "$1: the revoked client was $got, expected $2: $out"
}
check_client() {
  local out; out=$(once "$1" "$PKI/client-chain.crt" "$PKI/client.key")
  [[ $out == ok* ]] || die "$1 refused the good client: $out"
  log "$1: $out"
}

# load LABEL TARGET MODE REP [mtlsload args...]: one bounded run, one JSON line
load() {
  local label=$1 target=$2 mode=$3 rep=$4 c; shift 4
  if [ "$mode" = handshake ]; then c=$HS_C; else c=$KA_C; fi
  local la; la=$(cut -d' ' -f1 /proc/loadavg)
  local line
  line=$(timeout $((WARM + DUR + 20)) "${CLI_CPU[@]}" "$BIN/mtlsload" -label "$label" \
    -addr "127.0.0.1:${PORT[$target]}" -cert "$PKI/client-chain.crt" -key "$PKI/client.key" -ca "$PKI/root.crt" \
    -mode "$mode" -c "$c" -d "${DUR}s" -warmup "${WARM}s" -expect-subject bench-client \
    -watch "server=${PID_OF[$target]}" -watch "backend=${PID_OF[backend]}" "$@") || { log "FAILED: $label"; return 0; }
  line=$(append_fields "$line" "kind=\"load\"" "target=\"$target\"" "rep=$rep" "loadavg1=$la" "tag=\"${TAG:-}\"")
  echo "$line" >> "$RAW"
  log "$label #$rep: $(grep -o '"ops_per_s":[0-9.]*' <<<"$line" | cut -d: -f2)/s p99 $(grep -o '"p99_ms":[0-9.]*' <<<"$line" | cut -d: -f2) ms, server $(grep -o '"server":{[^}]*' <<<"$line" | grep -o '"cpu_us_per_op":[0-9.]*' | cut -d: -f2) us/op, errors $(grep -o '"errors":[0-9]*' <<<"$line" | cut -d: -f2)"
  [ -n "${TAG:-}" ] || case $target in trustgate*) heap_fact "$target" "after-$mode" ;; esac
}

log "starting the servers"
start_trustgate trustgate "" off off
start_trustgate trustgate-crl "$CRLDIR/int-big-a.der" off off
[ "$LOG_VARIANT" = 1 ] && start_trustgate trustgate-logs "" "$RUN/trustgate-logs.connections.log" "$RUN/trustgate-logs.access.log"
[ "$GC_AB" = 1 ] && EXTRA_ENV=$GC_AB_ENV start_trustgate trustgate-gc "" off off
for p in $PEERS; do start_peer "$p" "$p" ""; done

HS_TARGETS=(trustgate trustgate-crl $PEERS)
KA_TARGETS=(trustgate $PEERS)
for t in "${HS_TARGETS[@]}"; do check_client "$t"; done
check_revocation trustgate accepted
check_revocation trustgate-crl refused
heap_fact trustgate idle
heap_fact trustgate-crl idle

# --- main rounds: interleaved, the order rotated every repeat ----------------------
rotate() { local k=$1; shift; local a=("$@"); local n=${#a[@]}; local i; for ((i = 0; i < n; i++)); do echo "${a[(i + k) % n]}"; done; }
for ((rep = 1; rep <= REPS; rep++)); do
  log "round $rep/$REPS"
  for t in $(rotate $((rep - 1)) "${HS_TARGETS[@]}"); do load "$t/handshake" "$t" handshake "$rep"; done
  for t in $(rotate $((rep - 1)) "${KA_TARGETS[@]}"); do load "$t/request" "$t" request "$rep"; done
done

# --- the CRL's cost, A/B: trustgate without and with the CRL loaded, both
# under load at the same time (HS_C workers each), so that both see the same
# machine; sequential runs on a shared machine drift by more than 3 %.
for ((rep = 1; rep <= REPS; rep++)); do
  TAG=ab load trustgate/handshake/ab trustgate handshake "$rep" & ab1=$!
  TAG=ab load trustgate-crl/handshake/ab trustgate-crl handshake "$rep" & ab2=$!
  wait "$ab1" "$ab2"
done

# --- the logs' cost, A/B: trustgate with its logs off and with both logs
# written to a file, under load at the same time.
if [ "$LOG_VARIANT" = 1 ]; then
  for ((rep = 1; rep <= REPS; rep++)); do
    for mode in handshake request; do
      TAG=logab load "trustgate/$mode/logab" trustgate "$mode" "$rep" & ab1=$!
      TAG=logab load "trustgate-logs/$mode/logab" trustgate-logs "$mode" "$rep" & ab2=$!
      wait "$ab1" "$ab2"
    done
  done
  fact logsize "connections=$(stat -c %s "$RUN/trustgate-logs.connections.log")" "access=$(stat -c %s "$RUN/trustgate-logs.access.log")"
  stop trustgate-logs
  rm -f "$RUN"/trustgate-logs.*.log
fi

# --- the GC's share, A/B: trustgate as is and with GC_AB_ENV (GOGC=400), at once
if [ "$GC_AB" = 1 ]; then
  fact gcab "env=\"$GC_AB_ENV\""
  for ((rep = 1; rep <= REPS; rep++)); do
    for mode in handshake request; do
      TAG=gcab load "trustgate/$mode/gcab" trustgate "$mode" "$rep" & ab1=$!
      TAG=gcab load "trustgate-gc/$mode/gcab" trustgate-gc "$mode" "$rep" & ab2=$!
      wait "$ab1" "$ab2"
    done
  done
  stop trustgate-gc
fi

# --- the peers with the big CRL --------------------------------------------------------
if [ "$PEER_CRL" = 1 ]; then
  for p in $PEERS; do
    log "$p with the $CRL_N-entry CRL: starting"
    start_peer "$p" "$p-crl" "$RUN/crl-bundle-big.pem"
    fact rss "target=\"$p-crl\"" "kb=$(rss_kb "${PID_OF[$p-crl]}")" "base_kb=$(rss_kb "${PID_OF[$p]}")"
    check_client "$p-crl"
    check_revocation "$p-crl" refused
    HS_C=4 load "$p-crl/handshake" "$p-crl" handshake 1 -timeout 6s
    stop "$p-crl"
  done
fi

# --- CRL reload under handshake load ------------------------------------------------
# trustgate-reload starts with a 1-entry CRL of the intermediate; the big CRL
# is then put in its place (rename) + SIGHUP, once idle, then RELOADS times
# (alternating two big CRLs with different serials) under handshake load.
log "CRL reload test"
RCRL=$RUN/reload-crl.der
cp "$CRLDIR/int-small.der" "$RCRL"
start_trustgate trustgate-reload "$RCRL" off off
check_client trustgate-reload
heap_fact trustgate-reload before-crl
GWLOG=$RUN/trustgate-reload.out
loaded_count() { grep -c '"msg":"gateway: trust store loaded"' "$GWLOG" || true; }
log_ms() { # the time of the last log line with this msg, in ms since the epoch
  local ts; ts=$(grep "\"msg\":\"$1\"" "$GWLOG" | tail -1 | sed -n 's/.*"time":"\([^"]*\)".*/\1/p' || true)
  if [ -n "$ts" ]; then date -d "$ts" +%s%3N; else echo 0; fi
}
# swap_crl SRC N UNDER_LOAD: replace the CRL file, SIGHUP, wait for the swap
swap_crl() {
  local src=$1 n=$2 under=$3 before t0 i t_loaded t_hup
  before=$(loaded_count)
  cp "$src" "$RCRL.tmp"
  t0=$(now_ms)
  mv -f "$RCRL.tmp" "$RCRL"
  kill -HUP "${PID_OF[trustgate-reload]}"
  for ((i = 0; i < 200; i++)); do
    [ "$(loaded_count)" -gt "$before" ] && break
    sleep 0.05
  done
  if [ "$(loaded_count)" -le "$before" ]; then
    fact reload "n=$n" "under_load=$under" "ok=false"
    log "reload $n: no 'trust store loaded' within 10 s"
    return 0
  fi
  t_loaded=$(log_ms "gateway: trust store loaded")
  t_hup=$(log_ms "SIGHUP: reloading")
  fact reload "n=$n" "under_load=$under" "ok=true" "file_to_swap_ms=$((t_loaded - t0))" "hup_to_swap_ms=$((t_loaded - t_hup))" "polled_ms=$(($(now_ms) - t0))"
  log "reload $n ($(basename "$src")): swapped $((t_loaded - t0)) ms after the file was replaced (under load: $under)"
}
swap_crl "$CRLDIR/int-big-a.der" 0 false
heap_fact trustgate-reload after-crl-idle
fact hwm "when=\"after-crl-idle\"" "kb=$(awk '/VmHWM/{print $2}' /proc/"${PID_OF[trustgate-reload]}"/status)"
check_revocation trustgate-reload refused

RDUR=$((RELOADS * 4 + 2))
(( RDUR > DUR + 5 )) && RDUR=$((DUR + 5))
(( RELOADS * 4 + 1 > RDUR )) && RELOADS=$(((RDUR - 1) / 4))
hsload_out=$RUN/reload-load.json
(timeout $((WARM + RDUR + 20)) "${CLI_CPU[@]}" "$BIN/mtlsload" -label "trustgate-crl/handshake+reloads" \
  -addr "127.0.0.1:${PORT[trustgate-reload]}" -cert "$PKI/client-chain.crt" -key "$PKI/client.key" -ca "$PKI/root.crt" \
  -mode handshake -c "$HS_C" -d "${RDUR}s" -warmup "${WARM}s" -expect-subject bench-client \
  -watch "server=${PID_OF[trustgate-reload]}" > "$hsload_out") &
LOADPID=$!
STARTED+=("$LOADPID")
# sample the heap every 250 ms while the load runs
peak_heap=0 peak_rss=0
sample_until() { # epoch-ms
  local h r
  while [ "$(now_ms)" -lt "$1" ]; do
    h=$(metric trustgate-reload go_memstats_heap_inuse_bytes)
    r=$(metric trustgate-reload process_resident_memory_bytes)
    [ "${h:-0}" -gt "$peak_heap" ] && peak_heap=$h
    [ "${r:-0}" -gt "$peak_rss" ] && peak_rss=$r
    sleep 0.25
  done
}
tstart=$(now_ms)
sample_until $((tstart + (WARM + 1) * 1000))
src=b
for ((k = 1; k <= RELOADS; k++)); do
  swap_crl "$CRLDIR/int-big-$src.der" "$k" true
  if [ $src = b ]; then src=a; else src=b; fi
  sample_until $((tstart + (WARM + 1 + 4 * k) * 1000))
done
wait "$LOADPID" || true
line=$(cat "$hsload_out")
[ -n "$line" ] && append_fields "$line" "kind=\"load\"" "target=\"trustgate-reload\"" "rep=1" "loadavg1=0" >> "$RAW"
fact reloadpeak "heap_inuse=$peak_heap" "rss=$peak_rss" "hwm_kb=$(awk '/VmHWM/{print $2}' /proc/"${PID_OF[trustgate-reload]}"/status)"
heap_fact trustgate-reload after-reloads
log "reload run: $(grep -o '"ops_per_s":[0-9.]*' <<<"$line"), $(grep -o '"errors_total":[0-9]*' <<<"$line")"

echo "loadavg after: $(cat /proc/loadavg)" >> "$OUT/machine.txt"
cleanup
"$BIN/report" -machine "$OUT/machine.txt" "$RAW" | tee "$OUT/report.md"
log "raw results: $RAW; report: $OUT/report.md"
