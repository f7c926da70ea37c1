#!/usr/bin/env bash
# The desktop app's memory, variants against a baseline in the same run, under Xvfb:
#
#   scripts/desktop-memory-bench.sh [-r ROUNDS] [-s] 'NAME [KEY=VALUE ...]' ...
#
# Each variant is a name and environment settings for the app (`BIN=PATH` picks
# another build; default: $ANYCODE_DESKTOP_BIN or target/desktop/anycode-desktop, the
# `desktop` profile's build).
# The first variant is the baseline. Rounds alternate the variants (A B C A B C …),
# so the machine's drift (it is shared and noisy) falls on all of them alike. Each
# launch gets a fresh data dir, git repository and WebKit data/cache dirs, and is
# measured with scripts/desktop-memory.sh (the app and its WebKit processes):
#
#   idle    20 s after launch (the window on the task list, no project);
#   5 tabs  one shell task opened in the window (`--open-task`, as a notification
#           does) with its own terminal plus 4 more shells, 20 s after the last;
#   full    (-s) then 12,000 lines of output written into each of the 5 terminals'
#           PTYs, 20 s later: every terminal's scrollback full.
#
# Prints one line per launch and a table of medians (PSS, and its anonymous part)
# with each figure's ratio to the baseline's; raw figures in artifacts/desktop-bench/.
# Other processes mapping WebKitGTK's libraries (another WebKitGTK app, a second
# AnyCode) share its pages and lower this app's PSS: figures taken then are left out.
# Example:
#   scripts/desktop-memory-bench.sh -r 3 'base ANYCODE_WEBKIT_CACHE_MODEL=web-browser' 'viewer'
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

rounds=3 fill=0 settle=20
while getopts 'r:s' o; do
  case $o in
    r) rounds=$OPTARG ;;
    s) fill=1 ;;
    *) die "usage: desktop-memory-bench.sh [-r ROUNDS] [-s] 'NAME [KEY=VALUE ...]' ..." ;;
  esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || die "name at least one variant, e.g. 'base'"
default_bin="${ANYCODE_DESKTOP_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/desktop/anycode-desktop}"
for t in Xvfb dbus-daemon xdotool curl node docker; do have "$t" || die "$t is missing (see scripts/lib.sh: ensure_desktop_deps)"; done

OUT="$ROOT/artifacts/desktop-bench"
rm -rf "$OUT"; mkdir -p "$OUT"
work=$(mktemp -d)
xvfb_pid="" dbus_pid="" app_pid="" data=""
stop_app() {
  if [ -n "$app_pid" ]; then
    # WebKit's processes outlive the app for a moment: wait for them too, so they do
    # not share pages with the next launch.
    local kids
    kids=$(pgrep -P "$app_pid" | tr '\n' ' ' || true)
    kill -TERM "$app_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$app_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$app_pid" 2>/dev/null || true
    wait "$app_pid" 2>/dev/null || true
    for k in $kids; do
      for _ in $(seq 1 50); do kill -0 "$k" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$k" 2>/dev/null || true
    done
    app_pid=""
  fi
  # The launch's sandboxes carry its data dir's instance label.
  if [ -n "$data" ] && [ -d "$data" ]; then
    local inst
    inst=$(printf '%s' "$(realpath "$data")" | sha256sum | cut -c1-12)
    docker ps -aq --filter "label=dev.anycode.instance=$inst" | xargs -r docker rm -f >/dev/null 2>&1 || true
  fi
}
cleanup() {
  stop_app
  [ -n "$xvfb_pid" ] && kill "$xvfb_pid" 2>/dev/null || true
  [ -n "$dbus_pid" ] && kill "$dbus_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

start_display "$work" "$OUT/xvfb.log"
# WebKitGTK's GPU compositing has no GPU under Xvfb (a variant may set it to 0).
export WEBKIT_DISABLE_COMPOSITING_MODE=1

json() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const v=JSON.parse(s);console.log(eval("v"+process.argv[1]))})' "$1"; }
# total PSS and its anonymous part (MB) from desktop-memory.sh's output, and how
# many other processes on the machine map WebKitGTK: they share its pages, which
# lowers this app's PSS (such figures are left out of the medians).
totals() {
  local ours others=0 p
  ours=" $(awk '{print $1}' "$1" | grep -E '^[0-9]+$' | tr '\n' ' ') "
  for p in $(grep -l 'libwebkit2gtk' /proc/[0-9]*/maps 2>/dev/null | cut -d/ -f3); do
    case $ours in *" $p "*) ;; *) others=$((others + 1)) ;; esac
  done
  echo "$(sed -n 's/^total: .* pss \([0-9.]*\) MB (anon \([0-9.]*\),.*/\1 \2/p' "$1") $others"
}

# measure VARIANT ROUND: one launch; appends "variant round state pss anon" lines.
measure() {
  local name=$1 round=$2 bin=$default_bin
  local -a envs=()
  read -r -a words <<<"${variants[$name]}"
  for w in "${words[@]}"; do
    case $w in BIN=*) bin=${w#BIN=} ;; *=*) envs+=("$w") ;; *) die "variant $name: $w is not KEY=VALUE" ;; esac
  done
  [ -x "$bin" ] || die "$bin is missing: run cargo build --profile desktop -p anycode-desktop"
  local run="$work/$name-$round" tag="$name-r$round"
  mkdir -p "$run/xdg-data" "$run/xdg-cache" "$run/repo"
  data="$run/data"
  git -C "$run/repo" init -q -b main
  git -C "$run/repo" -c user.name=Bench -c user.email=bench@example.com commit -q --allow-empty -m init
  env "${envs[@]}" ANYCODE_DATA_DIR="$data" ANYCODE_PORT=0 XDG_DATA_HOME="$run/xdg-data" XDG_CACHE_HOME="$run/xdg-cache" \
    "$bin" >"$run/app.out" 2>"$OUT/$tag-app.log" &
  app_pid=$!
  local started=$SECONDS url base token
  url=$(wait_for_url "$run/app.out" "$app_pid" "$OUT/$tag-app.log" anycode-desktop)
  base=${url%%/login*}
  token=$(cat "$data/token")
  api() { curl -sS --fail-with-body -X "$1" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' ${3:+--data "$3"} "$base/api$2"; }
  for _ in $(seq 1 100); do xdotool search --name '^AnyCode$' >/dev/null 2>&1 && break; sleep 0.2; done
  sleep $((settle - (SECONDS - started) > 0 ? settle - (SECONDS - started) : 0))
  bash scripts/desktop-memory.sh "$app_pid" >"$OUT/$tag-idle.txt"
  echo "$name $round idle $(totals "$OUT/$tag-idle.txt")" >>"$OUT/results.txt"

  local pid task status=""
  pid=$(api POST /projects "{\"path\":\"$run/repo\"}" | json .id)
  task=$(api POST "/projects/$pid/tasks" '{"title":"Memory bench","agent":"shell"}' | json .id)
  status=$(wait_task_running "$task" 300)
  [ "$status" = running ] || die "$tag: the task is $status, not running"
  env "${envs[@]}" ANYCODE_DATA_DIR="$data" ANYCODE_PORT=0 XDG_DATA_HOME="$run/xdg-data" XDG_CACHE_HOME="$run/xdg-cache" \
    timeout 30 "$bin" --open-task "$task" >/dev/null 2>&1 || die "$tag: the second launch failed"
  for _ in 1 2 3 4; do api POST "/tasks/$task/terminals" '{}' >/dev/null; done
  sleep "$settle"
  import -window root "$OUT/$tag-tabs.png" 2>/dev/null || true
  bash scripts/desktop-memory.sh "$app_pid" >"$OUT/$tag-tabs.txt"
  echo "$name $round tabs $(totals "$OUT/$tag-tabs.txt")" >>"$OUT/results.txt"

  if [ "$fill" = 1 ]; then
    # Output straight into each terminal's PTY in the sandbox (every terminal is a
    # process on a /dev/pts/N of the container): 12,000 numbered lines each.
    local inst ctr
    inst=$(printf '%s' "$(realpath "$data")" | sha256sum | cut -c1-12)
    ctr=$(docker ps -q --filter "label=dev.anycode.instance=$inst" | head -n 1)
    docker exec "$ctr" sh -c 'for p in /dev/pts/[0-9]*; do seq -f "line %g of the scrollback bench ........................................" 1 12000 >"$p"; done' \
      || die "$tag: writing into the terminals failed"
    sleep "$settle"
    bash scripts/desktop-memory.sh "$app_pid" >"$OUT/$tag-full.txt"
    echo "$name $round full $(totals "$OUT/$tag-full.txt")" >>"$OUT/results.txt"
  fi
  stop_app
  grep "^$name $round " "$OUT/results.txt" | tr '\n' ';' | sed 's/;$/\n/' >&2
}

declare -A variants
order=()
for v in "$@"; do
  n=${v%% *}
  [ "$n" = "$v" ] && rest="" || rest=${v#* }
  [ -z "${variants[$n]+x}" ] || die "variant $n named twice"
  variants[$n]=$rest
  order+=("$n")
done
: >"$OUT/results.txt"
for r in $(seq 1 "$rounds"); do
  for n in "${order[@]}"; do
    log "round $r/$rounds: $n"
    measure "$n" "$r"
  done
done

# Medians per variant and state, and ratios to the baseline (the first variant).
node - "$OUT/results.txt" "${order[@]}" <<'JS' | tee "$OUT/table.md"
const fs = require('fs');
const [file, ...order] = process.argv.slice(2);
const all = fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => l.split(' '));
// Figures taken while other processes mapped WebKitGTK (column 6) are left out.
const rows = all.filter((r) => Number(r[5] ?? 0) === 0);
if (rows.length < all.length) console.log(`(${all.length - rows.length} of ${all.length} figures left out: other WebKitGTK processes were running)\n`);
const med = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const states = ['idle', 'tabs', 'full'].filter((st) => rows.some((r) => r[2] === st));
const get = (v, st, i) => rows.filter((r) => r[0] === v && r[2] === st).map((r) => Number(r[i]));
const base = order[0];
const head = ['variant', ...states.flatMap((st) => [`${st} PSS MB`, `${st} ×base`, `${st} anon MB`])];
console.log(`| ${head.join(' | ')} |`);
console.log(`|${head.map(() => '---').join('|')}|`);
for (const v of order) {
  const cells = [v];
  for (const st of states) {
    const p = med(get(v, st, 3)), a = med(get(v, st, 4)), b = med(get(base, st, 3));
    const n = get(v, st, 3).length;
    cells.push(`${p.toFixed(0)} (n=${n}, ${Math.min(...get(v, st, 3)).toFixed(0)}–${Math.max(...get(v, st, 3)).toFixed(0)})`, (p / b).toFixed(2), a.toFixed(0));
  }
  console.log(`| ${cells.join(' | ')} |`);
}
JS
