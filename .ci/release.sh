#!/usr/bin/env bash
# release/build.sh is reproducible: one target built twice, once here with
# the usual build cache into dist/ (which .ci/image.sh then uses), once from
# a fresh clone at another path with an empty build cache, must give the
# same archive and SHA256SUMS, byte for byte. Then checks the archive's
# contents and what `ferry version` says.
set -euo pipefail
cd "$(dirname "$0")/.."

. .ci/lib.sh
target=linux/amd64
commit=$(git rev-parse HEAD)

start=$SECONDS
release/build.sh -o dist "$target" >"$work/build-a.log" 2>&1 || fail "release/build.sh (first)"
git clone -q . "$work/src"
(cd "$work/src" && GOCACHE="$work/gocache" release/build.sh -o "$work/b" "$target") >"$work/build-b.log" 2>&1 \
  || fail "release/build.sh (second, fresh clone and cache)"
echo "two builds of $target in $((SECONDS - start)) s"

archive=ferry-$(git describe --tags --always --dirty)-linux-amd64.tar.gz
[ -s "dist/$archive" ] || fail "release/build.sh made no dist/$archive"
cmp "dist/$archive" "$work/b/$archive" || fail "two builds of $archive differ"
cmp dist/SHA256SUMS "$work/b/SHA256SUMS" || fail "two builds' SHA256SUMS differ"
(cd dist && sha256sum -c SHA256SUMS) || fail "SHA256SUMS does not match"
echo "identical: $archive and SHA256SUMS"

listing=$(tar -tvzf "dist/$archive")
echo "$listing"
name=${archive%.tar.gz}
for f in ferry README.md LICENSE; do
  grep -q " root/root .* $name/$f\$" <<<"$listing" || grep -q " 0/0 .* $name/$f\$" <<<"$listing" \
    || fail "$archive: no $name/$f owned by 0:0"
done

bin=dist/$name/ferry
file "$bin" 2>/dev/null | grep -q 'statically linked' || ! command -v file >/dev/null || fail "$bin is not static"
v=$("$bin" version)
echo "$v"
grep -q "(commit $commit, [0-9T:-]*Z; go" <<<"$v" || fail "ferry version does not name commit $commit and its date: $v"
