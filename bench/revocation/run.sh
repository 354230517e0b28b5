#!/usr/bin/env bash
# Revocation benchmark: Trustgate's OCSP responder and CRL publisher measured
# from the outside, with peers measured in the same run, all on loopback with
# the load generator on the same machine. See docs/benchmarks.md ("Revocation benchmarks").
#
#   bench/revocation/run.sh                 # defaults below: ~3 minutes, at most ~5
#                                           # with QUIET_MAX waits
#   REPS=1 DUR=5s bench/revocation/run.sh   # quicker
#   CRL_SQLITE=1 bench/revocation/run.sh    # + the 1M-entry CRL from real SQLite
#                                           #   (fills SQLite first: adds ~5-10 min)
#
# (a) OCSP GET load (RFC 5019, keep-alive, answers checked) against, in turn:
#     trustgate  `trustgate dev`'s /ocsp/demo-intermediate (cached, pre-signed answers)
#     openssl    `openssl ocsp -index index.txt -port P -rsigner .. -rkey .. -CA ..`,
#                which signs every answer (same key type, ECDSA P-256, and the same
#                pool size). It runs, with its load generator, in its own network
#                and PID namespaces (unshare -n -p): -port binds the wildcard
#                address and this benchmark stays on loopback, and the namespace
#                ends every process in it when its run ends
#     nginx      the Trustgate answers pre-fetched into files, served statically:
#                the "cached blob over HTTP" upper bound
#     REPS rounds of (trustgate, openssl, nginx), so drift hits every peer alike.
# (b) revoke -> new OCSP answer and new CRL served: PROP_N revocations one after
#     another through the API, polled every POLL; plus the server's own histogram.
# (c) go test ./internal/revocation -bench BenchmarkCRL1M (1,000,000 entries,
#     streamed from a generated source), and with CRL_SQLITE=1 from real SQLite.
#
# Knobs (environment):
#   REPS=3          rounds of the load peers
#   DUR=10s         measured window of each load run (whole seconds)
#   WARM=1s         warmup before it (whole seconds)
#   C=16            keep-alive connections of the load generator
#   POOL=200        certificates asked about (each peer has its own pool)
#   PEERS="trustgate openssl nginx"
#   OPENSSL_MULTI=  e.g. 2: also run `openssl ocsp -multi 2` (label openssl-multi2)
#   EXTRA_C=        e.g. "64 128": after the rounds, one more run of each peer per
#                   concurrency listed (labels trustgate-c64, ...)
#   PROP_N=50       revocations in (b)
#   POLL=10ms       polling interval in (b)
#   CRL_BENCH=1     run (c); 0 skips it
#   CRL_SQLITE=0    1 also runs (c) on real SQLite (TRUSTGATE_BENCH_SQLITE=1, slow)
#   QUIET_MAX=10    before each load run wait up to this many seconds for the machine
#                   to be quiet (other processes < QUIET_CORES cores over 1 s); 0 disables.
#                   Runs go ahead either way; each records other_cores.
#   QUIET_CORES=0.3
#   OUT=DIR         results: raw.jsonl, summary.md, machine.txt, logs
#                   (default /tmp/trustgate-bench-revocation-<date>)
#
# Every step has a timeout. The script starts trustgate, nginx and openssl,
# and stops only those, by PID (openssl and its load generator live in a
# PID namespace of their own, which the kernel empties when its first
# process, the run's bash, exits).
set -euo pipefail

REPS=${REPS:-3}
DUR=${DUR:-10s}
WARM=${WARM:-1s}
C=${C:-16}
POOL=${POOL:-200}
PEERS=${PEERS:-"trustgate openssl nginx"}
OPENSSL_MULTI=${OPENSSL_MULTI:-}
EXTRA_C=${EXTRA_C:-}
PROP_N=${PROP_N:-50}
POLL=${POLL:-10ms}
CRL_BENCH=${CRL_BENCH:-1}
CRL_SQLITE=${CRL_SQLITE:-0}
QUIET_MAX=${QUIET_MAX:-10}
QUIET_CORES=${QUIET_CORES:-0.3}
OUT=${OUT:-/tmp/trustgate-bench-revocation-$(date +%Y%m%d-%H%M%S)}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export PATH=$PATH:/usr/local/go/bin:/usr/sbin:/sbin

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
secs() { local v=${1%s}; [[ $v =~ ^[0-9]+$ ]] || die "$2=$1: want whole seconds, e.g. 10s"; echo "$v"; }
DUR_S=$(secs "$DUR" DUR)
WARM_S=$(secs "$WARM" WARM)
[[ $REPS =~ ^[1-9][0-9]*$ ]] || die "REPS=$REPS: want a positive integer"
[[ $C =~ ^[1-9][0-9]*$ ]] || die "C=$C: want a positive integer"
[[ $POOL =~ ^[1-9][0-9]*$ ]] || die "POOL=$POOL: want a positive integer"
[[ $PROP_N =~ ^[0-9]+$ ]] || die "PROP_N=$PROP_N: want a number"
[[ -z $OPENSSL_MULTI || $OPENSSL_MULTI =~ ^[1-9][0-9]*$ ]] || die "OPENSSL_MULTI=$OPENSSL_MULTI: want a positive integer"
for p in $PEERS; do [[ $p == trustgate || $p == openssl || $p == nginx ]] || die "PEERS: unknown $p"; done
for c in $EXTRA_C; do [[ $c =~ ^[1-9][0-9]*$ ]] || die "EXTRA_C: $c is not a positive integer"; done
# One load run: pre-check + warmup + window + slack for a slow pre-check.
RUN_CAP=$((WARM_S + DUR_S + 30))

WORK=$(mktemp -d "${TMPDIR:-/tmp}/trustgate-revbench.XXXXXX")
mkdir -p "$OUT"
RAWJ=$OUT/raw.jsonl
: >"$RAWJ"

# --- processes we started, by PID --------------------------------------------
PIDS=()
stop_pid() {
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 200; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
forget_pid() {
  local p keep=()
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}
cleanup() {
  local p
  for p in "${PIDS[@]}"; do stop_pid "$p"; done
  PIDS=()
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
  local p i
  for ((i = 0; i < 200; i++)); do
    p=$((20000 + RANDOM % 40000))
    port_open "$p" || { echo "$p"; return 0; }
  done
  die "no free port found"
}
wait_port() { # port pid name logfile
  local i
  for ((i = 0; i < 600; i++)); do
    port_open "$1" && return 0
    kill -0 "$2" 2>/dev/null || { tail -20 "$4" >&2; die "$3 exited before listening on port $1 (log above)"; }
    sleep 0.05
  done
  tail -20 "$4" >&2
  die "$3 did not listen on port $1 within 30 s (log above)"
}

# --- tools -------------------------------------------------------------------
for t in go openssl timeout unshare ip; do command -v "$t" >/dev/null || die "$t not found"; done
if [[ " $PEERS " == *" nginx "* ]] && ! command -v nginx >/dev/null; then
  log "nginx missing: installing Debian's nginx-light"
  [ "$(id -u)" = 0 ] || die "nginx is not installed and this is not root: apt-get install nginx-light"
  timeout 300 apt-get update -qq || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -qq nginx-light >/dev/null || die "apt-get install nginx-light failed"
  command -v nginx >/dev/null || die "nginx-light installed no nginx binary"
fi
if [[ " $PEERS " == *" openssl "* ]]; then
  # The netns keeps OpenSSL's wildcard listener off every interface but its own lo.
  timeout 10 unshare -n -p -f --mount-proc true 2>/dev/null || die "unshare -n -p failed (needs root or CAP_SYS_ADMIN); drop openssl from PEERS"
fi

BIN=$WORK/bin
log "building trustgate and revbench into $BIN"
(cd "$REPO" && timeout 600 go build -o "$BIN/trustgate" ./cmd/trustgate) || die "build trustgate failed"
(cd "$REPO" && timeout 300 go build -o "$BIN/revbench" ./bench/revocation/revbench) || die "build revbench failed"
RB=$BIN/revbench

{
  echo "date: $(date -Is)"
  echo "nproc: $(nproc)"
  lscpu | grep -E '^(Architecture|CPU\(s\)|Model name|Thread|Core|Socket|Hypervisor|L2|L3)' || true
  echo "kernel: $(uname -r)"
  echo "mem: $(free -g | awk '/Mem:/{print $2}') GiB"
  echo "go: $(go version)"
  echo "openssl: $(openssl version)"
  echo "nginx: $(nginx -v 2>&1 || echo none)"
  echo "trustgate: $(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo 'no commit') (working tree)"
  echo "trustgate source hash (sha256 of go.mod, go.sum, cmd/ and internal/ *.go): $(cd "$REPO" && { echo go.mod; echo go.sum; find cmd internal -name '*.go' ! -name '*_test.go'; } | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-16)"
  echo "loadavg before: $(cat /proc/loadavg)"
  echo "knobs: REPS=$REPS DUR=${DUR_S}s WARM=${WARM_S}s C=$C POOL=$POOL PEERS=\"$PEERS\" OPENSSL_MULTI=$OPENSSL_MULTI EXTRA_C=\"$EXTRA_C\" PROP_N=$PROP_N POLL=$POLL CRL_BENCH=$CRL_BENCH CRL_SQLITE=$CRL_SQLITE QUIET_MAX=$QUIET_MAX QUIET_CORES=$QUIET_CORES"
} >"$OUT/machine.txt"

# --- trustgate -----------------------------------------------------------------
TG_API=$(free_port)
TG_PUB=$(free_port)
while [ "$TG_PUB" = "$TG_API" ]; do TG_PUB=$(free_port); done
TGDATA=$WORK/tg
log "starting trustgate dev: API 127.0.0.1:$TG_API, public 127.0.0.1:$TG_PUB, data $TGDATA"
"$BIN/trustgate" dev --data "$TGDATA" --api-listen "127.0.0.1:$TG_API" --public-listen "127.0.0.1:$TG_PUB" \
  --gateway-listen "" >"$OUT/trustgate.log" 2>&1 &
TG_PID=$!
PIDS+=("$TG_PID")
wait_port "$TG_PUB" "$TG_PID" trustgate "$OUT/trustgate.log"
wait_port "$TG_API" "$TG_PID" trustgate "$OUT/trustgate.log"
for ((i = 0; i < 200; i++)); do [ -s "$TGDATA/dev/env.sh" ] && break; sleep 0.05; done
[ -s "$TGDATA/dev/env.sh" ] || die "trustgate wrote no $TGDATA/dev/env.sh"
# shellcheck disable=SC1091
source "$TGDATA/dev/env.sh"
export TRUSTGATE_ADDR TRUSTGATE_TOKEN TRUSTGATE_CACERT
PUB=http://127.0.0.1:$TG_PUB
TG_OCSP=$PUB/ocsp/demo-intermediate

log "issuing $POOL certificates for the load and $PROP_N to revoke"
timeout 120 "$RB" issue -ca demo-intermediate -n "$POOL" -prefix ocsp-load -out "$WORK/tg-pool.json" || die "issue failed"
if [ "$PROP_N" -gt 0 ]; then
  timeout 120 "$RB" issue -ca demo-intermediate -n "$PROP_N" -prefix revoke-me -out "$WORK/prop-pool.json" || die "issue failed"
fi

# --- nginx: Trustgate's answers as static files --------------------------------
NG_PID=
if [[ " $PEERS " == *" nginx "* ]]; then
  NG=$WORK/nginx
  mkdir -p "$NG/docroot" "$NG/tmp"
  timeout 60 "$RB" prefetch -pool "$WORK/tg-pool.json" -url "$TG_OCSP" -dir "$NG/docroot" || die "prefetch failed"
  # nginx's workers run as an unprivileged user when started by root.
  chmod 711 "$WORK" "$NG"
  chmod 755 "$NG/docroot"
  chmod 644 "$NG/docroot"/*.der
  NG_PORT=$(free_port)
  cat >"$NG/nginx.conf" <<EOF
worker_processes auto;
pid $NG/nginx.pid;
error_log $NG/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nodelay on;
  keepalive_timeout 65s;
  keepalive_requests 1000000;
  client_body_temp_path $NG/tmp/body;
  proxy_temp_path $NG/tmp/proxy;
  fastcgi_temp_path $NG/tmp/fastcgi;
  uwsgi_temp_path $NG/tmp/uwsgi;
  scgi_temp_path $NG/tmp/scgi;
  types { }
  default_type application/ocsp-response;
  server {
    listen 127.0.0.1:$NG_PORT;
    location /ocsp-static/ { alias $NG/docroot/; }
  }
}
EOF
  timeout 10 nginx -t -p "$NG" -e "$NG/error.log" -c "$NG/nginx.conf" >"$OUT/nginx-t.log" 2>&1 || { cat "$OUT/nginx-t.log" >&2; die "nginx -t failed"; }
  log "starting nginx on 127.0.0.1:$NG_PORT"
  nginx -p "$NG" -e "$NG/error.log" -c "$NG/nginx.conf" -g 'daemon off;' >"$OUT/nginx.log" 2>&1 &
  NG_PID=$!
  PIDS+=("$NG_PID")
  wait_port "$NG_PORT" "$NG_PID" nginx "$NG/error.log"
fi

# --- openssl ocsp: its own PKI, started per run in a network namespace ---------
if [[ " $PEERS " == *" openssl "* ]]; then
  mkdir -p "$WORK/ossl"
  timeout 60 "$RB" mkpki -n "$POOL" -dir "$WORK/ossl" || die "mkpki failed"
  # Runs inside `unshare -n -p`: brings lo up, starts the responder, runs the
  # load against it and stops it (by PID) on the way out.
  cat >"$WORK/ossl-run.sh" <<'EOF'
set -u
# args: dir port logfile multi revbench load-args...
dir=$1 port=$2 logf=$3 multi=$4 rb=$5
shift 5
ip link set lo up || exit 1
extra=()
[ -n "$multi" ] && extra=(-multi "$multi")
cd "$dir" || exit 1
openssl ocsp -index index.txt -port "$port" -rsigner rsigner.pem -rkey rsigner.key -CA ca.pem -nmin 60 "${extra[@]}" >"$logf" 2>&1 &
op=$!
lp=
kids() { cat /proc/"$op"/task/*/children 2>/dev/null; }
stop() {
  local k i
  [ -n "$lp" ] && kill -TERM "$lp" 2>/dev/null
  k=$(kids)
  kill -TERM "$op" 2>/dev/null
  # The -multi parent notices a TERM only once a child exits (its waitpid
  # is restarted), so its children get one too; it then stops them all.
  [ -n "$k" ] && kill -TERM $k 2>/dev/null
  for ((i = 0; i < 100; i++)); do kill -0 "$op" 2>/dev/null || break; sleep 0.05; done
  k="$k $(kids)"
  kill -KILL "$op" $k 2>/dev/null
  wait "$op" 2>/dev/null
}
trap stop EXIT
trap 'exit 143' TERM INT
# Not probed with a connection: the single-process responder would wait on
# it. It says when it listens; with -multi, its children do the work.
ready() {
  if [ -n "$multi" ]; then [ "$(kids | wc -w)" -ge "$multi" ]; else grep -q 'waiting for OCSP client connections' "$logf" 2>/dev/null; fi
}
for ((i = 0; i < 200; i++)); do ready && break; kill -0 "$op" 2>/dev/null || break; sleep 0.05; done
ready || { echo "openssl ocsp did not start:" >&2; head -5 "$logf" >&2; exit 1; }
sleep 0.2
# In the background, so that a TERM (timeout, unshare's parent dying) is
# handled at once and both processes are stopped.
"$rb" load -url "http://127.0.0.1:$port" -watch "server=$op" "$@" &
lp=$!
wait "$lp"
EOF
fi

# --- waiting for a quiet machine (other processes may share it) ------------------
busy_ticks() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9; exit}' /proc/stat; }
wait_quiet() {
  [ "$QUIET_MAX" -gt 0 ] 2>/dev/null || return 0
  local b0 a0 b1 a1 cores waited=0
  while :; do
    read -r b0 a0 < <(busy_ticks); sleep 1; read -r b1 a1 < <(busy_ticks)
    cores=$(awk -v b=$((b1 - b0)) -v a=$((a1 - a0)) -v n="$(nproc)" 'BEGIN{printf "%.2f", (a > 0 ? b / a * n : 0)}')
    awk -v c="$cores" -v q="$QUIET_CORES" 'BEGIN{exit !(c < q)}' && return 0
    waited=$((waited + 1))
    if [ "$waited" -ge "$QUIET_MAX" ]; then
      log "machine still busy ($cores cores used by others) after ${QUIET_MAX}s; running anyway"
      return 0
    fi
  done
}

# --- (a) load runs -----------------------------------------------------------------
fails=0
record() { # label rc line
  if [ -z "$3" ]; then
    log "FAILED: $1 (exit $2; see $OUT/load.stderr)"
    tail -3 "$OUT/load.stderr" >&2
    fails=$((fails + 1))
    return 0
  fi
  echo "$3" >>"$RAWJ"
  [ "$2" = 0 ] || { log "$1 had errors (exit $2)"; fails=$((fails + 1)); }
}
load() { # peer [concurrency]
  local peer=$1 c=${2:-$C} sfx= line rc=0 common
  [ "$c" != "$C" ] && sfx=-c$c
  common=(-c "$c" -d "${DUR_S}s" -warmup "${WARM_S}s")
  wait_quiet
  case $peer in
  trustgate)
    line=$(timeout "$RUN_CAP" "$RB" load -label "trustgate$sfx" -pool "$WORK/tg-pool.json" -url "$TG_OCSP" \
      -watch "server=$TG_PID" "${common[@]}" 2>>"$OUT/load.stderr") || rc=$?
    ;;
  nginx)
    line=$(timeout "$RUN_CAP" "$RB" load -label "nginx-static$sfx" -pool "$WORK/tg-pool.json" \
      -static "http://127.0.0.1:$NG_PORT/ocsp-static" -watch "server=$NG_PID" "${common[@]}" 2>>"$OUT/load.stderr") || rc=$?
    ;;
  openssl | openssl-multi*)
    local multi= label=openssl
    [ "$peer" != openssl ] && { multi=$OPENSSL_MULTI; label=openssl-multi$multi; }
    label=$label$sfx
    line=$(timeout -k 5 "$RUN_CAP" unshare -n -p -f --mount-proc --kill-child=TERM bash "$WORK/ossl-run.sh" "$WORK/ossl" 8080 \
      "$WORK/ossl-$label.log" "$multi" "$RB" -label "$label" -pool "$WORK/ossl/pool.json" "${common[@]}" 2>>"$OUT/load.stderr") || rc=$?
    head -5 "$WORK/ossl-$label.log" >"$OUT/ossl-$label.log.head" 2>/dev/null || true
    ;;
  esac
  record "$peer" "$rc" "$line"
  [ -n "$line" ] && log "$(echo "$line" | grep -o '"label":"[^"]*"'), $(echo "$line" | grep -o '"rps":[0-9.]*'), $(echo "$line" | grep -o '"p99_ms":[0-9.]*'), $(echo "$line" | grep -o '"server_cpu_us_per_resp":[0-9.]*'), $(echo "$line" | grep -o '"other_cores":[-0-9.]*'), $(echo "$line" | grep -o '"errors":[0-9]*')"
  return 0
}

ALLPEERS=$PEERS
[[ -n $OPENSSL_MULTI && " $PEERS " == *" openssl "* ]] && ALLPEERS="$PEERS openssl-multi$OPENSSL_MULTI"
for ((rep = 1; rep <= REPS; rep++)); do
  for peer in $ALLPEERS; do
    log "(a) round $rep: $peer"
    load "$peer"
  done
done
for c in $EXTRA_C; do
  for peer in $ALLPEERS; do
    log "(a) C=$c: $peer"
    load "$peer" "$c"
  done
done
if [ -n "$NG_PID" ]; then
  stop_pid "$NG_PID"
  forget_pid "$NG_PID"
fi

# --- (b) revoke -> published ----------------------------------------------------------
if [ "$PROP_N" -gt 0 ]; then
  log "(b) $PROP_N revocations, polling every $POLL"
  rc=0
  line=$(timeout $((PROP_N * 12 + 30)) "$RB" propagate -pool "$WORK/prop-pool.json" -public "$PUB" \
    -ca demo-intermediate -poll "$POLL" 2>>"$OUT/propagate.stderr") || rc=$?
  record propagate "$rc" "$line"
  tail -1 "$OUT/propagate.stderr" >&2 || true
fi
curl -s --max-time 10 "$PUB/metrics" >"$OUT/metrics-end.txt" 2>/dev/null || true
stop_pid "$TG_PID"
forget_pid "$TG_PID"

# --- (c) CRL of a million entries --------------------------------------------------------
if [ "$CRL_BENCH" = 1 ]; then
  log "(c) building the revocation test binary"
  (cd "$REPO" && timeout 600 go test -c -o "$BIN/revocation.test" ./internal/revocation) >"$OUT/crl-build.log" 2>&1 ||
    { log "FAILED: go test -c ./internal/revocation (see $OUT/crl-build.log)"; fails=$((fails + 1)); CRL_BENCH=0; CRL_SQLITE=0; }
fi
if [ "$CRL_BENCH" = 1 ]; then
  run_crl() { # cap outfile rssfile env-assignments...
    local cap=$1 out=$2 rss=$3 timecmd=()
    shift 3
    [ -x /usr/bin/time ] && timecmd=(/usr/bin/time -o "$rss.raw" -f '%M')
    (cd "$REPO/internal/revocation" && timeout "$cap" env "$@" "${timecmd[@]}" "$BIN/revocation.test" \
      -test.run '^$' -test.bench '^BenchmarkCRL1M$' -test.benchtime 3x -test.benchmem) >"$out" 2>&1 || return 1
    [ -s "$rss.raw" ] && tail -1 "$rss.raw" >"$rss"
    return 0
  }
  log "(c) BenchmarkCRL1M, generated source (go test ./internal/revocation -run '^\$' -bench BenchmarkCRL1M -benchtime 3x -benchmem)"
  run_crl 300 "$OUT/crl1m.txt" "$OUT/crl1m.rss" TRUSTGATE_BENCH_SQLITE= ||
    { log "FAILED: BenchmarkCRL1M (see $OUT/crl1m.txt)"; fails=$((fails + 1)); }
  grep -E '^Benchmark' "$OUT/crl1m.txt" >&2 || true
  if [ "$CRL_SQLITE" = 1 ]; then
    log "(c) BenchmarkCRL1M on real SQLite (TRUSTGATE_BENCH_SQLITE=1): fills a million rows first"
    run_crl 1800 "$OUT/crl1m-sqlite.txt" "$OUT/crl1m-sqlite.rss" TRUSTGATE_BENCH_SQLITE=1 ||
      { log "FAILED: BenchmarkCRL1M on SQLite (see $OUT/crl1m-sqlite.txt)"; fails=$((fails + 1)); }
    grep -E '^Benchmark|filled' "$OUT/crl1m-sqlite.txt" >&2 || true
  fi
fi

echo "loadavg after: $(cat /proc/loadavg)" >>"$OUT/machine.txt"
SUMARGS=(-raw "$RAWJ")
[ -s "$OUT/crl1m.txt" ] && SUMARGS+=(-crlbench "$OUT/crl1m.txt" -crlrss "$OUT/crl1m.rss")
"$RB" summary "${SUMARGS[@]}" >"$OUT/summary.md" || die "summary failed"
if [ -s "$OUT/crl1m-sqlite.txt" ]; then
  { echo "#### The same on real SQLite"; echo; "$RB" summary -raw /dev/null -crlbench "$OUT/crl1m-sqlite.txt" -crlrss "$OUT/crl1m-sqlite.rss"; } >>"$OUT/summary.md"
fi
log "results in $OUT (raw.jsonl, summary.md, machine.txt, logs)"
echo
cat "$OUT/summary.md"
[ "$fails" = 0 ] || die "$fails step(s) failed or had errors"
