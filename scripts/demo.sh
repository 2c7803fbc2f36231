#!/usr/bin/env bash
# The demo: builds the release binaries and runs `lateen demo`: lateend on a folder of Istio
# YAML, a Bookinfo-shaped application (productpage → details, reviews v1/v2/v3 → ratings)
# and a lateen-proxy sidecar beside every workload. As root on Linux each workload runs in
# its own network namespace with Istio's iptables capture; otherwise on loopback addresses
# with explicit listeners (`--mode netns|loopback` forces one). Ctrl-C stops everything and
# removes the namespaces. Options go to `lateen demo`, e.g. `bash scripts/demo.sh --scenario canary`.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p lateen-cli -p lateen-discovery -p lateen-proxy -p lateen-sample-app
exec target/release/lateen demo "$@"
