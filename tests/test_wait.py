"""wait_for_generation, through the in-memory MCP client, against scripted emulator timelines in virtual time.

Times asserted here are the emulators' own request log (virtual seconds since the job was created, which is
when the wait starts): what the provider would see.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from itertools import pairwise
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client, MCPError
from mcp.types import CallToolResult

from sandbox import Fault, Sandbox, Timeline
from server.app import build_server, open_service
from server.settings import Settings
from tools.clock import VirtualClock
from tools.errors import InvalidArgument
from tools.polling import PollPolicy
from tools.redact import Redactor
from tools.result import BatchResult, GenerationResult, JobFailure
from tools.service import STOPPED_NOTE, STOPPED_UNREAD, Stopping

STEADY = PollPolicy(jitter=0.0)
TENSORPIX_ID = "3c90c3cc-0d44-4b50-8888-8dd25736052a"


@asynccontextmanager
async def connected(
    sandbox: Sandbox,
    clock: VirtualClock,
    *,
    policy: PollPolicy | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    env: dict[str, str] | None = None,
    mode: str = "auto",
    stopping: Stopping | None = None,
    **settings: Any,
) -> AsyncIterator[Client]:
    """A client on a server wired to `sandbox`; the policy is the server's own unless given, jittered but seeded."""
    config = Settings(provider_env=sandbox.env() if env is None else env, **settings)
    server = build_server(
        config,
        transport=transport or httpx.ASGITransport(app=sandbox.app),
        clock=clock,
        policy=policy or replace(config.poll_policy(), rng=random.Random(2026)),
        stopping=stopping,
    )
    async with Client(server, mode=mode) as client:
        yield client


async def wait_for(client: Client, task_id: str, provider: str = "skillsvideo", **arguments: Any) -> CallToolResult:
    with anyio.fail_after(10):
        return await client.call_tool("wait_for_generation", {"provider": provider, "task_id": task_id, **arguments})


def result_of(reply: CallToolResult) -> GenerationResult:
    assert not reply.is_error, reply.content
    return GenerationResult.model_validate(reply.structured_content)


def error_of(reply: CallToolResult) -> str:
    assert reply.is_error and reply.content and reply.content[0].type == "text"
    return reply.content[0].text


def request_times(sandbox: Sandbox, provider: str = "skillsvideo") -> list[float]:
    return [request.at for request in sandbox[provider].requests]


# ---- pacing ----


async def test_the_first_check_goes_out_at_once_and_a_finished_job_answers_without_waiting(
    sandbox: Sandbox, clock: VirtualClock
) -> None:
    sandbox["skillsvideo"].add_job("gen_done", Timeline(queued_s=0, running_s=0))
    async with connected(sandbox, clock) as client:
        result = result_of(await wait_for(client, "gen_done"))
    assert request_times(sandbox) == [0.0] and clock.sleeps == []
    assert (result.done, result.status, result.polls, result.elapsed_s, result.timed_out) == (
        True,
        "succeeded",
        1,
        0.0,
        False,
    )
    assert result.outputs and result.outputs[0].kind == "video"


async def test_a_job_without_hints_is_checked_with_backoff_and_found_soon_after_it_finishes(
    sandbox: Sandbox, clock: VirtualClock
) -> None:
    sandbox["skillsvideo"].add_job("gen_1", Timeline(queued_s=10, running_s=30))
    async with connected(sandbox, clock, policy=STEADY) as client:
        result = result_of(await wait_for(client, "gen_1"))
    times = request_times(sandbox)
    gaps = [later - earlier for earlier, later in pairwise(times)]
    assert gaps == sorted(gaps) and gaps[0] == STEADY.first_delay_s
    assert times[-2] < 40 <= times[-1] <= 40 * STEADY.growth
    assert result.done and result.polls == len(times) and result.elapsed_s == pytest.approx(times[-1], abs=0.05)


async def test_a_modelslab_eta_brings_the_next_check_just_after_the_promised_finish(
    sandbox: Sandbox, clock: VirtualClock
) -> None:
    sandbox["modelslab"].add_job("148", Timeline(queued_s=2, running_s=10))
    async with connected(sandbox, clock, policy=STEADY) as client:
        result = result_of(await wait_for(client, "148", provider="modelslab"))
    assert request_times(sandbox, "modelslab") == [0.0, 12 + STEADY.aim_after_s]
    assert result.status == "succeeded" and result.polls == 2


async def test_reported_progress_brings_the_next_check_just_after_the_finish_its_slope_predicts(
    sandbox: Sandbox, clock: VirtualClock
) -> None:
    sandbox["tensorpix"].add_job(TENSORPIX_ID, Timeline(queued_s=0, running_s=20))
    async with connected(sandbox, clock, policy=STEADY) as client:
        result = result_of(await wait_for(client, TENSORPIX_ID, provider="tensorpix"))
    # 0 % at 0 s, 10 % at 2 s: 5 %/s, so 100 % at 20 s.
    assert request_times(sandbox, "tensorpix") == [0.0, STEADY.first_delay_s, 20 + STEADY.aim_after_s]
    assert result.status == "succeeded" and result.polls == 3


async def test_a_fixed_interval_paces_every_check_and_the_last_one_lands_before_the_deadline(
    sandbox: Sandbox, clock: VirtualClock
) -> None:
    sandbox["skillsvideo"].add_job("gen_long", Timeline(queued_s=500))
    async with connected(sandbox, clock) as client:
        result = result_of(await wait_for(client, "gen_long", timeout_s=50, poll_interval_s=7))
    assert request_times(sandbox) == [0, 7, 14, 21, 28, 35, 42, 49]
    # The last check at 49 s, then the wait keeps its time: it answers at its deadline.
    assert result.timed_out and result.polls == 8 and result.elapsed_s == 50


async def test_a_fixed_interval_below_the_floor_is_raised_to_it_and_says_so(
    sandbox: Sandbox, clock: VirtualClock
) -> None:
    sandbox["skillsvideo"].add_job("gen_1", Timeline(queued_s=3, running_s=0))
    async with connected(sandbox, clock) as client:
        result = result_of(await wait_for(client, "gen_1", poll_interval_s=0.1))
    assert request_times(sandbox) == [0, 1, 2, 3]
    assert result.note is not None and "poll_interval_s 0.1" in result.note


# ---- the deadline ----


@pytest.mark.parametrize("timeout_s", [0.5, 1.5, 2])
async def test_a_wait_shorter_than_a_second_check_still_answers_no_sooner_than_its_deadline(
    sandbox: Sandbox, clock: VirtualClock, timeout_s: float
) -> None:
    # An agent that loops on a short wait must not be told "time's up" at once, or it calls again at once.
    sandbox["skillsvideo"].add_job("gen_long", Timeline(queued_s=1000))
    async with connected(sandbox, clock) as client:
        result = result_of(await wait_for(client, "gen_long", timeout_s=timeout_s))
    assert (result.done, result.timed_out, result.elapsed_s) == (False, True, timeout_s)
    assert clock.monotonic() == timeout_s
    assert request_times(sandbox)[0] == 0


@pytest.mark.parametrize("timeout_s", [0.5, 3, 10, 50, 333.3])
async def test_a_wait_never_checks_past_its_deadline_and_the_last_check_lands_just_before_it(
    sandbox: Sandbox, clock: VirtualClock, timeout_s: float
) -> None:
    sandbox["skillsvideo"].add_job("gen_long", Timeline(queued_s=1000))
    async with connected(sandbox, clock) as client:
        result = result_of(await wait_for(client, "gen_long", timeout_s=timeout_s))
    times = request_times(sandbox)
    landing = PollPolicy().landing_s
    assert all(at <= timeout_s - landing for at in times[1:])
    if timeout_s > landing + PollPolicy().floor_s:
        assert times[-1] == pytest.approx(timeout_s - landing)
    assert (result.done, result.timed_out, result.status, result.polls) == (False, True, "queued", len(times))
    assert result.elapsed_s is not None and result.elapsed_s <= timeout_s


async def test_a_timed_out_answer_is_resumed_by_calling_again_with_the_same_task_id(
    sandbox: Sandbox, clock: VirtualClock
) -> None:
    sandbox["skillsvideo"].add_job("gen_1", Timeline(queued_s=20, running_s=40))
    async with connected(sandbox, clock) as client:
        first = result_of(await wait_for(client, "gen_1", timeout_s=30))
        second = result_of(await wait_for(client, first.task_id, provider=first.provider, timeout_s=50))
    assert (first.done, first.timed_out, first.status) == (False, True, "running")
    assert (second.done, second.timed_out, second.status) == (True, False, "succeeded")
    assert second.outputs and 60 <= request_times(sandbox)[-1] < 30 + 50
    # The second call checks at once, then keeps the first call's pace instead of starting the backoff over.
    resumed = request_times(sandbox)[first.polls :]
    assert resumed[0] == first.elapsed_s and resumed[1] - resumed[0] > 10 and second.polls <= 4


# JSON has no NaN or infinity: clients send them as the strings pydantic reads as floats (the SDK's own client
# turns a Python nan into null, which for timeout_s is a schema error and for poll_interval_s means "you choose").
NOT_POSITIVE_FINITE = ["NaN", "Infinity", "-Infinity", 0, -5]


@pytest.mark.parametrize("timeout_s", NOT_POSITIVE_FINITE)
async def test_a_timeout_that_is_not_a_positive_finite_number_is_refused_before_anything_is_sent(
    sandbox: Sandbox, clock: VirtualClock, timeout_s: object
) -> None:
    sandbox["skillsvideo"].add_job("gen_1")
    async with connected(sandbox, clock) as client:
        text = error_of(await wait_for(client, "gen_1", timeout_s=timeout_s))
    assert "invalid_argument" in text and "timeout_s" in text
    assert sandbox["skillsvideo"].requests == []


@pytest.mark.parametrize("interval", NOT_POSITIVE_FINITE)
async def test_a_poll_interval_that_is_not_a_positive_finite_number_is_refused_before_anything_is_sent(
    sandbox: Sandbox, clock: VirtualClock, interval: object
) -> None:
    sandbox["skillsvideo"].add_job("gen_1")
    async with connected(sandbox, clock) as client:
        text = error_of(await wait_for(client, "gen_1", poll_interval_s=interval))
    assert "invalid_argument" in text and "poll_interval_s" in text
    assert sandbox["skillsvideo"].requests == []


@pytest.mark.parametrize(
    ("timeout_s", "interval", "named"),
    [
        (math.nan, None, "timeout_s"),
        (-math.inf, None, "timeout_s"),
        (50, math.nan, "poll_interval_s"),
        (50, math.inf, "poll_interval_s"),
    ],
)
async def test_the_service_refuses_nan_and_infinite_floats_too(
    sandbox: Sandbox, clock: VirtualClock, timeout_s: float, interval: float | None, named: str
) -> None:
    sandbox["skillsvideo"].add_job("gen_1")
    settings = Settings(provider_env=sandbox.env())
    transport = httpx.ASGITransport(app=sandbox.app)
    async with open_service(settings, Redactor(), transport=transport, clock=clock) as service:
        with pytest.raises(InvalidArgument, match=named):
            await service.wait("skillsvideo", "gen_1", timeout_s, interval)
    assert sandbox["skillsvideo"].requests == []


# ---- transient trouble ----


@pytest.mark.parametrize("as_date", [False, True], ids=["seconds", "http-date"])
async def test_retry_after_is_honoured_to_the_second(sandbox: Sandbox, clock: VirtualClock, as_date: bool) -> None:
    faults = [Fault.rate_limited(7, as_date=as_date), Fault.rate_limited(3, as_date=as_date)]
    sandbox["skillsvideo"].add_job("gen_1", Timeline(queued_s=0, running_s=0), faults)
    async with connected(sandbox, clock) as client:
        result = result_of(await wait_for(client, "gen_1"))
    assert request_times(sandbox) == [0, 7, 10]
    assert result.done and result.polls == 3


async def test_rate_limits_without_retry_after_and_server_errors_back_off_and_do_not_end_the_wait(
    sandbox: Sandbox, clock: VirtualClock
) -> None:
    faults = [Fault.rate_limited(), *(Fault.server_error(code) for code in (500, 502, 503, 504))]
    sandbox["skillsvideo"].add_job("gen_1", Timeline(queued_s=0, running_s=0), faults)
    async with connected(sandbox, clock, policy=STEADY) as client:
        result = result_of(await wait_for(client, "gen_1"))
    assert request_times(sandbox) == [0, 1, 3, 7, 15, 31]
    assert result.done and result.polls == 6


class Flaky(httpx.AsyncBaseTransport):
    """Raises the given transport errors for the first requests, then passes requests through."""

    def __init__(self, inner: httpx.AsyncBaseTransport, errors: list[httpx.TransportError]) -> None:
        self.inner = inner
        self.errors = errors

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.errors:
            raise self.errors.pop(0)
        return await self.inner.handle_async_request(request)


async def test_timeouts_and_connection_resets_do_not_end_the_wait(sandbox: Sandbox, clock: VirtualClock) -> None:
    sandbox["skillsvideo"].add_job("gen_1", Timeline(queued_s=0, running_s=0))
    errors: list[httpx.TransportError] = [
        httpx.ConnectTimeout("connect timed out"),
        httpx.ReadTimeout("read timed out"),
        httpx.RemoteProtocolError("peer closed connection without sending complete message body"),
        httpx.ConnectError("[Errno 104] Connection reset by peer"),
    ]
    transport = Flaky(httpx.ASGITransport(app=sandbox.app), errors)
    async with connected(sandbox, clock, policy=STEADY, transport=transport) as client:
        result = result_of(await wait_for(client, "gen_1"))
    assert result.done and result.polls == 5 and result.elapsed_s == 1 + 2 + 4 + 8


async def test_a_provider_that_never_answers_usefully_is_provider_unavailable_with_the_last_reason_by_the_deadline(
    sandbox: Sandbox, clock: VirtualClock
) -> None:
    sandbox["skillsvideo"].add_job("gen_1", Timeline(queued_s=0), [Fault.server_error(503)] * 100)
    async with connected(sandbox, clock) as client:
        text = error_of(await wait_for(client, "gen_1", timeout_s=30))
    assert "provider_unavailable" in text and "HTTP 503" in text
    times = request_times(sandbox)
    assert len(times) > 3 and times[-1] <= 30 - PollPolicy().landing_s


async def test_a_retry_after_longer_than_the_time_left_ends_the_wait_with_the_last_state_and_says_when(
    sandbox: Sandbox, clock: VirtualClock
) -> None:
    # A `slow` fault of no delay is the normal answer: the first check reads the job, the second is told to go.
    sandbox["skillsvideo"].add_job("gen_1", Timeline(queued_s=100), [Fault("slow"), Fault.rate_limited(60)])
    async with connected(sandbox, clock, policy=STEADY) as client:
        result = result_of(await wait_for(client, "gen_1", timeout_s=20))
    assert request_times(sandbox) == [0, STEADY.first_delay_s]
    assert (result.timed_out, result.status, result.elapsed_s) == (True, "queued", STEADY.first_delay_s)
    assert result.note is not None and "60s" in result.note and "Retry-After" in result.note
    assert "past this call's deadline" in result.note and "Call again in 60s" in result.note


async def test_the_next_call_honours_a_retry_after_that_outlived_the_last_one(
    sandbox: Sandbox, clock: VirtualClock
) -> None:
    sandbox["skillsvideo"].add_job("gen_1", Timeline(queued_s=1000), [Fault("slow"), Fault.rate_limited(60)])
    async with connected(sandbox, clock, policy=STEADY) as client:
        first = result_of(await wait_for(client, "gen_1", timeout_s=20))
        # The next call comes too soon: nothing may be sent yet, so it answers with what the first one read.
        too_soon = result_of(await wait_for(client, "gen_1", timeout_s=30))
        assert request_times(sandbox) == [0, STEADY.first_delay_s]
        result = result_of(await wait_for(client, "gen_1", timeout_s=100))
    assert (too_soon.status, too_soon.timed_out, too_soon.polls, too_soon.elapsed_s) == ("queued", True, 0, 0)
    assert too_soon.checked_at == first.checked_at
    assert too_soon.note is not None and "Retry-After" in too_soon.note and "nothing was sent" in too_soon.note
    assert "past this call's 30s deadline" in too_soon.note and "Call again in 60s" in too_soon.note
    assert request_times(sandbox)[2] == STEADY.first_delay_s + 60 and result.status == "queued"


async def test_a_retry_after_past_the_deadline_before_any_answer_is_unavailable_with_the_time_taken_and_when_to_call(
    sandbox: Sandbox, clock: VirtualClock
) -> None:
    sandbox["skillsvideo"].add_job("gen_1", Timeline(queued_s=100), [Fault.rate_limited(60)])
    async with connected(sandbox, clock, policy=STEADY) as client:
        text = error_of(await wait_for(client, "gen_1", timeout_s=50))
        again = error_of(await wait_for(client, "gen_1", timeout_s=50))
    assert request_times(sandbox) == [0]
    assert "provider_unavailable" in text and "HTTP 429" in text and "within 50s" not in text
    assert "in 0.0s of 50s (1 try)" in text and "call again in 60s" in text
    assert "provider_unavailable" in again and "waited 0s" in again and "Call again in 60s" in again


@pytest.mark.parametrize(
    ("task_id", "faults", "env", "code"),
    [
        ("gen_unknown", [], None, "task_not_found"),
        ("gen_1", [], {"SKILLSVIDEO_API_KEY": "sk-wrong"}, "authentication_failed"),
        ("gen_1", [Fault("malformed_json")], None, "provider_protocol_error"),
        ("gen_1", [Fault.server_error(503), Fault("html", status=200)], None, "provider_protocol_error"),
    ],
)
async def test_a_permanent_answer_ends_the_wait_at_once_with_its_error(
    sandbox: Sandbox,
    clock: VirtualClock,
    task_id: str,
    faults: list[Fault],
    env: dict[str, str] | None,
    code: str,
) -> None:
    sandbox["skillsvideo"].add_job("gen_1", Timeline(queued_s=100), faults)
    async with connected(sandbox, clock, env={**sandbox.env(), **(env or {})}) as client:
        text = error_of(await wait_for(client, task_id))
    assert code in text
    assert len(sandbox["skillsvideo"].requests) == 1 + len([f for f in faults if f.kind == "status"])


# ---- progress notifications ----


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_progress_is_reported_after_every_check_strictly_rising_with_status_percent_and_time_waited(
    sandbox: Sandbox, clock: VirtualClock, mode: str
) -> None:
    sandbox["tensorpix"].add_job(TENSORPIX_ID, Timeline(queued_s=3, running_s=20))
    heard: list[tuple[float, float | None, str | None]] = []
    last_heard = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        heard.append((progress, total, message))
        if progress == total:
            last_heard.set()

    async with connected(sandbox, clock, mode=mode) as client:
        with anyio.fail_after(10):
            reply = await client.call_tool(
                "wait_for_generation",
                {"provider": "tensorpix", "task_id": TENSORPIX_ID, "timeout_s": 60},
                progress_callback=on_progress,
            )
            # Over JSON-RPC the client runs each progress callback in a task of its own, so the reply can
            # overtake the last ones.
            await last_heard.wait()
    result = result_of(reply)
    values = [progress for progress, _, _ in heard]
    messages = [message or "" for _, _, message in heard]
    assert len(heard) == result.polls == len(sandbox["tensorpix"].requests)
    assert all(earlier < later for earlier, later in pairwise(values))
    assert {total for _, total, _ in heard} == {60} and values[-1] == 60
    assert messages[0].startswith("queued;") and "waited 0s of 60s" in messages[0]
    assert any(message.startswith("running ") and "%" in message for message in messages)
    waited = re.fullmatch(r"succeeded; waited (\d+)s of 60s", messages[-1])
    assert waited is not None and result.elapsed_s is not None and abs(int(waited[1]) - result.elapsed_s) <= 0.5


async def test_progress_during_trouble_says_what_went_wrong_and_when_the_next_try_is(
    sandbox: Sandbox, clock: VirtualClock
) -> None:
    sandbox["skillsvideo"].add_job("gen_1", Timeline(queued_s=0, running_s=0), [Fault.rate_limited(7)])
    heard: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        heard.append(message or "")

    async with connected(sandbox, clock) as client:
        with anyio.fail_after(10):
            await client.call_tool(
                "wait_for_generation", {"provider": "skillsvideo", "task_id": "gen_1"}, progress_callback=on_progress
            )
    assert "HTTP 429" in heard[0] and "retrying in 7s" in heard[0]


# ---- cancellation ----


class HeldClock(VirtualClock):
    """Virtual time whose sleeps never end by themselves: the wait sits there until it is cancelled."""

    def __init__(self) -> None:
        super().__init__()
        self.asleep = anyio.Event()
        self.cancelled = anyio.Event()

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.asleep.set()
        try:
            await anyio.Event().wait()
        except anyio.get_cancelled_exc_class():
            self.cancelled.set()
            raise


class Tracking(httpx.AsyncBaseTransport):
    """Counts requests in flight and notes those that were cut off by cancellation."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.in_flight = 0
        self.started = anyio.Event()
        self.cut_off = anyio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.in_flight += 1
        self.started.set()
        try:
            return await self.inner.handle_async_request(request)
        except anyio.get_cancelled_exc_class():
            self.cut_off.set()
            raise
        finally:
            self.in_flight -= 1


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_client_that_cancels_while_the_wait_sleeps_stops_all_further_requests(mode: str) -> None:
    clock = HeldClock()
    sandbox = Sandbox(clock, auto_create=False)
    sandbox["skillsvideo"].add_job("gen_1", Timeline(queued_s=100))
    async with connected(sandbox, clock, mode=mode) as client:
        with pytest.raises(MCPError):
            await client.call_tool(
                "wait_for_generation", {"provider": "skillsvideo", "task_id": "gen_1"}, read_timeout_seconds=0.2
            )
        with anyio.fail_after(5):
            await clock.cancelled.wait()
        await anyio.wait_all_tasks_blocked()
        assert len(sandbox["skillsvideo"].requests) == 1


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_client_that_cancels_during_a_request_cuts_it_off_and_sends_no_other(mode: str) -> None:
    clock = VirtualClock()
    sandbox = Sandbox(clock, auto_create=False)
    sandbox["skillsvideo"].add_job("gen_1", Timeline(queued_s=100), [Fault("slow", delay_s=30)])
    transport = Tracking(httpx.ASGITransport(app=sandbox.app))
    async with connected(sandbox, clock, transport=transport, mode=mode) as client:
        with pytest.raises(MCPError):
            await client.call_tool(
                "wait_for_generation", {"provider": "skillsvideo", "task_id": "gen_1"}, read_timeout_seconds=0.2
            )
        with anyio.fail_after(5):
            await transport.cut_off.wait()
        await anyio.wait_all_tasks_blocked()
        assert transport.in_flight == 0 and len(sandbox["skillsvideo"].requests) == 1
        assert clock.sleeps == []


async def test_a_client_whose_connection_closes_mid_wait_leaves_nothing_polling() -> None:
    # Legacy mode runs the server behind in-memory streams, so closing the client closes a real transport.
    clock = HeldClock()
    sandbox = Sandbox(clock, auto_create=False)
    sandbox["skillsvideo"].add_job("gen_1", Timeline(queued_s=100))
    caller_saw: list[BaseException] = []

    async def call(client: Client) -> None:
        try:
            await client.call_tool("wait_for_generation", {"provider": "skillsvideo", "task_id": "gen_1"})
        except MCPError as exc:
            caller_saw.append(exc)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tasks:
            async with connected(sandbox, clock, mode="legacy") as client:
                tasks.start_soon(call, client)
                await clock.asleep.wait()
            await clock.cancelled.wait()
    await anyio.wait_all_tasks_blocked()
    assert len(sandbox["skillsvideo"].requests) == 1
    assert caller_saw and "closed" in str(caller_saw[0]).lower()


# ---- a stopping server ----


class Unanswered(httpx.AsyncBaseTransport):
    """The emulators, except that requests under `silent` never get an answer."""

    def __init__(self, sandbox: Sandbox, silent: str = "/") -> None:
        self.inner = httpx.ASGITransport(app=sandbox.app)
        self.silent = silent
        self.held = 0
        self.holding = anyio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not request.url.path.startswith(self.silent):
            return await self.inner.handle_async_request(request)
        self.held += 1
        self.holding.set()
        await anyio.sleep_forever()
        raise AssertionError("unreachable")


async def test_a_stopping_server_ends_a_wait_at_once_with_the_state_it_last_read() -> None:
    clock, stopping = HeldClock(), Stopping()
    sandbox = Sandbox(clock, auto_create=False)
    sandbox["skillsvideo"].add_job("gen_1", Timeline(queued_s=100))
    replies: list[CallToolResult] = []
    async with connected(sandbox, clock, stopping=stopping) as client, anyio.create_task_group() as tasks:

        async def call() -> None:
            replies.append(await wait_for(client, "gen_1", timeout_s=600))

        tasks.start_soon(call)
        with anyio.fail_after(5):
            await clock.asleep.wait()
        stopping.set()
    result = result_of(replies[0])
    assert (result.status, result.done, result.timed_out, result.polls) == ("queued", False, True, 1)
    assert result.note == STOPPED_NOTE and "call again" in result.note
    assert len(sandbox["skillsvideo"].requests) == 1


async def test_a_wait_stopped_before_it_read_a_state_and_one_begun_after_the_stop_say_to_call_again() -> None:
    clock, stopping = VirtualClock(), Stopping()
    sandbox = Sandbox(clock, auto_create=False)
    sandbox["skillsvideo"].add_job("gen_1", Timeline(queued_s=100))
    transport = Unanswered(sandbox)
    replies: list[CallToolResult] = []
    async with connected(sandbox, clock, transport=transport, stopping=stopping) as client:

        async def call() -> None:
            replies.append(await wait_for(client, "gen_1", timeout_s=600))

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(call)
            with anyio.fail_after(5):
                await transport.holding.wait()
            stopping.set()
        replies.append(await wait_for(client, "gen_1", timeout_s=600))
    assert [error_of(reply) for reply in replies] == [f"provider_unavailable: {STOPPED_UNREAD}"] * 2
    assert transport.held == 1


async def test_a_stopping_server_ends_a_wait_on_several_jobs_with_each_ones_last_state() -> None:
    clock, stopping = HeldClock(), Stopping()
    sandbox = Sandbox(clock, auto_create=False)
    sandbox["skillsvideo"].add_job("gen_1", Timeline(queued_s=100))
    sandbox["modelslab"].add_job("148", Timeline(queued_s=100))
    # ModelsLab never answers: that job has no state to give when the stop comes.
    transport = Unanswered(sandbox, silent="/modelslab")
    jobs = [{"provider": "skillsvideo", "task_id": "gen_1"}, {"provider": "modelslab", "task_id": "148"}]
    replies: list[CallToolResult] = []
    async with (
        connected(sandbox, clock, transport=transport, stopping=stopping) as client,
        anyio.create_task_group() as tasks,
    ):

        async def call() -> None:
            with anyio.fail_after(10):
                replies.append(await client.call_tool("wait_for_generations", {"jobs": jobs, "timeout_s": 600}))

        tasks.start_soon(call)
        with anyio.fail_after(5):
            await clock.asleep.wait()
            await transport.holding.wait()
        stopping.set()
    assert not replies[0].is_error, replies[0].content
    batch = BatchResult.model_validate(replies[0].structured_content)
    read, unread = batch.results
    assert batch.timed_out and batch.note == STOPPED_NOTE
    assert isinstance(read, GenerationResult) and (read.status, read.timed_out) == ("queued", True)
    assert read.note == STOPPED_NOTE
    assert isinstance(unread, JobFailure) and unread.error.code == "provider_unavailable"
    assert unread.error.message == STOPPED_UNREAD
