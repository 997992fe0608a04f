# translation-front: a multi-stage build of one static-asset-embedding binary
# and the RDKit libraries it links.
#
# Runtime base: distroless "cc" (glibc, libgcc, libstdc++, CA certificates, no
# shell, no package manager, nonroot user 65532). The binary links glibc and
# Debian's RDKit dynamically, so the runtime stage gets the binary's shared-
# library closure from the build stage (both are Debian 12): ~19 MB of RDKit,
# Boost, Cairo and FreeType on top of the cc base.
#
#   docker build -f aws.Dockerfile -t translation-front:0.1.0 .

FROM rust:1.95.0-slim-bookworm AS builder
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# RDKit (canonical SMILES, structure drawings) and what compiling against it
# needs: the C++ compiler for the bridge, Boost's headers, Cairo's (PNG drawings).
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        g++=4:12.2.0-3 \
        librdkit-dev=202209.3-1 \
        libboost-dev=1.74.0.3 \
        libboost-serialization-dev=1.74.0.3 \
        libcairo2-dev=1.16.0-7 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src

# Dependencies first, in their own layer: rebuilt only when Cargo.toml/lock
# change. (build.rs comes with the sources: it compiles the RDKit bridge.)
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked --bin translation-front \
    && rm -rf src

# The service itself; templates and static assets are compiled into the binary.
COPY build.rs ./
COPY src ./src
COPY templates ./templates
COPY static ./static
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --bin translation-front

# The binary's shared libraries, at their own paths, less those the runtime
# base already has (glibc, libgcc, libstdc++).
RUN mkdir -p /libs \
    && ldd target/release/translation-front \
    | awk '$3 ~ /^\// { print $3 }' \
    | grep -v -E '/(libc|libm|libdl|librt|libpthread|libgcc_s|libstdc\+\+)\.so' \
    | xargs -r cp --parents -L -t /libs

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /libs/ /
COPY --from=builder /src/target/release/translation-front /translation-front
# Every allocation, RDKit's C++ ones included, goes to mimalloc (compiled in and
# replacing malloc for the process), so glibc's MALLOC_* settings do nothing here;
# MIMALLOC_PURGE_DELAY (ms, default 100 as the binary sets it) tunes how soon
# freed memory goes back to the system.
USER 65532:65532
# 8501: UI and API (behind the load balancer); 9090: Prometheus metrics.
EXPOSE 8501 9090
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 CMD ["/translation-front", "healthcheck"]
ENTRYPOINT ["/translation-front"]
