#!/usr/bin/env bash
# Runs every test of AnyCode against real parts: `scripts/test.sh`.
#
# 1. installs what is missing (build tools, Debian's chromium, docker.io) and makes
#    sure a Docker engine answers (see scripts/ensure-docker.sh);
# 2. type-checks and builds the web UI;
# 3. builds the workspace and the sandbox image;
# 4. runs the Rust tests (unit tests, and integration tests against the real Docker
#    engine, real git repositories and real HTTP/WebSocket servers on loopback);
# 5. runs the browser test: a real `anycode serve` on a loopback port, driven in
#    headless Chromium by Playwright (the hosts test against a second dockerd,
#    scripts/second-dockerd.sh); screenshots land in artifacts/e2e/;
# 6. runs the desktop app under Xvfb (scripts/desktop-test.sh); screenshots and
#    memory figures land in artifacts/desktop/;
# 7. builds the .deb (scripts/package.sh, debug profile) and tests it installed in a
#    clean Debian container (scripts/package-test.sh); artifacts in artifacts/package/.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

ensure_build_tools
ensure_desktop_deps
# chromium: the browser tests; dbus, dbus-x11, gnome-keyring, libsecret-tools: a real
# Secret Service for the OS keyring tests (the session below, and testkit::SecretService).
have apt-get && apt_install chromium dbus dbus-x11 gnome-keyring libsecret-tools
bash scripts/ensure-docker.sh

build_frontend
log "type-checking the web UI"
(cd frontend && npm run --silent typecheck)

log "building the workspace"
cargo build --locked --workspace --all-targets

# [workspace.lints] (Cargo.toml): no unwrap/expect outside tests, docs on public items.
# They warn while editing; here warnings fail the run.
# The crates that opted in (`[lints] workspace = true`); engine, server, cli and the
# desktop app join the list when they do.
# Every library crate takes the workspace lints ([workspace.lints]: no unwrap/expect
# outside tests, docs on public items); the binaries clippy's defaults.
if cargo clippy --version >/dev/null 2>&1; then
  log "linting (clippy, warnings are errors)"
  cargo clippy --locked --workspace --all-targets -- -D warnings
else
  warn "clippy is not installed (rustup component add clippy): lints not checked"
fi

# A fresh data dir for building the image (the image itself is found again by its tag);
# a kept one could hold a database of another version of AnyCode. Tests use their own.
image_data=$(mktemp -d)
ANYCODE_DATA_DIR="$image_data" target/debug/anycode image build >/dev/null
rm -rf "$image_data"

log "running the Rust tests"
# Inside a D-Bus session of their own with an unlocked gnome-keyring (its keyring files in
# a temporary folder, so a developer's own keyring is never touched): keyring code gets a
# real Secret Service, as on a desktop. Tests that lock or break theirs start a private
# one (testkit::SecretService).
keyring_dir=$(mktemp -d)
in_keyring_session() {
  if have dbus-run-session && have gnome-keyring-daemon; then
    local rc=0
    dbus-run-session -- bash -c 'printf %s anycode-test | XDG_DATA_HOME="$0/data" XDG_RUNTIME_DIR="$0" gnome-keyring-daemon --unlock --components=secrets >/dev/null; exec "$@"' "$keyring_dir" "$@" || rc=$?
    rm -rf "$keyring_dir"
    return $rc
  else
    warn "no dbus-run-session or gnome-keyring-daemon: keyring tests run without a session Secret Service"
    "$@"
  fi
}
if cargo nextest --version >/dev/null 2>&1; then
  in_keyring_session cargo nextest run --locked --workspace --no-fail-fast
else
  in_keyring_session cargo test --locked --workspace --no-fail-fast
fi

log "running the API conformance test (schemathesis)"
bash scripts/api-conformance.sh

log "running the browser test (headless Chromium)"
# LAN mode on a loopback alias: the phone test (e2e/mobile.test.mjs) reaches the server
# at 127.0.0.2 as a phone would at the computer's LAN address; nothing leaves the machine.
export ANYCODE_LAN=1 ANYCODE_LAN_ADDRESSES=127.0.0.2 ANYCODE_LAN_HOST=127.0.0.2
ARTIFACTS="$ROOT/artifacts/e2e"
rm -rf "$ARTIFACTS"; mkdir -p "$ARTIFACTS"
work=$(mktemp -d)
server_pid=""
bus_pid=""
cleanup() {
  stop_test_server "$server_pid" "$bus_pid" "$work/data"
  bash scripts/second-dockerd.sh stop "$work/second-dockerd" || true
  rm -rf "$work"
}
trap cleanup EXIT
repo="$work/repo"
make_test_repo "$repo" "E2E Tester" e2e@example.com
# The server gets a Secret Service of its own (a bus and an unlocked gnome-keyring, files
# in $work) and a (fake) Claude Code login expiring in 40 minutes: the credentials test
# saves a key from the UI and sees the task view's expiry warning.
e2e_env=()
if have dbus-daemon && have gnome-keyring-daemon; then
  bus=$(start_secret_service "$work" anycode-e2e)
  bus_pid=$(sed -n 2p <<<"$bus")
  mkdir -p "$work/claude"
  printf '{"claudeAiOauth":{"accessToken":"sk-ant-oat01-e2e-fake-token","refreshToken":"sk-ant-ort01-e2e-fake","expiresAt":%s,"scopes":["user:inference"],"subscriptionType":"max"}}' \
    "$(( ($(date +%s) + 40 * 60) * 1000 ))" >"$work/claude/.credentials.json"
  chmod 600 "$work/claude/.credentials.json"
  e2e_env=(DBUS_SESSION_BUS_ADDRESS="$(sed -n 1p <<<"$bus")" CLAUDE_CONFIG_DIR="$work/claude" ANYCODE_KEYRING_SERVICE=anycode-e2e ANYCODE_E2E_CLAUDE_LOGIN=1)
fi
env "${e2e_env[@]}" ANYCODE_DATA_DIR="$work/data" target/debug/anycode serve --no-open --port 0 >"$work/serve.out" 2>"$ARTIFACTS/serve.log" &
server_pid=$!
url=$(wait_for_url "$work/serve.out" "$server_pid" "$ARTIFACTS/serve.log" "anycode serve")
# The browser tests log in with one-time links they ask for with the token.
(cd frontend && env "${e2e_env[@]}" ANYCODE_URL="${url%%/login*}" ANYCODE_TOKEN="$(cat "$work/data/token")" ANYCODE_E2E_REPO="$repo" ANYCODE_ARTIFACTS="$ARTIFACTS" npm run --silent e2e)
# Docker hosts: a second engine on this machine stands in for a remote one. Run on its
# own, after the others: while it is a host, tasks placed automatically could go there.
if [ "$(id -u)" = 0 ] && have dockerd && have ip; then
  log "browser test of Docker hosts against a second Docker engine"
  second=$(bash scripts/second-dockerd.sh start "$work/second-dockerd")
  (cd frontend && env "${e2e_env[@]}" ANYCODE_URL="${url%%/login*}" ANYCODE_TOKEN="$(cat "$work/data/token")" ANYCODE_E2E_REPO="$repo" ANYCODE_ARTIFACTS="$ARTIFACTS" \
    ANYCODE_E2E_DOCKER_HOST="$second" node --test e2e/hosts.test.mjs)
  bash scripts/second-dockerd.sh stop "$work/second-dockerd"
else
  log "SKIPPED: the Docker hosts browser test needs root, dockerd and ip (a second engine)"
fi

log "running the desktop app under Xvfb"
bash scripts/desktop-test.sh

log "building the .deb and testing the installed app"
deb=$(bash scripts/package.sh)
bash scripts/package-test.sh "$deb"
log "all tests passed; screenshots in artifacts/e2e/, artifacts/desktop/ and artifacts/package/"
