#!/usr/bin/env bash
# The installed app, tested as installed: run by scripts/package-test.sh as root
# inside the clean Debian container (scripts/package-test/Dockerfile, stage `test`),
# with the .deb at $DEB, this folder at $HERE and the artifacts folder at $ARTIFACTS.
#
# 1. `dpkg -i` the .deb; its desktop entry is valid and names an installed program;
# 2. starts the app from that desktop entry (gtk-launch, as a desktop's menu does)
#    as the user `tester`, under Xvfb, with a D-Bus session and a stand-in panel
#    (tray-watcher.py) on it;
# 3. checks the window (titled AnyCode, mapped, screenshot not blank), the tray icon
#    (registered, owned by the app, its menu), and the in-process server (on the
#    default port 7878, with the token of the user's default data dir);
# 4. quits it with SIGTERM (a clean server stop), `dpkg -r`s the package and checks
#    that none of its files are left and that the user's data dir is intact.
set -euo pipefail
log()  { printf '\033[1;34m==>\033[0m package-test: %s\n' "$*" >&2; }
die()  { printf '\033[1;31merror:\033[0m package-test: %s\n' "$*" >&2; exit 1; }
: "${DEB:?}" "${HERE:?}" "${ARTIFACTS:?}"

as_tester() { runuser -u tester -- env HOME=/home/tester "$@"; }

pkg=$(dpkg-deb -f "$DEB" Package)
log "installing $(basename "$DEB") (package $pkg) with dpkg -i"
dpkg -i "$DEB" >"$ARTIFACTS/dpkg-install.log" 2>&1 || { cat "$ARTIFACTS/dpkg-install.log" >&2; die "dpkg -i failed"; }
dpkg-query -W -f='${Status}\n' "$pkg" | grep -qx 'install ok installed' || die "$pkg is not installed after dpkg -i"
# The package's files (not its directories, which it may share with others).
dpkg -L "$pkg" | while read -r f; do [ -d "$f" ] && [ ! -L "$f" ] || echo "$f"; done >"$ARTIFACTS/files.txt"
log "$(wc -l <"$ARTIFACTS/files.txt") files installed"

# The desktop entry: exactly one, valid, with a program that the package installed.
entries=$(grep '^/usr/share/applications/.*\.desktop$' "$ARTIFACTS/files.txt" || true)
[ "$(printf '%s\n' "$entries" | grep -c .)" = 1 ] || die "expected one desktop entry in the package, found: ${entries:-none}"
entry=$entries
cp "$entry" "$ARTIFACTS/"
desktop-file-validate "$entry" || die "$entry is not a valid desktop entry"
grep -qx 'Name=AnyCode' "$entry" || die "$entry is not named AnyCode"
exec_line=$(sed -n 's/^Exec=//p' "$entry" | head -n 1)
# The program is the first word of Exec (field codes such as %U come after it).
prog=$(printf '%s\n' "$exec_line" | awk '{print $1}')
prog_path=$(command -v "$prog") || die "Exec=$exec_line: $prog is not on PATH"
grep -qx "$prog_path" "$ARTIFACTS/files.txt" || die "Exec=$exec_line runs $prog_path, which the package did not install"
icon=$(sed -n 's/^Icon=//p' "$entry" | head -n 1)
grep -q "/icons/.*/$icon\.png$" "$ARTIFACTS/files.txt" || die "Icon=$icon: the package installed no such icon"
log "desktop entry $entry: Exec=$exec_line ($prog_path), Icon=$icon"

# A display, a session bus and a stand-in panel, all as the user who runs the app.
run=/tmp/run-tester
install -d -o tester -g tester -m 700 "$run"
as_tester Xvfb :99 -screen 0 1440x900x24 -nolisten tcp >"$ARTIFACTS/xvfb.log" 2>&1 &
for _ in $(seq 1 50); do [ -e /tmp/.X11-unix/X99 ] && break; sleep 0.1; done
[ -e /tmp/.X11-unix/X99 ] || die "Xvfb did not start (see xvfb.log)"
bus=$(as_tester dbus-daemon --session --fork --print-address=1 --address="unix:path=$run/bus")
session=(DISPLAY=:99 DBUS_SESSION_BUS_ADDRESS="$bus" XDG_RUNTIME_DIR="$run"
  # WebKitGTK's GPU compositing has no GPU under Xvfb.
  WEBKIT_DISABLE_COMPOSITING_MODE=1)
as_tester "${session[@]}" python3 "$HERE/tray-watcher.py" "$run/tray.json" 90 >"$run/watcher.out" 2>"$ARTIFACTS/tray-watcher.log" &
watcher_pid=$!
for _ in $(seq 1 50); do grep -q ready "$run/watcher.out" 2>/dev/null && break; sleep 0.1; done
grep -q ready "$run/watcher.out" || { cat "$ARTIFACTS/tray-watcher.log" >&2; die "the stand-in panel did not start"; }

log "starting the app from its desktop entry (gtk-launch $(basename "$entry" .desktop))"
as_tester "${session[@]}" gtk-launch "$(basename "$entry" .desktop)" >"$ARTIFACTS/app.out" 2>"$ARTIFACTS/app.log" \
  || die "gtk-launch failed (see app.log)"
app_pid=""
for _ in $(seq 1 100); do
  app_pid=$(pgrep -u tester -x "$(basename "$prog_path" | cut -c1-15)" | head -n 1 || true)
  [ -n "$app_pid" ] && break
  sleep 0.1
done
[ -n "$app_pid" ] || die "no $prog process after gtk-launch (see app.log)"
exe=$(as_tester readlink "/proc/$app_pid/exe" || true)
[ "$exe" = "$prog_path" ] || die "the running app is ${exe:-unknown}, not $prog_path"

log "the in-process server"
data=/home/tester/.local/share/anycode
token=""
for _ in $(seq 1 150); do
  [ -s "$data/token" ] && curl -sf -o /dev/null -H "Authorization: Bearer $(cat "$data/token")" http://127.0.0.1:7878/api/health && break
  kill -0 "$app_pid" 2>/dev/null || { cat "$ARTIFACTS/app.log" >&2; die "the app exited"; }
  sleep 0.2
done
token=$(cat "$data/token" 2>/dev/null) || die "the app made no token in the user's default data dir $data"
api() { curl -sS --fail-with-body -H "Authorization: Bearer $token" "http://127.0.0.1:7878/api$1"; }
api /health >"$ARTIFACTS/health.json" || die "the app's server does not answer on 127.0.0.1:7878"
[ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:7878/api/health)" = 401 ] || die "the server answers without the token"
api /projects >/dev/null || die "GET /api/projects failed"
# The web UI is in the installed binary (not read from a checkout): the index and its script.
curl -sf http://127.0.0.1:7878/ >"$run/index.html" || die "GET / failed"
grep -q '<div id="root">' "$run/index.html" || die "the server does not serve the web UI at /: $(head -c 300 "$run/index.html")"
script=$(grep -o 'src="[^"]*assets/[^"]*\.js"' "$run/index.html" | head -n 1 | sed 's/^src="\.\{0,1\}\/\{0,1\}//; s/"$//')
[ -n "$script" ] || die "the web UI's index names no script"
curl -sf -o /dev/null -w '%{content_type}' "http://127.0.0.1:7878/$script" | grep -q javascript || die "the web UI's script /$script is not served"
# gtk-launch passes the app's stdout through: the one-time login link, never the token.
grep -q '^AnyCode is running: http://127.0.0.1:7878/login?code=[0-9a-f]*$' "$ARTIFACTS/app.out" \
  || die "the app did not print its login link (see app.out)"
grep -qF "$token" "$ARTIFACTS/app.out" && die "the app printed its token"

log "the window"
for _ in $(seq 1 150); do
  win=$(DISPLAY=:99 xdotool search --onlyvisible --name '^AnyCode$' 2>/dev/null | head -n 1 || true)
  [ -n "$win" ] && break
  sleep 0.2
done
[ -n "$win" ] || die "no visible window titled AnyCode appeared"
[ "$(DISPLAY=:99 xdotool getwindowpid "$win" 2>/dev/null || true)" = "$app_pid" ] || die "the AnyCode window does not belong to the app's process"
DISPLAY=:99 xwininfo -id "$win" >"$ARTIFACTS/xwininfo.txt"
grep -q 'Map State: IsViewable' "$ARTIFACTS/xwininfo.txt" || die "the window is not viewable"
w=$(sed -n 's/ *Width: //p' "$ARTIFACTS/xwininfo.txt"); h=$(sed -n 's/ *Height: //p' "$ARTIFACTS/xwininfo.txt")
[ "$w" -ge 640 ] && [ "$h" -ge 400 ] || die "the window is ${w}x${h}, smaller than its 640x400 minimum"
sleep 5 # let the UI load and draw
DISPLAY=:99 import -window root "$ARTIFACTS/installed-app.png"
sd=$(convert "$ARTIFACTS/installed-app.png" -colorspace Gray -format '%[fx:standard_deviation]' info:)
awk -v sd="$sd" 'BEGIN { exit !(sd > 0.05) }' || die "the screenshot looks blank (standard deviation $sd)"
log "window ${w}x${h}, screenshot artifacts/package/installed-app.png (gray standard deviation $sd)"

log "the tray"
wait "$watcher_pid" || { cat "$ARTIFACTS/tray-watcher.log" "$run/tray.json" >&2 2>/dev/null; die "no tray icon registered (see tray.json)"; }
cp "$run/tray.json" "$ARTIFACTS/tray.json"
tray() { python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); print(eval("v"+sys.argv[2]))' "$run/tray.json" "$1"; }
[ "$(tray '["pid"]')" = "$app_pid" ] || die "the tray icon belongs to pid $(tray '["pid"]'), not the app ($app_pid)"
[ "$(tray '["status"]')" = Active ] || die "the tray icon is $(tray '["status"]'), not Active"
for label in "Show AnyCode" "Open in browser" "Quit AnyCode"; do
  [ "$(tray ".get('menu',[]).count('$label')")" = 1 ] || die "the tray menu has no \"$label\": $(tray '["menu"]')"
done
log "tray icon $(tray '["path"]') of pid $app_pid, menu: $(tray '["menu"]')"

log "quitting with SIGTERM"
kill -TERM "$app_pid"
for _ in $(seq 1 100); do kill -0 "$app_pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$app_pid" 2>/dev/null && die "the app did not exit within 10 s of SIGTERM"
grep -q 'server stopped' "$ARTIFACTS/app.log" || die "the app did not report a clean server stop (see app.log)"

log "removing the package with dpkg -r"
# A file of the user's own in the data dir, next to what the app made there.
echo "kept" >"$data/user-file.txt" && chown tester: "$data/user-file.txt"
(cd "$data" && find . -type f | sort | xargs sha256sum) >"$ARTIFACTS/data-before.txt"
dpkg -r "$pkg" >"$ARTIFACTS/dpkg-remove.log" 2>&1 || { cat "$ARTIFACTS/dpkg-remove.log" >&2; die "dpkg -r failed"; }
status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || echo "not known")
# config-files: dpkg keeps a package's maintainer scripts and conffiles until a purge.
case "$status" in *not-installed|*config-files|"not known") ;; *) die "after dpkg -r the package is '$status'" ;; esac
left=$(while read -r f; do [ -e "$f" ] || [ -L "$f" ] && echo "$f"; done <"$ARTIFACTS/files.txt" || true)
[ -z "$left" ] || die "dpkg -r left files of the package: $left"
(cd "$data" && find . -type f | sort | xargs sha256sum) >"$ARTIFACTS/data-after.txt"
cmp -s "$ARTIFACTS/data-before.txt" "$ARTIFACTS/data-after.txt" || die "dpkg -r changed the user's data dir: $(diff "$ARTIFACTS/data-before.txt" "$ARTIFACTS/data-after.txt")"
[ "$(cat "$data/user-file.txt")" = kept ] && [ "$(cat "$data/token")" = "$token" ] || die "the user's data did not survive dpkg -r"
log "removed: none of the $(wc -l <"$ARTIFACTS/files.txt") files left; the data dir's $(wc -l <"$ARTIFACTS/data-after.txt") files are intact"
echo "package test passed"
