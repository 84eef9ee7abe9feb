"""Every fault a provider can produce, for every provider, over a real loopback socket.

Each case ends in the right tool error or result, inside the request time limit, and the very next call on
the same server is answered normally. Waits ride out the transient faults and stop at once on the others.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio
import anyio.lowlevel
import httpx
import pytest
from mcp import Client

from sandbox import Fault, Job, Sandbox, Timeline
from sandbox.flexstack import FlexstackEmulator
from server.app import build_server
from server.settings import Settings
from tests.hardening.faults import (
    CASES,
    PROVIDERS,
    REQUEST_TIMEOUT_S,
    SLACK_S,
    TIMED_REQUEST_TIMEOUT_S,
    Case,
    CountingTransport,
    Seen,
    error_code,
    fast_policy,
    mcp_client,
    new_task_id,
    result_of,
    text_of,
)
from tests.hardening.loopback import LoopbackServer, Switch, bound_socket, serving
from tests.providers.kit import kit
from tools.clock import VirtualClock
from tools.errors import ProviderProtocolError
from tools.providers import adapters_from_env
from tools.redact import Redactor
from tools.service import GenerationService
from tools.wire import MAX_BODY_BYTES

# httpcore reads a socket 64 KiB at a time: the cap can be passed by at most one read.
ONE_READ = 64 * 1024

DONE_AT_ONCE = Timeline(queued_s=0, running_s=0, outcome="succeeded")


@dataclass
class World:
    clock: VirtualClock
    sandbox: Sandbox
    seen: Seen
    root: str

    @property
    def env(self) -> dict[str, str]:
        return self.sandbox.env(self.root)


@pytest.fixture
def world(loopback: LoopbackServer) -> World:
    clock = VirtualClock()
    sandbox = Sandbox(clock, auto_create=False)
    seen = Seen(sandbox.app)
    assert isinstance(loopback.app, Switch)
    loopback.app.target = seen
    return World(clock, sandbox, seen, loopback.root)


def case_id(case: Case) -> str:
    return case.name.replace(" ", "-")


@pytest.mark.parametrize("case", [case for case in CASES if not case.timed], ids=case_id)
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_each_fault_gives_the_right_answer_in_time_and_the_next_call_is_normal(
    provider: str, case: Case, world: World
) -> None:
    counting = CountingTransport()
    async with mcp_client(world.env, world.clock, transport=counting) as client:
        await play(client, counting, provider, case, world, *faulted_job(world, provider, case))
    if not case.expected(provider).transient:
        assert world.clock.monotonic() == 0, "no time was spent waiting for a better answer"
    elif (retry_after := case.faults[0].retry_after) is not None:
        assert world.clock.sleeps[0] == pytest.approx(retry_after, abs=1)
    assert all(path.startswith(f"/{provider}/") for _, path in world.seen.requests), world.seen.requests
    assert {host for host, _ in world.seen.requests} == {world.root.removeprefix("http://")}


@pytest.mark.parametrize("case", [case for case in CASES if case.timed], ids=case_id)
async def test_each_fault_that_runs_into_the_time_limit_gives_the_same_at_every_provider_at_once(
    case: Case, world: World
) -> None:
    # One server for them all, on its own network clients (one pool per provider, as in use).
    server = build_server(
        Settings(provider_env=world.env, request_timeout_s=TIMED_REQUEST_TIMEOUT_S),
        redactor=Redactor(),
        clock=world.clock,
        policy=fast_policy(),
    )
    async with Client(server) as client, anyio.create_task_group() as group:
        for provider in PROVIDERS:
            task_id, job = faulted_job(world, provider, case)
            group.start_soon(play, client, None, provider, case, world, task_id, job, TIMED_REQUEST_TIMEOUT_S)
            # Set off one after another: a request's time limit runs from before it is sent, and thirteen
            # calls made at once can keep one from going out in time, which would leave its fault unspent.
            with anyio.fail_after(TIMED_REQUEST_TIMEOUT_S + SLACK_S):
                while job.faults:
                    await anyio.sleep(0.005)
    paths = [path for _, path in world.seen.requests]
    assert all(path.split("/")[1] in PROVIDERS for path in paths), paths
    assert {path.split("/")[1] for path in paths} == set(PROVIDERS)
    assert {host for host, _ in world.seen.requests} == {world.root.removeprefix("http://")}


def faulted_job(world: World, provider: str, case: Case) -> tuple[str, Job]:
    task_id = new_task_id(provider)
    return task_id, world.sandbox[provider].add_job(task_id, DONE_AT_ONCE, case.faults)


async def play(
    client: Client,
    counting: CountingTransport | None,
    provider: str,
    case: Case,
    world: World,
    task_id: str,
    job: Job,
    limit_s: float = REQUEST_TIMEOUT_S,
) -> None:
    """The case at the provider's `job`: its answer within the server's request time limit `limit_s`, the
    next call normal, then a wait that rides it out or stops at once with the same answer."""
    code, status, transient = case.expected(provider)
    args = {"provider": provider, "task_id": task_id}
    with anyio.fail_after(limit_s + SLACK_S):
        faulted = await client.call_tool("get_generation_result", args)
    assert error_code(faulted) == code, text_of(faulted)
    if status is not None:
        assert result_of(faulted).status == status
    if code == "provider_unavailable":
        assert "try again" in text_of(faulted).lower(), "says what to do"
    if code == "provider_protocol_error":
        assert "_BASE_URL" in text_of(faulted), "says what to do"
    if case.faults[0].retry_after is not None:
        assert f"It asked for {case.faults[0].retry_after:g} s" in text_of(faulted)
    assert counting is None or counting.body_bytes <= MAX_BODY_BYTES + ONE_READ

    with anyio.fail_after(limit_s + SLACK_S):
        after = await client.call_tool("get_generation_result", args)
    assert result_of(after).status == "succeeded"

    job.faults.extend(case.faults)
    with anyio.fail_after(limit_s + SLACK_S):
        waited = await client.call_tool("wait_for_generation", {**args, "timeout_s": 120})
    if transient:
        result = result_of(waited)
        # The faulted request, then a whole read of the finished job.
        polls = 1 + kit(provider).finished_read_requests
        assert (result.status, result.timed_out, result.polls) == ("succeeded", False, polls)
    else:
        assert error_code(waited) == code, text_of(waited)
        if status is not None:
            assert result_of(waited).status == status


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_connection_refused_is_unavailable_and_the_provider_is_used_again_once_it_listens(
    provider: str,
) -> None:
    clock = VirtualClock()
    sandbox = Sandbox(clock, auto_create=False)
    task_id = new_task_id(provider)
    sandbox[provider].add_job(task_id, DONE_AT_ONCE)
    closed = bound_socket()
    env = sandbox.env(f"http://127.0.0.1:{closed.getsockname()[1]}")
    args = {"provider": provider, "task_id": task_id}
    async with mcp_client(env, clock) as client:
        with anyio.fail_after(REQUEST_TIMEOUT_S + SLACK_S):
            refused = await client.call_tool("get_generation_result", args)
            waited = await client.call_tool("wait_for_generation", {**args, "timeout_s": 5})
        assert error_code(refused) == "provider_unavailable", text_of(refused)
        assert error_code(waited) == "provider_unavailable", text_of(waited)
        # Both say what to do: where the address comes from, and to try again.
        base_url_env = f"{provider.upper()}_BASE_URL"
        assert base_url_env in text_of(refused) and "try again" in text_of(refused), text_of(refused)
        assert base_url_env in text_of(waited), text_of(waited)
        assert clock.monotonic() == pytest.approx(5, abs=1), "the wait kept trying until its deadline"
        with serving(sandbox.app, closed), anyio.fail_after(REQUEST_TIMEOUT_S + SLACK_S):
            back = await client.call_tool("get_generation_result", args)
    assert result_of(back).status == "succeeded"


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_redirect_to_another_host_is_never_followed(
    provider: str, world: World, loopback: LoopbackServer
) -> None:
    # The same loopback server under another name: were the redirect followed, `Seen` would note it.
    elsewhere = f"http://localhost:{loopback.port}/collector/steal"
    task_id = new_task_id(provider)
    world.sandbox[provider].add_job(task_id, DONE_AT_ONCE, [Fault.redirect(elsewhere)] * 3)
    async with mcp_client(world.env, world.clock) as client:
        with anyio.fail_after(REQUEST_TIMEOUT_S + SLACK_S):
            got = await client.call_tool("get_generation_result", {"provider": provider, "task_id": task_id})
            waited = await client.call_tool(
                "wait_for_generation", {"provider": provider, "task_id": task_id, "timeout_s": 30}
            )
    assert error_code(got) == error_code(waited) == "provider_protocol_error"
    assert "redirect" in text_of(got)
    assert all(not path.startswith("/collector") for _, path in world.seen.requests)
    assert all(host.startswith("127.0.0.1:") for host, _ in world.seen.requests)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_body_announced_over_the_cap_is_refused_unread(provider: str, world: World) -> None:
    counting = CountingTransport()
    task_id = new_task_id(provider)
    world.sandbox[provider].add_job(task_id, DONE_AT_ONCE, [Fault.oversized(8 << 20, declare_length=True)])
    async with mcp_client(world.env, world.clock, transport=counting) as client:
        with anyio.fail_after(REQUEST_TIMEOUT_S + SLACK_S):
            reply = await client.call_tool("get_generation_result", {"provider": provider, "task_id": task_id})
    assert error_code(reply) == "provider_protocol_error", text_of(reply)
    assert "not read further" in text_of(reply)
    assert counting.body_bytes == 0


async def test_an_expired_flexstack_token_is_refreshed_once_over_the_wire_and_the_call_succeeds(world: World) -> None:
    emulator = world.sandbox["flexstack"]
    assert isinstance(emulator, FlexstackEmulator)
    task_id = new_task_id("flexstack")
    emulator.add_job(task_id, DONE_AT_ONCE)
    args = {"provider": "flexstack", "task_id": task_id}
    async with mcp_client(emulator.login_env(f"{world.root}/flexstack"), world.clock) as client:
        with anyio.fail_after(REQUEST_TIMEOUT_S + SLACK_S):
            first = await client.call_tool("get_generation_result", args)
            emulator.expire_tokens()
            refreshed = await client.call_tool("get_generation_result", args)
            emulator.expire_tokens(refresh_tokens=True)
            relogged = await client.call_tool("get_generation_result", args)
    assert [result_of(reply).status for reply in (first, refreshed, relogged)] == ["succeeded"] * 3
    paths = [request.path.rsplit("/v1/", 1)[1].split("/")[0:2] for request in emulator.requests]
    assert paths.count(["user", "login"]) == 2
    assert paths.count(["user", "refresh_token"]) == 2


async def test_the_body_of_a_401_that_httpx_reads_before_a_refresh_stops_at_the_cap_too(clock: VirtualClock) -> None:
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        while True:
            sent += ONE_READ
            yield b"x" * ONE_READ
            # Lets the time limit interrupt a reader that does not stop, so that failure shows as one.
            await anyio.lowlevel.checkpoint()

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/user/login"):
            return httpx.Response(200, json={"data": {"access_token": "fs-at-1", "refresh_token": "fs-rt-1"}})
        return httpx.Response(401, content=endless())

    env = {"FLEXSTACK_USERNAME": "user@example.com", "FLEXSTACK_PASSWORD": "pw-0123456789"}
    async with mcp_client(env, clock, transport=httpx.MockTransport(answer)) as client:
        with anyio.fail_after(REQUEST_TIMEOUT_S + SLACK_S):
            reply = await client.call_tool("get_generation_result", {"provider": "flexstack", "task_id": "t-1"})
    assert error_code(reply) == "provider_protocol_error", text_of(reply)
    assert sent <= MAX_BODY_BYTES + 2 * ONE_READ


async def test_a_body_that_does_not_decode_as_its_content_encoding_says_is_a_protocol_error() -> None:
    def broken_gzip(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"not gzip at all", headers={"Content-Encoding": "gzip"})

    redactor = Redactor()
    adapters = adapters_from_env({"SKILLSVIDEO_API_KEY": "sk-test-key-0123456789"}, redactor)
    async with httpx.AsyncClient(transport=httpx.MockTransport(broken_gzip)) as http:
        service = GenerationService(adapters, http, redactor=redactor)
        with pytest.raises(ProviderProtocolError, match="Content-Encoding"):
            await service.check("skillsvideo", "gen_1")
