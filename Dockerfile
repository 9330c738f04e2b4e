# syntax=docker/dockerfile:1
#
# The shopfleet operator image: a release build of the `shopfleet` binary on
# distroless (glibc, CA certificates, no shell), running as UID/GID 65532.
#
#   docker build -t shopfleet:0.1.0 .
#   kind load docker-image shopfleet:0.1.0      # a laptop cluster, see docs/install.md
#
# Not built in this repository's CI: its machines reach package registries
# only, not container image registries. The file is kept standard (BuildKit
# cache mounts, nothing project-specific beyond the binary's name) so that any
# image builder with registry access builds it as it is.

FROM rust:1.95-bookworm AS builder
WORKDIR /src
# Everything the build reads: the manifests, the sources, the kubesim crate,
# and the samples `shopfleet simulate` embeds (include_str!). See .dockerignore.
COPY . .
# The operator alone by default (`--no-default-features`: no simulated
# cloud, no in-process API server, no test utilities). A demo image that runs
# `--cloud simulated` (a laptop cluster, docs/install.md) adds the
# simulation stack: `docker build --build-arg FEATURES=simulation -t
# shopfleet:0.1.0-simulation .`
ARG FEATURES=""
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --no-default-features ${FEATURES:+--features "$FEATURES"} \
    && install -D -m 0755 target/release/shopfleet /out/shopfleet

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/shopfleet /shopfleet
# 65532 is distroless' "nonroot"; the chart runs the pod with the same IDs.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/shopfleet"]
CMD ["run"]
