#!/usr/bin/env bash
# Builds ferry's release archives: static binaries for every platform below,
# each archived with README.md and LICENSE, and SHA256SUMS over them.
#
#   release/build.sh [-o DIR] [TARGET...]     # TARGET: linux/amd64, linux/arm/v7, ...
#
# Output (DIR defaults to dist/): ferry-VERSION-OS-ARCH.tar.gz (.zip for
# windows), ferry-VERSION-OS-ARCH/ferry[.exe] unpacked beside it, SHA256SUMS.
#
# Two runs on one commit with the same Go give the same bytes: the binaries
# carry no paths (-trimpath), no VCS stamp (-buildvcs=false), no build ID;
# the version, commit and date come from git, the date being the commit's,
# not the build's; archives are written by release/archive (fixed mtime,
# 0:0, entries in a fixed order, gzip without a name or time).
set -euo pipefail
cd "$(dirname "$0")/.."

out=dist
if [ "${1:-}" = "-o" ]; then out=$2; shift 2; fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(linux/amd64 linux/arm64 linux/arm/v7 darwin/amd64 darwin/arm64 windows/amd64)
fi

version=$(git describe --tags --always --dirty)
commit=$(git rev-parse HEAD)
epoch=$(git log -1 --format=%ct HEAD)
date=$(TZ=UTC git log -1 --date=format-local:%Y-%m-%dT%H:%M:%SZ --format=%cd HEAD)
ldflags="-s -w -buildid= -X main.version=$version -X main.commit=$commit -X main.date=$date"

mkdir -p "$out"
archiver=$(mktemp -d)
trap 'rm -rf "$archiver"' EXIT
go build -o "$archiver/archive" ./release/archive

archives=()
for t in "${targets[@]}"; do
  IFS=/ read -r goos goarch goarm <<<"$t"
  # linux/arm/v7 is GOARM=7; its file name says armv7.
  arch=$goarch${goarm:+$goarm}
  name=ferry-$version-$goos-$arch
  exe=ferry
  [ "$goos" = windows ] && exe=ferry.exe
  rm -rf "${out:?}/$name"
  mkdir -p "$out/$name"
  CGO_ENABLED=0 GOOS=$goos GOARCH=$goarch GOARM=${goarm#v} \
    go build -trimpath -buildvcs=false -ldflags "$ldflags" -o "$out/$name/$exe" ./cmd/ferry
  cp README.md LICENSE "$out/$name/"
  if [ "$goos" = windows ]; then
    archive=$name.zip
  else
    archive=$name.tar.gz
  fi
  "$archiver/archive" -o "$out/$archive" -mtime "$epoch" -dir "$name" \
    "$out/$name/$exe" "$out/$name/README.md" "$out/$name/LICENSE"
  archives+=("$archive")
  echo "built $out/$archive"
done

# SHA256SUMS lists the archives this run built, in sorted order.
(cd "$out" && printf '%s\n' "${archives[@]}" | LC_ALL=C sort | xargs sha256sum >SHA256SUMS)
echo "wrote $out/SHA256SUMS"
