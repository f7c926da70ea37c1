#!/usr/bin/env bash
# Makes sure a Docker engine answers, and that the base image of the sandbox
# (debian:bookworm-slim) exists locally.
#
# - An engine that already answers (DOCKER_HOST, Docker Desktop, colima, OrbStack,
#   Podman's Docker socket, a system dockerd) is used as it is.
# - On Debian/Ubuntu as root with no engine: installs docker.io from the
#   distribution and starts dockerd in the background (log: /var/log/anycode-dockerd.log).
# - When debian:bookworm-slim is missing and cannot be pulled (air-gapped machines,
#   CI without a registry), builds it from Debian packages with debootstrap and
#   `docker import`, under the same name, so the same Dockerfile builds.
set -euo pipefail

log() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

engine_ok() { docker info >/dev/null 2>&1; }

if ! command -v docker >/dev/null 2>&1 || ! engine_ok; then
  if [ "$(uname -s)" = "Linux" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    if ! command -v dockerd >/dev/null 2>&1; then
      log "installing docker.io from the distribution"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
    fi
    if ! engine_ok; then
      log "starting dockerd in the background (log: /var/log/anycode-dockerd.log)"
      nohup dockerd >/var/log/anycode-dockerd.log 2>&1 &
      for _ in $(seq 1 60); do engine_ok && break; sleep 0.5; done
    fi
  fi
  engine_ok || die "no Docker engine answers. Start Docker Desktop (macOS/Windows), or 'sudo systemctl start docker' (Linux), or set DOCKER_HOST."
fi
log "Docker engine: $(docker version --format '{{.Server.Version}}' 2>/dev/null)"

BASE=debian:bookworm-slim
if ! docker image inspect "$BASE" >/dev/null 2>&1; then
  log "pulling $BASE"
  if ! timeout 60 docker pull -q "$BASE" >/dev/null 2>&1; then
    log "no registry reachable: building $BASE locally with debootstrap (about a minute)"
    if ! command -v debootstrap >/dev/null 2>&1; then
      [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 || die "debootstrap is missing; install it, or make $BASE available"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    fi
    root=$(mktemp -d)
    trap 'rm -rf "$root"' EXIT
    debootstrap --variant=minbase bookworm "$root" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >/dev/null
    tar -C "$root" -c . | docker import - "$BASE" >/dev/null
    rm -rf "$root"
    trap - EXIT
  fi
fi
log "base image $BASE present"
