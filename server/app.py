"""Builds the MCP server from a `Settings` object; the lifespan owns the providers' HTTP clients."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal, cast

import httpx
from mcp.server.mcpserver import MCPServer

from server import __version__
from server.logs import FloodFilter, SessionIdFilter
from server.settings import Settings
from tools.clock import Clock, SystemClock
from tools.downloads import MIB, DownloadConfig, Origin, SavedHook
from tools.mcp_tools import (
    GenResultServer,
    register_download_tool,
    register_list_tool,
    register_many_tool,
    register_tools,
)
from tools.polling import PollPolicy
from tools.providers import ADAPTERS, adapters_from_env
from tools.redact import RedactingFilter, Redactor
from tools.registry import Registry, open_store
from tools.result import GenerationResult
from tools.service import GenerationService, Stopping

INSTRUCTIONS = (
    "Checks on and collects the results of asynchronous AI generation jobs (video, image, audio) at "
    f"{', '.join(ADAPTERS)}. Use get_generation_result for one look and "
    "wait_for_generation to wait up to timeout_s (keep it under your own tool-call time limit); a timed-out "
    "wait is not an error: call it again with the same task_id. wait_for_generations waits on several at once; "
    "list_generations shows the jobs checked before, in earlier conversations too; "
    "download_generation_outputs saves a succeeded job's files on this server's disk before their URLs "
    "expire, and links them."
)

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


@asynccontextmanager
async def open_service(
    settings: Settings,
    redactor: Redactor,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Clock | None = None,
    policy: PollPolicy | None = None,
    on_saved: SavedHook | None = None,
    stopping: Stopping | None = None,
) -> AsyncIterator[GenerationService]:
    """A ready `GenerationService` with its HTTP clients, closed on exit. Shared by the server and the CLI.

    Each provider's requests go through `Lanes` of clients that hold one connection each, kept alive. A
    `transport` given here (the in-process emulators) is shared by them all; it keeps no connections.
    Downloads open a client of their own per call, guarded at connect time (`tools.downloads`), or through
    the given `transport`. `on_saved` hears every finished download's result. Setting `stopping` ends every
    wait in flight with the state it last read.
    """
    adapters = adapters_from_env(settings.provider_env, redactor)
    one_connection = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    # Loading the CA bundle takes about 18 ms, and every client would load its own: one context for all,
    # made at the first provider request rather than at start-up, where it would delay the first answer.
    ssl_context = functools.cache(httpx.create_ssl_context)

    def open_client() -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=transport,
            verify=True if transport is not None else ssl_context(),
            timeout=settings.request_timeout_s,
            follow_redirects=False,
            limits=one_connection,
            headers={"User-Agent": f"genresult-mcp/{__version__}"},
        )

    clock = clock or SystemClock()
    redactor.add(settings.db_password())
    registry = Registry(open_store(settings.db), clock, retention_days=settings.db_retention_days)

    def open_download_client(base: Origin) -> httpx.AsyncClient:
        # Imported at the first download: the guard is built on httpcore, ~11 ms of imports at every start.
        from tools.connect_guard import guarded_transport

        return httpx.AsyncClient(
            transport=transport or guarded_transport((base[1], base[2]), ssl_context=ssl_context()),
            follow_redirects=False,
            # A proxy from the environment would make the connect-time address check look at the proxy.
            trust_env=False,
            headers={"User-Agent": f"genresult-mcp/{__version__}"},
        )

    async def saved(result: GenerationResult) -> None:
        # The registry keeps what a download saved, so a later listing shows the files, not only the URLs.
        await service.record(result)
        if on_saved is not None:
            await on_saved(result)

    downloads = DownloadConfig(
        folder=settings.download_dir,
        max_bytes=int(settings.max_download_mb * MIB),
        open_client=open_download_client,
        read_timeout_s=settings.request_timeout_s,
        on_saved=saved,
    )
    service = GenerationService(
        adapters,
        open_client,
        redactor=redactor,
        clock=clock,
        policy=policy or settings.poll_policy(),
        max_wait_s=settings.max_wait_s,
        request_timeout_s=settings.request_timeout_s,
        downloads=downloads,
        registry=registry,
        stopping=stopping,
    )
    # The store is opened by its first use, not here: a session that lists tools costs no database work, and
    # a database that is down is logged and retried by later calls instead of stopping the server.
    async with registry.running():
        try:
            yield service
        finally:
            await service.aclose()


def build_server(
    settings: Settings,
    *,
    redactor: Redactor | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Clock | None = None,
    policy: PollPolicy | None = None,
    stopping: Stopping | None = None,
) -> MCPServer[GenerationService]:
    """`stopping`, once set (the HTTP server does on SIGTERM), ends every wait in flight with its last state."""
    redactor = redactor or Redactor()

    @asynccontextmanager
    async def lifespan(_server: MCPServer[GenerationService]) -> AsyncIterator[GenerationService]:
        async with open_service(
            settings, redactor, transport=transport, clock=clock, policy=policy, stopping=stopping
        ) as service:
            yield service

    mcp = GenResultServer(
        "genresult-mcp",
        version=__version__,
        instructions=INSTRUCTIONS,
        lifespan=lifespan,
        log_level=cast(LogLevel, settings.log_level),
    )
    register_tools(mcp, default_wait_s=settings.default_wait_s)
    register_many_tool(mcp, default_wait_s=settings.default_wait_s)
    register_download_tool(mcp)
    register_list_tool(mcp)
    return mcp


def configure_logging(level: str, redactor: Redactor) -> None:
    """Logs go to stderr (stdout is the protocol in stdio mode), each line passed through the redactor."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(FloodFilter())
    handler.addFilter(SessionIdFilter())
    handler.addFilter(RedactingFilter(redactor))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
