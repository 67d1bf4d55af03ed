# Prism gateway image: built with the same scripts as `make build`, run on a slim Debian as an
# unprivileged numeric user.
#
#   docker build -t prism .
#   docker run --rm -p 8080:8080 -v "$PWD/config/prism.yaml:/app/config.yaml:ro" prism
#
# The project is developed with Swift 6.3.1 on Debian 12 (bookworm); swift:6.3-bookworm is the
# official image of the current 6.3.x release on that same Debian. Pin a patch release with
# --build-arg SWIFT_IMAGE=docker.io/library/swift:6.3.1-bookworm.
#
# Stages: `build` compiles dist/ from source; `runtime` is the image. `make image-test` builds only
# the runtime stage from an existing dist/ (--build-arg DIST=<an image holding /src/dist>) on a
# base made with debootstrap (--build-arg RUNTIME_IMAGE=...), since no registry is reachable there.
ARG SWIFT_IMAGE=docker.io/library/swift:6.3-bookworm
ARG RUNTIME_IMAGE=docker.io/library/debian:bookworm-slim
ARG DIST=build

# ---- build ------------------------------------------------------------------------------
FROM ${SWIFT_IMAGE} AS build
WORKDIR /src
# install.sh alone first, so that the package layer survives source changes.
COPY scripts/install.sh scripts/install.sh
RUN scripts/install.sh --build-only
COPY . /src
# (install.sh again is a no-op check.) build.sh leaves dist/prism-gateway, dist/plugins/*.so and
# dist/lib (the Swift runtime libraries they load), all stripped.
RUN scripts/install.sh --build-only && scripts/build.sh --bundle-runtime --no-tests

# The dist/ the runtime stage copies: the build stage above unless DIST names another image.
FROM ${DIST} AS dist

# ---- runtime -----------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE} AS runtime
COPY scripts/install.sh /tmp/install.sh
# --runtime: only the shared libraries the binary loads (libcurl4, libyaml-0-2, libffi8,
# libhiredis0.14, libsqlite3-0, libssl3), ca-certificates for HTTPS upstreams, curl for the
# health check.
RUN /tmp/install.sh --runtime && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /tmp/install.sh \
 && groupadd --system --gid 10001 prism \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/prism --no-create-home \
            --shell /usr/sbin/nologin prism \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/prism

COPY --from=dist /src/dist/prism-gateway /app/prism-gateway
COPY --from=dist /src/dist/plugins/ /app/plugins/
COPY --from=dist /src/dist/lib/ /app/lib/
COPY --from=dist /src/dist/prices.json /app/prices.json
COPY --from=dist /src/dist/ui/ /app/ui/
# A working default (the offline mock provider); mount your own over it.
COPY config/prism.yaml /app/config.yaml
# GNUTLS_NO_IMPLICIT_INIT: Debian's libcurl (OpenSSL flavour) also pulls in GnuTLS, through
# librtmp and libldap, for rtmp(s) and ldaps URLs, which the gateway never fetches (both call
# gnutls_global_init themselves when they do). GnuTLS otherwise initializes itself as it is
# loaded: about 0.9 MiB of resident memory for nothing (bench/README.md, stop 36). The variable
# reaches whatever else runs in the container too: a GnuTLS program there that relies on the
# implicit initialization would have to unset it.
ENV LD_LIBRARY_PATH=/app/lib \
    PRISM_DATA_DIR=/var/lib/prism \
    GNUTLS_NO_IMPLICIT_INIT=1

# Fail the build here rather than at start-up if a library is missing or a plugin is refused.
RUN if ldd /app/prism-gateway /app/plugins/*.so | grep 'not found'; then exit 1; fi \
 && /app/prism-gateway plugins | tee /tmp/plugins.txt \
 && if grep '^refused ' /tmp/plugins.txt; then exit 1; fi \
 && rm /tmp/plugins.txt

# Numeric, so Kubernetes' runAsNonRoot can check it. Everything the gateway writes (the admin
# store, admin.store relative to $PRISM_DATA_DIR) goes to the volume; the root filesystem can be
# read-only.
USER 10001:10001
WORKDIR /var/lib/prism
VOLUME ["/var/lib/prism"]

# The gateway reads /app/config.yaml (mount yours there). server.port must stay 8080 (the
# default) for EXPOSE and the health check below, and server.host 0.0.0.0 (the default).
# Stopping: give `docker stop -t` / stop_grace_period / terminationGracePeriodSeconds at least
# server.drain_delay + server.shutdown_timeout (README, Deployment).
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8080/healthz"]
CMD ["/app/prism-gateway", "--config", "/app/config.yaml"]
