#!/usr/bin/env bash
# End-to-end issuance benchmark: Trustgate's POST /v1/certificates against
# cfssl's POST /api/v1/cfssl/sign, side by side in one run, on loopback, with
# the load generator (bench/issueload) on the same machine.
#
#   bench/run-issuance.sh                    # defaults below: ~3 minutes on a quiet
#                                            # machine, at most ~5 with QUIET_MAX waits
#   REPS=3 DUR=20s bench/run-issuance.sh
#   ALGS=ecdsa REPS=1 DUR=5s bench/run-issuance.sh
#
# For each CA key type in ALGS the order is cfssl, then (trustgate, cfssl)
# REPS times, so every Trustgate run sits between two cfssl runs. Every
# issueload run also measures the machine's raw cost of one certificate
# (x509.CreateCertificate + CSR CheckSignature, one goroutine) before its load.
#
# Knobs (environment):
#   REPS=2        Trustgate runs per key type (cfssl gets REPS+1)
#   DUR=10s       measured window of each run (whole seconds)
#   WARM=1s       warmup of each run (whole seconds)
#   C=8           concurrent keep-alive workers
#   POOL=256      distinct CSRs per run
#   ALGS="ecdsa rsa"
#   RAW=1s        raw-cost measurement per run (0 to skip)
#   QUIET_MAX=10  before each run, wait up to this many seconds for the machine
#                 to be quiet (other processes using < QUIET_CORES cores over 1 s);
#                 0 disables. The run goes ahead either way; the JSON records
#                 the cores other processes used during the window (other_cores).
#   QUIET_CORES=0.3
#   OUT=DIR       where raw.jsonl, summary.md, machine.txt and logs go
#                 (default /tmp/trustgate-bench-issuance-<date>)
#   TMPDIR=/tmp   scratch dir, holding Trustgate's data dir (its filesystem is
#                 recorded in machine.txt: fsync latency is part of the result)
#   GOFLAGS etc.  passed to go build as usual
#
# Everything runs on 127.0.0.1 on free ports. The script stops only the
# processes it started, by PID. Each issueload run is capped with timeout(1);
# servers get 30 s to come up.
set -euo pipefail

REPS=${REPS:-2}
DUR=${DUR:-10s}
WARM=${WARM:-1s}
C=${C:-8}
POOL=${POOL:-256}
ALGS=${ALGS:-"ecdsa rsa"}
RAW=${RAW:-1s}
OUT=${OUT:-/tmp/trustgate-bench-issuance-$(date +%Y%m%d-%H%M%S)}
QUIET_MAX=${QUIET_MAX:-10}
QUIET_CORES=${QUIET_CORES:-0.3}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH=$PATH:/usr/local/go/bin

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

secs() { # "10s" or "10" -> 10; anything else is an error
  local v=${1%s}
  [[ $v =~ ^[0-9]+$ ]] || die "$2=$1: want whole seconds, e.g. 10s"
  echo "$v"
}
DUR_S=$(secs "$DUR" DUR)
WARM_S=$(secs "$WARM" WARM)
RAW_S=$(secs "$RAW" RAW)
[[ $REPS =~ ^[1-9][0-9]*$ ]] || die "REPS=$REPS: want a positive integer"
[[ $C =~ ^[1-9][0-9]*$ ]] || die "C=$C: want a positive integer"
for a in $ALGS; do [[ $a == ecdsa || $a == rsa ]] || die "ALGS: unknown $a (ecdsa | rsa)"; done
# A run: CSR pool (RSA keys take ~1 s) + raw + warmup + window + one request timeout.
RUN_CAP=$((DUR_S + WARM_S + 2 * RAW_S + 40))

# Trustgate's SQLite file lives here: it must be on a real disk (not tmpfs),
# or the fsync of every commit costs nothing. TMPDIR moves it.
WORK=$(mktemp -d "${TMPDIR:-/tmp}/trustgate-bench.XXXXXX")
mkdir -p "$OUT"
RAWJ=$OUT/raw.jsonl
: > "$RAWJ"

# --- process bookkeeping: only what we started, by PID ---------------------
PIDS=()
stop_pid() {
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
forget_pid() { # drop a stopped PID from PIDS, so cleanup never signals a reused PID
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
free_port() { # a random port nothing listens on; the server binds it right after
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

# --- tools ------------------------------------------------------------------
command -v go >/dev/null || die "go not found (expected /usr/local/go/bin)"
command -v openssl >/dev/null || die "openssl not found"
command -v timeout >/dev/null || die "timeout(1) not found (coreutils)"
if ! command -v cfssl >/dev/null; then
  log "cfssl missing: installing Debian's golang-cfssl"
  [ "$(id -u)" = 0 ] || die "cfssl is not installed and this is not root: apt-get install golang-cfssl"
  timeout 300 apt-get update -qq || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -qq golang-cfssl >/dev/null || die "apt-get install golang-cfssl failed"
  command -v cfssl >/dev/null || die "golang-cfssl installed no cfssl binary"
fi

BIN=$WORK/bin
log "building trustgate, issueload, issuesummary into $BIN"
(cd "$REPO" && timeout 600 go build -o "$BIN/trustgate" ./cmd/trustgate) || die "build trustgate failed"
(cd "$REPO" && timeout 300 go build -o "$BIN/issueload" ./bench/issueload) || die "build issueload failed"
(cd "$REPO" && timeout 300 go build -o "$BIN/issuesummary" ./bench/issuesummary) || die "build issuesummary failed"

{
  echo "date: $(date -Is)"
  echo "nproc: $(nproc)"
  lscpu | head -20
  echo "kernel: $(uname -r)"
  echo "mem: $(free -g | awk '/Mem:/{print $2}') GiB"
  echo "go: $(go version)"
  echo "cfssl: $(cfssl version 2>&1 | tr '\n' ' ')"
  echo "cfssl package: $(dpkg-query -W golang-cfssl 2>/dev/null || echo '?')"
  echo "openssl: $(openssl version)"
  echo "trustgate: $(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo 'no commit') (working tree)"
  echo "trustgate source hash (sha256 of go.mod, go.sum, cmd/ and internal/ *.go): $(cd "$REPO" && { echo go.mod; echo go.sum; find cmd internal -name '*.go' ! -name '*_test.go'; } | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-16)"
  echo "loadavg before: $(cat /proc/loadavg)"
  echo "knobs: REPS=$REPS DUR=${DUR_S}s WARM=${WARM_S}s C=$C POOL=$POOL ALGS=\"$ALGS\" RAW=${RAW_S}s QUIET_MAX=$QUIET_MAX QUIET_CORES=$QUIET_CORES"
} > "$OUT/machine.txt"

# Trustgate makes every certificate durable before answering (group commit,
# one fsync per batch), cfssl writes nothing: the disk's sync latency, which
# other processes on the machine can drive up, is part of Trustgate's latency.
sync_probe() { # mean ms of 100 synchronous 4 KiB writes on the data dir's filesystem
  local n=100 t0 t1
  t0=$(date +%s%N)
  timeout 30 dd if=/dev/zero of="$WORK/sync.probe" bs=4k count=$n oflag=dsync 2>/dev/null || { echo "?"; return 0; }
  t1=$(date +%s%N)
  rm -f "$WORK/sync.probe"
  awk -v d=$((t1 - t0)) -v n=$n 'BEGIN{printf "%.2f", d / n / 1e6}'
}
{
  echo "data dir filesystem: $(df -T "$WORK" | awk 'NR==2{print $2, "on", $1, "mounted at", $7}')"
  echo "sync write latency before (dd oflag=dsync, 4 KiB): $(sync_probe) ms"
} >> "$OUT/machine.txt"

# --- trustgate ---------------------------------------------------------------
TG_API=$(free_port) && [ -n "$TG_API" ] || die "no free port"
TG_PUB=$(free_port) && [ -n "$TG_PUB" ] || die "no free port"
while [ "$TG_PUB" = "$TG_API" ]; do TG_PUB=$(free_port); done
TGDATA=$WORK/tg
log "starting trustgate dev on 127.0.0.1:$TG_API (public :$TG_PUB), data $TGDATA"
# cfssl limits nothing; Trustgate's per-principal issuance limit (by default
# 1000/s, bursts of 1000) would cap the run and answer 429, so it is off.
TRUSTGATE_ACCESS_ISSUE_PER_MINUTE=0 \
  "$BIN/trustgate" dev --data "$TGDATA" --api-listen "127.0.0.1:$TG_API" --public-listen "127.0.0.1:$TG_PUB" \
  >"$OUT/trustgate.log" 2>&1 &
TG_PID=$!
PIDS+=("$TG_PID")
wait_port "$TG_API" "$TG_PID" trustgate "$OUT/trustgate.log"
for ((i = 0; i < 100; i++)); do [ -s "$TGDATA/dev/env.sh" ] && break; sleep 0.05; done
[ -s "$TGDATA/dev/env.sh" ] || die "trustgate wrote no $TGDATA/dev/env.sh"
# shellcheck disable=SC1091
source "$TGDATA/dev/env.sh"
export TRUSTGATE_ADDR TRUSTGATE_TOKEN TRUSTGATE_CACERT
tg() { timeout 60 "$BIN/trustgate" "$@"; }
tg ca pem demo-intermediate > "$WORK/tg-ecdsa-int.pem" || die "trustgate ca pem demo-intermediate failed"
if [[ " $ALGS " == *" rsa "* ]]; then
  tg ca create --name bench-rsa --parent demo-root --key-type rsa-2048 >/dev/null || die "trustgate ca create bench-rsa failed"
  tg ca pem bench-rsa > "$WORK/tg-rsa-int.pem" || die "trustgate ca pem bench-rsa failed"
fi

# --- cfssl's CAs (openssl) and config -----------------------------------------
make_pki() { # alg dir
  local alg=$1 d=$2
  mkdir -p "$d"
  local gen=(openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256)
  [ "$alg" = rsa ] && gen=(openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048)
  cat > "$d/ext.cnf" <<'EOF'
[root]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[int]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
  "${gen[@]}" -out "$d/root.key" 2>/dev/null
  "${gen[@]}" -out "$d/int.key" 2>/dev/null
  openssl req -new -x509 -key "$d/root.key" -subj "/O=Bench/CN=cfssl bench root ($alg)" -days 30 \
    -config "$d/ext.cnf" -extensions root -out "$d/root.pem" 2>/dev/null
  openssl req -new -key "$d/int.key" -subj "/O=Bench/CN=cfssl bench intermediate ($alg)" -out "$d/int.csr" 2>/dev/null
  openssl x509 -req -in "$d/int.csr" -CA "$d/root.pem" -CAkey "$d/root.key" -set_serial 2 -days 30 \
    -extfile "$d/ext.cnf" -extensions int -out "$d/int.pem" 2>/dev/null
  openssl verify -CAfile "$d/root.pem" "$d/int.pem" >/dev/null || die "openssl PKI for cfssl ($alg) does not verify"
}
cat > "$WORK/cfssl.json" <<'EOF'
{"signing": {"default": {"expiry": "24h",
  "usages": ["digital signature", "key encipherment", "server auth"]}}}
EOF

CF_PID=
start_cfssl() { # alg
  local d=$WORK/cfssl-$1
  CF_PORT=$(free_port) && [ -n "$CF_PORT" ] || die "no free port"
  while [ "$CF_PORT" = "$TG_API" ] || [ "$CF_PORT" = "$TG_PUB" ]; do CF_PORT=$(free_port); done
  log "starting cfssl serve ($1) on 127.0.0.1:$CF_PORT"
  cfssl serve -address 127.0.0.1 -port "$CF_PORT" -ca "$d/int.pem" -ca-key "$d/int.key" \
    -config "$WORK/cfssl.json" >"$OUT/cfssl-$1.log" 2>&1 &
  CF_PID=$!
  PIDS+=("$CF_PID")
  wait_port "$CF_PORT" "$CF_PID" cfssl "$OUT/cfssl-$1.log"
}

# --- waiting for a quiet machine (other processes may share it) ---------------
busy_ticks() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9; exit}' /proc/stat; }
wait_quiet() {
  [ "$QUIET_MAX" -gt 0 ] 2>/dev/null || return 0
  local b0 a0 b1 a1 cores waited=0
  while :; do
    read -r b0 a0 < <(busy_ticks); sleep 1; read -r b1 a1 < <(busy_ticks)
    # busy cores = busy ticks / all ticks * number of CPUs
    cores=$(awk -v b=$((b1 - b0)) -v a=$((a1 - a0)) -v n="$(nproc)" 'BEGIN{printf "%.2f", (a > 0 ? b / a * n : 0)}')
    awk -v c="$cores" -v q="$QUIET_CORES" 'BEGIN{exit !(c < q)}' && return 0
    waited=$((waited + 1))
    if [ "$waited" -ge "$QUIET_MAX" ]; then
      log "machine still busy ($cores cores used by others) after ${QUIET_MAX}s; running anyway"
      return 0
    fi
  done
}

# --- one measured run ---------------------------------------------------------
fails=0
load() { # alg peer
  local alg=$1 peer=$2 line rc=0 args
  if [ "$peer" = cfssl ]; then
    args=(-adapter cfssl -url "http://127.0.0.1:$CF_PORT" -issuer "$WORK/cfssl-$alg/int.pem" -watch "$CF_PID")
  else
    local ca=demo-intermediate
    [ "$alg" = rsa ] && ca=bench-rsa
    args=(-adapter trustgate -url "$TRUSTGATE_ADDR" -token-file "$TGDATA/dev/admin.token" -cacert "$TRUSTGATE_CACERT"
      -ca "$ca" -profile server -validity 24h -issuer "$WORK/tg-$alg-int.pem" -watch "$TG_PID")
  fi
  wait_quiet
  line=$(timeout "$RUN_CAP" "$BIN/issueload" -label "$alg/$peer" -key "$alg" -c "$C" -d "${DUR_S}s" \
    -warmup "${WARM_S}s" -raw "${RAW_S}s" -pool "$POOL" "${args[@]}" 2>>"$OUT/issueload.stderr") || rc=$?
  if [ -z "$line" ]; then
    log "FAILED: $alg/$peer (exit $rc; see $OUT/issueload.stderr)"
    tail -3 "$OUT/issueload.stderr" >&2
    fails=$((fails + 1))
    return 0
  fi
  echo "$line" >> "$RAWJ"
  [ "$rc" = 0 ] || { log "run $alg/$peer had errors (exit $rc)"; fails=$((fails + 1)); }
  log "$alg/$peer: $(echo "$line" | grep -o '"ops_per_s":[0-9.]*'), $(echo "$line" | grep -o '"p99_ms":[0-9.]*'), $(echo "$line" | grep -o '"server_cpu_us_per_op":[0-9.]*'), $(echo "$line" | grep -o '"raw_us_per_cert":[0-9.]*'), $(echo "$line" | grep -o '"errors":[0-9]*'), $(echo "$line" | grep -o '"other_cores":[-0-9.]*')"
}

for alg in $ALGS; do
  make_pki "$alg" "$WORK/cfssl-$alg"
  start_cfssl "$alg"
  load "$alg" cfssl
  for ((rep = 1; rep <= REPS; rep++)); do
    load "$alg" trustgate
    load "$alg" cfssl
  done
  stop_pid "$CF_PID"
  forget_pid "$CF_PID"
done

echo "loadavg after: $(cat /proc/loadavg)" >> "$OUT/machine.txt"
echo "sync write latency after (dd oflag=dsync, 4 KiB): $(sync_probe) ms" >> "$OUT/machine.txt"
"$BIN/issuesummary" "$RAWJ" > "$OUT/summary.md"
log "results in $OUT (raw.jsonl, summary.md, machine.txt, server logs)"
echo
cat "$OUT/summary.md"
[ "$fails" = 0 ] || die "$fails run(s) failed or had errors"
