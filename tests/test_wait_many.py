"""wait_for_generations: several jobs at several providers under one deadline, through the in-memory client."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from mcp.types import CallToolResult

from sandbox import EMULATORS, Sandbox, Timeline
from tests.conftest import Connect
from tools.clock import VirtualClock


def content(reply: CallToolResult) -> dict[str, Any]:
    assert not reply.is_error, reply.content
    assert reply.structured_content is not None
    return reply.structured_content


async def test_one_job_at_each_provider_returns_every_result_in_order_in_about_the_time_of_the_slowest(
    connect: Connect, sandbox: Sandbox, clock: VirtualClock
) -> None:
    jobs = []
    for n, (provider, cls) in enumerate(sorted(EMULATORS.items())):
        task_id = cls.sandbox_id(300 + n)
        sandbox[provider].add_job(task_id, Timeline(queued_s=1, running_s=4 + n % 4))
        jobs.append({"provider": provider, "task_id": task_id})
    heard: list[tuple[float, str]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        heard.append((progress, message or ""))

    async with connect() as client:
        reply = await client.call_tool("wait_for_generations", {"jobs": jobs}, progress_callback=on_progress)
    answer = content(reply)
    assert [(r["provider"], r["task_id"]) for r in answer["results"]] == [(j["provider"], j["task_id"]) for j in jobs]
    assert all(r["status"] == "succeeded" for r in answer["results"]), answer
    assert (answer["done"], answer["pending"], answer["timed_out"]) == (len(jobs), 0, False)
    # The slowest job takes 8 s; the waits ran side by side, not one after another.
    assert 8 <= answer["elapsed_s"] < 15 and clock.monotonic() < 15
    assert answer["polls"] == sum(r["polls"] for r in answer["results"])
    assert all(a[0] < b[0] for a, b in pairwise(heard)), heard
    assert heard[-1][1].startswith(f"{len(jobs)} of {len(jobs)} done")


async def test_until_any_returns_when_the_first_job_is_done_with_the_others_last_state(
    connect: Connect, sandbox: Sandbox, clock: VirtualClock
) -> None:
    sandbox["skillsvideo"].add_job("gen_fast", Timeline(queued_s=0, running_s=2))
    sandbox["skillsvideo"].add_job("gen_slow", Timeline(queued_s=500))
    jobs = [{"provider": "skillsvideo", "task_id": "gen_slow"}, {"provider": "skillsvideo", "task_id": "gen_fast"}]
    async with connect() as client:
        answer = content(await client.call_tool("wait_for_generations", {"jobs": jobs, "until": "any"}))
    slow, fast = answer["results"]
    assert (fast["status"], slow["status"], slow["done"]) == ("succeeded", "queued", False)
    assert (answer["done"], answer["pending"], answer["timed_out"]) == (1, 1, False)
    assert clock.monotonic() < 10


async def test_a_job_that_cannot_be_checked_fills_its_slot_with_the_error_and_the_others_still_answer(
    connect: Connect, sandbox: Sandbox
) -> None:
    sandbox["skillsvideo"].add_job("gen_1", Timeline(queued_s=0, running_s=0))
    jobs = [
        {"provider": "nope", "task_id": "x"},
        {"provider": "skillsvideo", "task_id": "a/b"},
        {"provider": "skillsvideo", "task_id": "gen_missing"},
        {"provider": "skillsvideo", "task_id": "gen_1"},
    ]
    async with connect() as client:
        answer = content(await client.call_tool("wait_for_generations", {"jobs": jobs}))
    codes = [r.get("error", {}).get("code") for r in answer["results"][:3]]
    assert codes == ["unknown_provider", "invalid_task_id", "task_not_found"]
    assert answer["results"][3]["status"] == "succeeded" and answer["done"] == 4


async def test_time_running_out_is_an_answer_with_the_pending_jobs_last_state(
    connect: Connect, sandbox: Sandbox, clock: VirtualClock
) -> None:
    sandbox["skillsvideo"].add_job("gen_long", Timeline(queued_s=1000))
    jobs = [{"provider": "skillsvideo", "task_id": "gen_long"}]
    async with connect() as client:
        answer = content(await client.call_tool("wait_for_generations", {"jobs": jobs, "timeout_s": 20}))
    assert (answer["pending"], answer["timed_out"], answer["results"][0]["status"]) == (1, True, "queued")
    assert clock.monotonic() == 20


async def test_no_jobs_too_many_jobs_or_a_bad_until_is_invalid_argument(connect: Connect, sandbox: Sandbox) -> None:
    many = [{"provider": "skillsvideo", "task_id": f"gen_{n}"} for n in range(51)]
    async with connect() as client:
        for arguments in ({"jobs": []}, {"jobs": many}, {"jobs": many[:1], "until": "some"}):
            reply = await client.call_tool("wait_for_generations", arguments)
            assert reply.is_error and reply.content[0].text.startswith("invalid_argument: "), arguments  # type: ignore[union-attr]
    assert sandbox["skillsvideo"].requests == []
