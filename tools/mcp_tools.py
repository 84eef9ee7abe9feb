"""The MCP tools. Each validates, calls the service, and returns the result model; nothing more.

The result goes out twice, as the SDK's structured content (checked against the declared output schema)
and as one line of compact JSON text for clients that show only text. Errors become `isError` results
whose text starts with the stable code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, ContentBlock, ResourceLink, TextContent, ToolAnnotations
from pydantic import Field

from tools.errors import GenResultError
from tools.providers import ADAPTERS
from tools.result import GenerationResult
from tools.service import DEFAULT_WAIT_S, GenerationService

READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=True)
# It writes files on the server's disk, never over one it did not make whole: idempotent, not destructive.
WRITES_FILES = ToolAnnotations(read_only_hint=False, idempotent_hint=True, destructive_hint=False, open_world_hint=True)

# No length limit here: an over-long id gets the service's own unknown_provider answer, which lists the
# known ids, rather than the SDK's validation text.
ProviderArg = Annotated[str, Field(description=f"Provider id: one of {', '.join(ADAPTERS)}.")]
TaskIdArg = Annotated[
    str,
    # Some providers' ids are integers, and agents copy them as JSON numbers: accept those as the id they spell.
    Field(description="The task/job/generation id the provider returned at creation.", coerce_numbers_to_str=True),
]


def _answer(result: GenerationResult, links: list[ResourceLink] | None = None) -> CallToolResult:
    content: list[ContentBlock] = [TextContent(type="text", text=result.compact_json()), *(links or [])]
    return CallToolResult(content=content, structured_content=result.structured())


def _resource_links(result: GenerationResult) -> list[ResourceLink]:
    """One link per saved file, so a client can open it without reading the JSON."""
    links = []
    for output in result.outputs:
        if output.path is None:
            continue
        path = Path(output.path)
        links.append(
            ResourceLink(
                type="resource_link",
                uri=path.as_uri(),
                name=path.name,
                mime_type=output.mime_type,
                size=output.size_bytes,
            )
        )
    return links


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
        timeout_s: Annotated[
            float,
            Field(
                description="Longest wait in seconds. The default 50 fits clients that stop a tool call at "
                "60 s; the server caps it at GENRESULT_MAX_WAIT_S (default 1800)."
            ),
        ] = DEFAULT_WAIT_S,
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

    @mcp.tool(annotations=WRITES_FILES, title="Download generation outputs")
    async def download_generation_outputs(
        provider: ProviderArg,
        task_id: TaskIdArg,
        ctx: Context[GenerationService, Any],
        index: Annotated[
            int | None,
            Field(description="Only this output (its position in outputs, from 0); null saves every output."),
        ] = None,
    ) -> Annotated[CallToolResult, GenerationResult]:
        """Save a succeeded job's files (all outputs, or outputs[index]) on this server's disk, before the
        provider's URLs expire.

        Checks the job once, as get_generation_result. A job that has not succeeded is answered as its result,
        with a note that nothing was downloaded (call wait_for_generation first). Otherwise each file goes to
        GENRESULT_DOWNLOAD_DIR/{provider}/{task}/{file}, and the result carries path, sha256 and size_bytes on
        every saved output, plus one resource link per file. Calling again is cheap: files already saved whole
        are not fetched again. Sends progress notifications (bytes) while it downloads.
        """

        async def report(progress: float, total: float | None, message: str) -> None:
            await ctx.report_progress(progress, total, message)

        service = _service(ctx)
        try:
            result = await service.downloads.download(provider, task_id, index, report)
        except GenResultError as exc:
            raise _tool_error(service, exc) from None
        return _answer(result, _resource_links(result))
