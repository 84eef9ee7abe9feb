"""wait_for_generations through the in-memory MCP client, on a virtual clock whose concurrent sleepers share
one timeline (`autojump`): a wait on many jobs takes, in virtual time, what its slowest job takes."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.types import CallToolResult

from sandbox import Sandbox, Timeline
from tests.conftest import Connect
from tools.clock import VirtualClock
from tools.result import BatchResult, GenerationResult, JobFailure

JOBS = {
    "flexstack": "demo-video-7f3a",
    "modelslab": "148",
    "skillsvideo": "gen_demo123",
    "tensorpix": "3c90c3cc-0d44-4b50-8888-8dd25736052a",
}


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(autojump=True)


async def wait_many(client: Client, jobs: list[dict[str, Any]], **arguments: Any) -> CallToolResult:
    with anyio.fail_after(20):
        return await client.call_tool("wait_for_generations", {"jobs": jobs, **arguments})


def batch_of(reply: CallToolResult) -> BatchResult:
    assert not reply.is_error, reply.content
    return BatchResult.model_validate(reply.structured_content)


def every_provider(sandbox: Sandbox, lengths: dict[str, float]) -> list[dict[str, Any]]:
    for provider, task_id in JOBS.items():
        sandbox[provider].add_job(task_id, Timeline(queued_s=1, running_s=lengths[provider] - 1))
    return [{"provider": provider, "task_id": task_id} for provider, task_id in JOBS.items()]


async def test_one_job_at_each_provider_all_come_back_in_about_the_time_of_the_slowest(
    connect: Connect, sandbox: Sandbox, clock: VirtualClock
) -> None:
    lengths = {"flexstack": 8, "modelslab": 12, "skillsvideo": 20, "tensorpix": 30}
    jobs = every_provider(sandbox, lengths)
    async with connect(db="off") as client:
        batch = batch_of(await wait_many(client, jobs))
    results = [GenerationResult.model_validate(slot.model_dump()) for slot in batch.results]
    assert [(r.provider, r.task_id, r.status) for r in results] == [(p, t, "succeeded") for p, t in JOBS.items()]
    assert (batch.done, batch.pending, batch.timed_out) == (4, 0, False)
    # As long as the slowest job (30 s) and the pace's overshoot, not the sum of the four (70 s).
    assert 30 <= batch.elapsed_s <= 40 and clock.monotonic() <= 40
    assert batch.polls == sum(r.polls or 0 for r in results)
    for result in results:
        assert (
            result.elapsed_s is not None
            and lengths[result.provider] <= result.elapsed_s <= lengths[result.provider] + 10
        )


async def test_a_job_that_cannot_be_checked_fills_its_slot_with_its_error_and_the_others_go_on(
    connect: Connect, sandbox: Sandbox
) -> None:
    sandbox["skillsvideo"].add_job("gen_ok", Timeline(queued_s=0, running_s=3))
    jobs = [
        {"provider": "nope", "task_id": "x"},
        {"provider": "skillsvideo", "task_id": "gen_ok"},
        {"provider": "skillsvideo", "task_id": "gen_missing"},
        {"provider": "tensorpix", "task_id": "../etc"},
    ]
    async with connect(db="off") as client:
        batch = batch_of(await wait_many(client, jobs))
    first, ok, missing, bad = batch.results
    assert isinstance(first, JobFailure) and first.error.code == "unknown_provider"
    assert isinstance(ok, GenerationResult) and ok.status == "succeeded"
    assert isinstance(missing, JobFailure) and missing.error.code == "task_not_found"
    assert isinstance(bad, JobFailure) and (bad.provider, bad.error.code) == ("tensorpix", "invalid_task_id")
    assert (batch.done, batch.pending, batch.timed_out) == (1, 0, False)


async def test_until_any_returns_when_the_first_job_is_done_and_the_others_stop_checking(
    connect: Connect, sandbox: Sandbox, clock: VirtualClock
) -> None:
    sandbox["skillsvideo"].add_job("gen_fast", Timeline(queued_s=0, running_s=4))
    sandbox["tensorpix"].add_job(JOBS["tensorpix"], Timeline(queued_s=5, running_s=200))
    jobs = [{"provider": "tensorpix", "task_id": JOBS["tensorpix"]}, {"provider": "skillsvideo", "task_id": "gen_fast"}]
    async with connect(db="off") as client:
        batch = batch_of(await wait_many(client, jobs, until="any"))
        ended = clock.monotonic()
        sent = len(sandbox["tensorpix"].requests)
        clock.advance(100)
        await anyio.sleep(0)
    slow, fast = batch.results
    assert isinstance(fast, GenerationResult) and fast.status == "succeeded"
    assert isinstance(slow, GenerationResult) and not slow.done and slow.timed_out is False and slow.note
    assert (batch.done, batch.pending, batch.timed_out) == (1, 1, False)
    assert ended < 15 and len(sandbox["tensorpix"].requests) == sent


async def test_time_running_out_leaves_the_unfinished_jobs_pending_and_the_call_timed_out(
    connect: Connect, sandbox: Sandbox
) -> None:
    sandbox["skillsvideo"].add_job("gen_fast", Timeline(queued_s=0, running_s=3))
    sandbox["skillsvideo"].add_job("gen_slow", Timeline(queued_s=100))
    jobs = [{"provider": "skillsvideo", "task_id": "gen_fast"}, {"provider": "skillsvideo", "task_id": "gen_slow"}]
    async with connect(db="off") as client:
        batch = batch_of(await wait_many(client, jobs, timeout_s=20))
    fast, slow = batch.results
    assert isinstance(fast, GenerationResult) and fast.done
    assert isinstance(slow, GenerationResult) and slow.timed_out and slow.status == "queued"
    assert (batch.done, batch.pending, batch.timed_out) == (1, 1, True) and batch.elapsed_s <= 20


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        ({"jobs": []}, "1 to 50"),
        ({"jobs": [{"provider": "skillsvideo", "task_id": f"gen_{n}"} for n in range(51)]}, "not 51"),
        ({"jobs": [{"provider": "skillsvideo", "task_id": "gen_1"}], "until": "some"}, "'all' or 'any'"),
        ({"jobs": [{"provider": "skillsvideo", "task_id": "gen_1"}], "timeout_s": 0}, "timeout_s"),
    ],
)
async def test_bad_arguments_are_invalid_arguments_that_say_what_fits(
    connect: Connect, arguments: dict[str, Any], says: str
) -> None:
    async with connect(db="off") as client:
        with anyio.fail_after(10):
            reply = await client.call_tool("wait_for_generations", arguments)
    assert reply.is_error and reply.content and reply.content[0].type == "text"
    assert "invalid_argument: " in reply.content[0].text and says in reply.content[0].text


async def test_progress_rises_and_says_how_many_are_done_and_what_the_slowest_is_doing(
    connect: Connect, sandbox: Sandbox
) -> None:
    jobs = every_provider(sandbox, {"flexstack": 6, "modelslab": 6, "skillsvideo": 6, "tensorpix": 25})
    heard: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        heard.append((progress, total, message))

    async with connect(db="off") as client:
        with anyio.fail_after(20):
            await client.call_tool("wait_for_generations", {"jobs": jobs}, progress_callback=on_progress)
    values = [progress for progress, _total, _message in heard]
    assert values == sorted(values) and len(set(values)) == len(values)
    assert all(total == 50 for _p, total, _m in heard)
    messages = [message or "" for _p, _t, message in heard]
    assert messages[0].startswith("0 of 4 done")
    assert any(m.startswith("3 of 4 done; slowest tensorpix") for m in messages)
    assert messages[-1].startswith("4 of 4 done")


async def test_the_new_tools_are_listed_with_their_schemas_and_the_listing_is_closed_world(connect: Connect) -> None:
    async with connect() as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    many, listing = tools["wait_for_generations"], tools["list_generations"]
    assert many.annotations is not None and listing.annotations is not None
    assert (many.annotations.read_only_hint, many.annotations.idempotent_hint, many.annotations.open_world_hint) == (
        True,
        True,
        True,
    )
    assert (listing.annotations.read_only_hint, listing.annotations.open_world_hint) == (True, False)
    assert many.output_schema is not None and {"results", "done", "pending", "timed_out"} <= set(
        many.output_schema["properties"]
    )
    assert listing.output_schema is not None and {"jobs", "total"} <= set(listing.output_schema["properties"])
    assert many.input_schema["properties"]["timeout_s"]["default"] == 50
    assert listing.input_schema["properties"]["limit"]["default"] == 20
