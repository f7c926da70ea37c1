#!/usr/bin/env bash
# Builds the desktop app's Debian package on this machine: `scripts/package.sh [--release]`.
#
# Tauri's CLI comes from npm (@tauri-apps/cli, a devDependency of frontend/), so no
# `cargo install` is needed. The web UI is built first (the server crate embeds
# frontend/dist; the `embed-ui` feature embeds it in debug builds too). Without
# --release it builds the debug profile (`tauri build --debug`, what CI tests: it
# reuses the workspace's debug artifacts where the features match, and a release
# build of the whole app does not fit CI's time on 2 cores), with --release the
# `desktop` profile (release, optimized for size: what release CI ships). Prints the
# .deb's path on stdout; the bundle lands in $CARGO_TARGET_DIR (default
# target/)/{debug,desktop}/bundle/deb/.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

profile=debug
case "${1:-}" in
  --release) profile=desktop ;;
  "") ;;
  *) die "usage: scripts/package.sh [--release]" ;;
esac
have dpkg-deb || die "dpkg-deb is missing: building a .deb needs Debian's dpkg"
# Only the .deb's path goes to stdout.
{ ensure_desktop_deps; build_frontend; } >&2
tauri="$ROOT/frontend/node_modules/@tauri-apps/cli/tauri.js"
[ -f "$tauri" ] || die "Tauri's CLI is missing: run (cd frontend && npm ci)"

target="${CARGO_TARGET_DIR:-$ROOT/target}"
out="$target/$profile/bundle/deb"
rm -rf "$out"
# embed-ui: a debug build reads the web UI from frontend/dist on disk otherwise, which
# the installed app does not have.
args=(build --bundles deb --ci --features embed-ui)
[ "$profile" = debug ] && args+=(--debug)
args+=(-- --locked) # to cargo: Cargo.lock as checked in
[ "$profile" = desktop ] && args+=(--profile desktop)
log "building the .deb ($profile profile) with $(node "$tauri" --version)"
start=$(date +%s)
# The CLI finds src-tauri/tauri.conf.json from the repository root.
node "$tauri" "${args[@]}" >&2
deb=$(ls "$out"/*.deb 2>/dev/null | head -n 1)
[ -n "$deb" ] || die "tauri build made no .deb in $out"
log "built $deb ($(du -h "$deb" | cut -f1), $(( $(date +%s) - start )) s)"
printf '%s\n' "$deb"
