# syntax=docker/dockerfile:1

# --- build -------------------------------------------------------------------
# SQLite, libpq and OpenSSL are compiled from vendored sources by crate
# features, so the builder needs nothing beyond the stock Rust image.
FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
    && install -m 0755 target/release/otpgate /usr/local/bin/otpgate

# --- runtime -----------------------------------------------------------------
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 otpgate \
    && useradd --system --uid 10001 --gid otpgate --home-dir /data --shell /usr/sbin/nologin otpgate \
    && mkdir -p /data \
    && chown otpgate:otpgate /data
COPY --from=builder /usr/local/bin/otpgate /usr/local/bin/otpgate

ENV OTPGATE_BIND=0.0.0.0:8080 \
    OTPGATE_DATA_DIR=/data
WORKDIR /data
VOLUME /data
USER otpgate:otpgate
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/otpgate"]
CMD ["serve"]
