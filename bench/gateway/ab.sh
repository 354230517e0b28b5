#!/usr/bin/env bash
# A/B of two builds of `trustgate gateway`: both run at once, on the same
# PKI, backend and configuration as run.sh, and are loaded at the same
# time, so that both see the same (shared, noisy) machine. Prints one line
# per run and side (ops/s, server CPU per operation, p99, errors) and the
# B/A ratios, and keeps the raw JSON lines in $OUT/raw.jsonl.
#
#   bench/gateway/ab.sh                       # A = main, B = this working tree
#   A_REF=abc123 REPS=5 MODES=request bench/gateway/ab.sh
#   RELOAD=1 bench/gateway/ab.sh              # also the 1M-entry CRL reload under load
#
# Knobs (environment):
#   A_REF=main          git revision of side A (built from `git archive` of it)
#   B_REF=""            git revision of side B; empty: the working tree
#   MODES="request handshake"   mtlsload modes to compare ("" none)
#   REPS=3 DUR=8 WARM=1 rounds, measured seconds and warmup of each run
#   KA_C=32 HS_C=8      workers per side (keep-alive, handshake)
#   HEADERS=alb         identity headers of both gateways
#   RELOAD=0            1: also replace a CRL_N-entry CRL + SIGHUP, RELOADS
#                       times idle one side at a time (CPU per reload), then
#                       on both sides at once under handshake load
#   CRL_N=1000000 RELOADS=3
#   WORK=/tmp/trustgate-gwab   sources, binaries, PKI, CRLs; OUT=$WORK/out-<time>
#   BASE_PORT=19600     ports BASE_PORT+1,+2 (A, B), +40 (backend), +51,+52 (metrics)
# Needs go, git, openssl, jq. Every load run is bounded by `timeout`; only
# the processes started here are stopped, by PID.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
export PATH=$PATH:/usr/local/go/bin

A_REF=${A_REF:-main}
B_REF=${B_REF:-}
MODES=${MODES-request handshake}
REPS=${REPS:-3}
DUR=${DUR:-8}
WARM=${WARM:-1}
KA_C=${KA_C:-32}
HS_C=${HS_C:-8}
HEADERS=${HEADERS:-alb}
RELOAD=${RELOAD:-0}
CRL_N=${CRL_N:-1000000}
RELOADS=${RELOADS:-3}
WORK=${WORK:-/tmp/trustgate-gwab}
OUT=${OUT:-$WORK/out-$(date +%Y%m%d-%H%M%S)}
BASE_PORT=${BASE_PORT:-19600}

BIN=$WORK/bin
PKI=$WORK/pki
RUN=$OUT/run
RAW=$OUT/raw.jsonl
mkdir -p "$BIN" "$RUN"
: > "$RAW"
declare -A PORT=([a]=$((BASE_PORT + 1)) [b]=$((BASE_PORT + 2)))
declare -A METRICS=([a]=$((BASE_PORT + 51)) [b]=$((BASE_PORT + 52)))
BACKEND_ADDR=127.0.0.1:$((BASE_PORT + 40))
declare -A PID_OF=()
STARTED=()

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now_ms() { date +%s%3N; }
for t in go git openssl jq; do command -v $t >/dev/null || die "$t not found"; done

stop_pid() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() { local p; for p in "${STARTED[@]}"; do stop_pid "$p"; done; STARTED=(); }
trap cleanup EXIT
trap 'exit 130' INT TERM
start() { local name=$1; shift; "$@" >"$RUN/$name.out" 2>&1 & PID_OF[$name]=$!; STARTED+=("$!"); }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() {
  local end=$(($(now_ms) + $2 * 1000))
  while [ "$(now_ms)" -lt "$end" ]; do
    port_open "$1" && return 0
    [ -n "${3:-}" ] && ! kill -0 "$3" 2>/dev/null && return 1
    sleep 0.05
  done
  return 1
}

# --- build ------------------------------------------------------------------------
build_side() { # side ref
  local side=$1 ref=$2 src=$WORK/src-$1
  if [ -z "$ref" ]; then
    (cd "$REPO" && go build -o "$BIN/trustgate-$side" ./cmd/trustgate)
    echo "$side: working tree $(git -C "$REPO" rev-parse --short HEAD)$(git -C "$REPO" diff --quiet HEAD -- internal cmd || echo '+changes')"
    return
  fi
  local commit; commit=$(git -C "$REPO" rev-parse --verify "$ref^{commit}") || die "unknown revision $ref"
  rm -rf "$src" && mkdir -p "$src"
  git -C "$REPO" archive "$commit" | tar -x -C "$src"
  (cd "$src" && go build -o "$BIN/trustgate-$side" ./cmd/trustgate)
  echo "$side: $ref = ${commit:0:12}"
}
log "building A ($A_REF) and B (${B_REF:-working tree})"
{
  build_side a "$A_REF"
  build_side b "$B_REF"
  echo "loadavg before: $(cat /proc/loadavg)"
  echo "settings: MODES=\"$MODES\" REPS=$REPS DUR=$DUR KA_C=$KA_C HS_C=$HS_C HEADERS=$HEADERS RELOAD=$RELOAD CRL_N=$CRL_N"
} | tee "$OUT/sides.txt" >&2
for t in mtlsload backend crlgen; do (cd "$REPO" && go build -o "$BIN/$t" "./bench/gateway/$t"); done

if [ ! -s "$PKI/ca-bundle.crt" ] || ! openssl x509 -checkend 604800 -noout -in "$PKI/client.crt" >/dev/null; then
  rm -rf "$PKI" && "$HERE/make-pki.sh" "$PKI" >/dev/null
fi

for p in "${PORT[@]}" "${METRICS[@]}" "${BACKEND_ADDR##*:}"; do port_open "$p" && die "port $p is in use"; done
start backend "$BIN/backend" -addr "$BACKEND_ADDR"
wait_port "${BACKEND_ADDR##*:}" 10 || die "backend did not start"

start_gw() { # side crlfile|""
  local side=$1 crlline=""
  [ -n "$2" ] && crlline="crl_files: [$2]"
  sed -e "s|@PORT@|${PORT[$side]}|g" -e "s|@PKI@|$PKI|g" -e "s|@BACKEND@|$BACKEND_ADDR|g" \
      -e "s|@CRL@|$crlline|g" -e "s|@METRICS@|${METRICS[$side]}|g" -e "s|@HEADERS@|$HEADERS|g" \
      -e "s|@CONNLOG@|off|g" -e "s|@ACCESSLOG@|off|g" "$HERE/gateway.yaml.tmpl" > "$RUN/$side.yaml"
  start "$side" "$BIN/trustgate-$side" gateway --config "$RUN/$side.yaml"
  wait_port "${PORT[$side]}" 60 "${PID_OF[$side]}" || { tail -5 "$RUN/$side.out" >&2; die "$side did not start"; }
}
stop_gw() {
  local pid=${PID_OF[$1]} p keep=()
  stop_pid "$pid"
  for p in "${STARTED[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
  STARTED=("${keep[@]}")
}

# load side mode label dur: one bounded mtlsload run; its JSON line on stdout
load() {
  local side=$1 mode=$2 label=$3 dur=$4 c=$KA_C
  [ "$mode" = handshake ] && c=$HS_C
  timeout $((WARM + dur + 20)) "$BIN/mtlsload" -label "$label" -addr "127.0.0.1:${PORT[$side]}" \
    -cert "$PKI/client-chain.crt" -key "$PKI/client.key" -ca "$PKI/root.crt" -mode "$mode" -c "$c" \
    -d "${dur}s" -warmup "${WARM}s" -expect-subject bench-client -watch "server=${PID_OF[$side]}" || echo '{}'
}
fmt_line() { # json
  jq -r '"\(.label)\t\(.ops_per_s|floor) ops/s\tserver \(.watch.server.cpu_us_per_op|.*10|round/10) µs/op\tp99 \(.p99_ms) ms\terrors \(.errors_total)\tother cores \(.other_cores)"' <<<"$1"
}

# --- A/B rounds ---------------------------------------------------------------------
start_gw a ""
start_gw b ""
for ((rep = 1; rep <= REPS; rep++)); do
  for mode in $MODES; do
    load a "$mode" "a/$mode/$rep" "$DUR" > "$RUN/la.json" & la=$!
    load b "$mode" "b/$mode/$rep" "$DUR" > "$RUN/lb.json" & lb=$!
    wait "$la" "$lb" || true
    ja=$(cat "$RUN/la.json") jb=$(cat "$RUN/lb.json")
    echo "$ja" >> "$RAW"; echo "$jb" >> "$RAW"
    fmt_line "$ja" >&2; fmt_line "$jb" >&2
    jq -rn --argjson a "$ja" --argjson b "$jb" \
      '"\($a.label|split("/")[1:]|join("/"))\tB/A ops/s \(($b.ops_per_s/$a.ops_per_s)*1000|round/1000)\tB/A server CPU per op \(($b.watch.server.cpu_us_per_op/$a.watch.server.cpu_us_per_op)*1000|round/1000)"' \
      | tee -a "$OUT/ratios.tsv" >&2
  done
done

# --- CRL reload under handshake load, both sides at once ---------------------------
if [ "$RELOAD" = 1 ]; then
  CRLDIR=$WORK/crl-$(sha256sum "$PKI/int.key" | cut -c1-12)-$CRL_N
  mkdir -p "$CRLDIR"
  for spec in "small 1 0" "big-a 2 $CRL_N" "big-b 3 $CRL_N"; do
    set -- $spec
    [ -s "$CRLDIR/$1.der" ] && [ -z "$(find "$CRLDIR/$1.der" -mmin +1440)" ] && continue
    "$BIN/crlgen" -ca-cert "$PKI/int.crt" -ca-key "$PKI/int.key" -n "$3" -number "$2" -out "$CRLDIR/$1.der" >/dev/null
  done
  stop_gw a; stop_gw b
  for side in a b; do cp "$CRLDIR/small.der" "$RUN/$side-crl.der"; start_gw "$side" "$RUN/$side-crl.der"; done
  loaded() { grep -c '"msg":"gateway: trust store loaded"' "$RUN/$1.out" || true; }
  last_ms() { # side msg: time of the last line with msg, ms since the epoch
    local ts; ts=$(grep "\"msg\":\"$2\"" "$RUN/$1.out" | tail -1 | sed -n 's/.*"time":"\([^"]*\)".*/\1/p')
    if [ -n "$ts" ]; then date -d "$ts" +%s%3N; else echo 0; fi
  }
  cpu_ms() { awk -v hz="$(getconf CLK_TCK)" '{print int(($14 + $15) * 1000 / hz)}' "/proc/$1/stat"; }
  # swap side src: replace the CRL file, SIGHUP, wait for the swap (10 s at most)
  swap() {
    local side=$1 before i; before=$(loaded "$side")
    cp "$CRLDIR/$2.der" "$RUN/$side-crl.der.tmp"
    mv -f "$RUN/$side-crl.der.tmp" "$RUN/$side-crl.der"
    kill -HUP "${PID_OF[$side]}"
    for ((i = 0; i < 200; i++)); do [ "$(loaded "$side")" -gt "$before" ] && return 0; sleep 0.05; done
    return 1
  }
  # Idle first, one side at a time: the CPU a reload costs (from SIGHUP
  # to 1 s after the swap, so a collection soon after counts too).
  src=big-a
  for ((k = 1; k <= RELOADS; k++)); do
    for side in a b; do
      c0=$(cpu_ms "${PID_OF[$side]}")
      if swap "$side" "$src"; then
        ms=$(($(last_ms "$side" "gateway: trust store loaded") - $(last_ms "$side" "SIGHUP: reloading")))
        sleep 1
        cpu=$(($(cpu_ms "${PID_OF[$side]}") - c0))
      else
        ms=null cpu=null
      fi
      echo "{\"kind\":\"reload\",\"side\":\"$side\",\"n\":$k,\"under_load\":false,\"hup_to_swap_ms\":$ms,\"cpu_ms\":$cpu}" >> "$RAW"
      log "idle reload $k ($src) $side: SIGHUP to swap $ms ms, CPU $cpu ms"
    done
    if [ $src = big-a ]; then src=big-b; else src=big-a; fi
  done
  rdur=$((RELOADS * 4 + 2))
  load a handshake a/handshake+reloads "$rdur" > "$RUN/ra.json" & la=$!
  load b handshake b/handshake+reloads "$rdur" > "$RUN/rb.json" & lb=$!
  sleep $((WARM + 1))
  # src goes on alternating: the idle rounds left the other CRL in place.
  for ((k = 1; k <= RELOADS; k++)); do
    declare -A before=([a]=$(loaded a) [b]=$(loaded b))
    for side in a b; do cp "$CRLDIR/$src.der" "$RUN/$side-crl.der.tmp"; done
    for side in a b; do mv -f "$RUN/$side-crl.der.tmp" "$RUN/$side-crl.der"; kill -HUP "${PID_OF[$side]}"; done
    for ((i = 0; i < 200; i++)); do
      [ "$(loaded a)" -gt "${before[a]}" ] && [ "$(loaded b)" -gt "${before[b]}" ] && break
      sleep 0.05
    done
    for side in a b; do
      ms=$(($(last_ms "$side" "gateway: trust store loaded") - $(last_ms "$side" "SIGHUP: reloading")))
      [ "$(loaded "$side")" -gt "${before[$side]}" ] || ms=null
      echo "{\"kind\":\"reload\",\"side\":\"$side\",\"n\":$k,\"under_load\":true,\"hup_to_swap_ms\":$ms}" >> "$RAW"
      log "loaded reload $k ($src) $side: SIGHUP to swap $ms ms"
    done
    if [ $src = big-a ]; then src=big-b; else src=big-a; fi
    sleep 3
  done
  wait "$la" "$lb" || true
  for side in a b; do
    j=$(cat "$RUN/r$side.json"); echo "$j" >> "$RAW"; fmt_line "$j" >&2
  done
fi
echo "loadavg after: $(cat /proc/loadavg)" >> "$OUT/sides.txt"
cleanup
log "raw: $RAW; ratios: $OUT/ratios.tsv"
