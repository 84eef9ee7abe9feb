"""Shared fixtures: the emulators on a virtual clock, a server wired to them, an in-memory MCP client.

Tests never read the developer's environment: settings come from the sandbox's own values.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer

from sandbox import Sandbox
from server.app import build_server
from server.settings import Settings
from tools.clock import VirtualClock
from tools.redact import Redactor
from tools.service import GenerationService


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def sandbox(clock: VirtualClock) -> Sandbox:
    """Emulators that know only the jobs a test adds (no auto-created jobs)."""
    return Sandbox(clock, auto_create=False)


ServerFactory = Callable[..., MCPServer[GenerationService]]


@pytest.fixture
def make_server(sandbox: Sandbox, clock: VirtualClock) -> ServerFactory:
    def make(env: dict[str, str] | None = None, **settings: Any) -> MCPServer[GenerationService]:
        provider_env = sandbox.env() if env is None else env
        return build_server(
            Settings(provider_env=provider_env, **settings),
            redactor=Redactor(),
            transport=httpx.ASGITransport(app=sandbox.app),
            clock=clock,
        )

    return make


@pytest.fixture
async def client(make_server: ServerFactory) -> AsyncIterator[Client]:
    async with Client(make_server()) as connected:
        yield connected
