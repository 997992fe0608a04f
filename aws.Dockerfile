# translation-front: a multi-stage build of one static-asset-embedding binary.
#
# Runtime base: distroless "cc" (glibc, libgcc, CA certificates, no shell, no
# package manager, nonroot user 65532). The binary links glibc dynamically
# (the AWS SDK's TLS stack builds C code), so "static" or scratch would need a
# musl toolchain for little gain: the cc base adds ~9 MB compressed.
#
#   docker build -f aws.Dockerfile -t translation-front:0.1.0 .

FROM rust:1.95.0-slim-bookworm AS builder
WORKDIR /src

# Dependencies first, in their own layer: rebuilt only when Cargo.toml/lock change.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked --bin translation-front \
    && rm -rf src

# The service itself; templates and static assets are compiled into the binary.
COPY src ./src
COPY templates ./templates
COPY static ./static
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --bin translation-front

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /src/target/release/translation-front /translation-front
USER 65532:65532
# 8501: UI and API (behind the load balancer); 9090: Prometheus metrics.
EXPOSE 8501 9090
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 CMD ["/translation-front", "healthcheck"]
ENTRYPOINT ["/translation-front"]
