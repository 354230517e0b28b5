#!/usr/bin/env bash
# Issuance throughput of Trustgate on PostgreSQL with 1, 2 and 3
# control-plane nodes, beside one node on SQLite: the same load generator
# (bench/issueload, its workers spread over the nodes), the same machine,
# on loopback.
#
#   bench/run-multinode.sh                 # defaults below: ~4 minutes
#   REPS=1 DUR=5s bench/run-multinode.sh
#
# Knobs (environment):
#   REPS=2        runs of each configuration, in rotation (sqlite, pg x1, x2, x3)
#   DUR=10s       measured window of each run (whole seconds)
#   WARM=2s       warmup of each run (whole seconds)
#   C=12          concurrent keep-alive workers in all (spread over the nodes)
#   POOL=256      distinct CSRs (ECDSA P-256) per run
#   NODES="1 2 3" PostgreSQL node counts
#   OUT=DIR       where raw.jsonl, summary.md, machine.txt and logs go
#                 (default /tmp/trustgate-bench-multinode-<date>)
#
# PostgreSQL is a cluster of the script's own (initdb into a temporary
# directory on a free port, fsync on, as the postgres user when run as
# root), with a new database for every run. Everything shares the
# machine's CPUs: the server processes, PostgreSQL and the load generator.
# The script stops only the processes it started, by PID.
set -euo pipefail

REPS=${REPS:-2}
DUR=${DUR:-10s}
WARM=${WARM:-2s}
C=${C:-12}
POOL=${POOL:-256}
NODES=${NODES:-"1 2 3"}
OUT=${OUT:-/tmp/trustgate-bench-multinode-$(date +%Y%m%d-%H%M%S)}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH=$PATH:/usr/local/go/bin

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
secs() {
  local v=${1%s}
  [[ $v =~ ^[0-9]+$ ]] || die "$2=$1: want whole seconds, e.g. 10s"
  echo "$v"
}
DUR_S=$(secs "$DUR" DUR)
WARM_S=$(secs "$WARM" WARM)
[[ $REPS =~ ^[1-9][0-9]*$ ]] || die "REPS=$REPS: want a positive integer"
[[ $C =~ ^[1-9][0-9]*$ ]] || die "C=$C: want a positive integer"
RUN_CAP=$((DUR_S + WARM_S + 60))

WORK=$(mktemp -d /tmp/trustgate-bench-mn.XXXXXX)
chmod 755 "$WORK"
mkdir -p "$OUT"
RAWJ=$OUT/raw.jsonl
: >"$RAWJ"
PG=$WORK/pg
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$PGBIN/initdb" ] || die "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin"

PIDS=()
stop_pid() {
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  local p
  for p in "${PIDS[@]}"; do stop_pid "$p"; done
  [ -d "$PG/data" ] && as_pg "$PGBIN/pg_ctl" -D "$PG/data" -m fast -w stop >/dev/null 2>&1 || true
  cp "$PG/postgres.log" "$OUT/" 2>/dev/null || true
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

BIN=$WORK/bin
log "building trustgate and issueload"
(cd "$REPO" && timeout 600 go build -o "$BIN/trustgate" ./cmd/trustgate) || die "build trustgate failed"
(cd "$REPO" && timeout 300 go build -o "$BIN/issueload" ./bench/issueload) || die "build issueload failed"

log "PostgreSQL: a cluster of our own"
mkdir -p "$PG"
[ "$(id -u)" = 0 ] && chown postgres: "$PG"
PGPORT=$(free_port)
as_pg "$PGBIN/initdb" -D "$PG/data" -U postgres -A trust -E UTF8 --locale=C >"$WORK/initdb.log" 2>&1 || { cat "$WORK/initdb.log" >&2; die "initdb"; }
as_pg "$PGBIN/pg_ctl" -D "$PG/data" -l "$PG/postgres.log" -w -t 30 \
  -o "-p $PGPORT -k $PG -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null || die "PostgreSQL did not start"

{
  echo "date: $(date -Is)"
  echo "nproc: $(nproc)"
  lscpu | head -20
  echo "kernel: $(uname -r)"
  echo "mem: $(free -g | awk '/Mem:/{print $2}') GiB"
  echo "go: $(go version)"
  echo "postgresql: $("$PGBIN/postgres" --version)"
  echo "trustgate: $(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo 'no commit')"
  echo "data filesystem: $(df -T "$WORK" | awk 'NR==2{print $2, "on", $1}')"
  echo "loadavg before: $(cat /proc/loadavg)"
  echo "knobs: REPS=$REPS DUR=${DUR_S}s WARM=${WARM_S}s C=$C POOL=$POOL NODES=\"$NODES\""
} >"$OUT/machine.txt"

NODE_PIDS=()
# run_config LABEL STORE N: init a data directory on STORE, start N nodes,
# create the CAs, run issueload over all nodes, stop the nodes.
run_config() {
  local label=$1 store=$2 n=$3 d=$WORK/run-$RANDOM i urls=() pids=() api
  mkdir -p "$d"
  TRUSTGATE_STORE=$store timeout 60 "$BIN/trustgate" init --data "$d/data" -o json >"$d/init.json" 2>"$d/init.log" ||
    die "$label: init failed: $(cat "$d/init.log")"
  jq -r .admin_token "$d/init.json" >"$d/token"
  NODE_PIDS=()
  for ((i = 1; i <= n; i++)); do
    api=$(free_port)
    TRUSTGATE_STORE=$store TRUSTGATE_DATA_DIR=$d/data TRUSTGATE_API_LISTEN=127.0.0.1:$api \
      TRUSTGATE_PUBLIC_LISTEN=127.0.0.1:$(free_port) TRUSTGATE_LOG_FORMAT=json \
      "$BIN/trustgate" server >"$OUT/$label-node$i.log" 2>&1 &
    pids+=("$!")
    PIDS+=("$!")
    urls+=("https://127.0.0.1:$api")
    local k
    for ((k = 0; k < 300; k++)); do
      curl -sf --max-time 2 --cacert "$d/data/api-ca.pem" "https://127.0.0.1:$api/healthz" >/dev/null 2>&1 && break
      kill -0 "${pids[-1]}" 2>/dev/null || die "$label: node $i exited (see $OUT/$label-node$i.log)"
      sleep 0.1
    done
  done
  local tgenv=(env TRUSTGATE_ADDR="${urls[0]}" TRUSTGATE_TOKEN="$(cat "$d/token")" TRUSTGATE_CACERT="$d/data/api-ca.pem")
  "${tgenv[@]}" timeout 60 "$BIN/trustgate" ca create --name bench-root >/dev/null || die "$label: ca create bench-root"
  "${tgenv[@]}" timeout 60 "$BIN/trustgate" ca create --name bench-int --parent bench-root >/dev/null || die "$label: ca create bench-int"
  "${tgenv[@]}" timeout 60 "$BIN/trustgate" ca pem bench-int >"$d/issuer.pem" || die "$label: ca pem"
  local line rc=0
  line=$(timeout "$RUN_CAP" "$BIN/issueload" -label "$label" -adapter trustgate -key ecdsa \
    -url "$(IFS=,; echo "${urls[*]}")" -token-file "$d/token" -cacert "$d/data/api-ca.pem" \
    -ca bench-int -profile server -validity 24h -issuer "$d/issuer.pem" \
    -c "$C" -d "${DUR_S}s" -warmup "${WARM_S}s" -raw 1s -pool "$POOL" \
    -watch "$(IFS=,; echo "${pids[*]}")" 2>>"$OUT/issueload.stderr") || rc=$?
  for i in "${pids[@]}"; do stop_pid "$i"; done
  [ -n "$line" ] || die "$label: issueload produced nothing (exit $rc; see $OUT/issueload.stderr)"
  echo "$line" >>"$RAWJ"
  log "$label: $(jq -r '"\(.ops_per_s) certs/s, p50 \(.p50_ms) ms, p99 \(.p99_ms) ms, errors \(.errors), server CPU \(.server_cpu_us_per_op) µs/cert, other processes \(.other_cores) cores"' <<<"$line")"
}

for ((rep = 1; rep <= REPS; rep++)); do
  run_config sqlite-1 sqlite 1
  for n in $NODES; do
    db=bench_${rep}_$n
    "$PGBIN/createdb" -h 127.0.0.1 -p "$PGPORT" -U postgres "$db" || die "createdb $db"
    run_config "postgres-$n" "postgres://postgres@127.0.0.1:$PGPORT/$db?sslmode=disable" "$n"
  done
done
echo "loadavg after: $(cat /proc/loadavg)" >>"$OUT/machine.txt"

{
  echo "| configuration | certs/s, each run | certs/s, median | p50 ms, median | p99 ms, median | server CPU µs/cert, median | other processes (cores), each run | errors |"
  echo "|---|---|---|---|---|---|---|---|"
  jq -rs 'def median: sort | length as $n | if $n % 2 == 1 then .[($n - 1) / 2] else (.[$n / 2 - 1] + .[$n / 2]) / 2 end;
    def r1: . * 10 | round / 10;
    group_by(.label)[] |
    "| \(.[0].label) | \([.[].ops_per_s | r1 | tostring] | join(", ")) | \([.[].ops_per_s] | median | r1) | \([.[].p50_ms] | median | r1) | \([.[].p99_ms] | median | r1) | \([.[].server_cpu_us_per_op] | median | round) | \([.[].other_cores | tostring] | join(", ")) | \([.[].errors] | add) |"' "$RAWJ"
} >"$OUT/summary.md"
log "results in $OUT"
cat "$OUT/summary.md"
