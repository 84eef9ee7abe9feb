"""mcp-use's MCPClient and its LangChain adapter (what MCPAgent hands the model), invoked as tool calls.

Run in a venv with .ci/clients/mcp-use.txt installed (clients.sh makes one):
    python .ci/clients/mcp_use_check.py
The adapter rebuilds each input schema as a pydantic model, so every optional argument becomes "number or
null" and a model may send null. The model gets our text content only; a tool error becomes a dict
{"error": "RuntimeError", "details": "<our text>", "stack": <a traceback>, "code": "UNKNOWN", ...}, and `_meta`
does not reach it. Tool calls have no time limit over stdio; over HTTP the stream read timeout is 300 s.
"""

from __future__ import annotations

import os

# mcp-use sends anonymous usage telemetry unless told not to; nothing here may talk to the network.
os.environ["MCP_USE_ANONYMIZED_TELEMETRY"] = "false"

import json
import logging
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import anyio
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from mcp_use import MCPClient
from mcp_use.agents.adapters.langchain_adapter import LangChainAdapter

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

report = Report("mcp-use", version("mcp-use"))
# The adapter logs every tool error with its traceback at ERROR; the report says what the model reads instead.
logging.getLogger("mcp_use").setLevel(logging.CRITICAL)


async def invoke(tool: BaseTool, args: dict[str, Any]) -> tuple[Any, float]:
    with Stopwatch() as watch:
        output = await tool.ainvoke(args)
    return output, watch.s


def parsed(output: Any) -> dict[str, Any] | None:
    if not isinstance(output, str):
        return None
    try:
        value = json.loads(output)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def error_details(output: Any) -> str:
    return str(output.get("details", "")) if isinstance(output, dict) else str(output)


async def core(tools: dict[str, BaseTool], tag: str) -> None:
    get, wait = tools["get_generation_result"], tools["wait_for_generation"]
    finished, _ = await invoke(get, {"provider": PROVIDER, "task_id": finished_id(tag)})
    report.finished(parsed(finished))
    unknown, _ = await invoke(get, {"provider": "nosuch", "task_id": "x"})
    report.fact("the model reads an error as a dict with", sorted(unknown) if isinstance(unknown, dict) else unknown)
    report.error_text(error_details(unknown))
    short, took = await invoke(wait, {"provider": PROVIDER, "task_id": running_id(tag), "timeout_s": SHORT_WAIT_S})
    report.short_wait(took, parsed(short))
    null, _ = await invoke(
        wait, {"provider": PROVIDER, "task_id": finished_id(tag), "timeout_s": None, "poll_interval_s": None}
    )
    report.fact("timeout_s: null as the adapter sends it, answered", str(null)[:100])
    report.check(
        "timeout_s and poll_interval_s null mean their defaults", (parsed(null) or {}).get("done") is True, null
    )


def shown(tools: dict[str, BaseTool]) -> None:
    functions = {name: convert_to_openai_tool(tool)["function"] for name, tool in tools.items()}
    report.tools_listed(set(tools), None, {name: f.get("description", "") for name, f in functions.items()})
    for name, function in functions.items():
        report.tool_shown(name, function.get("description", ""), {"parameters": function.get("parameters")})
    timeout = functions["wait_for_generation"]["parameters"]["properties"]["timeout_s"]
    report.fact("timeout_s as the adapter shows it", timeout)


async def main() -> None:
    command, *args = server_command()
    report.section("stdio")
    config = {"mcpServers": {"genresult": {"command": command, "args": args, "env": server_env()}}}
    client = MCPClient.from_dict(config)
    try:
        # Sessions run in tasks of mcp-use's own, started outside any cancel scope of ours.
        tools = {tool.name: tool for tool in await LangChainAdapter().create_tools(client)}
        shown(tools)
        with anyio.fail_after(120):
            await core(tools, "mu")
    finally:
        await client.close_all_sessions()

    report.section("streamable HTTP")
    with http_server() as url:
        client = MCPClient.from_dict({"mcpServers": {"genresult": {"url": url}}})
        try:
            tools = {tool.name: tool for tool in await LangChainAdapter().create_tools(client)}
            with anyio.fail_after(120):
                await core(tools, "mu-http")
                args = {"provider": PROVIDER, "task_id": running_id("mu-http-long"), "timeout_s": 7}
                long, took = await invoke(tools["wait_for_generation"], args)
            report.fact("a 7 s wait past the connector's 5 s HTTP timeout", f"{str(long)[:60]}... after {took:.2f} s")
            ok = (parsed(long) or {}).get("timed_out") is True
            report.check("answers: the stream's read timeout (300 s) is the limit, not the 5 s", ok, long)
        finally:
            await client.close_all_sessions()


anyio.run(main)
report.done()
