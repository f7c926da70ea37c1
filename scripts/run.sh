#!/usr/bin/env bash
# Sets up everything AnyCode needs and runs it: `scripts/run.sh [serve options]`.
#
# Installs what is missing (on Debian/Ubuntu as root: the build tools and docker.io),
# makes sure a Docker engine answers, builds the web UI, the `anycode` binary and
# the sandbox image (with progress), then runs `anycode serve` with the current git
# repository as the first project and prints http://127.0.0.1:7878/login?code=… (a one-time login link)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ensure_build_tools
bash "$ROOT/scripts/ensure-docker.sh"
build_frontend
log "building anycode (release; the first build takes a few minutes)"
(cd "$ROOT" && cargo build --release --locked -p anycode)
BIN="$ROOT/target/release/anycode"

args=()
if top=$(git -C "$PWD" rev-parse --show-toplevel 2>/dev/null); then
  args+=(--project "$top")
fi
log "starting anycode serve"
exec "$BIN" serve "${args[@]}" "$@"
