#!/usr/bin/env bash
# Bulk transfer rows (issue 16 item 10): 1 GiB downloaded and 1 GiB uploaded through each
# proxy, over HTTP/1.1 and over h2c (prior knowledge) to an HTTP/1.1 nginx upstream, one
# transfer at a time with curl. Reports the proxy's CPU seconds per GiB (utime + stime from
# /proc around the transfer) and the transfer rate. Target: lateen-proxy's CPU per GiB at or
# below Envoy's.
# Usage: bash bench/bulk.sh        (standalone: starts nginx, lateen-proxy and Envoy itself)
#        sourced by bench/run.sh   (bulk_rows LATEEN_PID ENVOY_PID with both proxies running)
# Rows are JSON objects, one per (target, protocol, direction).

bulk_file_setup() {
  mkdir -p /tmp/lateen-bench-bulk /dev/shm/lateen-bench-sink /dev/shm/lateen-bench-sink-tmp
  # nginx's workers run as nobody.
  chmod 1777 /dev/shm/lateen-bench-sink /dev/shm/lateen-bench-sink-tmp
  # Sparse: no disk used; nginx sends it from the page cache.
  [ -f /tmp/lateen-bench-bulk/1g.bin ] || truncate -s 1G /tmp/lateen-bench-bulk/1g.bin
}

# bulk_one NAME PID PROTO DIRECTION URL_BASE: one transfer; prints a JSON row.
bulk_one() {
  local name=$1 pid=$2 proto=$3 direction=$4 base=$5
  local flags=(-s -S -o /dev/null -w '%{http_code} %{time_total} %{size_download} %{size_upload}')
  [ "$proto" = h2 ] && flags+=(--http2-prior-knowledge)
  local url
  if [ "$direction" = download ]; then
    url="$base/bulk/1g.bin"
  else
    # `Expect:` off: the rows measure bytes, not the 100-continue handshake.
    flags+=(-T /tmp/lateen-bench-bulk/1g.bin -H 'Expect:')
    url="$base/sink/1g.bin"
  fi
  local before after out
  before=$([ "$pid" = 0 ] && echo 0 || cpu_ticks "$pid")
  out=$(taskset -c 1 curl --max-time 120 "${flags[@]}" "$url" || echo "0 0 0 0")
  after=$([ "$pid" = 0 ] && echo 0 || cpu_ticks "$pid")
  read -r code secs down up <<<"$out"
  local bytes=$down
  [ "$direction" = upload ] && bytes=$up
  awk -v n="$name" -v p="$proto" -v d="$direction" -v c="$code" -v s="$secs" -v b="$bytes" \
      -v t="$((after - before))" -v hz="$TICKS" -v pid="$pid" 'BEGIN {
    gib = b / (1024 * 1024 * 1024);
    cpu = (pid == 0 || gib == 0) ? "null" : sprintf("%.3f", (t / hz) / gib);
    printf "{\"name\":\"%s\",\"bulk\":\"%s-%s\",\"status\":%d,\"gib\":%.3f,\"seconds\":%.2f,\"mib_per_s\":%.0f,\"cpu_s_per_gib\":%s}\n",
      n, p, d, c, gib, s, (s > 0 ? b / 1048576 / s : 0), cpu }'
}

# bulk_rows LATEEN_PID ENVOY_PID: the eight rows per proxy plus the direct ones.
bulk_rows() {
  bulk_file_setup
  local proto direction
  for proto in h1 h2; do
    for direction in download upload; do
      if [ "$proto" = h1 ]; then bulk_one direct 0 h1 "$direction" http://127.0.0.1:18081; fi
      bulk_one lateen "$1" "$proto" "$direction" http://127.0.0.1:18080
      bulk_one envoy "$2" "$proto" "$direction" http://127.0.0.1:18082
    done
  done
  rm -f /dev/shm/lateen-bench-sink/1g.bin
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  cd "$(dirname "$0")/.."
  source bench/lib.sh
  proxy_bench_binaries
  require_free 127.0.0.1:18080 127.0.0.1:18081 127.0.0.1:18082 127.0.0.1:19000
  taskset -c 1 nginx -c "$PWD/bench/nginx.conf" -p /tmp & pids+=($!)
  taskset -c 0 "$BIN_DIR/lateen-proxy" --config bench/lateen.yaml --concurrency 1 --log-level warn & pids+=($!); LATEEN=$!
  taskset -c 0 "$ENVOY" -c bench/envoy.yaml --concurrency 1 --log-level warn --base-id 79 & pids+=($!); ENVOY_PID=$!
  wait_port 18081; wait_port 18080; wait_port 18082
  bulk_rows "$LATEEN" "$ENVOY_PID" | tee bench/results/bulk.jsonl
fi
