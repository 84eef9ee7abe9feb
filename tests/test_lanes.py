"""How the service spends connections: at most a fixed number of requests per provider at once, clients reused."""

from __future__ import annotations

import anyio
import httpx

from sandbox import Sandbox
from tools.clock import VirtualClock
from tools.providers import adapters_from_env
from tools.redact import Redactor
from tools.service import MAX_IN_FLIGHT_PER_PROVIDER, GenerationService


class Gate(httpx.AsyncBaseTransport):
    """The emulators behind a gate: requests pile up until it opens; counts how many were in flight at once."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.inner = httpx.ASGITransport(app=sandbox.app)
        self.open = anyio.Event()
        self.in_flight = 0
        self.most_in_flight = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await self.open.wait()
            return await self.inner.handle_async_request(request)
        finally:
            self.in_flight -= 1


def service_through(gate: Gate, sandbox: Sandbox, clock: VirtualClock) -> tuple[GenerationService, list[int]]:
    opened: list[int] = []

    def open_client() -> httpx.AsyncClient:
        opened.append(1)
        return httpx.AsyncClient(transport=gate)

    adapters = adapters_from_env(sandbox.env(), Redactor())
    return GenerationService(adapters, open_client, redactor=Redactor(), clock=clock), opened


async def test_a_burst_of_checks_keeps_at_most_the_limit_in_flight_to_one_provider_and_all_are_answered(
    sandbox: Sandbox, clock: VirtualClock
) -> None:
    burst = 3 * MAX_IN_FLIGHT_PER_PROVIDER
    for n in range(burst):
        sandbox["skillsvideo"].add_job(f"gen_{n}")
    gate = Gate(sandbox)
    service, opened = service_through(gate, sandbox, clock)
    statuses: list[str] = []

    async def check(n: int) -> None:
        statuses.append((await service.check("skillsvideo", f"gen_{n}")).status)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for n in range(burst):
                tg.start_soon(check, n)
            await anyio.wait_all_tasks_blocked()
            held_back = gate.in_flight
            gate.open.set()
        await service.aclose()
    assert held_back == MAX_IN_FLIGHT_PER_PROVIDER
    assert gate.most_in_flight == MAX_IN_FLIGHT_PER_PROVIDER
    assert len(statuses) == burst
    assert len(opened) == MAX_IN_FLIGHT_PER_PROVIDER


async def test_checks_one_after_another_reuse_one_client(sandbox: Sandbox, clock: VirtualClock) -> None:
    sandbox["skillsvideo"].add_job("gen_1")
    gate = Gate(sandbox)
    gate.open.set()
    service, opened = service_through(gate, sandbox, clock)
    with anyio.fail_after(10):
        for _ in range(5):
            await service.check("skillsvideo", "gen_1")
        await service.aclose()
    assert len(opened) == 1
    assert len(sandbox["skillsvideo"].requests) == 5


async def test_the_service_closes_the_clients_it_opened_and_leaves_a_given_client_open(
    sandbox: Sandbox, clock: VirtualClock
) -> None:
    sandbox["skillsvideo"].add_job("gen_1")
    adapters = adapters_from_env(sandbox.env(), Redactor())
    with anyio.fail_after(10):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sandbox.app)) as given:
            service = GenerationService(adapters, given, redactor=Redactor(), clock=clock)
            await service.check("skillsvideo", "gen_1")
            await service.aclose()
            assert not given.is_closed
        gate = Gate(sandbox)
        gate.open.set()
        service, _ = service_through(gate, sandbox, clock)
        await service.check("skillsvideo", "gen_1")
        await service.aclose()
    assert all(client.is_closed for client in service.lanes["skillsvideo"].opened)
