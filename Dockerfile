# Prism gateway image: build with the same scripts as `make build`, run on a slim Debian.
#
#   docker build -t prism .
#   docker run --rm -p 8080:8080 -v "$PWD/config/prism.yaml:/app/config.yaml:ro" prism
#
# The project is developed with Swift 6.3.1 on Debian 12 (bookworm); swift:6.3-bookworm is the
# official image of the current 6.3.x release on that same Debian. Pin a patch release with
# --build-arg SWIFT_IMAGE=swift:6.3.1-bookworm.
ARG SWIFT_IMAGE=swift:6.3-bookworm

# ---- build ------------------------------------------------------------------------------
FROM ${SWIFT_IMAGE} AS build
WORKDIR /src
# install.sh alone first, so that the package layer survives source changes.
COPY scripts/install.sh scripts/install.sh
RUN scripts/install.sh --build-only
COPY . /src
# (install.sh again is a no-op check.) build.sh leaves dist/prism-gateway and dist/plugins/*.so;
# --bundle-runtime copies the Swift runtime libraries they load into dist/lib.
RUN scripts/install.sh --build-only && scripts/build.sh --bundle-runtime

# ---- runtime -----------------------------------------------------------------------------
FROM debian:bookworm-slim
COPY scripts/install.sh /tmp/install.sh
# --runtime: only the shared libraries the binary loads (libcurl4, libyaml-0-2, libffi8, libhiredis0.14, libsqlite3-0),
# ca-certificates for HTTPS upstreams, and curl for the health check.
RUN /tmp/install.sh --runtime && rm -rf /var/lib/apt/lists/* /tmp/install.sh

COPY --from=build /src/dist/prism-gateway /app/prism-gateway
COPY --from=build /src/dist/plugins/ /app/plugins/
COPY --from=build /src/dist/lib/ /app/lib/
# A working default (the offline mock provider); mount your own over it.
COPY config/prism.yaml /app/config.yaml
ENV LD_LIBRARY_PATH=/app/lib

# Fail the build here rather than at start-up if a library is missing or a plugin is refused.
RUN if ldd /app/prism-gateway /app/plugins/*.so | grep 'not found'; then exit 1; fi \
 && /app/prism-gateway plugins | tee /tmp/plugins.txt \
 && if grep '^refused ' /tmp/plugins.txt; then exit 1; fi \
 && rm /tmp/plugins.txt

RUN useradd --system --uid 10001 --home-dir /app --no-create-home --shell /usr/sbin/nologin prism
USER prism
WORKDIR /app

# The gateway reads /app/config.yaml (mount yours there). server.port must stay 8080 (the
# default) for EXPOSE and the health check below, and server.host 0.0.0.0 (the default).
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD curl -fsS -o /dev/null http://127.0.0.1:8080/healthz || exit 1
CMD ["/app/prism-gateway", "--config", "/app/config.yaml"]
