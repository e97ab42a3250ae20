# wisp: one image, one process (`wisp serve`), data on a volume at /data.
# Build: docker build -t wisp .   Run: docker run -p 8080:8080 -v wisp-data:/data wisp

FROM rust:1.95.0-bookworm AS build
WORKDIR /src
# The guest components (the onnx-runner template embedded in the binary) build for this
# target inside `cargo build`.
RUN rustup target add wasm32-wasip2
COPY . .
RUN cargo build --release --locked -p wisp \
 && cp target/release/wisp /usr/local/bin/wisp

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /data wisp \
 && mkdir -p /data && chown wisp /data
COPY --from=build /usr/local/bin/wisp /usr/local/bin/wisp
USER wisp
ENV WISP_DATA=/data \
    WISP_LISTEN=0.0.0.0:8080 \
    RUST_LOG=info
VOLUME /data
EXPOSE 8080
STOPSIGNAL SIGTERM
CMD ["wisp", "serve"]
