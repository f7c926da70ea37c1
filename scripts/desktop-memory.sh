#!/usr/bin/env bash
# Resident memory of a process and all its descendants (the desktop app plus its
# WebKit web and network processes): `scripts/desktop-memory.sh PID`.
#
# Prints one line per process and the totals in MB: RSS (what `ps` shows; shared
# pages count once per process, so the sum overstates) and PSS (shared pages split
# between the processes sharing them; from /proc/PID/smaps_rollup, Linux 4.14+).
set -euo pipefail
root=${1:?usage: desktop-memory.sh PID}
[ -d "/proc/$root" ] || { echo "no process $root" >&2; exit 1; }

# The process tree under $root, breadth first.
pids=("$root")
i=0
while [ $i -lt ${#pids[@]} ]; do
  for c in $(ps -o pid= --ppid "${pids[$i]}" 2>/dev/null); do pids+=("$c"); done
  i=$((i + 1))
done

total_rss=0 total_pss=0
for p in "${pids[@]}"; do
  [ -r "/proc/$p/status" ] || continue
  name=$(cat "/proc/$p/comm")
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status")
  pss=$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)
  rss=${rss:-0} pss=${pss:-0}
  awk -v p="$p" -v n="$name" -v r="$rss" -v s="$pss" 'BEGIN { printf "%8s %-24s rss %7.1f MB  pss %7.1f MB\n", p, n, r / 1024, s / 1024 }'
  total_rss=$((total_rss + rss)) total_pss=$((total_pss + pss))
done
awk -v c="${#pids[@]}" -v r="$total_rss" -v s="$total_pss" 'BEGIN { printf "total: %d processes, rss %.1f MB, pss %.1f MB\n", c, r / 1024, s / 1024 }'
