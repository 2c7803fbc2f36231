# lateen-proxy: the sidecar (`lateen-proxy sidecar`), the gateway (`lateen-proxy router`) and
# the injected init container (`lateen-proxy capture`, which runs iptables-restore).
# Image: <hub>/proxy:<tag>, the name `lateen install` and the injector render
# (values.global.proxy.image = "proxy"). Build with scripts/build-images.sh.
#
# The injected containers give only `args` (sidecar ..., capture ...), so the entrypoint is
# the binary itself. The sidecar runs as UID/GID 1337 (the capture rules exempt that user);
# the init container overrides the user to root with NET_ADMIN/NET_RAW.

ARG RUST_IMAGE=docker.io/library/rust:1.89-bookworm
ARG BASE_IMAGE=docker.io/library/debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p lateen-proxy --bin lateen-proxy \
 && install -D -m 0755 target/release/lateen-proxy /out/lateen-proxy

FROM ${BASE_IMAGE}
# Debian's iptables package carries both backends (iptables-nft and iptables-legacy, with
# their -save/-restore); update-alternatives points iptables-restore at nft by default.
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 1337 istio-proxy \
 && useradd --system --uid 1337 --gid 1337 --home-dir /var/lib/istio --no-create-home istio-proxy
COPY --from=build /out/lateen-proxy /usr/local/bin/lateen-proxy
USER 1337:1337
EXPOSE 15000 15001 15006 15020 15021 15090
ENTRYPOINT ["/usr/local/bin/lateen-proxy"]
