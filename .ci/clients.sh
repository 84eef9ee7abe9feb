#!/usr/bin/env bash
# Real third-party MCP clients against genresult-mcp in sandbox mode (no accounts, no provider network):
#   1. the MCP Inspector CLI over stdio: tools/list --strict, and a checked tools/call of each tool;
#   2. the MCP conformance suite's server scenarios over streamable HTTP, against a checked-in baseline;
#   3. six MCP client libraries' own layers (fastmcp, pydantic-ai, langchain-mcp-adapters, openai-agents, mcp-use,
#      the TypeScript SDK) over stdio and HTTP: .ci/clients/*_check.*, each failing on a promise of ours that does
#      not hold through that client (docs/CLIENTS.md). Each Python client gets a venv of its own under
#      .ci/.work/py (their mcp versions differ: 1.30 and 2.3), installed from its pinned .ci/clients/NAME.txt.
# Called by .ci/run with the project's venv first on PATH (genresult-mcp, python). Needs npm; installs pinned
# versions under .ci/.work/node and reuses them on later runs, so only the first run needs the npm registry.
set -euo pipefail
cd "$(dirname "$0")/.."

INSPECTOR_VERSION=2.12.0
CONFORMANCE_VERSION=0.1.16
# The MCP Bundle CLI, for Claude Desktop's one-click install.
MCPB_VERSION=2.1.2
# The conformance suite needs node >= 22 (it crashes at import on 20); npm's `node` package ships one.
NODE_VERSION=22.23.3

work="$PWD/.ci/.work/node"
bin="$work/node_modules/.bin"
section() { printf '\n=== %s ===\n' "$*"; }
fail() { printf 'clients.sh: %s\n' "$*" >&2; exit 1; }

# Whatever this script started in the background is stopped when it ends, however it ends.
background=()
cleanup() {
  for pid in "${background[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT

export npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false
# The Inspector's postinstall installs its clients only in a source checkout; say so rather than rely on it.
export INSPECTOR_SKIP_CLIENT_INSTALL=1

section "clients: install (pinned, under .ci/.work/node)"
command -v npm >/dev/null || fail "npm is needed to install the Inspector and the conformance suite"
command -v genresult-mcp >/dev/null || fail "genresult-mcp is not on PATH (run from .ci/run, inside the venv)"
installed_version() { node -p "require('$work/node_modules/$1/package.json').version" 2>/dev/null || true; }
mkdir -p "$work"
cat >"$work/package.json" <<JSON
{
  "private": true,
  "dependencies": {
    "@modelcontextprotocol/inspector": "$INSPECTOR_VERSION",
    "@modelcontextprotocol/conformance": "$CONFORMANCE_VERSION",
    "@anthropic-ai/mcpb": "$MCPB_VERSION",
    "node": "$NODE_VERSION"
  }
}
JSON
if [ "$(installed_version @modelcontextprotocol/inspector)" = "$INSPECTOR_VERSION" ] \
  && [ "$(installed_version @modelcontextprotocol/conformance)" = "$CONFORMANCE_VERSION" ] \
  && [ "$(installed_version @anthropic-ai/mcpb)" = "$MCPB_VERSION" ] \
  && [ "$("$bin/node" --version 2>/dev/null)" = "v$NODE_VERSION" ]; then
  echo "already installed; not touching the network"
else
  (cd "$work" && npm install --no-save --prefer-offline --loglevel=error)
fi
echo "inspector $(installed_version @modelcontextprotocol/inspector), conformance $(installed_version @modelcontextprotocol/conformance), node $("$bin/node" --version)"

# From here on nothing is fetched: the tools run from node_modules with the pinned node first on PATH.
export PATH="$bin:$PATH"

section "MCP Bundle: manifest.json validated and packed with the pinned mcpb CLI"
mcpb validate manifest.json || fail "manifest.json does not validate"
bundle="$PWD/.ci/.work/bundle"
rm -rf "$bundle" && mkdir -p "$bundle"
cp -r manifest.json pyproject.toml README.md server tools sandbox "$bundle/"
find "$bundle" -name __pycache__ -prune -exec rm -rf {} +
(cd "$bundle" && mcpb pack . "$PWD/../genresult-mcp.mcpb") || fail "mcpb pack failed"
ls -l "$PWD/.ci/.work/genresult-mcp.mcpb"

# The stdio server, as an MCP client config would start it; errors only on stderr.
server=(genresult-mcp serve --sandbox)
inspect() { mcp-inspector --cli -e GENRESULT_LOG_LEVEL=ERROR "$@"; }

section "Inspector CLI: tools/list --strict (schema portability), legacy and modern protocol eras"
for era in legacy modern; do
  inspect --protocol-era "$era" --method tools/list --strict --format json "${server[@]}" >"$work/tools-$era.json" \
    || fail "tools/list --strict failed in the $era era (exit $?)"
  python - "$work/tools-$era.json" "$era" <<'PY'
import json, sys
listed = json.load(open(sys.argv[1]))
tools = {t["name"]: t for t in listed.get("result", listed)["tools"]}
from tests.conftest import TOOL_NAMES
assert set(tools) == TOOL_NAMES, sorted(tools)
for name, tool in tools.items():
    assert tool.get("outputSchema", {}).get("properties"), name
    notes = tool["annotations"]
    writes = name == "download_generation_outputs"
    # The listing asks no provider: closed-world; every other tool reaches one.
    assert notes["readOnlyHint"] is not writes and notes["idempotentHint"], name
    assert notes["openWorldHint"] is (name != "list_generations"), name
    assert not writes or notes["destructiveHint"] is False, name
print(f"{sys.argv[2]}: ok, {', '.join(sorted(tools))} with output schema and the design's annotations")
PY
done

# One job per provider, each id in that provider's own format, as the registry's emulators make them.
mapfile -t jobs < <(python -c 'from sandbox import EMULATORS
for n, (provider, cls) in enumerate(sorted(EMULATORS.items())):
    print(provider, cls.sandbox_id(900 + n))')

# Tool arguments as JSON, passed verbatim: --tool-arg would turn ModelsLab's id "148" into the number 148.
args() {
  python -c 'import json, sys; a = sys.argv[1:]; print(json.dumps({"provider": a[0], "task_id": a[1], **({"timeout_s": float(a[2])} if a[2:] else {})}))' "$@"
}

# check_result FILE PROVIDER TASK_ID WANT: WANT is "any" (a live state) or "succeeded" (finished).
check_result() {
  python - "$@" <<'PY'
import json, sys
path, provider, task_id, want = sys.argv[1:]
result = json.load(open(path))
result = result.get("result", result)
assert not result.get("isError"), f"tool error: {result.get('content')}"
got = result["structuredContent"]
text = json.loads(result["content"][0]["text"])
assert text == got, "the text content is not the structured content"
assert got["provider"] == provider and got["task_id"] == task_id, got
assert got["status"] in ("queued", "running", "succeeded", "failed", "canceled"), got
assert got["done"] == (got["status"] in ("succeeded", "failed", "canceled")), got
if want == "succeeded":
    assert got["status"] == "succeeded" and got["done"] and not got["timed_out"], got
    # https at a provider's CDN, or plain http where the sandbox serves the file itself.
    assert got["outputs"] and got["outputs"][0]["url"].startswith(("https://", "http://")), got
    assert got["polls"] >= 1, got
print(f"{provider}: {got['status']} ({got['provider_status']}), done={got['done']}")
PY
}

section "Inspector CLI: tools/call get_generation_result, one job per provider"
for job in "${jobs[@]}"; do
  read -r provider task_id <<<"$job"
  out="$work/get-$provider.json"
  inspect --method tools/call --tool-name get_generation_result --tool-args-json "$(args "$provider" "$task_id")" \
    --format json "${server[@]}" >"$out" || fail "tools/call get_generation_result failed for $provider"
  check_result "$out" "$provider" "$task_id" any || fail "unexpected get_generation_result answer for $provider"
done

section "Inspector CLI: tools/call wait_for_generation, one job per provider (sandbox jobs take ~8 s; in parallel)"
pids=()
for job in "${jobs[@]}"; do
  read -r provider task_id <<<"$job"
  # Thirteen servers and Inspectors start at once on two cores: more than the default 15 s to connect, when busy.
  inspect --connect-timeout 60000 --method tools/call --tool-name wait_for_generation --tool-args-json "$(args "$provider" "$task_id" 40)" \
    --format json "${server[@]}" >"$work/wait-$provider.json" &
  pids+=("$!")
  background+=("$!")
done
for i in "${!jobs[@]}"; do
  read -r provider task_id <<<"${jobs[$i]}"
  wait "${pids[$i]}" || fail "tools/call wait_for_generation failed for $provider"
  check_result "$work/wait-$provider.json" "$provider" "$task_id" succeeded || fail "unexpected wait answer for $provider"
done

section "Inspector CLI: a tool error reaches the client as isError with its code"
# With --format json the Inspector exits 1 on a tool error (and says so on stderr); the answer is on stdout.
inspect --method tools/call --tool-name get_generation_result --tool-args-json "$(args nosuch x)" \
  --format json "${server[@]}" >"$work/error.json" 2>/dev/null || true
python - "$work/error.json" <<'PY'
import json, sys
result = json.load(open(sys.argv[1]))
result = result.get("result", result)
assert result.get("isError") is True, result
assert "unknown_provider" in result["content"][0]["text"], result
print("unknown provider: isError with unknown_provider")
PY

section "MCP client libraries: install (pinned: .ci/clients/*.txt, .ci/clients/package-lock.json)"
clients=.ci/clients
py_clients=(fastmcp pydantic-ai langchain openai-agents mcp-use)
for name in "${py_clients[@]}"; do
  venv="$PWD/.ci/.work/py/$name"
  stamp=$(sha256sum "$clients/$name.txt" | cut -d' ' -f1)
  if [ "$(cat "$venv/.pinned" 2>/dev/null)" = "$stamp" ]; then
    echo "$name: already installed; not touching the network"
    continue
  fi
  rm -rf "$venv"
  python -m venv "$venv"
  timeout 600 "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$clients/$name.txt" \
    || fail "installing the pinned $name failed"
  echo "$stamp" >"$venv/.pinned"
  echo "$name: installed"
done
ts_sdk() { node -p "require('./$clients/node_modules/@modelcontextprotocol/sdk/package.json').version" 2>/dev/null || true; }
if [ "$(ts_sdk)" = "$(node -p "require('./$clients/package.json').dependencies['@modelcontextprotocol/sdk']")" ]; then
  echo "typescript-sdk: already installed; not touching the network"
else
  (cd "$clients" && npm ci --prefer-offline --loglevel=error) || fail "installing the pinned TypeScript SDK failed"
  echo "typescript-sdk: installed $(ts_sdk)"
fi

section "MCP client libraries against the server (stdio and HTTP)"
GENRESULT_EXPECTED_TOOLS=$(python -c 'from tests.conftest import TOOL_NAMES; print(",".join(sorted(TOOL_NAMES)))')
export GENRESULT_EXPECTED_TOOLS
GENRESULT_MCP=$(command -v genresult-mcp)
export GENRESULT_MCP
for name in "${py_clients[@]}"; do
  timeout 300 "$PWD/.ci/.work/py/$name/bin/python" "$clients/${name//-/_}_check.py" \
    || fail "$name: a check failed or it ran out of time (exit $?); see above"
done
timeout 300 node "$clients/ts_check.mjs" || fail "typescript-sdk: a check failed or it ran out of time (exit $?)"

section "conformance suite $CONFORMANCE_VERSION: server scenarios over streamable HTTP"
port=$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
GENRESULT_LOG_LEVEL=ERROR genresult-mcp serve --transport http --host 127.0.0.1 --port "$port" --sandbox &
server_pid=$!
background+=("$server_pid")
python - "$port" "$server_pid" <<'PY' || fail "the HTTP server did not start listening on port $port"
import os, socket, sys, time
port, pid = int(sys.argv[1]), int(sys.argv[2])
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit(f"the server (pid {pid}) exited")
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit("timed out")
PY
rm -rf "$work/conformance-results"
conformance server --url "http://127.0.0.1:$port/mcp" --expected-failures .ci/conformance-baseline.yml \
  -o "$work/conformance-results" || fail "conformance: a scenario outside the baseline failed, or a listed one passed"

section "clients: ok"
