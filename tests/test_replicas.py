"""Two real `serve --transport http --stateless` processes sharing one PostgreSQL registry, as replicas
behind a balancer would: both start together on an empty database, a job one checks the other lists, and
a wait one began the other resumes on the first one's schedule. The provider is one set of emulators on
loopback (served by the test) that both point at, so they see the same jobs."""

from __future__ import annotations

import json
import time
from contextlib import AsyncExitStack

import anyio
import asyncpg
import pytest
from mcp import Client

from sandbox import Sandbox
from tests.conftest import empty_postgres
from tests.hardening.loopback import serving
from tests.test_process import clean_env, http_server
from tools.clock import SystemClock
from tools.result import GenerationResult, JobList


async def remembered_samples(url: str, task_id: str) -> list[float]:
    """The wall-clock times of the checks the registry remembers for a job's waits."""
    db = await asyncpg.connect(url)
    try:
        memory = await db.fetchval("SELECT memory FROM genresult_wait_memory WHERE task_id = $1", task_id)
    finally:
        await db.close()
    assert memory is not None
    return [at for at, _state in json.loads(memory)["samples"]]


async def test_two_stateless_replicas_share_one_postgresql_registry(postgres_url: str) -> None:
    url = await empty_postgres(postgres_url)
    # Jobs of 32 s: still running when the second replica resumes the first one's wait.
    sandbox = Sandbox(SystemClock(), pace=4)
    with serving(sandbox.app) as emulators, anyio.fail_after(60):
        async with AsyncExitStack() as stack:
            env = clean_env(**sandbox.env(emulators.root), GENRESULT_DB=url)
            # Started together against the empty database: both create the schema, neither fails.
            one, two = await _start_both(stack, env)
            async with Client(one) as first:
                checked = GenerationResult.model_validate(
                    (
                        await first.call_tool(
                            "get_generation_result", {"provider": "skillsvideo", "task_id": "gen_replica"}
                        )
                    ).structured_content
                )
                began = GenerationResult.model_validate(
                    (
                        await first.call_tool(
                            "wait_for_generation", {"provider": "tensorpix", "task_id": RESUMED, "timeout_s": 2.5}
                        )
                    ).structured_content
                )
            kept_by_first = await remembered_samples(url, RESUMED)
            resumed_at = time.time()
            async with Client(two) as second:
                listed = JobList.model_validate((await second.call_tool("list_generations", {})).structured_content)
                # Room for one check (it goes out at once): enough to add to the first replica's schedule.
                resumed = GenerationResult.model_validate(
                    (
                        await second.call_tool(
                            "wait_for_generation", {"provider": "tensorpix", "task_id": RESUMED, "timeout_s": 1.2}
                        )
                    ).structured_content
                )
            kept_by_second = await remembered_samples(url, RESUMED)
    assert checked in listed.jobs and {job.task_id for job in listed.jobs} == {"gen_replica", RESUMED}
    assert began.timed_out and resumed.timed_out and not resumed.done
    # The second replica's schedule was made from the first one's checks and its own, in that order.
    # (Each replica converts them to its own monotonic clock and back: equal to the microsecond.)
    assert kept_by_second[: len(kept_by_first)] == pytest.approx(kept_by_first, abs=1e-3)
    assert all(at < resumed_at for at in kept_by_first) and len(kept_by_second) > len(kept_by_first)


RESUMED = "5b3e1f0a-9c8d-4e7f-8a6b-2c1d0e9f8a7b"


async def _start_both(stack: AsyncExitStack, env: dict[str, str]) -> tuple[str, str]:
    urls: list[str] = []

    async def start() -> None:
        urls.append(await stack.enter_async_context(http_server("--stateless", env=env)))

    async with anyio.create_task_group() as group:
        group.start_soon(start)
        group.start_soon(start)
    return urls[0], urls[1]
