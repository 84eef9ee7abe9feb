"""Shared fixtures: the emulators on a virtual clock, a server wired to them, an in-memory MCP client.

Tests never read the developer's environment: settings come from the sandbox's own values.
"""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import settings
from mcp import Client
from mcp.server.mcpserver import MCPServer

from sandbox import Sandbox
from server.app import build_server
from server.settings import Settings
from tools.clock import VirtualClock
from tools.redact import Redactor
from tools.service import GenerationService

# The property tests draw the same examples on every run, so a run's verdict depends on the code alone;
# HYPOTHESIS_PROFILE=explore draws new ones, for hunting bugs by hand.
settings.register_profile("deterministic", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))


@pytest.fixture(autouse=True)
def _registry_in_a_temp_folder(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever a test starts (a server in-process, or a real process that reads the environment), its job
    registry lands in a temporary folder, never in the developer's data folder or database."""
    monkeypatch.delenv("GENRESULT_DB", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("data")))


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
def make_server(sandbox: Sandbox, clock: VirtualClock, tmp_path: Path) -> ServerFactory:
    """Servers on the emulators; their registry is an SQLite file in the test's folder unless `db` says else."""

    def make(env: dict[str, str] | None = None, **settings: Any) -> MCPServer[GenerationService]:
        provider_env = sandbox.env() if env is None else env
        settings.setdefault("db", str(tmp_path / "jobs.sqlite3"))
        configured = Settings(provider_env=provider_env, **settings)
        return build_server(
            configured,
            redactor=Redactor(),
            transport=httpx.ASGITransport(app=sandbox.app),
            clock=clock,
            # The settings' own pace, with its jitter drawn the same on every run.
            policy=replace(configured.poll_policy(), rng=random.Random(2026)),
        )

    return make


Connect = Callable[..., AbstractAsyncContextManager[Client]]


@pytest.fixture
def connect(make_server: ServerFactory) -> Connect:
    """`async with connect() as client:` an in-memory MCP client on a server wired to the emulators.

    A context manager inside the test rather than an async yield fixture: the SDK's client holds an anyio
    cancel scope, which must be exited in the task that entered it, and pytest-asyncio runs fixture setup
    and teardown in different tasks.
    """

    @asynccontextmanager
    async def open_client(
        env: dict[str, str] | None = None, mode: str = "auto", **settings: Any
    ) -> AsyncIterator[Client]:
        async with Client(make_server(env, **settings), mode=mode) as connected:  # type: ignore[arg-type]
            yield connected

    return open_client
