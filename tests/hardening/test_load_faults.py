"""Faults under load, in-process.

500 waits at once over all providers, with a fifth of all provider answers faulted at random (429, 5xx,
cut connections, timeouts, error pages): every wait ends in its job's true outcome, the few jobs given a
fault no retry can mend end in that tool error, and an unrelated check made in the middle of the storm
is answered while every other wait is still on. The waits poll on the real clock, but the jobs live on a
scripted one that the test moves on only once the storm has sent a set number of answers: so how long the
storm lasts, and when it ends, is decided by counts, never by how busy the machine is.
Then the Flexstack login under load: many calls meeting an expired token, one refresh.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client

from sandbox import EMULATORS, IN_PROCESS_ROOT, Fault, Sandbox, Timeline
from sandbox.core import Chaos, Outcome
from sandbox.flexstack import FlexstackEmulator
from server.app import build_server
from server.settings import Settings
from tests.hardening.faults import PROVIDERS, error_code, new_task_id, result_of, text_of
from tools.clock import SystemClock, VirtualClock
from tools.polling import PollPolicy
from tools.redact import Redactor

WAITS = 500
FAULT_RATE = 0.2
REQUEST_TIMEOUT_S = 0.1
TRANSIENT = (
    Fault.rate_limited(),
    Fault.server_error(500),
    Fault.server_error(502),
    Fault.server_error(503),
    Fault.server_error(504),
    Fault.reset(),
    Fault("html", 502),
    Fault("empty", 503),
    Fault.read_timeout(REQUEST_TIMEOUT_S * 3),
)
OUTCOMES: tuple[Outcome, ...] = ("succeeded", "failed", "canceled")
# Jobs whose first answer no retry can mend: their waits must stop with this error, not spin.
BROKEN_EVERY = 25


def outcome_for(provider: str, number: int) -> Outcome:
    # Not every provider has a canceled state: their emulators show a canceled job as failed.
    outcome = OUTCOMES[number % 3]
    return outcome if outcome in EMULATORS[provider].outcomes else "failed"


def script_jobs(sandbox: Sandbox) -> list[tuple[str, str, str | None, Outcome]]:
    """One job per wait, round the providers: (provider, task id, tool error expected or None, outcome)."""
    jobs: list[tuple[str, str, str | None, Outcome]] = []
    for number, provider in zip(range(WAITS), itertools.cycle(PROVIDERS), strict=False):
        task_id = new_task_id(provider)
        outcome = outcome_for(provider, number)
        broken = number % BROKEN_EVERY == 0
        sandbox[provider].add_job(
            task_id,
            Timeline(queued_s=1, running_s=1 + (number % 7), outcome=outcome),
            [Fault("malformed_json", 200)] if broken else [],
        )
        jobs.append((provider, task_id, "provider_protocol_error" if broken else None, outcome))
    return jobs


# The answers the storm sends before the jobs may end: every wait answered three times over.
STORM_ANSWERS = 3 * WAITS


async def test_five_hundred_waits_ride_out_a_fifth_of_answers_faulted_and_a_check_is_answered_in_the_storm() -> None:
    clock = SystemClock()
    jobs_clock = VirtualClock()
    sandbox = Sandbox(jobs_clock, auto_create=False)
    # A sequence of its own for each provider: one shared start would give every provider the same first draws.
    chaoses = [Chaos(FAULT_RATE, TRANSIENT, rng=random.Random(seed)) for seed, _ in enumerate(PROVIDERS)]
    for provider, chaos in zip(PROVIDERS, chaoses, strict=True):
        sandbox[provider].chaos = chaos

    def answered() -> int:
        return sum(chaos.answers for chaos in chaoses)

    policy = PollPolicy(floor_s=0.05, first_delay_s=0.1, cap_s=0.2, landing_s=0.1, error_first_s=0.05, error_cap_s=0.2)
    server = build_server(
        Settings(provider_env=sandbox.env(), request_timeout_s=REQUEST_TIMEOUT_S),
        redactor=Redactor(),
        transport=httpx.ASGITransport(app=sandbox.app),
        clock=clock,
        policy=policy,
    )
    replies: dict[str, Any] = {}
    pending = WAITS
    during: list[int] = []

    async with Client(server) as client:

        async def wait(provider: str, task_id: str) -> None:
            nonlocal pending
            replies[task_id] = await client.call_tool(
                "wait_for_generation", {"provider": provider, "task_id": task_id, "timeout_s": 20}
            )
            pending -= 1

        async def check_in_the_storm() -> None:
            # Into the storm: every wait has had its first answer, and none of the jobs can be done yet.
            while answered() < WAITS:
                await anyio.sleep(0.01)
            reply = await client.call_tool("get_generation_result", {"provider": "skillsvideo", "task_id": bystander})
            during.append(pending)
            # The storm's faults reach this job too: a fault's own answer is the right one then.
            if reply.is_error:
                assert error_code(reply) == "provider_unavailable", text_of(reply)
            else:
                assert result_of(reply).status == "succeeded"
            while answered() < STORM_ANSWERS:
                await anyio.sleep(0.01)
            # The storm has had its count: the jobs' lives run out, and the waits see how they ended.
            jobs_clock.advance(60)

        # The jobs start their lives now, so the storm lasts as long as they do.
        jobs = script_jobs(sandbox)
        bystander = new_task_id("skillsvideo")
        sandbox["skillsvideo"].add_job(bystander, Timeline(queued_s=0, running_s=0))
        with anyio.fail_after(40):
            async with anyio.create_task_group() as group:
                for provider, task_id, _, _ in jobs:
                    group.start_soon(wait, provider, task_id)
                group.start_soon(check_in_the_storm)

    for provider, task_id, error, outcome in jobs:
        reply = replies[task_id]
        if error is not None:
            assert error_code(reply) == error, (provider, text_of(reply))
            continue
        result = result_of(reply)
        assert (result.status, result.done, result.timed_out) == (outcome, True, False), (provider, result)

    # Only jobs broken at their first answer can have ended by then: every other wait was still on.
    broken = sum(1 for _, _, error, _ in jobs if error is not None)
    (still_waiting,) = during
    assert still_waiting >= WAITS - broken, "the check was answered while the storm was on"

    faulted = sum(chaos.faulted for chaos in chaoses)
    assert answered() > STORM_ANSWERS
    assert 0.15 < faulted / answered() < 0.25


@pytest.mark.parametrize("refresh_refused", [False, True], ids=["refresh", "login-again"])
async def test_many_calls_meeting_an_expired_flexstack_token_cause_one_renewal(refresh_refused: bool) -> None:
    clock = VirtualClock()
    sandbox = Sandbox(clock, auto_create=False)
    emulator = sandbox["flexstack"]
    assert isinstance(emulator, FlexstackEmulator)
    ids = [new_task_id("flexstack") for _ in range(200)]
    for task_id in ids:
        emulator.add_job(task_id, Timeline(queued_s=0, running_s=0))
    server = build_server(
        Settings(provider_env=emulator.login_env(f"{IN_PROCESS_ROOT}/flexstack")),
        redactor=Redactor(),
        transport=httpx.ASGITransport(app=sandbox.app),
        clock=clock,
    )
    async with Client(server) as client:
        first = await client.call_tool("get_generation_result", {"provider": "flexstack", "task_id": ids[0]})
        assert result_of(first).status == "succeeded"
        emulator.expire_tokens(refresh_tokens=refresh_refused)
        before = len(emulator.requests)
        replies: list[Any] = []

        async def call(task_id: str, tool: str) -> None:
            replies.append(await client.call_tool(tool, {"provider": "flexstack", "task_id": task_id}))

        with anyio.fail_after(20):
            async with anyio.create_task_group() as group:
                for number, task_id in enumerate(ids):
                    group.start_soon(call, task_id, "wait_for_generation" if number % 2 else "get_generation_result")
    assert all(result_of(reply).status == "succeeded" for reply in replies)
    renewals = [r.path.rsplit("/", 1)[1] for r in emulator.requests[before:] if "/user/" in r.path]
    rejected = [r for r in emulator.requests[before:] if "/ai/video_generation/" in r.path]
    assert len(rejected) > len(ids), "many calls met the expired token"
    assert renewals == (["refresh_token", "login"] if refresh_refused else ["refresh_token"])
