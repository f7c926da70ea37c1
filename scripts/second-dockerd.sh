#!/usr/bin/env bash
# A second Docker engine on this machine, standing in for a remote host (the same
# recipe as crates/testkit/src/dockerd.rs): its own --data-root, --exec-root,
# pidfile and bridge (`ip link add … type bridge`, an unused 10.224.N.1/24,
# --iptables=false), its API on a Unix socket under DIR and on tcp://127.0.0.1:PORT.
# Never touches the system engine. Needs root.
#
#   scripts/second-dockerd.sh start DIR   # prints tcp://127.0.0.1:PORT once it answers
#   scripts/second-dockerd.sh stop DIR    # stops it, deletes its bridge, unmounts and removes DIR
set -euo pipefail
cmd=${1:?start or stop}
dir=${2:?a folder}

stop() {
  [ -d "$dir" ] || return 0
  if [ -f "$dir/docker.pid" ]; then
    local pid; pid=$(cat "$dir/docker.pid")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  [ -f "$dir/bridge" ] && ip link del "$(cat "$dir/bridge")" 2>/dev/null || true
  awk -v root="$dir" 'index($5, root) == 1 { print length($5), $5 }' /proc/self/mountinfo | sort -rn | cut -d' ' -f2- |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
  rm -rf "$dir"
}

start() {
  mkdir -p "$dir"
  dir=$(realpath "$dir")
  local bridge="acs$$" n port
  for n in $(seq 1 250); do ip -4 -o addr | grep -q "10\.224\.$n\." || break; done
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  ip link add "$bridge" type bridge
  echo "$bridge" >"$dir/bridge"
  ip addr add "10.224.$n.1/24" dev "$bridge"
  ip link set "$bridge" up
  setsid dockerd --data-root "$dir/data" --exec-root "$dir/exec" --pidfile "$dir/docker.pid" \
    -H "unix://$dir/docker.sock" -H "tcp://127.0.0.1:$port" -b "$bridge" --iptables=false --ip-masq=false \
    --storage-driver overlay2 --log-level warn --userland-proxy=false </dev/null >"$dir/dockerd.log" 2>&1 &
  for _ in $(seq 600); do
    if docker -H "unix://$dir/docker.sock" version >/dev/null 2>&1; then
      echo "tcp://127.0.0.1:$port"
      return 0
    fi
    sleep 0.1
  done
  echo "the second dockerd did not come up:" >&2
  tail -20 "$dir/dockerd.log" >&2
  stop
  return 1
}

case $cmd in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
