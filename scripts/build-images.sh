#!/usr/bin/env bash
# Builds Lateen's container images from docker/*.Dockerfile, one per file, named as
# `lateen install` and the sidecar injector render them:
#
#   HUB/lateend:TAG     docker/lateend.Dockerfile     the control plane
#   HUB/proxy:TAG       docker/proxy.Dockerfile       sidecar, gateway and init container
#   HUB/lateen-cli:TAG  docker/lateen-cli.Dockerfile  the CLI and the in-cluster operator
#
# Usage: scripts/build-images.sh [--push] HUB TAG
#   HUB   registry and path, e.g. docker.io/lateen (the default hub `lateen install` renders)
#   TAG   e.g. 0.1.0 (the default tag `lateen install` renders is the crates' version)
#   --push  push each image after building it
#
# Environment: DOCKER (default `docker`; `podman` works), PLATFORM (e.g. linux/arm64, passed
# to --platform), BUILD_ARGS (extra flags for the build command, e.g. "--build-arg
# RUST_IMAGE=..."). The Dockerfiles use BuildKit cache mounts: Docker 23+ builds with BuildKit
# by default. Installing with other names: `lateen install --set hub=HUB --set tag=TAG`.
set -euo pipefail

push=false
if [[ "${1:-}" == "--push" ]]; then
    push=true
    shift
fi
if [[ $# -ne 2 ]]; then
    sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
fi
hub="${1%/}"
tag="$2"
docker="${DOCKER:-docker}"
root="$(cd "$(dirname "$0")/.." && pwd)"

build_flags=()
if [[ -n "${PLATFORM:-}" ]]; then
    build_flags+=(--platform "$PLATFORM")
fi
if [[ -n "${BUILD_ARGS:-}" ]]; then
    # shellcheck disable=SC2206 # word splitting wanted: several flags in one variable
    build_flags+=(${BUILD_ARGS})
fi

for dockerfile in "$root"/docker/*.Dockerfile; do
    name="$(basename "$dockerfile" .Dockerfile)"
    image="$hub/$name:$tag"
    echo "==> $image ($dockerfile)"
    DOCKER_BUILDKIT=1 "$docker" build "${build_flags[@]}" -f "$dockerfile" -t "$image" "$root"
    if $push; then
        "$docker" push "$image"
    fi
done
