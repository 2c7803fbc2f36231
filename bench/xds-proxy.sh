#!/usr/bin/env bash
# The xDS-configured proxy benchmark (issue 4): lateen-proxy and Envoy 1.40, both configured
# by lateend with the same resources, under the same traffic as bench/run.sh.
#
#   mesh:        a `backend` service with 10 endpoints (nginx on 127.0.0.1:18201-18210,
#                HTTP/1.1), 100 services svc-K.bench.svc.cluster.local, each with a
#                VirtualService of 10 prefix routes (/r0/ … /r9/) to `backend`: a route table
#                of 100+ virtual hosts and 1000 routes. One Sidecar per proxy, interception
#                NONE, so each gets an explicit listener: lateen-proxy 127.0.56.1:9080,
#                Envoy 127.0.56.2:9080. The load goes to svc-99, /r9/ (the last route).
#   load:        as bench/run.sh (lib.sh `measure`): wrk -t1 -c32, h2load -c32 -m10,
#                lateen-loadgen at $RATE req/s; proxies with one worker pinned to CPU 0,
#                nginx, lateend and the load generators on CPU 1; CPU per 1000 requests and
#                peak RSS of each proxy.
#   start:       exec → admin /ready = 200 LIVE (listeners, routes, clusters and endpoints
#                received and applied), $READY_RUNS times per proxy; lateen-proxy's log splits
#                it into "until lateend's first answer is applied" and "from there to ready".
#   1000:        lateend on a 1000-service mesh (the same, plus 900 services); each proxy's
#                start-to-ready and its RSS once ready.
# Usage: bash bench/xds-proxy.sh  (writes bench/results/xds-proxy-latest.json; logs and the
# generated config stay in the printed work folder)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN="${SECONDS_PER_RUN:-10}"
RATE="${RATE:-5000}"
READY_RUNS="${READY_RUNS:-10}"
# BIN_DIR=DIR: use the binaries already in DIR instead of building release ones.
BIN_DIR="${BIN_DIR:-}"
bash scripts/install-test-deps.sh >/dev/null
if [ -z "$BIN_DIR" ]; then
  cargo build --release -q -p lateen-proxy -p lateen-loadgen -p lateen-discovery
  BIN_DIR="${CARGO_TARGET_DIR:-$PWD/target}/release"
fi
ENVOY="$PWD/.venv/bin/envoy"
LATEEN_PROXY="$BIN_DIR/lateen-proxy"
LATEEND="$BIN_DIR/lateend"
LOADGEN="$BIN_DIR/lateen-loadgen"
mkdir -p bench/results
source bench/lib.sh
WORK=$(mktemp -d /tmp/lateen-xds-proxy.XXXXXX)
echo "work folder: $WORK" >&2

XDS_PORT=18300
LATEEN_ADMIN=18310
ENVOY_ADMIN=18320
LATEEN_LISTENER=127.0.56.1
ENVOY_LISTENER=127.0.56.2
HOST=svc-99.bench.svc.cluster.local
PATH_UNDER_TEST=/r9/
BACKEND_PORTS=18201,18202,18203,18204,18205,18206,18207,18208,18209,18210
require_free 127.0.0.1:18201 127.0.0.1:18210 127.0.0.1:18211 127.0.0.1:$XDS_PORT 127.0.0.1:18301 \
  127.0.0.1:$LATEEN_ADMIN 127.0.0.1:18311 127.0.0.1:18312 127.0.0.1:$ENVOY_ADMIN "$LATEEN_LISTENER:9080" "$ENVOY_LISTENER:9080"

# The commands that start each proxy (used for the load runs and the start-to-ready runs).
lateen_cmd=(env POD_NAME=bench-lateen-0 POD_NAMESPACE=bench INSTANCE_IP=$LATEEN_LISTENER SERVICE_ACCOUNT=default
  ISTIO_META_INTERCEPTION_MODE=NONE ISTIO_META_WORKLOAD_NAME=bench-lateen 'ISTIO_METAJSON_LABELS={"app":"bench-lateen"}'
  LATEEN_LOG=info taskset -c 0 "$LATEEN_PROXY" sidecar --discovery-address "127.0.0.1:$XDS_PORT"
  --admin-address "127.0.0.1:$LATEEN_ADMIN" --health-address 127.0.0.1:18311 --metrics-address 127.0.0.1:18312
  --concurrency 1 --labels-file /nonexistent)
python3 bench/xds_proxy.py bootstrap --node-id "sidecar~$ENVOY_LISTENER~bench-envoy-0.bench~bench.svc.cluster.local" \
  --app bench-envoy --ip "$ENVOY_LISTENER" --xds-port "$XDS_PORT" --admin-port "$ENVOY_ADMIN" >"$WORK/envoy-bootstrap.yaml"
envoy_cmd=(taskset -c 0 "$ENVOY" -c "$WORK/envoy-bootstrap.yaml" --concurrency 1 --disable-hot-restart --log-level info)

# start_lateend MESH_DIR LOG: lateend on CPU 1; `push computed` debug lines give its own
# time per push.
start_lateend() {
  RUST_LOG=info,lateen_discovery::push=debug taskset -c 1 "$LATEEND" --config-dir "$1" --xds-address "127.0.0.1:$XDS_PORT" \
    --xds-tls-address 127.0.0.1:0 --debug-address 127.0.0.1:18301 --webhook-address 127.0.0.1:0 --http-address 127.0.0.1:0 2>"$2" & pids+=($!); LATEEND_PID=$!
  wait_port "$XDS_PORT"
}
stop_pid() { kill "$1" 2>/dev/null || true; for _ in $(seq 1 50); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done; kill -9 "$1" 2>/dev/null || true; }
# wait_ready ADMIN_PORT: bounded (30 s) wait for /ready = 200.
wait_ready() {
  for _ in $(seq 1 300); do
    [ "$(curl -s -m 1 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/ready")" = 200 ] && return 0
    sleep 0.1
  done
  echo "proxy with admin port $1 never became ready" >&2
  return 1
}
# check_route LISTENER: one request through the proxy must reach nginx.
check_route() {
  local code
  code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' -H "Host: $HOST" "http://$1:9080$PATH_UNDER_TEST")
  [ "$code" = 200 ] || { echo "request through $1:9080 answered $code, not 200" >&2; return 1; }
}
# start_to_ready NAME ADMIN_PORT RUNS CMD...: JSON of RUNS cold starts.
start_to_ready() {
  local name=$1 admin=$2 runs=$3
  shift 3
  python3 bench/xds_proxy.py ready --admin-port "$admin" --log "$WORK/$name-ready.log" --runs "$runs" -- "$@"
}
# lateend_push_ms LOG: its `push computed` times (ms), which include building the snapshot of
# every connected proxy.
lateend_push_ms() { grep -o 'elapsed_ms=[0-9]*' "$1" | cut -d= -f2 | paste -sd, - || true; }

taskset -c 1 nginx -c "$PWD/bench/nginx-xds.conf" -p /tmp & pids+=($!)
for port in ${BACKEND_PORTS//,/ } 18211; do wait_port "$port"; done

# 1. The 100-host mesh: start-to-ready, then the load.
python3 bench/xds_proxy.py mesh "$WORK/mesh-100" --services 100 --routed 100 --backend-ports "$BACKEND_PORTS"
start_lateend "$WORK/mesh-100" "$WORK/lateend-100.log"
# One discarded start of each warms lateend (config loaded, registry built) and the page cache.
start_to_ready lateen-warmup "$LATEEN_ADMIN" 1 "${lateen_cmd[@]}" >/dev/null
start_to_ready envoy-warmup "$ENVOY_ADMIN" 1 "${envoy_cmd[@]}" >/dev/null
echo "start-to-ready, 100 hosts: $READY_RUNS starts each" >&2
ready_lateen=$(start_to_ready lateen "$LATEEN_ADMIN" "$READY_RUNS" "${lateen_cmd[@]}")
ready_envoy=$(start_to_ready envoy "$ENVOY_ADMIN" "$READY_RUNS" "${envoy_cmd[@]}")
echo "lateen: $ready_lateen" >&2
echo "envoy:  $ready_envoy" >&2

"${lateen_cmd[@]}" 2>"$WORK/lateen.log" & pids+=($!); LATEEN=$!
"${envoy_cmd[@]}" 2>"$WORK/envoy.log" & pids+=($!); ENVOY_PID=$!
wait_ready "$LATEEN_ADMIN"; wait_ready "$ENVOY_ADMIN"
check_route "$LATEEN_LISTENER"; check_route "$ENVOY_LISTENER"
{
  measure direct http://127.0.0.1:18201/ http://127.0.0.1:18211/ 0
  measure lateen "http://$LATEEN_LISTENER:9080$PATH_UNDER_TEST" "http://$LATEEN_LISTENER:9080$PATH_UNDER_TEST" "$LATEEN" "$HOST"
  measure envoy "http://$ENVOY_LISTENER:9080$PATH_UNDER_TEST" "http://$ENVOY_LISTENER:9080$PATH_UNDER_TEST" "$ENVOY_PID" "$HOST"
} | tee "$WORK/load.jsonl"
# Routes actually served: the virtual hosts and routes each proxy holds.
lateen_routes=$(curl -s -m 5 "http://127.0.0.1:$LATEEN_ADMIN/config_dump" | python3 -c '
import json, sys
dump = json.load(sys.stdin)
tables = dump.get("config", dump).get("route_configs", [])
print(json.dumps({"virtual_hosts": sum(len(t.get("virtual_hosts", [])) for t in tables),
                  "routes": sum(len(v.get("routes", [])) for t in tables for v in t.get("virtual_hosts", []))}))' || echo null)
envoy_routes=$(curl -s -m 5 "http://127.0.0.1:$ENVOY_ADMIN/config_dump?resource=dynamic_route_configs" | python3 -c '
import json, sys
configs = [c["route_config"] for c in json.load(sys.stdin).get("configs", [])]
print(json.dumps({"virtual_hosts": sum(len(c.get("virtual_hosts", [])) for c in configs),
                  "routes": sum(len(v.get("routes", [])) for c in configs for v in c.get("virtual_hosts", []))}))' || echo null)
stop_pid "$LATEEN"; stop_pid "$ENVOY_PID"; stop_pid "$LATEEND_PID"
push_100=$(lateend_push_ms "$WORK/lateend-100.log")

# 2. The 1000-service mesh: start-to-ready and RSS once ready (after 2 s to settle).
python3 bench/xds_proxy.py mesh "$WORK/mesh-1000" --services 1000 --routed 100 --backend-ports "$BACKEND_PORTS"
start_lateend "$WORK/mesh-1000" "$WORK/lateend-1000.log"
start_to_ready lateen-warmup "$LATEEN_ADMIN" 1 "${lateen_cmd[@]}" >/dev/null
start_to_ready envoy-warmup "$ENVOY_ADMIN" 1 "${envoy_cmd[@]}" >/dev/null
RUNS_1000=$(( READY_RUNS < 5 ? READY_RUNS : 5 ))
echo "start-to-ready, 1000 services: $RUNS_1000 starts each" >&2
ready_lateen_1000=$(start_to_ready lateen-1000 "$LATEEN_ADMIN" "$RUNS_1000" "${lateen_cmd[@]}")
ready_envoy_1000=$(start_to_ready envoy-1000 "$ENVOY_ADMIN" "$RUNS_1000" "${envoy_cmd[@]}")
echo "lateen: $ready_lateen_1000" >&2
echo "envoy:  $ready_envoy_1000" >&2
"${lateen_cmd[@]}" 2>"$WORK/lateen-1000.log" & pids+=($!); LATEEN=$!
wait_ready "$LATEEN_ADMIN"; sleep 2; check_route "$LATEEN_LISTENER"
lateen_rss_1000=$(vmrss_kb "$LATEEN"); lateen_hwm_1000=$(rss_kb "$LATEEN")
stop_pid "$LATEEN"
"${envoy_cmd[@]}" 2>"$WORK/envoy-1000.log" & pids+=($!); ENVOY_PID=$!
wait_ready "$ENVOY_ADMIN"; sleep 2; check_route "$ENVOY_LISTENER"
envoy_rss_1000=$(vmrss_kb "$ENVOY_PID"); envoy_hwm_1000=$(rss_kb "$ENVOY_PID")
stop_pid "$ENVOY_PID"; stop_pid "$LATEEND_PID"
push_1000=$(lateend_push_ms "$WORK/lateend-1000.log")

python3 - "$WORK/load.jsonl" bench/results/xds-proxy-latest.json <<PY
import json, os, sys, time
rows = [json.loads(line) for line in open(sys.argv[1])]
result = {
    "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    "load_average": os.getloadavg(),
    "seconds_per_run": $SECONDS_PER_RUN, "rate": $RATE,
    "load": rows,
    "routes_held": {"lateen": $lateen_routes, "envoy": $envoy_routes},
    "start_to_ready_100_hosts": {"lateen": $ready_lateen, "envoy": $ready_envoy},
    "start_to_ready_1000_services": {"lateen": $ready_lateen_1000, "envoy": $ready_envoy_1000},
    "rss_1000_services_kb": {"lateen": {"rss": $lateen_rss_1000, "peak": $lateen_hwm_1000},
                             "envoy": {"rss": $envoy_rss_1000, "peak": $envoy_hwm_1000}},
    "lateend_push_computed_ms": {"mesh_100": [$push_100], "mesh_1000": [$push_1000]},
}
json.dump(result, open(sys.argv[2], "w"), indent=1)
PY
summarize "$WORK/load.jsonl"
python3 - bench/results/xds-proxy-latest.json <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
for mesh in ("start_to_ready_100_hosts", "start_to_ready_1000_services"):
    l, e = r[mesh]["lateen"], r[mesh]["envoy"]
    print(f"{mesh}: lateen median {l['median_ms']} ms (max {l['max_ms']}; after lateend's first answer: median "
          f"{l.get('median_first_update_to_ready_ms')} ms), envoy median {e['median_ms']} ms (max {e['max_ms']})")
s = r["rss_1000_services_kb"]
print(f"RSS with 1000 services: lateen {s['lateen']['rss']/1024:.1f} MB (peak {s['lateen']['peak']/1024:.1f}), "
      f"envoy {s['envoy']['rss']/1024:.1f} MB (peak {s['envoy']['peak']/1024:.1f}), ratio {s['lateen']['rss']/s['envoy']['rss']:.2f}x")
print("routes held:", r["routes_held"])
PY
