"""The wait on the real clock: real sleeps, real request time limits, an in-process emulator. About 3 s in all."""

from __future__ import annotations

import random
from dataclasses import replace

import anyio
import httpx
from mcp import Client

from sandbox import Fault, Sandbox, Timeline
from server.app import build_server
from server.settings import Settings
from tools.clock import SystemClock
from tools.polling import PollPolicy
from tools.result import GenerationResult

# The shipped policy's pacing, scaled down so a real job of about a second shows every phase.
BRISK = PollPolicy(floor_s=0.1, first_delay_s=0.2, cap_s=1.0, aim_after_s=0.1, landing_s=0.3)


def serve(sandbox: Sandbox) -> Client:
    server = build_server(
        Settings(provider_env=sandbox.env()),
        transport=httpx.ASGITransport(app=sandbox.app),
        clock=SystemClock(),
        policy=replace(BRISK, rng=random.Random(2026)),
    )
    return Client(server)


async def test_a_short_real_wait_follows_the_job_to_its_end_with_progress() -> None:
    sandbox = Sandbox(SystemClock(), auto_create=False)
    sandbox["skillsvideo"].add_job("gen_rt", Timeline(queued_s=0.3, running_s=0.8))
    heard: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        heard.append(progress)

    started = anyio.current_time()
    with anyio.fail_after(10):
        async with serve(sandbox) as client:
            reply = await client.call_tool(
                "wait_for_generation",
                {"provider": "skillsvideo", "task_id": "gen_rt", "timeout_s": 5},
                progress_callback=on_progress,
            )
    took = anyio.current_time() - started
    result = GenerationResult.model_validate(reply.structured_content)
    assert (result.status, result.done, result.timed_out) == ("succeeded", True, False)
    emulator = sandbox["skillsvideo"]
    assert emulator.requests[-1].at - emulator.jobs["gen_rt"].created_at >= 1.1
    assert result.elapsed_s is not None and result.elapsed_s <= took + 0.05 < 4
    assert result.polls == len(heard) >= 3 and heard[-1] == 5


async def test_a_provider_that_hangs_cannot_hold_a_real_wait_past_its_deadline() -> None:
    sandbox = Sandbox(SystemClock(), auto_create=False)
    # The first answer is normal (a slow fault of no delay); the second never comes.
    sandbox["skillsvideo"].add_job("gen_hang", Timeline(queued_s=100), [Fault("slow"), Fault("slow", delay_s=60)])
    started = anyio.current_time()
    with anyio.fail_after(10):
        async with serve(sandbox) as client:
            reply = await client.call_tool(
                "wait_for_generation", {"provider": "skillsvideo", "task_id": "gen_hang", "timeout_s": 1.5}
            )
    took = anyio.current_time() - started
    result = GenerationResult.model_validate(reply.structured_content)
    assert (result.status, result.timed_out, result.polls) == ("queued", True, 2)
    assert result.elapsed_s is not None and 1.5 <= result.elapsed_s < 1.5 + 0.5 and took < 2.5
