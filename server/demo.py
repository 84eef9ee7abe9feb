"""`genresult-mcp demo`: what a newcomer runs first.

Starts the server over stdio in sandbox mode exactly as a client would (a child process), connects the SDK's
MCP client, lists the tools, and waits on one sandbox job per provider at once, printing progress as it comes
and each result at the end. Nothing here needs an account or the network.
"""

from __future__ import annotations

import sys
import time

import anyio
from mcp import Client, StdioServerParameters

from tools.providers import ADAPTERS
from tools.result import GenerationResult

# One plausible job per provider, with the id each provider's docs show; the sandbox invents each on first
# sight, and it succeeds.
DEMO_JOBS = [(provider_id, adapter.example_task_id) for provider_id, adapter in ADAPTERS.items()]
WIDTH = max(len(provider_id) for provider_id in ADAPTERS)


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def run_demo(pace: float = 1.0) -> int:
    """`pace`: the sandbox's (`GENRESULT_SANDBOX_PACE`), handed to the server, whose environment is otherwise
    only what the SDK passes to a stdio server. Its registry is off: the sandbox's jobs never join the user's."""
    env = {"GENRESULT_SANDBOX_PACE": str(pace), "GENRESULT_DB": "off"}
    params = StdioServerParameters(command=sys.executable, args=["-m", "server", "serve", "--sandbox"], env=env)
    started = time.monotonic()
    _say("Starting genresult-mcp over stdio in sandbox mode (built-in provider emulators)...")
    async with Client(params) as client:
        tools = await client.list_tools()
        _say(f"Connected. Tools: {', '.join(tool.name for tool in tools.tools)}")
        results: dict[str, GenerationResult] = {}

        async def wait_one(provider: str, task_id: str) -> None:
            async def on_progress(progress: float, total: float | None, message: str | None) -> None:
                _say(f"  [{provider:<{WIDTH}}] {message}")

            reply = await client.call_tool(
                "wait_for_generation",
                {"provider": provider, "task_id": task_id, "timeout_s": 50},
                progress_callback=on_progress,
            )
            if reply.is_error:
                text = reply.content[0].text if reply.content and reply.content[0].type == "text" else "?"
                _say(f"  [{provider:<{WIDTH}}] error: {text}")
                return
            results[provider] = GenerationResult.model_validate(reply.structured_content)

        _say("Waiting on one job per provider (each takes a few seconds in the sandbox):")
        async with anyio.create_task_group() as group:
            for provider, task_id in DEMO_JOBS:
                group.start_soon(wait_one, provider, task_id)

    _say("\nResults (the compact JSON each tool call returned):")
    for provider, _ in DEMO_JOBS:
        if provider in results:
            _say(results[provider].compact_json())
    _say(
        f"\nDone in {time.monotonic() - started:.1f}s. "
        "Next: add the server to your MCP client (see README.md, 'Client configuration')."
    )
    return 0 if len(results) == len(DEMO_JOBS) else 1
