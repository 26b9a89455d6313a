# Lookalike in a container. The build stage runs scripts/setup, which fetches ONNX Runtime from npm
# and the default model from the ONNX model zoo (checksum-pinned); mount your own models at /models
# (LOOKALIKE_MODEL_DIR) and your data at /data.
FROM golang:1.26-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends libturbojpeg0-dev libwebp-dev pkg-config npm curl \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN scripts/setup && CGO_ENABLED=1 go build -trimpath -o /out/lookalike ./cmd/lookalike \
    && mkdir -p /out/models && cp models/* /out/models/ 2>/dev/null || true

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends libturbojpeg0 libwebp7 ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/lookalike /usr/local/bin/lookalike
COPY --from=build /src/.cache/onnxruntime/1.30.0/libonnxruntime.so.1 /usr/local/lib/libonnxruntime.so.1
COPY --from=build /out/models /models
COPY configs/lookalike.yaml /etc/lookalike/lookalike.yaml
ENV ONNXRUNTIME_LIB=/usr/local/lib/libonnxruntime.so.1 \
    LOOKALIKE_MODEL_DIR=/models \
    LOOKALIKE_DATA_DIR=/data \
    LOOKALIKE_DEMO_MODE=off
VOLUME /data
EXPOSE 8080
USER 65534:65534
ENTRYPOINT ["lookalike"]
CMD ["serve", "--config", "/etc/lookalike/lookalike.yaml"]
