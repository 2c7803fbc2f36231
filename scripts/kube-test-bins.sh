#!/usr/bin/env bash
# Builds a real Kubernetes control plane for the tests from Go modules (no prebuilt binaries
# can be fetched here): kube-apiserver, kube-controller-manager and kubectl from
# k8s.io/kubernetes, etcd from go.etcd.io/etcd/server/v3. Cached: a second run with the same
# versions only prints the folder. Prints the bin folder on its last line.
#
#   bash scripts/kube-test-bins.sh            # build (about 9 minutes on 2 cores, once)
#   LATEEN_KUBE_BIN=$(bash scripts/kube-test-bins.sh | tail -1)
#   bash scripts/kube-test-bins.sh --check    # print the folder if built, else exit 1 (no build)
#
# k8s.io/kubernetes replaces its staging modules (k8s.io/api, k8s.io/apimachinery, ...) with
# local paths, so a module that requires it must pin each of them to the matching v0.Y.Z.
set -euo pipefail

KUBE_VERSION="${LATEEN_KUBE_VERSION:-v1.36.3}"
ETCD_VERSION="${LATEEN_ETCD_VERSION:-v3.6.17}"
CACHE="${LATEEN_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lateen/kube-$KUBE_VERSION-etcd-$ETCD_VERSION}"
BIN="$CACHE/bin"
WANT=(kube-apiserver kube-controller-manager kubectl etcd)

have_all() {
  for b in "${WANT[@]}"; do [ -x "$BIN/$b" ] || return 1; done
}
if have_all; then
  echo "$BIN"
  exit 0
fi
if [ "${1:-}" = "--check" ]; then
  echo "kube-test-bins: not built yet in $BIN" >&2
  exit 1
fi
command -v go >/dev/null || { echo "kube-test-bins: go is not installed" >&2; exit 1; }
mkdir -p "$BIN" "$CACHE/kube" "$CACHE/etcd"
# Go 1.27 serves a broken OpenAPI from kube-apiserver without this; harmless on 1.26.
case "$(go env GOVERSION)" in go1.2[7-9]*|go1.[3-9]*) export GOEXPERIMENT="${GOEXPERIMENT:+$GOEXPERIMENT,}nojsonv2" ;; esac
export GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0

staging_version="v0.${KUBE_VERSION#v1.}"
echo "kube-test-bins: building Kubernetes $KUBE_VERSION (staging $staging_version) and etcd $ETCD_VERSION into $BIN" >&2

(
  cd "$CACHE/kube"
  if [ ! -f go.mod ] || ! grep -q "k8s.io/kubernetes $KUBE_VERSION" go.mod; then
    rm -f go.mod go.sum
    go mod init lateen.invalid/kube-test-bins >/dev/null 2>&1
    kube_dir="$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
    {
      echo "require k8s.io/kubernetes $KUBE_VERSION"
      # Every `k8s.io/X => ./staging/src/k8s.io/X` of Kubernetes' go.mod, pinned to the release.
      sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/src/k8s.io/.*#replace \1 => \1 '"$staging_version"'#p' "$kube_dir/go.mod"
    } >>go.mod
  fi
  for cmd in kube-apiserver kube-controller-manager kubectl; do
    [ -x "$BIN/$cmd" ] && continue
    go get "k8s.io/kubernetes/cmd/$cmd" >/dev/null 2>&1 || true
    go build -trimpath -ldflags='-s -w' -o "$BIN/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd"
    mv "$BIN/$cmd.tmp" "$BIN/$cmd"
    echo "kube-test-bins: built $cmd" >&2
  done
)

(
  cd "$CACHE/etcd"
  if [ ! -x "$BIN/etcd" ]; then
    [ -f go.mod ] || go mod init lateen.invalid/etcd-test-bin >/dev/null 2>&1
    go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null
    go build -trimpath -ldflags='-s -w' -o "$BIN/etcd.tmp" go.etcd.io/etcd/server/v3
    mv "$BIN/etcd.tmp" "$BIN/etcd"
    echo "kube-test-bins: built etcd" >&2
  fi
)

have_all
echo "$BIN"
