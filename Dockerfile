# syntax=docker/dockerfile:1
# One image, one binary: `showpass <ingest|projector|api|migrate|send|...>`.
# Builds without a database: no SQL is checked against a live server at compile time (the
# migrations are embedded, the queries are checked by the integration tests).

FROM rust:1-bookworm AS chef
RUN cargo install cargo-chef --locked --version ^0.1
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
# Dependencies first: this layer is cached until Cargo.toml or Cargo.lock change.
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json -p showpass
COPY . .
RUN cargo build --release --locked -p showpass && cp target/release/showpass /usr/local/bin/showpass

FROM debian:bookworm-slim AS runtime
# CA roots for TLS connections to a managed PostgreSQL or NATS; nothing else is installed.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home showpass
COPY --from=builder /usr/local/bin/showpass /usr/local/bin/showpass
USER 10001
EXPOSE 8080 8081
ENV RUST_LOG=info LOG_FORMAT=json
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["showpass", "healthcheck", "--url", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["showpass"]
CMD ["ingest"]
