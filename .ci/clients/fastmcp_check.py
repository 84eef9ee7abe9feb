"""fastmcp's `Client` against genresult-mcp in sandbox mode: stdio in both protocol eras, then streamable HTTP.

Run in a venv with .ci/clients/fastmcp.txt installed (clients.sh makes one):
    python .ci/clients/fastmcp_check.py
fastmcp is a client library, not an agent: what it shows a model is whatever its caller passes on, so the sizes
below are the tools as the client holds them. `call_tool` raises `ToolError` with the error's text;
`call_tool(raise_on_error=False)` gives the whole result, `_meta` included. The client validates structured
content against the tool's output schema and leaves `.data` empty (logging why) when it does not fit.
"""

from __future__ import annotations

import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import anyio
from fastmcp import Client
from fastmcp.client.transports import StdioTransport, StreamableHttpTransport
from fastmcp.exceptions import ToolError
from mcp import MCPError

sys.path.insert(0, str(Path(__file__).parent))
from common import (
    PROVIDER,
    SHORT_WAIT_S,
    Report,
    Stopwatch,
    compact_size,
    finished_id,
    http_server,
    running_id,
    server_command,
    server_env,
)

report = Report("fastmcp", version("fastmcp"))
# A backstop for every call that is not itself about timeouts.
CALL_LIMIT_S = 30


def stdio(**env: str) -> StdioTransport:
    command, *args = server_command()
    return StdioTransport(command=command, args=args, env=server_env(**env))


async def listing(client: Client[Any]) -> None:
    listed = await client.list_tools_mcp()
    tools = {tool.name: tool for tool in listed.tools}
    wire = listed.model_dump(mode="json", by_alias=True, exclude_none=True)
    report.tools_listed(set(tools), compact_size(wire), {name: tool.description or "" for name, tool in tools.items()})
    for name, tool in tools.items():
        report.tool_shown(
            name, tool.description or "", {"input schema": tool.input_schema, "output schema": tool.output_schema}
        )


async def finished_job(client: Client[Any], tag: str) -> None:
    result = await client.call_tool(
        "get_generation_result", {"provider": PROVIDER, "task_id": finished_id(tag)}, raise_on_error=False
    )
    report.check("get_generation_result on a finished job is no error", not result.is_error, result.content)
    report.finished(result.structured_content)
    # fastmcp builds `.data` only from structured content that validates against the declared output schema.
    report.check("the structured content validates against the output schema", result.data is not None, result)


async def unknown_provider(client: Client[Any]) -> None:
    arguments = {"provider": "nosuch", "task_id": "x"}
    try:
        await client.call_tool("get_generation_result", arguments)
    except ToolError as exc:
        report.error_text(str(exc))
    else:
        report.check("an unknown provider raises ToolError", False, "no error")
    result = await client.call_tool("get_generation_result", arguments, raise_on_error=False)
    text = result.content[0].text if result.content and result.content[0].type == "text" else ""
    report.check("raise_on_error=False gives isError", result.is_error, result)
    report.error_meta(result.meta, text)


async def short_wait(client: Client[Any], tag: str) -> None:
    reports: list[tuple[float, float | None]] = []

    async def progress(value: float, total: float | None, message: str | None) -> None:
        reports.append((value, total))

    with Stopwatch() as watch:
        result = await client.call_tool(
            "wait_for_generation",
            {"provider": PROVIDER, "task_id": running_id(tag), "timeout_s": SHORT_WAIT_S},
            progress_handler=progress,
        )
    report.short_wait(watch.s, result.structured_content)
    report.fact("progress notifications", reports)
    report.check("the wait sent progress, its last one full", bool(reports) and reports[-1][0] == reports[-1][1])


async def nulls(client: Client[Any], tag: str) -> None:
    arguments = {"provider": PROVIDER, "task_id": finished_id(tag), "timeout_s": None, "poll_interval_s": None}
    result = await client.call_tool("wait_for_generation", arguments, raise_on_error=False)
    report.check("timeout_s and poll_interval_s null mean their defaults", not result.is_error, result.content)
    report.check("wait_for_generation: structured content validates against its output schema", result.data is not None)
    bad = await client.call_tool("wait_for_generation", {**arguments, "timeout_s": "soon"}, raise_on_error=False)
    text = bad.content[0].text if bad.content and bad.content[0].type == "text" else ""
    report.error_text(text, "invalid_argument")
    report.error_meta(bad.meta, text, "invalid_argument")


async def other_tools(client: Client[Any], tag: str) -> None:
    job = {"provider": PROVIDER, "task_id": finished_id(tag)}
    for name, arguments in (
        ("wait_for_generations", {"jobs": [job], "timeout_s": 5}),
        ("download_generation_outputs", job),
        ("list_generations", {"limit": 5}),
    ):
        result = await client.call_tool(name, arguments, raise_on_error=False)
        ok = not result.is_error and result.data is not None
        report.check(f"{name}: structured content validates against its output schema", ok, result.content)
        if name == "download_generation_outputs":
            links = [block for block in result.content if block.type == "resource_link"]
            report.check("the download comes with a resource link per file", bool(links), result.content)


async def client_timeout(client: Client[Any], tag: str) -> None:
    """A wait longer than the client's own limit: fastmcp raises, and the session goes on."""
    with Stopwatch() as watch:
        try:
            await client.call_tool(
                "wait_for_generation", {"provider": PROVIDER, "task_id": running_id(tag), "timeout_s": 5}, timeout=1
            )
            outcome = "answered"
        except MCPError as exc:
            outcome = f"MCPError {exc.error.code}: {exc}"
    report.fact("wait_for_generation(timeout_s=5) with call_tool(timeout=1)", f"{outcome} after {watch.s:.2f} s")
    report.check("the client's own limit ends the call (so timeout_s must stay under it)", outcome != "answered")
    await finished_job(client, f"{tag}-after")


async def default_wait_fix() -> None:
    """GENRESULT_DEFAULT_WAIT_S under the client's limit: a wait without timeout_s answers timed_out in time."""
    async with Client(stdio(GENRESULT_DEFAULT_WAIT_S="2"), timeout=4) as client:
        with Stopwatch() as watch:
            result = await client.call_tool(
                "wait_for_generation", {"provider": PROVIDER, "task_id": running_id("fix")}, raise_on_error=False
            )
        structured = result.structured_content or {}
        report.fact("GENRESULT_DEFAULT_WAIT_S=2, Client(timeout=4), no timeout_s", f"answered after {watch.s:.2f} s")
        ok = not result.is_error and structured.get("timed_out") is True and watch.s >= 1.8
        report.check("the server's default wait answers timed_out before the client gives up", ok, structured)


async def main() -> None:
    for mode in ("legacy", "auto"):
        report.section(f"stdio, mode={mode}")
        async with Client(stdio(), mode=mode, timeout=CALL_LIMIT_S) as client:
            report.fact("protocol version", client.protocol_version)
            with anyio.fail_after(120):
                await listing(client)
                await finished_job(client, f"fastmcp-{mode}")
                await unknown_provider(client)
                await short_wait(client, f"fastmcp-{mode}")
                await nulls(client, f"fastmcp-{mode}-null")
                await other_tools(client, f"fastmcp-{mode}-other")
                await client_timeout(client, f"fastmcp-{mode}-limit")

    report.section("stdio: the setting that fixes a short client limit")
    with anyio.fail_after(60):
        await default_wait_fix()

    report.section("streamable HTTP")
    with http_server() as url:
        async with Client(StreamableHttpTransport(url), timeout=CALL_LIMIT_S) as client:
            report.fact("protocol version", client.protocol_version)
            with anyio.fail_after(120):
                await listing(client)
                await finished_job(client, "fastmcp-http")
                await unknown_provider(client)
                await short_wait(client, "fastmcp-http")
                await nulls(client, "fastmcp-http-null")
                await client_timeout(client, "fastmcp-http-limit")


anyio.run(main)
report.done()
