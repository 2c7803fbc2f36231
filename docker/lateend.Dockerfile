# lateend: the control plane (Istio's istiod). Image: <hub>/lateend:<tag>, the name
# `lateen install` renders for the lateend Deployment. Build with scripts/build-images.sh.
#
# The Deployment gives only `args`, so the entrypoint is the binary itself. Runs as
# UID/GID 1337 like the rendered securityContext (runAsUser/runAsGroup 1337, runAsNonRoot).

ARG RUST_IMAGE=docker.io/library/rust:1.89-bookworm
ARG BASE_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p lateen-discovery --bin lateend \
 && install -D -m 0755 target/release/lateend /out/lateend

FROM ${BASE_IMAGE}
COPY --from=build /out/lateend /usr/local/bin/lateend
USER 1337:1337
EXPOSE 8080 15010 15012 15014 15017
ENTRYPOINT ["/usr/local/bin/lateend"]
