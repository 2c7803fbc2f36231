#!/usr/bin/env bash
# The control-plane benchmark (issue 3): lateend serving PROXIES simulated sidecars.
#   1. builds release lateend and lateen-xds-load;
#   2. generates a mesh: SERVICES ServiceEntries (svc-N.bench.svc.cluster.local, port 9080
#      HTTP, 3 STATIC endpoints each in 198.18.0.0/15, never contacted), a DestinationRule
#      and a weighted VirtualService for the first ROUTED of them;
#   3. starts lateend on it (127.0.0.1, free ports) pinned to CPU 0, the load tool on CPU 1;
#   4. lateen-xds-load connects PROXIES REDIRECT-mode sidecars (real ADS clients, one gRPC
#      connection each: wildcard CDS/LDS, then EDS/RDS for the names received, ACKing all),
#      waits until all are synced, then rewrites svc-0's VirtualService weights ROUNDS times
#      and times each proxy's receipt+ACK of the new route from the file write; reads
#      lateend's VmRSS and utime+stime from /proc.
# Usage: bash bench/xds.sh   (env: PROXIES=1000 WORKLOADS=1 SELECT_BY_APP=0 SERVICES=1000 ROUTED=100 ROUNDS=5 MODE=sotw
#        POLL_INTERVAL=100ms PIN=1 RUN_TIMEOUT=280 SYNC_TIMEOUT=150 ROUND_TIMEOUT=30
#        QUIET_TIMEOUT=60). Writes bench/results/xds-latest.json and prints it.
set -euo pipefail
cd "$(dirname "$0")/.."
PROXIES="${PROXIES:-1000}"
SERVICES="${SERVICES:-1000}"
ROUTED="${ROUTED:-100}"
ROUNDS="${ROUNDS:-5}"
WORKLOADS="${WORKLOADS:-1}"
# SELECT_BY_APP=1: a VirtualService matches on the caller's app label, so each workload has
# a configuration of its own (one translation per workload instead of one for all).
SELECT_BY_APP="${SELECT_BY_APP:-0}"
MODE="${MODE:-sotw}"
POLL_INTERVAL="${POLL_INTERVAL:-100ms}"
PIN="${PIN:-1}"
# Bounds: the whole load run, waiting for all proxies to sync, waiting for one change.
RUN_TIMEOUT="${RUN_TIMEOUT:-280}"
SYNC_TIMEOUT="${SYNC_TIMEOUT:-150}"
ROUND_TIMEOUT="${ROUND_TIMEOUT:-30}"
QUIET_TIMEOUT="${QUIET_TIMEOUT:-60}"
TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"

timeout 900 cargo build --release -q -p lateen-discovery -p lateen-xds-load --bin lateend --bin lateen-xds-load
LATEEND="$TARGET_DIR/release/lateend"
LOAD="$TARGET_DIR/release/lateen-xds-load"

# One file descriptor per proxy connection on each side, plus margin.
ulimit -n "$(( PROXIES * 2 + 1024 > 65536 ? PROXIES * 2 + 1024 : 65536 ))" 2>/dev/null \
  || ulimit -n "$(ulimit -Hn)"

WORK="$(mktemp -d /tmp/lateen-xds-bench.XXXXXX)"
LATEEND_PID=""
cleanup() {
  if [ -n "$LATEEND_PID" ]; then kill "$LATEEND_PID" 2>/dev/null || true; wait "$LATEEND_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
source bench/lateend-lib.sh

XDS_PORT="$(free_port)"
DEBUG_PORT="$(free_port)"
CPU0=(); CPU1=()
if [ "$PIN" = 1 ]; then CPU0=(taskset -c 0); CPU1=(taskset -c 1); fi

SELECT_FLAG=(); [ "$SELECT_BY_APP" = 1 ] && SELECT_FLAG=(--select-by-app)
"$LOAD" generate --dir "$WORK/config" --services "$SERVICES" --routed "$ROUTED" "${SELECT_FLAG[@]}"
env ${LATEEND_ENV:-} RUST_LOG=warn,lateen_discovery::push=debug "${CPU0[@]}" "$LATEEND" --config-dir "$WORK/config" \
  --xds-address "127.0.0.1:$XDS_PORT" --debug-address "127.0.0.1:$DEBUG_PORT" \
  --xds-tls-address 127.0.0.1:0 --webhook-address 127.0.0.1:0 --http-address 127.0.0.1:0 \
  --poll-interval "$POLL_INTERVAL" > "$WORK/lateend.log" 2>&1 &
LATEEND_PID=$!
wait_lateend_ready 100
if grep -q "rejected" "$WORK/lateend.log"; then cat "$WORK/lateend.log" >&2; echo "lateend rejected the generated config" >&2; exit 1; fi

mkdir -p bench/results
set +e
RUST_BACKTRACE=0 RUST_LIB_BACKTRACE=0 timeout "$RUN_TIMEOUT" "${CPU1[@]}" "$LOAD" run --xds "127.0.0.1:$XDS_PORT" --config-dir "$WORK/config" \
  --lateend-pid "$LATEEND_PID" --proxies "$PROXIES" --workloads "$WORKLOADS" --rounds "$ROUNDS" --mode "$MODE" \
  --sync-timeout "$SYNC_TIMEOUT" --round-timeout "$ROUND_TIMEOUT" --quiet-timeout "$QUIET_TIMEOUT" \
  --clock-ticks "$(getconf CLK_TCK)" > "$WORK/result.json"
RC=$?
set -e
if [ "$RC" != 0 ]; then
  push_log
  echo "lateen-xds-load failed or timed out (exit $RC); lateend RSS now: $(awk '/VmRSS/ {print $2, $3}' "/proc/$LATEEND_PID/status")" >&2
  exit "$RC"
fi
PUSHES="$(curl -sf "http://127.0.0.1:$DEBUG_PORT/metrics" | awk '/^pilot_xds_pushes|^lateend_push/ {print}' | head -20 || true)"
python3 - "$WORK/result.json" "$POLL_INTERVAL" "$SERVICES" "$ROUTED" "$WORKLOADS" "$SELECT_BY_APP" <<'EOF' > bench/results/xds-latest.json
import json, sys
r = json.load(open(sys.argv[1]))
r.update(poll_interval=sys.argv[2], services=int(sys.argv[3]), routed=int(sys.argv[4]), workloads=int(sys.argv[5]), select_by_app=sys.argv[6] == "1")
print(json.dumps(r, indent=1))
EOF
cat bench/results/xds-latest.json
[ -n "$PUSHES" ] && echo "$PUSHES"
push_log
log_errors
