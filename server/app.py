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
from server.settings import Settings
from tools.clock import Clock, SystemClock
from tools.mcp_tools import register_tools
from tools.polling import PollPolicy
from tools.providers import ADAPTERS, adapters_from_env
from tools.redact import RedactingFilter, Redactor
from tools.registry import Registry, open_store
from tools.service import GenerationService

INSTRUCTIONS = (
    "Checks on and collects the results of asynchronous AI generation jobs (video, image, audio) at "
    f"{', '.join(ADAPTERS)}. Use get_generation_result for one look, "
    "wait_for_generation to wait up to timeout_s (default 50 s), wait_for_generations for several jobs at "
    "once; a timed-out wait is not an error: call it again with the same task_id. list_generations shows the "
    "jobs checked before, in earlier conversations too."
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
) -> AsyncIterator[GenerationService]:
    """A ready `GenerationService` with its HTTP clients, closed on exit. Shared by the server and the CLI.

    Each provider's requests go through `Lanes` of clients that hold one connection each, kept alive. A
    `transport` given here (the in-process emulators) is shared by them all; it keeps no connections.
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
    service = GenerationService(
        adapters,
        open_client,
        redactor=redactor,
        clock=clock,
        policy=policy or settings.poll_policy(),
        max_wait_s=settings.max_wait_s,
        request_timeout_s=settings.request_timeout_s,
        registry=registry,
    )
    # Opened here, in the lifespan, never at import: a start that lists tools costs no database work, and a
    # database that is down is logged and retried by later calls instead of stopping the server.
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
) -> MCPServer[GenerationService]:
    redactor = redactor or Redactor()

    @asynccontextmanager
    async def lifespan(_server: MCPServer[GenerationService]) -> AsyncIterator[GenerationService]:
        async with open_service(settings, redactor, transport=transport, clock=clock, policy=policy) as service:
            yield service

    mcp = MCPServer(
        "genresult-mcp",
        version=__version__,
        instructions=INSTRUCTIONS,
        lifespan=lifespan,
        log_level=cast(LogLevel, settings.log_level),
    )
    register_tools(mcp)
    return mcp


def configure_logging(level: str, redactor: Redactor) -> None:
    """Logs go to stderr (stdout is the protocol in stdio mode), each line passed through the redactor."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter(redactor))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
