"""Shared fixtures: the emulators on a virtual clock, a server wired to them, an in-memory MCP client.

Tests never read the developer's environment: settings come from the sandbox's own values.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import settings
from jsonschema.validators import Draft202012Validator
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


# Every tool the server offers (DESIGN.md §2).
TOOL_NAMES = frozenset(
    {
        "get_generation_result",
        "wait_for_generation",
        "wait_for_generations",
        "download_generation_outputs",
        "list_generations",
    }
)


@pytest.fixture(autouse=True, scope="session")
def _each_output_schema_checked_once() -> Iterator[None]:
    """The SDK's client checks a tool's output schema against the JSON Schema metaschema the first time the
    tool answers in each session (~10 ms a schema); the suite opens a session per test on the same few
    schemas, so each one is checked once a run instead. A schema that fails the check still raises each time."""
    checked: set[str] = set()
    check = Draft202012Validator.check_schema

    def check_once(schema: Mapping[str, Any], *args: Any, **kwargs: Any) -> None:
        key = json.dumps(schema, sort_keys=True)
        if key not in checked:
            check(schema, *args, **kwargs)
            checked.add(key)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Draft202012Validator, "check_schema", staticmethod(check_once))
        yield


@pytest.fixture(autouse=True)
def _registry_in_a_temp_folder(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever a test starts (a server in-process, or a real process that reads the environment), its job
    registry lands in a temporary folder, never in the developer's data folder or database."""
    monkeypatch.delenv("GENRESULT_DB", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("data")))


POSTGRES_SCRIPT = Path(__file__).resolve().parent.parent / ".ci" / "postgres.sh"
NO_POSTGRES = (
    "The store tests run on PostgreSQL too, and no PostgreSQL server could be started ({why}). Install the "
    "server binaries (Debian/Ubuntu: apt-get install -y postgresql; the tests start a throwaway cluster of "
    "their own with .ci/postgres.sh), or point GENRESULT_TEST_POSTGRES at an empty database you own "
    "(postgresql://user:password@host:5432/db)."
)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL database for the store tests: GENRESULT_TEST_POSTGRES (what CI starts), else a throwaway
    cluster started here. Missing, it fails the run in CI (CI=true) and skips, saying how to get it, elsewhere."""
    given = os.environ.get("GENRESULT_TEST_POSTGRES", "").strip()
    if given:
        yield given
        return
    # In /tmp itself, world-traversable: as root the server runs as `nobody`, who cannot enter pytest's folders.
    folder = Path(tempfile.mkdtemp(prefix="genresult-pg-"))
    folder.chmod(0o755)
    cluster = folder / "cluster"
    started = subprocess.run(
        ["bash", str(POSTGRES_SCRIPT), "start", str(cluster)], capture_output=True, text=True, check=False
    )
    if started.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        why = started.stderr.strip().splitlines()[-1] if started.stderr.strip() else f"exit {started.returncode}"
        message = NO_POSTGRES.format(why=why)
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield started.stdout.strip()
    finally:
        subprocess.run(["bash", str(POSTGRES_SCRIPT), "stop", str(cluster)], capture_output=True, check=False)
        shutil.rmtree(folder, ignore_errors=True)


async def empty_postgres(url: str) -> str:
    """`url`, with the registry's tables gone: each test starts on an empty database."""
    import asyncpg

    db = await asyncpg.connect(url)
    try:
        await db.execute("DROP TABLE IF EXISTS genresult_jobs, genresult_wait_memory, genresult_schema")
    finally:
        await db.close()
    return url


@pytest.fixture(params=["sqlite", "postgres"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A registry setting (GENRESULT_DB) for each backend: the same tests run on both."""
    if request.param == "sqlite":
        return str(tmp_path / "registry" / "jobs.sqlite3")
    return await empty_postgres(request.getfixturevalue("postgres_url"))


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
        settings.setdefault("db", str(tmp_path / "registry" / "jobs.sqlite3"))
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
