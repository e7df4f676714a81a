#!/usr/bin/env bash
# Builds the container image ferry:VERSION (and ferry:latest) from a
# release's linux binary, with nothing pulled from any registry:
#
#   release/image.sh [-o DIR] [ARCH]    # DIR: release/build.sh's output (dist/); ARCH: amd64 (default), arm64, armv7
#
# Two steps, because a file capability set before a Dockerfile's COPY does
# not survive the COPY:
#  1. `docker import` of a tar written here (release/archive): /ferry with
#     cap_net_bind_service=+ep as an xattr, and this host's CA roots as
#     /etc/ssl/certs/ca-certificates.crt. Docker applies the tar as the
#     image's one layer, xattr included: ferry-rootfs:VERSION.
#  2. `docker build` of deploy/Dockerfile on top (FROM that image, local):
#     the user, ports, healthcheck, entrypoint.
set -euo pipefail
cd "$(dirname "$0")/.."

out=dist
if [ "${1:-}" = "-o" ]; then out=$2; shift 2; fi
arch=${1:-amd64}
version=$(git describe --tags --always --dirty)
bin=$out/ferry-$version-linux-$arch/ferry
[ -x "$bin" ] || { echo "release/image.sh: no $bin: run release/build.sh linux/$arch first" >&2; exit 1; }
roots=/etc/ssl/certs/ca-certificates.crt
[ -s "$roots" ] || { echo "release/image.sh: no $roots: install ca-certificates" >&2; exit 1; }
platform=linux/$arch
[ "$arch" = armv7 ] && platform=linux/arm/v7

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
epoch=$(git log -1 --format=%ct HEAD)
go run ./release/archive -o "$tmp/rootfs.tar" -mtime "$epoch" -cap "$bin" \
  "$bin=ferry" "$roots=etc/ssl/certs/ca-certificates.crt"
docker import --platform "$platform" "$tmp/rootfs.tar" "ferry-rootfs:$version" >/dev/null

# The classic builder: Debian's docker.io has no BuildKit (buildx), and this
# Dockerfile needs nothing of it. The context is the Dockerfile alone.
DOCKER_BUILDKIT=0 docker build -q --platform "$platform" --build-arg "ROOTFS=ferry-rootfs:$version" \
  -t "ferry:$version" -t ferry:latest - <deploy/Dockerfile >/dev/null
echo "built ferry:$version and ferry:latest ($platform)"
