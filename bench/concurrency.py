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
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from bench.procs import child_env, cpu_seconds, free_port, rss_bytes, serving
from bench.report import Row
from sandbox import EMULATORS, Sandbox
from sandbox.core import Outcome as JobEnd

RSS_TARGET_MB = 100.0
CPU_TARGET_MS = 2.0
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


async def _run(url: str, pid: int, waits: int, sessions: int, progress: bool = True) -> Outcome:
    providers = sorted(EMULATORS)
    expected = {p: EMULATORS[p](auto_create=True) for p in providers}
    jobs = [(providers[n % len(providers)], task_id(providers[n % len(providers)], n)) for n in range(waits)]
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


def measure(waits: int, sessions: int) -> Outcome:
    emu_port, mcp_port = free_port(), free_port()
    while mcp_port == emu_port:
        mcp_port = free_port()
    provider_env = Sandbox().env(f"http://127.0.0.1:{emu_port}")
    server = ["-m", "server", "serve", "--transport", "http", "--port", str(mcp_port)]
    with (
        serving(["-m", "bench.loopback", "--port", str(emu_port)], emu_port, child_env()),
        serving(server, mcp_port, child_env(provider_env)) as proc,
    ):
        return anyio.run(_run, f"http://127.0.0.1:{mcp_port}/mcp", proc.pid, waits, sessions)


def rows(waits: int, sessions: int) -> Iterator[Row]:
    o = measure(waits, sessions)
    all_right = not o.tally.wrong and o.tally.right == waits
    states = ", ".join(f"{n} {s}" for s, n in sorted(o.tally.states.items()))
    yield Row(
        f"concurrency: {waits} waits over streamable HTTP, added RSS",
        f"{o.added_mb:.1f} MB (idle {o.rss_idle / 1e6:.0f} MB, peak {o.rss_peak / 1e6:.0f} MB; {o.sessions} sessions, "
        f"{o.wall_s:.1f} s wall; {o.tally.right}/{waits} right: {states})",
        f"< {RSS_TARGET_MB:.0f} MB, all right",
        o.added_mb < RSS_TARGET_MB and all_right,
        "; ".join(o.tally.wrong[:3]),
    )
    yield Row(
        f"concurrency: {waits} waits, CPU per provider check",
        f"{o.cpu_ms_per_check:.2f} ms ({o.cpu_s:.2f} s CPU / {o.tally.polls} checks; "
        f"{o.tally.progress_events} progress notifications)",
        f"< {CPU_TARGET_MS:.0f} ms",
        o.cpu_ms_per_check < CPU_TARGET_MS and all_right,
    )
