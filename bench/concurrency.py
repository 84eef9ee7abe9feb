"""Concurrency: 1,000 waits at once over streamable HTTP, in one server process, against loopback emulators.

The server (`python -m server serve --transport http`) and the emulators (`python -m bench.loopback`) run in
processes of their own, so the figures are the server's alone: its resident memory above what it held idle
after a warm-up call, and its CPU time (user + system, from /proc) divided by the provider checks it made
(the sum of `polls` over all the answers). Every wait must end in the state the emulator scripted for its
id; a wrong or missing answer fails the row whatever the figures say.

The waits come from a number of client sessions sharing one connection pool without a limit, each
session with its share of calls in flight at once and a progress callback (so the server also pays for
progress notifications, as it does for clients that ask). The sandbox's jobs take 8 s (2 queued, 6
running); every wait is bounded (timeout_s 60) and so is the whole run.

CPU per check is judged against what no server can avoid: after each round of waits, this process sends as
many bare httpx requests as the server made checks (the very requests the adapters build, 16 at a time as
the server's lanes do) to the same emulators and measures its own CPU for them. The row's ratio is the
server's CPU per check over that CPU per request, one ratio per round, so a slow or busy machine moves both
sides alike.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import anyio
import httpx
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from bench.procs import child_env, cpu_seconds, free_port, rss_bytes, serving
from bench.report import Row
from bench.stats import Spread, median
from sandbox import EMULATORS, Sandbox
from sandbox.core import Outcome as JobEnd
from tools.providers import adapters_from_env
from tools.providers.base import Adapter
from tools.redact import Redactor

RSS_TARGET_MB = 100.0
# The server's CPU per check over one bare httpx request's: the request itself, plus the MCP call that asked
# for it (JSON-RPC over HTTP, SSE framing), the progress notification it sends, parsing and the result model.
CPU_TARGET_RATIO = 5.0
BASELINE_CONCURRENCY = 16
WAIT_TIMEOUT_S = 60.0
RUN_LIMIT_S = 240.0


def task_id(provider: str, n: int) -> str:
    """The `n`th job at a provider, in its own id form; about one in seven fails, and one in eleven is
    canceled where the provider can say so (the emulators read the outcome from the id itself)."""
    emulator = EMULATORS[provider]
    outcome: JobEnd = "failed" if n % 7 == 3 else "canceled" if n % 11 == 5 else "succeeded"
    return emulator.sandbox_id(n, outcome if outcome in emulator.outcomes else "succeeded")


@dataclass
class Tally:
    right: int = 0
    wrong: list[str] = field(default_factory=list)
    polls: int = 0
    progress_events: int = 0
    states: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class Outcome:
    waits: int
    sessions: int
    tally: Tally
    rss_idle: int
    rss_peak: int
    cpu_s: float
    wall_s: float

    @property
    def added_mb(self) -> float:
        return (self.rss_peak - self.rss_idle) / 1e6

    @property
    def cpu_ms_per_check(self) -> float:
        return self.cpu_s * 1000 / max(1, self.tally.polls)


async def _watch_rss(pid: int, peak: list[int]) -> None:
    while True:
        peak[0] = max(peak[0], rss_bytes(pid))
        await anyio.sleep(0.1)


async def _run(url: str, pid: int, waits: int, sessions: int, progress: bool = True, first: int = 0) -> Outcome:
    providers = sorted(EMULATORS)
    expected = {p: EMULATORS[p](auto_create=True) for p in providers}
    numbers = range(first, first + waits)
    jobs = [(providers[n % len(providers)], task_id(providers[n % len(providers)], n)) for n in numbers]
    tally = Tally()
    limits = httpx2.Limits(max_connections=None, max_keepalive_connections=None)
    timeout = httpx2.Timeout(30.0, read=WAIT_TIMEOUT_S + 30)
    async with httpx2.AsyncClient(limits=limits, timeout=timeout) as http:
        # Warm-up: one check per provider, so lazy imports and first-use caches are in the idle figure.
        async with Client(streamable_http_client(url, http_client=http)) as client:
            for provider in providers:
                await client.call_tool("get_generation_result", {"provider": provider, "task_id": task_id(provider, 0)})
        rss_idle = rss_bytes(pid)
        peak = [rss_idle]
        cpu_before = cpu_seconds(pid)
        started = time.perf_counter()

        async def wait_one(client: Client, provider: str, tid: str) -> None:
            async def on_progress(progress: float, total: float | None, message: str | None) -> None:
                tally.progress_events += 1

            result = await client.call_tool(
                "wait_for_generation",
                {"provider": provider, "task_id": tid, "timeout_s": WAIT_TIMEOUT_S},
                progress_callback=on_progress if progress else None,
            )
            got = result.structured_content or {}
            tally.polls += int(got.get("polls", 0))
            tally.states[str(got.get("status"))] += 1
            want = expected[provider].outcome_for(tid)
            if result.is_error or not got.get("done") or got.get("status") != want:
                tally.wrong.append(f"{provider}/{tid}: wanted {want}, got {got or result.content}")
            else:
                tally.right += 1

        async def session(share: list[tuple[str, str]]) -> None:
            async with Client(streamable_http_client(url, http_client=http)) as client, anyio.create_task_group() as tg:
                for provider, tid in share:
                    tg.start_soon(wait_one, client, provider, tid)

        with anyio.fail_after(RUN_LIMIT_S):
            async with anyio.create_task_group() as watcher:
                watcher.start_soon(_watch_rss, pid, peak)
                async with anyio.create_task_group() as tg:
                    for s in range(sessions):
                        tg.start_soon(session, jobs[s::sessions])
                watcher.cancel_scope.cancel()
        wall = time.perf_counter() - started
        cpu = cpu_seconds(pid) - cpu_before
        peak[0] = max(peak[0], rss_bytes(pid, "VmHWM"))
    return Outcome(waits, sessions, tally, rss_idle, peak[0], cpu, wall)


async def baseline_cpu_s(provider_env: dict[str, str], requests: int) -> float:
    """This process's CPU for `requests` bare httpx requests to the emulators, 16 at a time: what a check
    costs before any server is involved."""
    adapters = adapters_from_env(provider_env, Redactor())
    ids = itertools.cycle([(adapters[p], task_id(p, 0)) for p in sorted(EMULATORS)])
    plan = [next(ids) for _ in range(requests)]
    one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    clients = [httpx.AsyncClient(limits=one, timeout=30) for _ in range(BASELINE_CONCURRENCY)]

    async def send(client: httpx.AsyncClient, share: list[tuple[Adapter, str]]) -> None:
        for adapter, tid in share:
            request = adapter.build_request(client, tid)
            response = await client.send(request, auth=adapter.auth() or httpx.USE_CLIENT_DEFAULT)
            await response.aread()

    started = time.process_time()
    async with anyio.create_task_group() as tg:
        for lane, client in enumerate(clients):
            tg.start_soon(send, client, plan[lane::BASELINE_CONCURRENCY])
    spent = time.process_time() - started
    for client in clients:
        await client.aclose()
    return spent


@dataclass(frozen=True)
class Rounds:
    outcomes: list[Outcome]
    baseline_cpu_s: list[float]

    def ratios(self) -> list[float]:
        return [
            o.cpu_ms_per_check / (base * 1000 / max(1, o.tally.polls))
            for o, base in zip(self.outcomes, self.baseline_cpu_s, strict=True)
            if base > 0
        ]


def measure(waits: int, sessions: int, rounds: int = 1) -> Rounds:
    emu_port, mcp_port = free_port(), free_port()
    while mcp_port == emu_port:
        mcp_port = free_port()
    provider_env = Sandbox().env(f"http://127.0.0.1:{emu_port}")
    server = ["-m", "server", "serve", "--transport", "http", "--port", str(mcp_port)]
    outcomes: list[Outcome] = []
    baselines: list[float] = []
    with (
        serving(["-m", "bench.loopback", "--port", str(emu_port)], emu_port, child_env()),
        # A thousand waits hold a thousand connections (HTTP/1.1, one call each): over the default bound, which
        # would close the newest; an operator serving that many raises it the same way.
        serving(
            server, mcp_port, child_env({**provider_env, "GENRESULT_HTTP_MAX_CONNECTIONS": str(2 * waits)})
        ) as proc,
    ):
        for number in range(rounds):
            outcome = anyio.run(
                _run, f"http://127.0.0.1:{mcp_port}/mcp", proc.pid, waits, sessions, True, number * waits
            )
            outcomes.append(outcome)
            baselines.append(anyio.run(baseline_cpu_s, provider_env, outcome.tally.polls))
    return Rounds(outcomes, baselines)


def rows(waits: int, sessions: int, rounds: int, baselines: list[str]) -> Iterator[Row]:
    measured = measure(waits, sessions, rounds)
    o = measured.outcomes[0]
    wrong = [line for outcome in measured.outcomes for line in outcome.tally.wrong]
    all_right = not wrong and all(outcome.tally.right == waits for outcome in measured.outcomes)
    states = ", ".join(f"{n} {s}" for s, n in sorted(o.tally.states.items()))
    yield Row(
        f"concurrency: {waits} waits over streamable HTTP, added RSS",
        f"{o.added_mb:.1f} MB (idle {o.rss_idle / 1e6:.0f} MB, peak {o.rss_peak / 1e6:.0f} MB; {o.sessions} sessions, "
        f"{o.wall_s:.1f} s wall; {o.tally.right}/{waits} right: {states})",
        f"< {RSS_TARGET_MB:.0f} MB, all right",
        o.added_mb < RSS_TARGET_MB and all_right,
        "; ".join(wrong[:3]),
    )
    per_request_ms = [
        base * 1000 / max(1, outcome.tally.polls)
        for outcome, base in zip(measured.outcomes, measured.baseline_cpu_s, strict=True)
    ]
    baselines.append(f"one bare httpx request {median(per_request_ms):.2f} ms CPU")
    spread = Spread.of(measured.ratios())
    checks = sum(outcome.tally.polls for outcome in measured.outcomes)
    yield Row.judged(
        f"concurrency: {waits} waits, CPU per provider check / bare httpx request",
        f"{median([outcome.cpu_ms_per_check for outcome in measured.outcomes]):.2f} ms vs "
        f"{median(per_request_ms):.2f} ms: {spread.text()}; {checks} checks, "
        f"{sum(outcome.tally.progress_events for outcome in measured.outcomes)} progress notifications",
        CPU_TARGET_RATIO,
        spread,
        also=all_right,
    )
