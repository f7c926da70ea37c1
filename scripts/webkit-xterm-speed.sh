#!/usr/bin/env bash
# xterm.js's write speed in WebKitGTK (the desktop app's webview on Linux), variants
# against a baseline in the same run, under Xvfb:
#
#   scripts/webkit-xterm-speed.sh [-r ROUNDS] [-m MB] 'NAME [KEY=VALUE ...]' ...
#
# Each variant is a name and environment settings for WebKitGTK's MiniBrowser (the
# web process inherits them: `JSC_useFTLJIT=0` turns JavaScriptCore's top JIT tier
# off, for example). The page is xterm.js from frontend/node_modules, 120×36 with
# 5,000 lines of scrollback, as the app's terminals; it writes MB megabytes (default
# 40) of build-log-like lines with colour from memory and times them to the last
# write's callback. Rounds alternate the variants (A B A B …) so the machine's drift
# falls on all alike. Prints each launch and each variant's median MB/s with its
# ratio to the first variant's. Example (README "### Memory"):
#
#   scripts/webkit-xterm-speed.sh -r 3 base 'no-ftl JSC_useFTLJIT=0' 'no-dfg JSC_useDFGJIT=0'
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

rounds=3 mb=40
while getopts 'r:m:' o; do
  case $o in
    r) rounds=$OPTARG ;;
    m) mb=$OPTARG ;;
    *) die "usage: webkit-xterm-speed.sh [-r ROUNDS] [-m MB] 'NAME [KEY=VALUE ...]' ..." ;;
  esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || die "name at least one variant, e.g. 'base'"
browser=$(ls /usr/lib/*/webkit2gtk-4.1/MiniBrowser 2>/dev/null | head -1 || true)
[ -n "$browser" ] || die "WebKitGTK's MiniBrowser is missing (Debian: libwebkit2gtk-4.1-0 ships it)"
for t in Xvfb python3; do have "$t" || die "$t is missing (see scripts/lib.sh: ensure_desktop_deps)"; done
xterm_dir="$ROOT/frontend/node_modules/@xterm/xterm"
[ -f "$xterm_dir/lib/xterm.js" ] || die "xterm.js is missing: npm --prefix frontend ci"

work=$(mktemp -d)
xvfb_pid="" server_pid="" browser_pid=""
cleanup() {
  [ -n "$browser_pid" ] && kill "$browser_pid" 2>/dev/null || true
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  [ -n "$xvfb_pid" ] && kill "$xvfb_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

cp "$xterm_dir/lib/xterm.js" "$xterm_dir/css/xterm.css" "$work/"
cat >"$work/index.html" <<EOF
<!doctype html><html><head><link rel="stylesheet" href="xterm.css"><script src="xterm.js"></script></head>
<body style="margin:0"><div id="t"></div><script>
(async () => {
  const term = new Terminal({ cols: 120, rows: 36, scrollback: 5000 });
  term.open(document.getElementById('t'));
  let s = '';
  for (let i = 0; i < 2000; i++) s += '\x1b[32m[' + i + ']\x1b[0m compiling crate ' + i + ' of many, with some text ' + 'x'.repeat(i % 40) + '\r\n';
  const chunk = new TextEncoder().encode(s);
  const write = (d) => new Promise((r) => term.write(d, r));
  await write(chunk);
  const total = $mb * 1048576, t0 = performance.now();
  let sent = 0;
  while (sent < total) { term.write(chunk); sent += chunk.length; }
  await write('');
  const ms = performance.now() - t0;
  await fetch('/result', { method: 'POST', body: JSON.stringify({ mbps: sent / 1048576 / (ms / 1000) }) });
})();
</script></body></html>
EOF
cat >"$work/serve.py" <<'EOF'
import http.server, os, sys
class H(http.server.SimpleHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers['Content-Length']))
        with open('result', 'ab') as f:
            f.write(body + b'\n')
        self.send_response(204)
        self.end_headers()
    def log_message(self, *a):
        pass
os.chdir(sys.argv[1])
s = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
EOF
python3 "$work/serve.py" "$work" >"$work/port" &
server_pid=$!
for _ in $(seq 1 50); do [ -s "$work/port" ] && break; sleep 0.1; done
port=$(head -1 "$work/port")
display=:$((90 + RANDOM % 100))
Xvfb "$display" -screen 0 1280x800x24 >/dev/null 2>&1 &
xvfb_pid=$!
sleep 1

declare -A variants
names=()
for v in "$@"; do
  read -r name rest <<<"$v"
  names+=("$name")
  variants[$name]=$rest
done

: >"$work/result"
results="$work/runs"
: >"$results"
for r in $(seq 1 "$rounds"); do
  for name in "${names[@]}"; do
    read -r -a envs <<<"${variants[$name]}"
    before=$(wc -l <"$work/result")
    env DISPLAY="$display" "${envs[@]}" "$browser" "http://127.0.0.1:$port/index.html" >/dev/null 2>&1 &
    browser_pid=$!
    for _ in $(seq 1 1200); do
      [ "$(wc -l <"$work/result")" -gt "$before" ] && break
      kill -0 "$browser_pid" 2>/dev/null || break
      sleep 0.5
    done
    kill "$browser_pid" 2>/dev/null || true
    wait "$browser_pid" 2>/dev/null || true
    browser_pid=""
    # Its web and network processes end with it; wait so they do not overlap the next.
    for _ in $(seq 1 50); do pgrep -f "webkit2gtk-4.1/WebKit(Web|Network)Process" >/dev/null || break; sleep 0.1; done
    line=$(tail -n +$((before + 1)) "$work/result" | head -1)
    [ -n "$line" ] || die "$name (round $r): no result (the page did not finish in 10 minutes)"
    mbps=$(sed -n 's/.*"mbps":\([0-9.]*\).*/\1/p' <<<"$line")
    printf '%-12s round %d  %7.2f MB/s\n' "$name" "$r" "$mbps"
    echo "$name $mbps" >>"$results"
  done
done

echo
base=${names[0]}
median() { grep "^$1 " "$results" | awk '{print $2}' | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
bm=$(median "$base")
printf '%-12s %10s %8s\n' variant 'MB/s' ratio
for name in "${names[@]}"; do
  m=$(median "$name")
  awk -v n="$name" -v m="$m" -v b="$bm" 'BEGIN { printf "%-12s %10.2f %7.2fx\n", n, m, m / b }'
done
