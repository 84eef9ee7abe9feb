"""The MCP tools. Each validates, calls the service, and returns the result model; nothing more.

The result goes out twice, as the SDK's structured content (checked against the declared output schema)
and as one line of compact JSON text for clients that show only text. Errors become `isError` results
whose text starts with the stable code.
"""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field

from tools.errors import GenResultError
from tools.providers import ADAPTERS
from tools.registry import LIST_LIMIT_MAX
from tools.result import STATUSES, BatchResult, GenerationResult, JobList
from tools.service import DEFAULT_WAIT_S, MAX_JOBS_PER_WAIT, GenerationService

READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=True)
# The listing reads only what this server stored: no provider is asked.
READ_LOCAL = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)

# No length limit here: an over-long id gets the service's own unknown_provider answer, which lists the
# known ids, rather than the SDK's validation text.
ProviderArg = Annotated[str, Field(description=f"Provider id: one of {', '.join(ADAPTERS)}.")]
TaskIdArg = Annotated[
    str,
    # Some providers' ids are integers, and agents copy them as JSON numbers: accept those as the id they spell.
    Field(description="The task/job/generation id the provider returned at creation.", coerce_numbers_to_str=True),
]


TimeoutArg = Annotated[
    float,
    Field(
        description="Longest wait in seconds. The default 50 fits clients that stop a tool call at "
        "60 s; the server caps it at GENRESULT_MAX_WAIT_S (default 1800)."
    ),
]


class JobRef(BaseModel):
    """One job to wait on."""

    model_config = ConfigDict(extra="forbid")

    provider: ProviderArg
    task_id: TaskIdArg


def _answer(result: GenerationResult | BatchResult | JobList) -> CallToolResult:
    return CallToolResult(
        content=[TextContent(type="text", text=result.compact_json())],
        structured_content=result.structured(),
    )


def _service(ctx: Context[GenerationService, Any]) -> GenerationService:
    return ctx.request_context.lifespan_context


def _tool_error(service: GenerationService, exc: GenResultError) -> ToolError:
    # Messages are built from redacted parts already (what the caller sent is redacted before it is cut to
    # be quoted back); this last pass keeps any whole secret out of what an adapter may have missed.
    return ToolError(service.redact(str(exc)))


def register_tools(mcp: MCPServer[GenerationService]) -> None:
    @mcp.tool(annotations=READ_ONLY, title="Get generation result")
    async def get_generation_result(
        provider: ProviderArg, task_id: TaskIdArg, ctx: Context[GenerationService, Any]
    ) -> Annotated[CallToolResult, GenerationResult]:
        """Check once, without waiting, on an AI generation job (video, image, audio) at a provider.

        Returns its normalized state: status (queued, running, succeeded, failed, canceled), done, progress
        and ETA where the provider says them, the output URLs with their metadata once succeeded, or the
        failure reason. To wait for the job to finish, call wait_for_generation instead.
        """
        service = _service(ctx)
        try:
            return _answer(await service.check(provider, task_id))
        except GenResultError as exc:
            raise _tool_error(service, exc) from None

    @mcp.tool(annotations=READ_ONLY, title="Wait for generation")
    async def wait_for_generation(
        provider: ProviderArg,
        task_id: TaskIdArg,
        ctx: Context[GenerationService, Any],
        timeout_s: TimeoutArg = DEFAULT_WAIT_S,
        poll_interval_s: Annotated[
            float | None,
            Field(description="Fixed seconds between checks; leave null and the server paces itself."),
        ] = None,
    ) -> Annotated[CallToolResult, GenerationResult]:
        """Wait until an AI generation job is done (succeeded, failed or canceled), at most timeout_s seconds.

        Returns the same result as get_generation_result plus elapsed_s, polls and timed_out. Running out of
        time is a normal answer (done false, timed_out true): call again with the same provider and task_id
        to keep waiting. Sends progress notifications while waiting when the client asks for them.
        """

        async def report(progress: float, total: float | None, message: str) -> None:
            await ctx.report_progress(progress, total, message)

        service = _service(ctx)
        try:
            return _answer(await service.wait(provider, task_id, timeout_s, poll_interval_s, report))
        except GenResultError as exc:
            raise _tool_error(service, exc) from None

    @mcp.tool(annotations=READ_ONLY, title="Wait for generations")
    async def wait_for_generations(
        jobs: Annotated[
            list[JobRef],
            Field(description=f"The jobs, 1 to {MAX_JOBS_PER_WAIT}, at any mix of providers."),
        ],
        ctx: Context[GenerationService, Any],
        # A plain string, so a bad value gets our invalid_argument answer rather than a schema error.
        until: Annotated[
            str, Field(description="all: return when every job is done; any: when the first one is done.")
        ] = "all",
        timeout_s: TimeoutArg = DEFAULT_WAIT_S,
    ) -> Annotated[CallToolResult, BatchResult]:
        """Wait on several AI generation jobs at once (any mix of providers), at most timeout_s seconds in all.

        Returns one result per job in the order given (a job that cannot be checked gets {provider, task_id,
        error} in its slot and does not stop the others), with done and pending counts. Running out of time is
        a normal answer (timed_out true): call again with the pending jobs. Cheaper and faster than one
        wait_for_generation per job. Progress notifications say how many are done and the slowest job's state.
        """

        async def report(progress: float, total: float | None, message: str) -> None:
            await ctx.report_progress(progress, total, message)

        service = _service(ctx)
        pairs = [(job.provider, job.task_id) for job in jobs]
        try:
            return _answer(await service.wait_many(pairs, until, timeout_s, report))
        except GenResultError as exc:
            raise _tool_error(service, exc) from None

    @mcp.tool(annotations=READ_LOCAL, title="List generations")
    async def list_generations(
        ctx: Context[GenerationService, Any],
        provider: Annotated[str | None, Field(description="Only this provider's jobs; null for all.")] = None,
        status: Annotated[
            str | None,
            Field(description=f"Only jobs last seen in this status ({', '.join(STATUSES)}); null for all."),
        ] = None,
        limit: Annotated[int, Field(description=f"How many to list, 1 to {LIST_LIMIT_MAX}.")] = 20,
    ) -> Annotated[CallToolResult, JobList]:
        """List the generation jobs this server has checked before (in earlier conversations too), most
        recently checked first, with their last known state and saved files.

        Asks no provider: checked_at says how old each state is; call get_generation_result for a fresh one.
        Use it to find the task ids and videos of jobs started earlier.
        """
        service = _service(ctx)
        try:
            return _answer(await service.list_jobs(provider, status, limit))
        except GenResultError as exc:
            raise _tool_error(service, exc) from None
