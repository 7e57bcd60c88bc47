# syntax=docker/dockerfile:1
# clink-gateway image: built on Debian 12 with Debian's own toolchain and libraries (the same
# packages as tools/install_deps.sh), run on debian:bookworm-slim with only the shared libraries
# the binary links, as a non-root user.
#
#   docker build -t registry.example.com/payments/clink-gateway:0.1.0 .   (BuildKit: RUN --mount)
#   tools/build_image.sh      (no Docker: buildah, from a clean export of the commit)
#
# The runtime package list is checked against `ldd` of the built binary by //k8s:dockerfile_test
# (each shared library the gateway needs must come from a package installed below), which reads
# this file; //k8s:image_test builds the image with tools/build_image.sh, inspects it and runs it.
#
# Pin the base images by digest in your registry mirror for reproducible builds
# (debian:bookworm@sha256:..., debian:bookworm-slim@sha256:...); both stages must stay on the
# same Debian release, or the runtime libraries will not match the ones the binary was linked to.

############################################################################ build
FROM debian:bookworm AS build
WORKDIR /src
# Dependencies first (their own layer, cached until install_deps.sh changes).
# CLINK_GATEWAY_IN_IMAGE_BUILD: only what building the binary needs (no test, fuzzing, image or
# operations tools, no npm); this stage is thrown away.
COPY tools/install_deps.sh tools/install_deps.sh
RUN CLINK_GATEWAY_IN_IMAGE_BUILD=1 tools/install_deps.sh && rm -rf /var/lib/apt/lists/*
COPY . .
# The build context has no .git (.dockerignore), so the commit the binary reports in
# clink_gateway_build_info comes from a build argument:
#   docker build --build-arg GIT_COMMIT="$(git rev-parse HEAD)" .
ARG GIT_COMMIT=""
# -c opt is also .bazelrc's default. The binary is copied out of bazel-bin (a symlink into
# Bazel's output base) in the same step; debug sections are stripped (symbols kept for stack
# traces). Bazel's disk cache is a build cache mount (BuildKit, buildah): kept between builds on
# the same machine, never in a layer, so a new commit recompiles only what changed.
RUN --mount=type=cache,id=clink-gateway-bazel-disk-cache,target=/root/.cache/bazel-disk \
    printf '#!/bin/sh\n[ -z "%s" ] || echo "STABLE_GIT_COMMIT %s"\n' "$GIT_COMMIT" "$GIT_COMMIT" \
      >/tmp/workspace_status.sh \
 && chmod +x /tmp/workspace_status.sh \
 && bazel build -c opt --disk_cache=/root/.cache/bazel-disk \
      --workspace_status_command=/tmp/workspace_status.sh //server:clink_gateway \
 && install -D -m 0755 bazel-bin/server/clink_gateway /out/clink_gateway \
 && strip --strip-debug /out/clink_gateway \
 && bazel shutdown

############################################################################ runtime
FROM debian:bookworm-slim AS runtime
# Runtime libraries of the gateway: one package per shared library in
# `readelf -d bazel-bin/server/clink_gateway | grep NEEDED` (libc6 and libgcc-s1 are in every
# Debian image); apt brings their own dependencies. ca-certificates: Clink's TLS certificate
# is verified against the system store.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates \
      libabsl20220623 \
      libc-ares2 \
      libcivetweb1 \
      libcurl4 \
      libgrpc++1.51 \
      libgrpc29 \
      libhiredis0.14 \
      libicu72 \
      libjemalloc2 \
      libprometheus-cpp-core1.0 \
      libprometheus-cpp-pull1.0 \
      libprotobuf32 \
      libre2-9 \
      libsqlite3-0 \
      libssl3 \
      libstdc++6 \
      zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 clink \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --no-log-init \
      --shell /usr/sbin/nologin clink \
 && install -d -o 10001 -g 10001 -m 0700 /var/lib/clink-gateway
COPY --from=build /out/clink_gateway /usr/local/bin/clink_gateway
ARG GIT_COMMIT=""
LABEL org.opencontainers.image.title="clink-gateway" \
      org.opencontainers.image.description="gRPC gateway to the Clink payments REST API" \
      org.opencontainers.image.revision="${GIT_COMMIT}"
# Numeric, so that Kubernetes' runAsNonRoot can verify it (k8s/base/deployment.yaml runs as the
# same 10001:10001).
USER 10001:10001
# gRPC (--grpc_listen), Prometheus metrics (--metrics_listen) and Clink's webhooks
# (--webhook_listen).
EXPOSE 50051 9464 8080
# SIGTERM drains (health NOT_SERVING, in-flight calls finish within --drain_timeout).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/clink_gateway"]
