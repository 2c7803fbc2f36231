#!/usr/bin/env bash
# The demo: builds lateen-proxy and the sample app, starts productpage and reviews v1/v2,
# and lateen-proxy in front of them (config: examples/proxy-demo.yaml). Ctrl-C stops all.
# With DEMO_SECONDS=N it sends some traffic, prints the observed split, and stops after N s.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p lateen-proxy -p lateen-sample-app
bin="$PWD/target/release"
pids=()
stop() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; echo "demo stopped"; }
trap stop EXIT
trap 'exit 0' INT TERM
"$bin/lateen-sample-app" --name productpage --listen 127.0.0.1:19080 --call http://127.0.0.1:9080/reviews & pids+=($!)
"$bin/lateen-sample-app" --name reviews --version v1 --listen 127.0.0.1:19081 & pids+=($!)
"$bin/lateen-sample-app" --name reviews --version v2 --listen 127.0.0.1:19082 & pids+=($!)
"$bin/lateen-proxy" --config examples/proxy-demo.yaml --concurrency 1 & pids+=($!)
for _ in $(seq 1 100); do curl -sf http://127.0.0.1:15021/healthz/ready >/dev/null && break; sleep 0.1; done
cat <<INFO

Lateen demo is running:
  productpage   http://127.0.0.1:9080/productpage     (through lateen-proxy)
  reviews       http://127.0.0.1:9080/reviews          (80% v1, 20% v2; header end-user: jason → v2)
  metrics       http://127.0.0.1:15090/stats/prometheus
  admin         http://127.0.0.1:15000/config_dump   /stats   /ready
  config        examples/proxy-demo.yaml
Press Ctrl-C to stop.
INFO
if [ -n "${DEMO_SECONDS:-}" ]; then
  for _ in $(seq 1 100); do curl -s http://127.0.0.1:9080/productpage >/dev/null; done
  curl -s http://127.0.0.1:9080/productpage; echo
  echo "observed split of /reviews, from the proxy's istio_requests_total:"
  curl -s http://127.0.0.1:15090/stats/prometheus | grep '^istio_requests_total{' | grep 'destination_service_name="reviews"' \
    | sed -E 's/.*destination_version="([^"]*)".* ([0-9.e+]+)$/\1 \2/' \
    | awk '{ n[$1] += $2 } END { for (v in n) printf "  reviews %s: %d requests\n", v, n[v] }'
  sleep "$DEMO_SECONDS"
  exit 0
fi
wait
