#!/usr/bin/env bash
# The Kubernetes control-plane benchmark (issue 12): lateend reading a real API server.
#   1. builds release lateend, lateen-xds-load and lateen-test-cluster (the tests' etcd +
#      kube-apiserver + kube-controller-manager from scripts/kube-test-bins.sh, on loopback);
#   2. starts the cluster and lateend on it (`--kubeconfig`, no config folder), lateend pinned
#      to CPU 0, the cluster and the load tool on CPU 1;
#   3. lateen-xds-load writes SERVICES Services, PODS Pods (Running and Ready, as a kubelet would
#      report them) and one EndpointSlice per Service through the API server, connects PROXIES
#      simulated sidecars (real ADS clients), waits until every proxy has every service's
#      endpoints, then for DURATION seconds changes RATE endpoints a second (one EndpointSlice
#      write each) and times each write to every proxy's receipt+ACK of it; lateend's CPU and
#      RSS from /proc.
# Usage: bash bench/kube.sh   (env: PROXIES=1000 SERVICES=1000 PODS=5000 RATE=50 DURATION=60
#        MODE=sotw PIN=1 RUN_TIMEOUT=900 BUILD=1; BUILD=0 runs the release binaries already built).
#        Writes bench/results/kube-latest.json and prints it.
set -euo pipefail
cd "$(dirname "$0")/.."
PROXIES="${PROXIES:-1000}"
SERVICES="${SERVICES:-1000}"
PODS="${PODS:-5000}"
RATE="${RATE:-50}"
DURATION="${DURATION:-60}"
MODE="${MODE:-sotw}"
PIN="${PIN:-1}"
RUN_TIMEOUT="${RUN_TIMEOUT:-900}"
TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"

LATEEN_KUBE_BIN="$(bash scripts/kube-test-bins.sh | tail -1)"
export LATEEN_KUBE_BIN
[ "${BUILD:-1}" = 0 ] || timeout 1200 cargo build --release -q -p lateen-discovery -p lateen-xds-load -p lateen-test-support \
  --bin lateend --bin lateen-xds-load --bin lateen-test-cluster
LATEEND="$TARGET_DIR/release/lateend"
LOAD="$TARGET_DIR/release/lateen-xds-load"
CLUSTER="$TARGET_DIR/release/lateen-test-cluster"

ulimit -n "$(( PROXIES * 2 + 1024 > 65536 ? PROXIES * 2 + 1024 : 65536 ))" 2>/dev/null \
  || ulimit -n "$(ulimit -Hn)"

WORK="$(mktemp -d /tmp/lateen-kube-bench.XXXXXX)"
LATEEND_PID=""
CLUSTER_PID=""
cleanup() {
  if [ -n "$LATEEND_PID" ]; then kill "$LATEEND_PID" 2>/dev/null || true; wait "$LATEEND_PID" 2>/dev/null || true; fi
  # The cluster ends when its stdin (fd 3 here) closes or on SIGTERM.
  exec 3>&- 2>/dev/null || true
  if [ -n "$CLUSTER_PID" ]; then kill "$CLUSTER_PID" 2>/dev/null || true; wait "$CLUSTER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
source bench/lateend-lib.sh

CPU0=(); CPU1=()
if [ "$PIN" = 1 ]; then CPU0=(taskset -c 0); CPU1=(taskset -c 1); fi

mkfifo "$WORK/cluster-stdin"
"${CPU1[@]}" "$CLUSTER" < "$WORK/cluster-stdin" > "$WORK/cluster.out" 2> "$WORK/cluster.log" &
CLUSTER_PID=$!
exec 3> "$WORK/cluster-stdin"
for _ in $(seq 1 600); do
  [ -s "$WORK/cluster.out" ] && break
  kill -0 "$CLUSTER_PID" 2>/dev/null || { cat "$WORK/cluster.log" >&2; echo "the test cluster did not start" >&2; exit 1; }
  sleep 0.1
done
KUBECONFIG_FILE="$(head -1 "$WORK/cluster.out")"
[ -f "$KUBECONFIG_FILE" ] || { cat "$WORK/cluster.log" >&2; echo "no kubeconfig from the test cluster" >&2; exit 1; }

XDS_PORT="$(free_port)"
DEBUG_PORT="$(free_port)"
env ${LATEEND_ENV:-} RUST_LOG=warn,lateen_discovery::push=debug "${CPU0[@]}" "$LATEEND" --kubeconfig "$KUBECONFIG_FILE" \
  --xds-address "127.0.0.1:$XDS_PORT" --debug-address "127.0.0.1:$DEBUG_PORT" \
  --xds-tls-address 127.0.0.1:0 --webhook-address 127.0.0.1:0 --http-address 127.0.0.1:0 > "$WORK/lateend.log" 2>&1 &
LATEEND_PID=$!
wait_lateend_ready 300

mkdir -p bench/results
set +e
RUST_BACKTRACE=0 timeout "$RUN_TIMEOUT" "${CPU1[@]}" "$LOAD" kube --kubeconfig "$KUBECONFIG_FILE" \
  --xds "127.0.0.1:$XDS_PORT" --lateend-pid "$LATEEND_PID" --proxies "$PROXIES" --mode "$MODE" \
  --services "$SERVICES" --pods "$PODS" --rate "$RATE" --duration "$DURATION" \
  --clock-ticks "$(getconf CLK_TCK)" > "$WORK/result.json"
RC=$?
set -e
if [ "$RC" != 0 ]; then
  push_log
  tail -20 "$WORK/lateend.log" >&2
  echo "lateen-xds-load failed or timed out (exit $RC)" >&2
  exit "$RC"
fi
python3 -m json.tool "$WORK/result.json" > bench/results/kube-latest.json
cat bench/results/kube-latest.json
push_log
log_errors
