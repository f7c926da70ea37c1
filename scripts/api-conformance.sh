#!/usr/bin/env bash
# The API conformance test: `scripts/api-conformance.sh`.
#
# Runs schemathesis (from PyPI, in a venv cached under ~/.cache/anycode) against a
# real `anycode serve` with a real project (a git repository made in a temporary
# folder), its own data dir and its own Secret Service (a D-Bus session bus with an
# unlocked gnome-keyring, files in the temporary folder), authenticated with the
# access token (`Authorization: Bearer`, the file `token` in the data dir). The
# checks: not_a_server_error, response_schema_conformance, status_code_conformance
# and content_type_conformance, against the server's own /api/openapi.json.
#
# Operations on one project or task get the real ones' ids (a shell task in a real
# sandbox: push, commit, terminals, network, … run for real). Excluded: `POST
# /api/projects` (an import clones from whatever host the URL names: traffic would
# leave the machine; the project here is added by this script through the same
# route with a path) and `POST /api/projects/{id}/tasks` (a valid body makes a
# sandbox: real, long work per example). Deleting the task or the project gets an
# unknown id during the run and is checked for real after it. GitHub is a stand-in
# on loopback that refuses every token, LAN mode a loopback alias: nothing leaves
# the machine.
#
# Environment: ANYCODE_BIN (default target/debug/anycode), ST_MAX_EXAMPLES (default
# 30 per operation), ST_VENV (default ~/.cache/anycode/schemathesis-venv).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

ST_VERSION=4.32.5
venv=${ST_VENV:-$HOME/.cache/anycode/schemathesis-venv}
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$ST_VERSION"; then
  log "installing schemathesis $ST_VERSION into $venv"
  mkdir -p "$(dirname "$venv")"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "schemathesis==$ST_VERSION"
fi

bin=$(realpath "${ANYCODE_BIN:-target/debug/anycode}")
[ -x "$bin" ] || die "$bin is missing: build the workspace first (cargo build --workspace)"

work=$(mktemp -d)
server_pid=""
bus_pid=""
github_pid=""
cleanup() {
  stop_test_server "$server_pid" "$bus_pid" "$work/data"
  if [ -n "$github_pid" ]; then kill "$github_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

repo="$work/repo"
make_test_repo "$repo" "API Tester" api@example.com

# GitHub: a stand-in on loopback that refuses every token (401 "Bad credentials", as
# GitHub answers), so the GitHub routes answer as they do for a user whose token
# GitHub refuses, and nothing leaves the machine.
"$venv/bin/python" - "$work/github.port" <<'PY' &
import http.server, json, os, sys

class Refuse(http.server.BaseHTTPRequestHandler):
    def answer(self):
        body = json.dumps({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = answer

    def log_message(self, *args):
        pass

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(server.server_port))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
server.serve_forever()
PY
github_pid=$!
for _ in $(seq 1 50); do [ -s "$work/github.port" ] && break; sleep 0.1; done
[ -s "$work/github.port" ] || die "the GitHub stand-in did not start"

# The server's own Secret Service: a session bus and an unlocked gnome-keyring.
env_vars=(ANYCODE_DATA_DIR="$work/data" ANYCODE_KEYRING_SERVICE=anycode-conformance
  ANYCODE_GITHUB_API="http://127.0.0.1:$(cat "$work/github.port")" ANYCODE_LAN_ADDRESSES=127.0.0.2 ANYCODE_LAN_HOST=127.0.0.2
  HOME="$work/home" CLAUDE_CONFIG_DIR="$work/claude")
mkdir -p "$work/home" "$work/claude"
if have dbus-daemon && have gnome-keyring-daemon; then
  bus=$(start_secret_service "$work" anycode-api)
  bus_pid=$(sed -n 2p <<<"$bus")
  env_vars+=(DBUS_SESSION_BUS_ADDRESS="$(sed -n 1p <<<"$bus")")
else
  warn "no dbus-daemon or gnome-keyring-daemon: the keyring routes answer without a Secret Service"
fi

env "${env_vars[@]}" "$bin" serve --no-open --port 0 >"$work/serve.out" 2>"$work/serve.log" &
server_pid=$!
url=$(wait_for_url "$work/serve.out" "$server_pid" "$work/serve.log" "anycode serve")
base=${url%%/login*}
token=$(cat "$work/data/token")
auth="Authorization: Bearer $token"

# A real project and a real task (a shell in a sandbox), made through the API. The
# operations on one project or task get their ids (except deleting them); the others
# random ones.
json_field() { "$venv/bin/python" -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
project=$(curl -fsS -H "$auth" -H 'Content-Type: application/json' -d "{\"path\": \"$repo\"}" "$base/api/projects" | json_field id)
task=$(curl -fsS -H "$auth" -H 'Content-Type: application/json' -d '{"title": "conformance", "agent": "shell", "record": true}' \
  "$base/api/projects/$project/tasks" | json_field id)
log "project $project, task $task"
cat >"$work/schemathesis.toml" <<TOML
[[operations]]
include-path-regex = '^/api/projects/\{id\}/'
parameters = { id = "$project" }

[[operations]]
include-operation-id = "get_project"
parameters = { id = "$project" }

[[operations]]
include-path-regex = '^/api/tasks/\{id\}/'
parameters = { id = "$task" }

[[operations]]
include-operation-id = "get_task"
parameters = { id = "$task" }

# Deleting gets an id that does not exist: schemathesis reuses ids it saw in answers,
# and deleting the task or the project midway would leave the rest with 404s. The
# real deletion is checked after the run.
[[operations]]
include-operation-id = "delete_task"
parameters = { id = "000000000000" }

[[operations]]
include-operation-id = "delete_project"
parameters = { id = "000000000000" }
TOML

log "schemathesis against $base/api/openapi.json"
# From the temporary folder: schemathesis keeps its cache in the working directory.
cd "$work"
rc=0
"$venv/bin/schemathesis" --config-file "$work/schemathesis.toml" run "$base/api/openapi.json" \
  --url "$base" \
  --header "$auth" \
  --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance \
  --exclude-operation-id add_project --exclude-operation-id create_task \
  --max-examples "${ST_MAX_EXAMPLES:-30}" \
  --no-color \
  "$@" || rc=$?
if [ "$rc" = 0 ]; then
  # The deletions left out above, for real: the task (204), then its project (204).
  for path in "/api/tasks/$task" "/api/projects/$project"; do
    st=$(curl -sS -o /dev/null -w '%{http_code}' -X DELETE -H "$auth" "$base$path")
    [ "$st" = 204 ] || { warn "DELETE $path answered $st, not 204"; rc=1; }
  done
fi
if [ "$rc" != 0 ]; then
  warn "the API conformance test failed; the server's log:"
  tail -n 50 "$work/serve.log" >&2
fi
exit "$rc"
