# lateen: the command line (Istio's istioctl), whose `lateen operator run` is the in-cluster
# operator. Image: <hub>/lateen-cli:<tag>, the name `lateen operator init|dump` renders.
# Build with scripts/build-images.sh.
#
# The operator Deployment gives `command: [lateen]` and `args: [operator, run, ...]`, so
# `lateen` must be on PATH; the entrypoint is the same binary for `docker run IMAGE version`.
# Runs as UID/GID 1337 like the rendered securityContext.

ARG RUST_IMAGE=docker.io/library/rust:1.89-bookworm
ARG BASE_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p lateen-cli --bin lateen \
 && install -D -m 0755 target/release/lateen /out/lateen

FROM ${BASE_IMAGE}
COPY --from=build /out/lateen /usr/local/bin/lateen
USER 1337:1337
ENTRYPOINT ["/usr/local/bin/lateen"]
