# The one fogflow image: every role (broker, discovery, master, worker, designer) runs from it, chosen with
# `--role`. It holds only the `fogflow` binary, the shared libraries it links (glibc, libgcc_s, the loader),
# the CA certificates, a minimal /etc, /tmp and /data (owned by uid 10001): no shell, no package manager.
#
# Build (no registry is needed or used: the base is `scratch`, the content a root filesystem made locally):
#
#   cargo build --release \
#     && scripts/image-rootfs.sh target/release/fogflow target/image/rootfs \
#     && docker build -t fogflow:dev -f Dockerfile target/image
#
# Run a stand-alone broker (state in the container's /data; mount a volume there to keep it):
#
#   docker run --rm -p 8070:8070 -e FOGFLOW__BROKER__USE_DISCOVERY=false fogflow:dev
#
# Configuration: FogFlow's config.json is read from the working directory, so mount it at /config.json
# (`-v $PWD/config.json:/config.json:ro`), or set FOGFLOW__SECTION__KEY environment variables
# (docs/configuration.md). Put secrets (rabbitmq.password) in a mounted file or a Kubernetes Secret, never here.
#
# No HEALTHCHECK: a scratch image has no shell or curl to run one, and the binary has no probe subcommand.
# Every role serves GET /health (liveness) and GET /ready (readiness) on its HTTP port; Kubernetes uses
# those as httpGet probes, and `docker run --health-cmd` is not possible without a client in the image.
#
# fogflow runs as PID 1 and installs its own SIGTERM/SIGINT handlers, so `docker stop` and Kubernetes
# shut it down gracefully (exit code 0 within shutdown_grace_secs, default 10 s).
FROM scratch

LABEL org.opencontainers.image.title="fogflow" \
      org.opencontainers.image.description="FogFlow, the FIWARE fog-computing framework, as one Rust binary" \
      org.opencontainers.image.licenses="BSD-4-Clause"

COPY rootfs/ /
# COPY makes every copied file root-owned, but a directory that `COPY --chown` creates gets the given owner:
# /data (the stores, `--data-dir /data`) is created, owned by the unprivileged user, from the empty rootfs/tmp.
COPY --chown=10001:10001 rootfs/tmp/ /data/

USER 10001:10001
WORKDIR /

# broker, discovery, designer, master (NGSI agent)
EXPOSE 8070 8090 8080 1060

ENTRYPOINT ["/fogflow"]
CMD ["--role", "broker", "--data-dir", "/data"]
