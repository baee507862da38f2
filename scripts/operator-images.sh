#!/usr/bin/env bash
# Builds the images of fogflow's built-in operators for the Docker runtime, with no registry: each image is the
# `FROM scratch` fogflow image (../Dockerfile, root filesystem from image-rootfs.sh) with its entrypoint set to
# `fogflow operator <name>`, which keeps FogFlow's operator contract (listens on $myport, configured by
# $adminCfg). The seeded operators name these images (`fogflow/converter`, …), so a worker with
# `worker.runtime = docker` runs them as soon as they are built on its node.
#
#   scripts/operator-images.sh [--strip] BINARY [TAG]
#
# Builds `fogflow:TAG` and `fogflow/{dummy,converter,counter,anomaly}:TAG` (TAG defaults to `latest`), e.g.
#
#   cargo build --release && scripts/operator-images.sh target/release/fogflow
#
# On other nodes: `docker save fogflow/converter:latest | ssh node docker load`, or push them to a registry
# the workers can reach (the worker pulls a missing image, with `worker.registry` credentials when set).
# Needs bash, docker, and what image-rootfs.sh needs.
set -euo pipefail

die() {
    echo "operator-images: $*" >&2
    exit 1
}

strip=()
if [[ ${1:-} == --strip ]]; then
    strip=(--strip)
    shift
fi
[[ $# -ge 1 && $# -le 2 ]] || die "usage: $0 [--strip] BINARY [TAG]"
binary=$1
tag=${2:-latest}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The built-in operators (`fogflow operator --help` lists them).
operators=(dummy converter counter anomaly)

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
bash "$here/image-rootfs.sh" "${strip[@]}" "$binary" "$context/rootfs"
docker build -q -t "fogflow:$tag" -f "$here/../Dockerfile" "$context" >/dev/null
echo "built fogflow:$tag"
for operator in "${operators[@]}"; do
    printf '%s\n' \
        "FROM fogflow:$tag" \
        "LABEL org.opencontainers.image.title=\"fogflow/$operator\" fogflow.operator=\"$operator\"" \
        "ENTRYPOINT [\"/fogflow\", \"operator\", \"$operator\"]" \
        "CMD []" |
        docker build -q -t "fogflow/$operator:$tag" - >/dev/null
    echo "built fogflow/$operator:$tag"
done
