"""langchain-mcp-adapters: MCP tools as LangChain StructuredTools, invoked with tool calls as an agent would.

Run in a venv with .ci/clients/langchain.txt installed (clients.sh makes one):
    python .ci/clients/langchain_check.py
What the model sees is `convert_to_openai_tool(tool)`: our description and input schema (no output schema);
the result's text is the ToolMessage content and the structured content its artifact. A tool error is a
ToolMessage with status "error" and our text; `_meta` is not in it, but a tool interceptor sees the whole
result. `MultiServerMCPClient.get_tools()` opens a session per call by default; here one session serves all.
"""

from __future__ import annotations

import sys
import time
from datetime import timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

import anyio
from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_mcp_adapters.client import MultiServerMCPClient
from langchain_mcp_adapters.interceptors import MCPToolCallRequest
from langchain_mcp_adapters.tools import load_mcp_tools

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

report = Report("langchain-mcp-adapters", version("langchain-mcp-adapters"))
metas: list[Any] = []


async def keep_meta(request: MCPToolCallRequest, handler: Any) -> Any:
    """A tool interceptor: the one place this adapter shows its caller the whole CallToolResult."""
    result = await handler(request)
    metas.append(getattr(result, "meta", None))
    return result


def stdio(session_kwargs: dict[str, Any] | None = None, **env: str) -> dict[str, Any]:
    command, *args = server_command()
    connection: dict[str, Any] = {"transport": "stdio", "command": command, "args": args, "env": server_env(**env)}
    if session_kwargs:
        connection["session_kwargs"] = session_kwargs
    return connection


async def invoke(tool: BaseTool, args: dict[str, Any]) -> tuple[ToolMessage, float]:
    with Stopwatch() as watch:
        message = await tool.ainvoke(
            {"type": "tool_call", "id": f"call-{time.monotonic_ns()}", "name": tool.name, "args": args}
        )
    assert isinstance(message, ToolMessage), message
    return message, watch.s


def text(message: ToolMessage) -> str:
    if isinstance(message.content, str):
        return message.content
    return "".join(block.get("text", "") for block in message.content if isinstance(block, dict))


async def core(tools: dict[str, BaseTool], tag: str, *, listing: bool) -> None:
    if listing:
        shown = {name: convert_to_openai_tool(tool)["function"] for name, tool in tools.items()}
        report.tools_listed(set(tools), None, {name: f.get("description", "") for name, f in shown.items()})
        for name, function in shown.items():
            report.tool_shown(name, function.get("description", ""), {"parameters": function.get("parameters")})
    get, wait = tools["get_generation_result"], tools["wait_for_generation"]
    finished, _ = await invoke(get, {"provider": PROVIDER, "task_id": finished_id(tag)})
    report.finished(finished.artifact.get("structured_content") if isinstance(finished.artifact, dict) else None)
    metas.clear()
    unknown, _ = await invoke(get, {"provider": "nosuch", "task_id": "x"})
    report.check(
        "a tool error reaches the model as a ToolMessage with status error", unknown.status == "error", unknown
    )
    report.error_text(text(unknown))
    report.error_meta(metas[-1] if metas else None, text(unknown))
    short, took = await invoke(wait, {"provider": PROVIDER, "task_id": running_id(tag), "timeout_s": SHORT_WAIT_S})
    report.short_wait(took, short.artifact.get("structured_content") if isinstance(short.artifact, dict) else None)
    null, _ = await invoke(wait, {"provider": PROVIDER, "task_id": finished_id(tag), "timeout_s": None})
    report.check("timeout_s null means its default", null.status == "success", text(null))
    bad, _ = await invoke(wait, {"provider": PROVIDER, "task_id": finished_id(tag), "timeout_s": "soon"})
    report.error_text(text(bad), "invalid_argument")


async def main() -> None:
    report.section("stdio, one session, a tool interceptor reading _meta")
    client = MultiServerMCPClient({"genresult": stdio()}, tool_interceptors=[keep_meta])  # type: ignore[dict-item]
    async with client.session("genresult") as session:
        tools = {tool.name: tool for tool in await load_mcp_tools(session, tool_interceptors=[keep_meta])}
        with anyio.fail_after(120):
            await core(tools, "lc", listing=True)

    report.section("stdio, session read_timeout_seconds=1 (the client's tool-call limit) and a 5 s wait")
    limited = MultiServerMCPClient({"genresult": stdio({"read_timeout_seconds": timedelta(seconds=1)})})  # type: ignore[dict-item]
    closing = "closed cleanly"
    outcome = "no answer: the session failed under the call"
    with Stopwatch() as watch:
        try:
            async with limited.session("genresult") as session:
                wait = {tool.name: tool for tool in await load_mcp_tools(session)}["wait_for_generation"]
                watch.start = time.monotonic()
                try:
                    args = {"provider": PROVIDER, "task_id": running_id("lc-limit"), "timeout_s": 5}
                    message, _ = await invoke(wait, args)
                    outcome = f"ToolMessage {message.status}: {text(message)[:80]}"
                except Exception as exc:  # whatever escapes the adapter is the finding
                    outcome = f"raised {type(exc).__name__}: {exc}"
        except BaseExceptionGroup as group:
            # mcp 1.x sends no cancellation on its timeout, so the call is still open at the server when the
            # session closes; the server answers it ("Connection closed") after the client's stdout reader has
            # stopped listening, and the reader raises. Sometimes that happens while the call is still awaited.
            closing = f"raised {group!r}"
    report.fact("the agent gets", f"{outcome}, {watch.s:.2f} s from the call to the session's end")
    answered = outcome.startswith("ToolMessage")
    report.check("the client's limit ends the call (so timeout_s must stay under it)", not answered, outcome)
    report.fact("closing that session afterwards", closing)

    report.section("streamable HTTP, one session")
    with http_server() as url:
        client = MultiServerMCPClient(
            {"genresult": {"transport": "streamable_http", "url": url}}, tool_interceptors=[keep_meta]
        )
        async with client.session("genresult") as session:
            tools = {tool.name: tool for tool in await load_mcp_tools(session, tool_interceptors=[keep_meta])}
            with anyio.fail_after(120):
                await core(tools, "lc-http", listing=False)


anyio.run(main)
report.done()
