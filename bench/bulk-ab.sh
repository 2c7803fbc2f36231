#!/usr/bin/env bash
# Two lateen-proxy builds side by side on the bulk rows: each round runs OLD then NEW, each
# its own process on CPU 0 against the same nginx, one h1 and one h2c download and upload,
# so both see the same machine at nearly the same moment (single bulk runs on this VM
# spread by ±0.2 CPU s/GiB from one minute to the next). Prints bulk.sh's JSON rows, named
# old and new.
# Usage: bash bench/bulk-ab.sh OLD_BINARY NEW_BINARY [ROUNDS]   (3 rounds by default)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
source bench/bulk.sh
old=$1 new=$2 rounds=${3:-3}
require_free 127.0.0.1:18080 127.0.0.1:18081
bulk_file_setup
taskset -c 1 nginx -c "$PWD/bench/nginx.conf" -p /tmp & pids+=($!)
wait_port 18081
for round in $(seq "$rounds"); do
  for side in old new; do
    binary=$old
    [ "$side" = new ] && binary=$new
    taskset -c 0 "$binary" --config bench/lateen.yaml --concurrency 1 --log-level warn & proxy=$!
    wait_port 18080
    for proto in h1 h2; do
      for direction in download upload; do
        bulk_one "$side" "$proxy" "$proto" "$direction" http://127.0.0.1:18080
      done
    done
    kill "$proxy"; wait "$proxy" 2>/dev/null || true
    echo "round $round $side done" >&2
  done
done
rm -f /dev/shm/lateen-bench-sink/1g.bin
