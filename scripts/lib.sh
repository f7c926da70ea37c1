# Shared helpers of AnyCode's scripts. Source it; it changes nothing by itself.

log()  { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
warn() { printf '\033[1;33mwarning:\033[0m %s\n' "$*" >&2; }
die()  { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

is_root() { [ "$(id -u)" = 0 ]; }
have() { command -v "$1" >/dev/null 2>&1; }

# Installs Debian/Ubuntu packages that are missing (as root only; otherwise says what to run).
apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if is_root && have apt-get; then
    log "installing ${missing[*]}"
    if [ -z "${ANYCODE_APT_UPDATED:-}" ]; then apt-get update -qq; export ANYCODE_APT_UPDATED=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  elif have apt-get; then
    die "missing packages: ${missing[*]} — run: sudo apt-get install -y ${missing[*]}"
  else
    warn "cannot install ${missing[*]} on this system; install the equivalents yourself"
  fi
}

# The build prerequisites: a C toolchain for bundled SQLite and libgit2, Rust, Node.js 20+.
ensure_build_tools() {
  if have apt-get; then
    apt_install build-essential pkg-config libssl-dev git ca-certificates curl
  fi
  if ! have cargo; then
    [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
  fi
  if ! have cargo; then
    log "installing Rust with rustup (https://rustup.rs)"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal >/dev/null \
      || die "Rust is missing and rustup could not be fetched: install Rust from https://rustup.rs"
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
  if ! have node || ! have npm; then
    have apt-get && apt_install nodejs npm
  fi
  have node || die "Node.js is missing: install Node.js 20 or newer (https://nodejs.org)"
  local major
  major=$(node -p 'process.versions.node.split(".")[0]')
  [ "$major" -ge 20 ] || die "Node.js $(node --version) is too old for the web UI build: install Node.js 20 or newer (https://nodejs.org)"
}

# What the desktop app (src-tauri, a workspace member) needs to build, and its test
# under a virtual display: WebKitGTK 4.1 and the other Tauri packages, Xvfb,
# ImageMagick (screenshots), a D-Bus session daemon, xdotool.
ensure_desktop_deps() {
  if have apt-get; then
    apt_install libwebkit2gtk-4.1-dev libayatana-appindicator3-dev librsvg2-dev libsoup-3.0-dev \
      xvfb imagemagick dbus xdotool x11-utils
  fi
}

# start_display WORK LOG: a virtual display of its own (Xvfb, 1440x900, the first free
# number from 91; its output in LOG) and a private D-Bus session (the single-instance
# plugin, the tray and notifications use it; its address in WORK/bus). Exports DISPLAY
# and DBUS_SESSION_BUS_ADDRESS and sets xvfb_pid and dbus_pid for the caller's cleanup.
start_display() {
  local work=$1 logf=$2 disp=91
  while [ -e "/tmp/.X11-unix/X$disp" ] || [ -e "/tmp/.X$disp-lock" ]; do disp=$((disp + 1)); done
  Xvfb ":$disp" -screen 0 1440x900x24 -nolisten tcp >"$logf" 2>&1 &
  xvfb_pid=$!
  export DISPLAY=":$disp"
  for _ in $(seq 1 50); do [ -e "/tmp/.X11-unix/X$disp" ] && break; sleep 0.1; done
  dbus-daemon --session --fork --print-address=3 --print-pid=4 3>"$work/bus" 4>"$work/bus.pid"
  DBUS_SESSION_BUS_ADDRESS=$(cat "$work/bus")
  export DBUS_SESSION_BUS_ADDRESS
  dbus_pid=$(cat "$work/bus.pid")
}

# Builds the web UI into frontend/dist (npm ci only when the lock file changed).
build_frontend() {
  local fe="$ROOT/frontend"
  if [ ! -d "$fe/node_modules" ] || [ "$fe/package-lock.json" -nt "$fe/node_modules/.package-lock.json" ]; then
    log "installing the web UI's packages (npm ci)"
    (cd "$fe" && npm ci --no-audit --no-fund --loglevel=error)
  fi
  log "building the web UI"
  (cd "$fe" && npm run --silent build >/dev/null)
}

# wait_for_url OUT_FILE PID LOG_FILE WHAT: waits (30 s at most) for the one-time login
# URL (http://127.0.0.1:PORT/login?code=…) that `anycode serve` and the desktop app
# print on OUT_FILE, and prints it; dies with LOG_FILE's content when PID exits first.
# Scripts take the server's base from it (`${url%%/login*}`) and the token, for API
# calls, from the data dir's `token` file: the token is never in a URL.
wait_for_url() {
  local out=$1 pid=$2 logf=$3 what=$4 url=""
  for _ in $(seq 1 150); do
    url=$(grep -o 'http://127.0.0.1:[0-9]*/login?code=[0-9a-f]*' "$out" 2>/dev/null | head -n 1 || true)
    [ -n "$url" ] && { printf '%s\n' "$url"; return 0; }
    kill -0 "$pid" 2>/dev/null || { cat "$logf" >&2; die "$what exited"; }
    sleep 0.2
  done
  die "$what did not print its URL"
}

# A git repository at $1 with one commit (README.md), by author $2 <$3>.
make_test_repo() {
  local repo=$1
  mkdir -p "$repo"
  git -C "$repo" init -q -b main
  git -C "$repo" config user.name "$2"
  git -C "$repo" config user.email "$3"
  printf '# test\n' > "$repo/README.md"
  git -C "$repo" add . && git -C "$repo" commit -qm init
}

# A Secret Service of its own: a D-Bus session bus and an unlocked gnome-keyring
# (password $2), their files under $1. Prints the bus address, then the bus's pid
# (gnome-keyring-daemon leaves with its bus).
start_secret_service() {
  local dir=$1 bus
  mkdir -p "$dir/keyring" "$dir/run" && chmod 700 "$dir/run"
  bus=$(dbus-daemon --session --fork --print-address=1 --print-pid=1 --address="unix:path=$dir/bus")
  printf %s "$2" | DBUS_SESSION_BUS_ADDRESS="$(sed -n 1p <<<"$bus")" XDG_DATA_HOME="$dir/keyring" XDG_RUNTIME_DIR="$dir/run" \
    gnome-keyring-daemon --unlock --components=secrets >/dev/null
  printf '%s\n' "$bus"
}

# stop_test_server PID BUS_PID DATA_DIR: stops a test's server and its Secret Service
# (gnome-keyring-daemon leaves with its bus), and removes the sandboxes of that data
# dir's instance (their label `dev.anycode.instance` is 12 hex digits of the sha256
# of the data dir's path), whatever the test did. Empty arguments are skipped.
stop_test_server() {
  local pid=$1 bus=$2 data=$3 inst
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  if [ -n "$bus" ]; then kill "$bus" 2>/dev/null || true; fi
  if [ -d "$data" ]; then
    inst=$(printf '%s' "$(realpath "$data")" | sha256sum | cut -c1-12)
    docker ps -aq --filter "label=dev.anycode.instance=$inst" 2>/dev/null | xargs -r docker rm -f >/dev/null 2>&1 || true
  fi
}

# Polls task $1 through the caller's `api` and `json` functions, up to $2 times 0.2 s
# apart, until its status is `running`; prints the last status seen.
wait_task_running() {
  local status=""
  for _ in $(seq 1 "$2"); do
    status=$(api GET "/tasks/$1" | json .status)
    [ "$status" = running ] && break
    sleep 0.2
  done
  printf '%s' "$status"
}
