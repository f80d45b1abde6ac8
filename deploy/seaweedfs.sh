#!/usr/bin/env bash
# Builds SeaweedFS's `weed` once and caches it outside the repository: the S3 tests (internal/seaweed,
# pkg/objstore, pkg/lease) start it as a real, private S3 server.
#   deploy/seaweedfs.sh          build it unless it is already cached; print its path
#   deploy/seaweedfs.sh --path   only print the path where the tests look for it
# The binary lands in ${XDG_CACHE_HOME:-$HOME/.cache}/rpm-ingestd/weed-<version>/weed (the tests use the same
# path; RPM_INGESTD_WEED overrides it for both). `go install .../weed@version` is refused because SeaweedFS's
# go.mod has replace directives, so the module is downloaded with `go mod download`, copied and built inside it.
# The build takes several minutes on 2 cores and the binary is about 230 MB.
set -euo pipefail

# Keep in step with internal/seaweed.Version.
version=v0.0.0-20261109003541-7506e5f91cd6
module=github.com/seaweedfs/seaweedfs

cache=${XDG_CACHE_HOME:-$HOME/.cache}/rpm-ingestd
bin=${RPM_INGESTD_WEED:-$cache/weed-$version/weed}

if [ "${1:-}" = --path ]; then echo "$bin"; exit 0; fi

if [ -x "$bin" ]; then
  echo "seaweedfs: $bin is present, nothing to do"
  exit 0
fi

# Two builds at once (two checkouts, two CI jobs) would share the build directory: take turns, then look again.
mkdir -p "$cache"
exec 9>"$cache/build.lock"
if command -v flock >/dev/null 2>&1; then
  echo "seaweedfs: waiting for the build lock $cache/build.lock"
  flock 9
  if [ -x "$bin" ]; then
    echo "seaweedfs: $bin is present (built meanwhile), nothing to do"
    exit 0
  fi
fi

command -v go >/dev/null 2>&1 || { echo "seaweedfs: go is missing (run deploy/deps.sh first)" >&2; exit 1; }

echo "seaweedfs: downloading $module@$version"
dir=$(go mod download -json "$module@$version" | sed -nE 's/^[[:space:]]*"Dir": "(.*)",?$/\1/p')
if [ -z "$dir" ] || [ ! -d "$dir" ]; then
  echo "seaweedfs: go mod download gave no module directory" >&2
  exit 1
fi

# A stable build directory (not mktemp) lets Go's build cache serve an interrupted build's packages next time.
work=$cache/build-$version
rm -rf "$work"
mkdir -p "$work"
echo "seaweedfs: building weed in $work (several minutes)"
cp -r "$dir" "$work/src"
chmod -R u+w "$work/src"
start=$(date +%s)
(cd "$work/src" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -o "$work/weed" ./weed)
mkdir -p "$(dirname "$bin")"
# Move into place atomically so an interrupted build never leaves a half-written binary at the tested path.
mv "$work/weed" "$bin.tmp.$$"
mv "$bin.tmp.$$" "$bin"
rm -rf "$work"
echo "seaweedfs: built $bin in $(( $(date +%s) - start )) s"
