#!/usr/bin/env bash
# Resident memory of a process and all its descendants (the desktop app plus its
# WebKit web and network processes): `scripts/desktop-memory.sh PID`.
#
# Prints one line per process and the totals in MB: RSS (what `ps` shows; shared
# pages count once per process, so the sum overstates) and PSS (shared pages split
# between the processes sharing them; from /proc/PID/smaps_rollup, Linux 4.14+),
# and PSS split into anonymous memory (heaps, JS heap, stacks: what the process
# allocated), file-backed pages (its share of the mapped libraries and files) and
# shared memory (Linux 5.x+; 0 where the kernel does not report it).
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

total_rss=0 total_pss=0 total_anon=0 total_file=0 total_shmem=0
for p in "${pids[@]}"; do
  [ -r "/proc/$p/status" ] || continue
  name=$(cat "/proc/$p/comm")
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status")
  read -r pss anon file shmem < <(awk '/^Pss:/ {p=$2} /^Pss_Anon:/ {a=$2} /^Pss_File:/ {f=$2} /^Pss_Shmem:/ {s=$2}
    END {print p+0, a+0, f+0, s+0}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0 0 0 0)
  rss=${rss:-0}
  awk -v p="$p" -v n="$name" -v r="$rss" -v s="$pss" -v a="$anon" -v f="$file" -v m="$shmem" 'BEGIN {
    printf "%8s %-24s rss %7.1f MB  pss %7.1f MB  (anon %6.1f, file %6.1f, shmem %5.1f)\n", p, n, r / 1024, s / 1024, a / 1024, f / 1024, m / 1024 }'
  total_rss=$((total_rss + rss)) total_pss=$((total_pss + pss))
  total_anon=$((total_anon + anon)) total_file=$((total_file + file)) total_shmem=$((total_shmem + shmem))
done
awk -v c="${#pids[@]}" -v r="$total_rss" -v s="$total_pss" -v a="$total_anon" -v f="$total_file" -v m="$total_shmem" 'BEGIN {
  printf "total: %d processes, rss %.1f MB, pss %.1f MB (anon %.1f, file %.1f, shmem %.1f)\n", c, r / 1024, s / 1024, a / 1024, f / 1024, m / 1024 }'
