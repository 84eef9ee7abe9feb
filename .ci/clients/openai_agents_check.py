"""openai-agents' MCP servers (MCPServerStdio, MCPServerStreamableHttp) and the function tools an Agent makes of them,
invoked as the runner invokes them (`on_invoke_tool`), with no model behind.

Run in a venv with .ci/clients/openai-agents.txt installed (clients.sh makes one):
    python .ci/clients/openai_agents_check.py
The model gets our description and input schema (made strict with `convert_schemas_to_strict`, else as listed)
and our text content (the structured content instead with `use_structured_content=True`). A tool error's text
reaches the model as an ordinary output; `_meta` reaches a `custom_data_extractor`. Tool calls get
`client_session_timeout_seconds`, 5 s unless set; a call that outlives it reaches the model as "An error
occurred while running the tool. Please try again."
"""

from __future__ import annotations

import os

# No trace export: nothing here may talk to the network.
os.environ["OPENAI_AGENTS_DISABLE_TRACING"] = "1"

import json
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import anyio
from agents import Agent, FunctionTool, RunContextWrapper
from agents.mcp import MCPServer, MCPServerStdio, MCPServerStreamableHttp
from agents.mcp.util import MCPToolCustomDataContext
from agents.tool_context import ToolContext

sys.path.insert(0, str(Path(__file__).parent))
from common import (
    PROVIDER,
    SHORT_WAIT_S,
    Report,
    Stopwatch,
    finished_id,
    http_server,
    running_id,
    server_command,
    server_env,
)

report = Report("openai-agents", version("openai-agents"))
metas: list[Any] = []


def keep_meta(context: MCPToolCustomDataContext) -> None:
    metas.append(dict(context.result_meta) if context.result_meta is not None else None)


def stdio(timeout_s: float | None = 5, **env: str) -> MCPServerStdio:
    command, *args = server_command()
    return MCPServerStdio(
        params={"command": command, "args": args, "env": server_env(**env)},
        client_session_timeout_seconds=timeout_s,
        custom_data_extractor=keep_meta,
    )


async def function_tools(server: MCPServer, *, strict: bool) -> dict[str, FunctionTool]:
    agent = Agent(name="check", mcp_servers=[server], mcp_config={"convert_schemas_to_strict": strict})
    tools = await agent.get_all_tools(RunContextWrapper(context=None))
    return {tool.name: tool for tool in tools if isinstance(tool, FunctionTool)}


async def invoke(tool: FunctionTool, args: dict[str, Any]) -> tuple[str, float]:
    """What the model reads back, and how long the call took."""
    arguments = json.dumps(args)
    context = ToolContext(context=None, tool_name=tool.name, tool_call_id="call-1", tool_arguments=arguments)
    with Stopwatch() as watch:
        output = await tool.on_invoke_tool(context, arguments)
    if isinstance(output, dict) and output.get("type") == "text":
        return str(output["text"]), watch.s
    return str(output), watch.s


def parsed(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


async def core(tools: dict[str, FunctionTool], tag: str) -> None:
    get, wait = tools["get_generation_result"], tools["wait_for_generation"]
    finished, _ = await invoke(get, {"provider": PROVIDER, "task_id": finished_id(tag)})
    report.finished(parsed(finished))
    metas.clear()
    unknown, _ = await invoke(get, {"provider": "nosuch", "task_id": "x"})
    report.error_text(unknown)
    report.error_meta(metas[-1] if metas else None, unknown)
    short, took = await invoke(wait, {"provider": PROVIDER, "task_id": running_id(tag), "timeout_s": SHORT_WAIT_S})
    report.short_wait(took, parsed(short))
    # What a strict schema makes the model send: every argument, null where it has nothing to say.
    null, _ = await invoke(
        wait, {"provider": PROVIDER, "task_id": finished_id(tag), "timeout_s": None, "poll_interval_s": None}
    )
    report.check(
        "timeout_s and poll_interval_s null mean their defaults", (parsed(null) or {}).get("done") is True, null
    )
    bad, _ = await invoke(wait, {"provider": PROVIDER, "task_id": finished_id(tag), "timeout_s": "soon"})
    report.error_text(bad, "invalid_argument")


async def main() -> None:
    report.section("stdio, the defaults (client_session_timeout_seconds=5, schemas as listed)")
    async with stdio() as server:
        tools = await function_tools(server, strict=False)
        report.tools_listed(set(tools), None, {name: tool.description for name, tool in tools.items()})
        for name, tool in tools.items():
            report.tool_shown(name, tool.description, {"parameters": tool.params_json_schema})
        strict = await function_tools(server, strict=True)
        report.fact("strict with convert_schemas_to_strict=True", {n: t.strict_json_schema for n, t in strict.items()})
        loose = sorted(name for name, tool in strict.items() if not tool.strict_json_schema)
        report.check("every input schema converts to strict mode", not loose, loose)
        with anyio.fail_after(120):
            await core(strict, "oa")
            late, took = await invoke(
                strict["wait_for_generation"],
                {"provider": PROVIDER, "task_id": running_id("oa-late"), "timeout_s": None, "poll_interval_s": None},
            )
        report.fact("the default 50 s wait under the 5 s limit: the model reads", f"{late!r} after {took:.2f} s")
        report.check("the client's limit ends the call (so timeout_s must stay under it)", parsed(late) is None, late)

    report.section("stdio, GENRESULT_DEFAULT_WAIT_S=4 under the default 5 s limit, no timeout_s")
    async with stdio(GENRESULT_DEFAULT_WAIT_S="4") as server:
        wait = (await function_tools(server, strict=False))["wait_for_generation"]
        with anyio.fail_after(60):
            fixed, took = await invoke(wait, {"provider": PROVIDER, "task_id": running_id("oa-fix")})
        report.fact("answered after", f"{took:.2f} s")
        ok = (parsed(fixed) or {}).get("timed_out") is True
        report.check("the server's default wait answers timed_out before the client gives up", ok, fixed)

    report.section("streamable HTTP (client_session_timeout_seconds=5)")
    with http_server() as url:
        async with MCPServerStreamableHttp(params={"url": url}, custom_data_extractor=keep_meta) as server:
            with anyio.fail_after(120):
                await core(await function_tools(server, strict=True), "oa-http")


anyio.run(main)
report.done()
