# Lookalike in a container. The build stage runs scripts/image-build: scripts/setup (ONNX Runtime
# from npm; the default model from ./models when it is there, else from the ONNX model zoo; both
# checksum-pinned), then the binary; any failing step fails the build. `make test` checks this file (internal/archtest) and runs the same
# steps without a container builder (scripts/image-check), or builds and starts the image where one
# is available. Mount your own models at /models (LOOKALIKE_MODEL_DIR) and your data at /data: a
# named volume starts out owned by the image's user (uid 65534); a host folder must be writable by it
# (chown 65534:65534 DIR), or run with --user set to the folder's owner.
FROM golang:1.26-bookworm AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN apt-get update \
    && apt-get install -y --no-install-recommends libturbojpeg0-dev libwebp-dev pkg-config npm curl \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN VERSION="$VERSION" scripts/image-build /out

FROM debian:bookworm-slim
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# /data is created owned by the user the server runs as, before VOLUME: a new named volume copies
# the owner, so the server can create its store there.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libturbojpeg0 libwebp7 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /data \
    && chown 65534:65534 /data
COPY --from=build /out/lookalike /usr/local/bin/lookalike
COPY --from=build /out/lib/libonnxruntime.so.1 /usr/local/lib/libonnxruntime.so.1
COPY --from=build /out/models /models
COPY configs/lookalike.yaml /etc/lookalike/lookalike.yaml
ENV ONNXRUNTIME_LIB=/usr/local/lib/libonnxruntime.so.1 \
    LOOKALIKE_MODEL_DIR=/models \
    LOOKALIKE_DATA_DIR=/data \
    LOOKALIKE_DEMO_MODE=off
USER 65534:65534
VOLUME /data
EXPOSE 8080
# Ready, not only alive: the model is warm and the indexes are loaded (GET /readyz). No curl in the
# image: the binary probes itself, on the port the config gives serve.
HEALTHCHECK --interval=30s --timeout=5s --start-period=2m --retries=3 \
    CMD ["lookalike", "healthcheck", "--config", "/etc/lookalike/lookalike.yaml"]
ENTRYPOINT ["lookalike"]
CMD ["serve", "--config", "/etc/lookalike/lookalike.yaml"]
