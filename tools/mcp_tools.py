"""The MCP tools. Each validates, calls the service, and returns the result model; nothing more.

The result goes out twice, as the SDK's structured content (checked against the declared output schema)
and as one line of compact JSON text for clients that show only text. Errors are `isError` results made
here, not by the SDK: the text starts with the stable code (`unknown_provider: ...`), and the code and
message also travel as data in the result's `_meta` (`ERROR_META`). `_meta` rather than structured content:
a tool that declares an output schema has its structured content checked against it by strict clients (the
TypeScript SDK does), and an error is no `GenerationResult`.
"""

# No `from __future__ import annotations`: the SDK reads the tools' signatures, and the wait's timeout
# description is made from the server's settings, which only an annotation evaluated here can see.
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, ContentBlock, ResourceLink, TextContent, ToolAnnotations
from mcp.types import Tool as MCPTool
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from tools.errors import GenResultError, InvalidArgument
from tools.providers import ADAPTERS
from tools.registry import LIST_LIMIT_MAX
from tools.result import STATUSES, BatchResult, GenerationResult, JobList
from tools.safety import clean_text
from tools.service import GenerationService

READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=True)
# The listing reads only what this server stored: no provider is asked.
READ_LOCAL = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)
# It writes files on the server's disk, never over one it did not make whole: idempotent, not destructive.
WRITES_FILES = ToolAnnotations(read_only_hint=False, idempotent_hint=True, destructive_hint=False, open_world_hint=True)

# An unknown argument's name is quoted back this far, no further.
MAX_ARGUMENT_NAME = 40

# Where an error result carries its code and message as data.
ERROR_META = "genresult-mcp/error"


def _no_booleans(value: object) -> object:
    # JSON `true` is no number of seconds, though Python would take it for 1.
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number of seconds")
    return value


Seconds = Annotated[float, BeforeValidator(_no_booleans)]

# No length limit here: an over-long id gets the service's own unknown_provider answer, which lists the
# known ids, rather than the SDK's validation text.
ProviderArg = Annotated[str, Field(description="Provider id, as get_generation_result lists them.")]
TaskIdArg = Annotated[
    str,
    # Some providers' ids are integers, and agents copy them as JSON numbers: accept those as the id they spell.
    Field(description="The id the provider returned at creation.", coerce_numbers_to_str=True),
]


class JobArg(BaseModel):
    """One job of a multi-job wait."""

    model_config = ConfigDict(extra="forbid", title="job")

    provider: ProviderArg
    task_id: TaskIdArg


class GenResultServer(MCPServer[GenerationService]):
    """`MCPServer` whose refusals of unreadable arguments are our own `invalid_argument` errors.

    The SDK checks arguments against the input schema before a tool runs and answers a mismatch with
    pydantic's own text behind its prefix; agents and scripts branch on our codes, so it is said in ours.
    """

    async def list_tools(self) -> list[MCPTool]:
        return [
            tool.model_copy(update={"input_schema": _portable(tool.input_schema)})
            for tool in await super().list_tools()
        ]

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[GenerationService, Any] | None = None
    ) -> Any:
        tool = self._tool_manager.get_tool(name)
        if tool is not None and (unknown := sorted(set(arguments) - set(tool.parameters.get("properties", {})))):
            # Refused before the wait starts, so a padded extra argument is not held for the whole wait.
            known = ", ".join(tool.parameters.get("properties", {}))
            named = ", ".join(repr(clean_text(key, MAX_ARGUMENT_NAME)) for key in unknown[:3])
            return error_result(
                InvalidArgument(f"Unknown argument(s) {named}: {name} takes only {known}. Remove the others.")
            )
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            if not isinstance(exc.__cause__, ValidationError):
                raise
            return error_result(InvalidArgument(_explain(exc.__cause__.errors())))


def _portable(schema: dict[str, Any]) -> dict[str, Any]:
    """An input schema as every client takes it: each `$defs` reference inlined, since strict-mode converters
    (openai-agents') refuse any `$ref` and fall back to a loose schema, and no titles, which only restate the
    argument names in a list that goes out with every session and that some clients put into the model's context.
    The argument models are not recursive, so inlining ends."""
    defs: dict[str, dict[str, Any]] = schema.get("$defs", {})

    def node(value: dict[str, Any]) -> dict[str, Any]:
        ref = value.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            value = defs[ref.removeprefix("#/$defs/")] | {k: v for k, v in value.items() if k != "$ref"}
        portable: dict[str, Any] = {}
        for key, item in value.items():
            if key in ("title", "$defs"):
                continue
            if key == "properties":
                portable[key] = {name: node(field) for name, field in item.items()}
            elif key in ("items", "additionalProperties") and isinstance(item, dict):
                portable[key] = node(item)
            elif key in ("anyOf", "oneOf", "allOf"):
                portable[key] = [node(choice) for choice in item]
            else:
                portable[key] = item
        return portable

    return node(schema)


def _explain(errors: list[ErrorDetails]) -> str:
    """What was wrong with the arguments, in our words; never the values (they may be a pasted secret)."""
    problems: list[str] = []
    for error in errors[:5]:
        field = ".".join(str(part) for part in error["loc"]) or "the arguments"
        kind = error["type"]
        if kind == "missing":
            problems.append(f"{field} is required")
        elif kind.startswith(("float", "int")) or kind == "value_error":
            problems.append(f"{field} must be a number (or null for its default)")
        elif kind.startswith("string"):
            problems.append(f"{field} must be a string")
        else:
            problems.append(f"{field} has a value of the wrong type")
    return "; ".join(dict.fromkeys(problems)) + ". Fix the arguments as the tool's input schema says, then call again."


def error_result(exc: GenResultError, redact: Callable[[str], str] = str) -> CallToolResult:
    # Messages are built from redacted parts already (what the caller sent is redacted before it is cut to
    # be quoted back); this last pass keeps any whole secret out of what an adapter may have missed.
    message = redact(exc.message)
    return CallToolResult(
        content=[TextContent(type="text", text=f"{exc.code}: {message}")],
        is_error=True,
        _meta={ERROR_META: {"code": exc.code, "message": message}},
    )


def _answer(
    result: GenerationResult | BatchResult | JobList, links: list[ResourceLink] | None = None
) -> CallToolResult:
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


F = TypeVar("F", bound=Callable[..., Any])


def _described(fn: F) -> F:
    """The docstring as the model reads it: without the source's indentation, which clients pass on as is, and
    with the registry's provider ids where it says `{providers}`."""
    fn.__doc__ = inspect.cleandoc(fn.__doc__ or "").replace("{providers}", ", ".join(ADAPTERS))
    return fn


def register_tools(mcp: MCPServer[GenerationService], *, default_wait_s: float) -> None:
    @mcp.tool(annotations=READ_ONLY, title="Get generation result")
    @_described
    async def get_generation_result(
        provider: ProviderArg, task_id: TaskIdArg, ctx: Context[GenerationService, Any]
    ) -> Annotated[CallToolResult, GenerationResult]:
        """Check once, without waiting, on an AI generation job (video, image, audio) at a provider:
        {providers}, or one declared in GENRESULT_PROVIDERS_FILE.

        Returns status (done once succeeded, failed or canceled), the provider's own word, progress and ETA
        where known, output URLs with their metadata, or why it failed; checked_at is when it was read, note
        what to know about the answer. To wait for the job, call wait_for_generation.
        """
        service = _service(ctx)
        try:
            return _answer(await service.check(provider, task_id))
        except GenResultError as exc:
            return error_result(exc, service.redact)

    @mcp.tool(annotations=READ_ONLY, title="Wait for generation")
    @_described
    async def wait_for_generation(
        provider: ProviderArg,
        task_id: TaskIdArg,
        ctx: Context[GenerationService, Any],
        timeout_s: Annotated[
            Seconds | None,
            Field(
                description=f"Longest wait in seconds (null: {default_wait_s:g}); keep it under your client's own "
                "tool-call time limit."
            ),
        ] = default_wait_s,
        poll_interval_s: Annotated[
            Seconds | None,
            Field(description="Fixed seconds between checks; leave null and the server paces itself."),
        ] = None,
    ) -> Annotated[CallToolResult, GenerationResult]:
        """Wait until an AI generation job is done, at most timeout_s seconds; progress while waiting.

        Returns get_generation_result's result plus elapsed_s, polls and timed_out. Running out of time is a
        normal answer (timed_out true): call again with the same provider and task_id to keep waiting.
        """

        async def report(progress: float, total: float | None, message: str) -> None:
            await ctx.report_progress(progress, total, message)

        service = _service(ctx)
        try:
            wait_s = default_wait_s if timeout_s is None else timeout_s
            return _answer(await service.wait(provider, task_id, wait_s, poll_interval_s, report))
        except GenResultError as exc:
            return error_result(exc, service.redact)


def register_many_tool(mcp: MCPServer[GenerationService], *, default_wait_s: float) -> None:
    @mcp.tool(annotations=READ_ONLY, title="Wait for generations")
    @_described
    async def wait_for_generations(
        jobs: Annotated[list[JobArg], Field(description="1 to 50 jobs, at any mix of providers.")],
        ctx: Context[GenerationService, Any],
        until: Annotated[str | None, Field(description='"all" (default): every job done; "any": the first.')] = "all",
        timeout_s: Annotated[
            Seconds | None,
            Field(description=f"Longest wait in seconds for them all (null: {default_wait_s:g}); as for one job."),
        ] = default_wait_s,
    ) -> Annotated[CallToolResult, BatchResult]:
        """Wait on several generation jobs at once (at any providers) until all are done, or the first one.

        Returns results in the order of jobs, each as get_generation_result gives it (or {provider, task_id,
        error} for a job that cannot be checked), plus done, pending, elapsed_s, polls and timed_out.
        """

        async def report(progress: float, total: float | None, message: str) -> None:
            await ctx.report_progress(progress, total, message)

        service = _service(ctx)
        try:
            wanted = [(job.provider, job.task_id) for job in jobs]
            wait_s = default_wait_s if timeout_s is None else timeout_s
            return _answer(await service.wait_many(wanted, until or "all", wait_s, report))
        except GenResultError as exc:
            return error_result(exc, service.redact)


def register_download_tool(mcp: MCPServer[GenerationService]) -> None:
    @mcp.tool(annotations=WRITES_FILES, title="Download generation outputs")
    @_described
    async def download_generation_outputs(
        provider: ProviderArg,
        task_id: TaskIdArg,
        ctx: Context[GenerationService, Any],
        index: Annotated[
            int | None,
            Field(description="Only this output (its position in outputs, from 0); null saves every output."),
        ] = None,
    ) -> Annotated[CallToolResult, GenerationResult]:
        """Save a succeeded job's files (all outputs, or outputs[index]) on this server's disk before the
        provider's URLs expire.

        Checks the job once; one not succeeded is answered as its result with a note (wait for it first).
        Returns the result with path, sha256 and size_bytes on every saved output, and a resource link per
        file. Files already saved whole are not fetched again.
        """

        async def report(progress: float, total: float | None, message: str) -> None:
            await ctx.report_progress(progress, total, message)

        service = _service(ctx)
        try:
            result = await service.downloads.download(provider, task_id, index, report)
        except GenResultError as exc:
            return error_result(exc, service.redact)
        return _answer(result, _resource_links(result))


def register_list_tool(mcp: MCPServer[GenerationService]) -> None:
    @mcp.tool(annotations=READ_LOCAL, title="List generations")
    @_described
    async def list_generations(
        ctx: Context[GenerationService, Any],
        provider: Annotated[str | None, Field(description="Only this provider's jobs; null for all.")] = None,
        status: Annotated[
            str | None,
            Field(description=f"Only jobs last seen in this status ({', '.join(STATUSES)}); null for all."),
        ] = None,
        limit: Annotated[int | None, Field(description=f"How many to list, 1 to {LIST_LIMIT_MAX} (null: 20).")] = 20,
    ) -> Annotated[CallToolResult, JobList]:
        """List the generation jobs this server has checked before (in earlier conversations too), most
        recently checked first, with their last known state and saved files.

        Asks no provider: checked_at says how old each state is; call get_generation_result for a fresh one.
        """
        service = _service(ctx)
        try:
            return _answer(await service.list_jobs(provider, status, 20 if limit is None else limit))
        except GenResultError as exc:
            return error_result(exc, service.redact)
