#!/usr/bin/env bash
# The installed app, tested as installed, in a clean Debian container:
# `scripts/package-test.sh [DEB]` (run by scripts/test.sh after the desktop test;
# DEB defaults to what scripts/package.sh builds).
#
# 1. builds the test image (scripts/package-test/Dockerfile) from debian:bookworm-slim
#    with the .deb's declared dependencies, from the Debian mirror (cached layers);
# 2. in its `deps` stage (only those dependencies): `dpkg -i` and `ldd` of the
#    installed program, so a dependency missing from the package's control file fails;
# 3. in its `test` stage, without network: scripts/package-test/in-container.sh
#    installs the .deb with `dpkg -i`, starts the app from its desktop entry under
#    Xvfb, checks the window, the tray and the in-process server, quits it, then
#    `dpkg -r` and checks that no file of the package is left and the user's data
#    dir is intact. Screenshot and logs land in artifacts/package/.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

deb=${1:-}
if [ -z "$deb" ]; then
  deb=$(ls "${CARGO_TARGET_DIR:-$ROOT/target}"/debug/bundle/deb/*.deb 2>/dev/null | head -n 1 || true)
  [ -n "$deb" ] || deb=$(bash scripts/package.sh)
fi
[ -f "$deb" ] || die "$deb is not a file"
deb=$(realpath "$deb")
have docker || die "docker is missing (see scripts/ensure-docker.sh)"

ARTIFACTS="$ROOT/artifacts/package"
rm -rf "$ARTIFACTS"; mkdir -p "$ARTIFACTS"
depends=$(dpkg-deb -f "$deb" Depends)
image=anycode-package-test
log "package test: the test image (Depends: $depends)"
# Host networking for the build's apt (a bridge is not needed to reach the mirror);
# the test itself runs with no network at all.
for stage in deps test; do
  docker build -q --network host --target "$stage" --build-arg DEPENDS="$depends" \
    -t "$image:$stage" scripts/package-test >"$ARTIFACTS/build-$stage.log" 2>&1 \
    || { cat "$ARTIFACTS/build-$stage.log" >&2; die "building the $stage image failed"; }
done

name="anycode-package-test-$$"
cleanup() { docker rm -f "$name" "$name-deps" >/dev/null 2>&1 || true; }
trap cleanup EXIT

log "package test: dpkg -i with only the package's dependencies"
prog=$(dpkg-deb -c "$deb" | awk '{print $6}' | sed -n 's|^\.\{0,1\}/\{0,1\}usr/bin/\(.\)|/usr/bin/\1|p' | head -n 1)
[ -n "$prog" ] || die "the package installs nothing under /usr/bin"
docker run --rm --name "$name-deps" --network none -v "$deb:/pkg/app.deb:ro" "$image:deps" \
  sh -c "dpkg -i /pkg/app.deb >/dev/null && ldd $prog" >"$ARTIFACTS/ldd.txt" 2>&1 \
  || { cat "$ARTIFACTS/ldd.txt" >&2; die "dpkg -i in a Debian with only the package's dependencies failed"; }
if grep -q 'not found' "$ARTIFACTS/ldd.txt"; then
  grep 'not found' "$ARTIFACTS/ldd.txt" >&2
  die "$prog needs libraries that the package's Depends do not bring"
fi

log "package test: install, start from the desktop entry, check, remove"
docker run --rm --init --name "$name" --network none \
  -v "$deb:/pkg/$(basename "$deb"):ro" -v "$ROOT/scripts/package-test:/test:ro" -v "$ARTIFACTS:/artifacts" \
  -e DEB="/pkg/$(basename "$deb")" -e HERE=/test -e ARTIFACTS=/artifacts \
  "$image:test" bash /test/in-container.sh
log "package test passed; screenshot in artifacts/package/installed-app.png"
