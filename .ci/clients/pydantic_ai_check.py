"""pydantic-ai's MCPToolset in a real Agent run whose model is a script (FunctionModel): no LLM, but exactly the
tool definitions the model would get and the tool returns it would read.

Run in a venv with .ci/clients/pydantic-ai.txt installed (clients.sh makes one):
    python .ci/clients/pydantic_ai_check.py
The toolset is built on a fastmcp Client. A tool error becomes a ModelRetry whose text the model reads as
{"error": "<our text>"}; `_meta` does not reach the model (only the toolset's own `client` sees it). With
`include_return_schema=True` the output schema is pasted, indented, into each description. `read_timeout`
(default 300 s) is the tool-call limit.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import anyio
from fastmcp.client.transports import StdioTransport
from pydantic_ai import Agent
from pydantic_ai.mcp import MCPToolset
from pydantic_ai.messages import ModelMessage, ModelResponse, RetryPromptPart, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

sys.path.insert(0, str(Path(__file__).parent))
from common import (
    PROVIDER,
    SHORT_WAIT_S,
    Report,
    compact_size,
    finished_id,
    http_server,
    running_id,
    server_command,
    server_env,
)

report = Report("pydantic-ai", version("pydantic-ai-slim"))


@dataclass
class Step:
    tool: str
    args: dict[str, Any]
    sent_at: float = 0.0
    took_s: float = 0.0
    returned: Any = None
    model_reads: str = ""
    retried: bool = False


@dataclass
class Script:
    """The model's side of the run: call each step's tool in turn, note what comes back."""

    steps: list[Step]
    tools: dict[str, Any] = field(default_factory=dict)
    done: int = 0

    def __call__(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.tools = {tool.name: tool for tool in info.function_tools}
        for part in messages[-1].parts:
            if isinstance(part, ToolReturnPart | RetryPromptPart) and self.done:
                step = self.steps[self.done - 1]
                step.took_s = time.monotonic() - step.sent_at
                step.returned = part.content
                step.model_reads = (
                    part.model_response_str() if isinstance(part, ToolReturnPart) else part.model_response()
                )
                step.retried = isinstance(part, RetryPromptPart) or getattr(part, "outcome", "") == "retried"
        if self.done == len(self.steps):
            return ModelResponse(parts=[TextPart("done")])
        step = self.steps[self.done]
        self.done += 1
        step.sent_at = time.monotonic()
        return ModelResponse(parts=[ToolCallPart(step.tool, step.args)])


def stdio(**env: str) -> StdioTransport:
    command, *args = server_command()
    return StdioTransport(command=command, args=args, env=server_env(**env))


async def run(toolset: MCPToolset[Any], steps: list[Step]) -> Script:
    script = Script(steps)
    with anyio.fail_after(120):
        await Agent(FunctionModel(script), toolsets=[toolset], retries=10).run("go")
    return script


def shown(script: Script, with_return_schema: bool) -> None:
    names = set(script.tools)
    descriptions = {name: tool.description or "" for name, tool in script.tools.items()}
    if not with_return_schema:
        report.tools_listed(names, None, descriptions)
    total = 0
    for name, tool in script.tools.items():
        report.tool_shown(name, tool.description or "", {"parameters": tool.parameters_json_schema})
        total += len((tool.description or "").encode()) + compact_size(tool.parameters_json_schema)
    report.fact("all tools as the model gets them", f"{total} B (descriptions + parameter schemas)")


def core_steps(tag: str) -> list[Step]:
    return [
        Step("get_generation_result", {"provider": PROVIDER, "task_id": finished_id(tag)}),
        Step("get_generation_result", {"provider": "nosuch", "task_id": "x"}),
        Step("wait_for_generation", {"provider": PROVIDER, "task_id": running_id(tag), "timeout_s": SHORT_WAIT_S}),
        Step("wait_for_generation", {"provider": PROVIDER, "task_id": finished_id(tag), "timeout_s": None}),
        Step("wait_for_generation", {"provider": PROVIDER, "task_id": finished_id(tag), "timeout_s": "soon"}),
    ]


def core_checks(script: Script) -> None:
    finished, unknown, short, null, bad = script.steps
    report.finished(finished.returned if isinstance(finished.returned, dict) else None)
    report.fact("the model reads an error as", repr(unknown.model_reads[:100]))
    report.check("a tool error reaches the model as a retry", unknown.retried, unknown)
    report.error_text(str(unknown.returned))
    report.short_wait(short.took_s, short.returned if isinstance(short.returned, dict) else None)
    ok = isinstance(null.returned, dict) and null.returned.get("status") == "succeeded"
    report.check("timeout_s null means its default", ok, null.returned)
    report.error_text(str(bad.returned), "invalid_argument")


async def main() -> None:
    report.section("stdio")
    script = await run(MCPToolset(stdio()), core_steps("pai"))
    shown(script, with_return_schema=False)
    core_checks(script)

    report.section("stdio, include_return_schema=True (the output schema pasted into each description)")
    shown(await run(MCPToolset(stdio(), include_return_schema=True), []), with_return_schema=True)

    report.section("stdio, read_timeout=1 (the client's tool-call limit) and a 5 s wait")
    limit = Step("wait_for_generation", {"provider": PROVIDER, "task_id": running_id("pai-limit"), "timeout_s": 5})
    after = Step("get_generation_result", {"provider": PROVIDER, "task_id": finished_id("pai-after")})
    await run(MCPToolset(stdio(), read_timeout=1), [limit, after])
    report.fact("the model reads", f"{limit.model_reads[:120]!r} after {limit.took_s:.2f} s")
    report.check("the client's limit ends the call (so timeout_s must stay under it)", limit.retried, limit)
    report.check("and the session goes on", isinstance(after.returned, dict), after.returned)

    report.section("stdio, GENRESULT_DEFAULT_WAIT_S=2 under read_timeout=4, no timeout_s")
    fixed = Step("wait_for_generation", {"provider": PROVIDER, "task_id": running_id("pai-fix")})
    await run(MCPToolset(stdio(GENRESULT_DEFAULT_WAIT_S="2"), read_timeout=4), [fixed])
    ok = isinstance(fixed.returned, dict) and fixed.returned.get("timed_out") is True
    report.check("the server's default wait answers timed_out before the client gives up", ok, fixed.returned)

    report.section("streamable HTTP")
    with http_server() as url:
        script = await run(MCPToolset(url), core_steps("pai-http"))
        core_checks(script)
    report.fact("a result as the model reads it", json.dumps(script.steps[0].returned)[:160] + "...")


anyio.run(main)
report.done()
