#!/usr/bin/env bash
# The desktop app end to end, under Xvfb: `scripts/desktop-test.sh` (run by
# scripts/test.sh after the workspace build; needs Docker and the sandbox image).
#
# Starts target/debug/anycode-desktop on a virtual display with its own data dir and
# D-Bus session, waits for its in-process server, drives one shell task through the
# API, opens it in the window through a second launch (`--open-task`, handed to the
# running app by the single-instance plugin), opens 4 more terminal tabs, takes
# screenshots and memory figures into artifacts/desktop/, then quits it with
# SIGTERM and checks that the server stopped cleanly and the sandbox kept running.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

# ANYCODE_DESKTOP_BIN picks another build (e.g. target/desktop/anycode-desktop, the
# `desktop` profile's, for release memory figures).
bin="${ANYCODE_DESKTOP_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/anycode-desktop}"
[ -x "$bin" ] || die "$bin is missing: run cargo build -p anycode-desktop"
for t in Xvfb import convert dbus-daemon xdotool curl node; do have "$t" || die "$t is missing (see scripts/lib.sh: ensure_desktop_deps)"; done

ARTIFACTS="$ROOT/artifacts/desktop"
rm -rf "$ARTIFACTS"; mkdir -p "$ARTIFACTS"
work=$(mktemp -d)
xvfb_pid="" app_pid="" dbus_pid=""
cleanup() {
  [ -n "$app_pid" ] && kill "$app_pid" 2>/dev/null && wait "$app_pid" 2>/dev/null || true
  [ -n "$xvfb_pid" ] && kill "$xvfb_pid" 2>/dev/null || true
  [ -n "$dbus_pid" ] && kill "$dbus_pid" 2>/dev/null || true
  # The test's sandboxes carry its data dir's instance label: remove them.
  if [ -d "$work/data" ]; then
    inst=$(printf '%s' "$(realpath "$work/data")" | sha256sum | cut -c1-12)
    docker ps -aq --filter "label=dev.anycode.instance=$inst" | xargs -r docker rm -f >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

start_display "$work" "$ARTIFACTS/xvfb.log"

repo="$work/repo"
mkdir -p "$repo"
git -C "$repo" init -q -b main
git -C "$repo" config user.name "Desktop Tester"
git -C "$repo" config user.email desktop@example.com
printf '# desktop\n' > "$repo/README.md"
git -C "$repo" add . && git -C "$repo" commit -qm init

export ANYCODE_DATA_DIR="$work/data" ANYCODE_PORT=0
# WebKitGTK's GPU compositing has no GPU under Xvfb.
export WEBKIT_DISABLE_COMPOSITING_MODE=1
"$bin" >"$work/app.out" 2>"$ARTIFACTS/app.log" &
app_pid=$!

log "desktop: waiting for the app's server"
url=$(wait_for_url "$work/app.out" "$app_pid" "$ARTIFACTS/app.log" anycode-desktop)
base=${url%%/login*}
# The token (for the API calls below) from the data dir: the printed link carries a
# one-time code, never the token.
token=$(cat "$ANYCODE_DATA_DIR/token")
case "$url" in *"$token"*) die "the printed link carries the token: $url" ;; esac
api() { # METHOD PATH [JSON]
  curl -sS --fail-with-body -X "$1" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    ${3:+--data "$3"} "$base/api$2"
}
json() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const v=JSON.parse(s);console.log(eval("v"+process.argv[1]))})' "$1"; }

api GET /health >/dev/null || die "the app's server does not answer"
# The window exists and is titled AnyCode (X11 sees it as a top-level window).
for _ in $(seq 1 100); do
  xdotool search --name '^AnyCode$' >/dev/null 2>&1 && break
  sleep 0.2
done
xdotool search --name '^AnyCode$' >/dev/null 2>&1 || die "no window titled AnyCode appeared"
sleep 4 # let the UI render
import -window root "$ARTIFACTS/01-idle.png"
bash scripts/desktop-memory.sh "$app_pid" >"$ARTIFACTS/memory-idle.txt"

log "desktop: driving a shell task through the app's API"
pid=$(api POST /projects "{\"path\":\"$repo\"}" | json .id)
task=$(api POST "/projects/$pid/tasks" '{"title":"Desktop smoke test","agent":"shell"}' | json .id)
[ -n "$task" ] || die "no task was created"
status=$(wait_task_running "$task" 150)
[ "$status" = running ] || die "the task is $status, not running"

# A second launch hands --open-task to the running app and exits.
timeout 30 "$bin" --open-task "$task" >"$work/second.out" 2>"$ARTIFACTS/second-launch.log" \
  || die "the second launch did not exit cleanly (see artifacts/desktop/second-launch.log)"
grep -q 'AnyCode is running' "$work/second.out" && die "the second launch started its own server"
for i in 1 2 3 4; do api POST "/tasks/$task/terminals" '{}' >/dev/null; done
terms=$(api GET "/tasks/$task" | json '.terminals.length')
[ "$terms" = 5 ] || die "the task has $terms terminals, not 5"
sleep 6 # the UI polls tasks every few seconds; terminals connect and draw
import -window root "$ARTIFACTS/02-task-with-terminals.png"
bash scripts/desktop-memory.sh "$app_pid" >"$ARTIFACTS/memory-5-terminals.txt"

# The screenshot is not a blank screen: the window drew something.
sd=$(convert "$ARTIFACTS/02-task-with-terminals.png" -colorspace Gray -format '%[fx:standard_deviation]' info:)
awk -v sd="$sd" 'BEGIN { exit !(sd > 0.05) }' || die "the screenshot looks blank (standard deviation $sd)"

log "desktop: quitting with SIGTERM (sandboxes keep running)"
kill -TERM "$app_pid"
for _ in $(seq 1 100); do kill -0 "$app_pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$app_pid" 2>/dev/null; then die "the app did not exit within 10 s of SIGTERM"; fi
wait "$app_pid" || die "the app exited with status $?"
app_pid=""
grep -q 'server stopped' "$ARTIFACTS/app.log" || die "the app did not report a clean server stop (see artifacts/desktop/app.log)"
inst=$(printf '%s' "$(realpath "$work/data")" | sha256sum | cut -c1-12)
[ -n "$(docker ps -q --filter "label=dev.anycode.instance=$inst")" ] || die "the sandbox did not survive quitting"

cat "$ARTIFACTS/memory-idle.txt" "$ARTIFACTS/memory-5-terminals.txt" >&2
log "desktop test passed; screenshots in artifacts/desktop/"
