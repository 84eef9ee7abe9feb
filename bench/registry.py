"""The job registry and the multi-job wait, in-process on the emulators:

- wait_for_generations over 50 jobs at four providers against 50 separate wait_for_generation calls made at
  once, through the in-memory MCP client, in virtual time (a clock whose concurrent sleepers share one
  timeline): provider checks and CPU per job, side by side;
- list_generations over a registry of 100,000 jobs (SQLite) against a bare `SELECT` of the same rows;
- the cost of recording: CPU per check with the registry on (SQLite) and off.
"""

from __future__ import annotations

import json
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import httpx
from mcp import Client

from bench.report import Row, ratio
from bench.stats import Spread, median, per_round
from sandbox import Sandbox, Timeline
from server.app import build_server, open_service
from server.settings import Settings
from tools.clock import VirtualClock
from tools.redact import Redactor

JOBS = 50
PROVIDER_IDS = {
    "flexstack": lambda n: f"bench-{n}",
    "modelslab": lambda n: str(1000 + n),
    "skillsvideo": lambda n: f"gen_bench_{n}",
    "tensorpix": lambda n: f"3c90c3cc-0d44-4b50-8888-{n:012d}",
}
RECORD_TARGET = 1.15
LISTED = 100_000


def _jobs(sandbox: Sandbox) -> list[dict[str, str]]:
    rng = random.Random(13)
    jobs = []
    for n in range(JOBS):
        provider = list(PROVIDER_IDS)[n % len(PROVIDER_IDS)]
        task_id = PROVIDER_IDS[provider](n)
        sandbox[provider].add_job(task_id, Timeline(queued_s=rng.uniform(2, 10), running_s=rng.uniform(10, 40)))
        jobs.append({"provider": provider, "task_id": task_id})
    return jobs


async def _waits(batch: bool) -> tuple[float, int, float]:
    """(CPU seconds, provider requests, virtual seconds) for the 50 jobs, waited on one way or the other."""
    clock = VirtualClock(autojump=True)
    sandbox = Sandbox(clock, auto_create=False)
    jobs = _jobs(sandbox)
    settings = Settings(provider_env=sandbox.env(), db="off")
    server = build_server(
        settings,
        transport=httpx.ASGITransport(app=sandbox.app),
        clock=clock,
        policy=replace(settings.poll_policy(), rng=random.Random(2026)),
    )
    async with Client(server) as client:
        started = time.process_time()
        if batch:
            reply = await client.call_tool("wait_for_generations", {"jobs": jobs, "timeout_s": 120})
            assert not reply.is_error and (reply.structured_content or {}).get("done") == JOBS, reply
        else:
            async with anyio.create_task_group() as group:
                for job in jobs:
                    group.start_soon(client.call_tool, "wait_for_generation", {**job, "timeout_s": 120})
        cpu = time.process_time() - started
    requests = sum(len(emulator.requests) for emulator in sandbox.emulators.values())
    return cpu, requests, clock.monotonic()


def wait_rows(runs: int) -> Iterator[Row]:
    batch = [anyio.run(_waits, True) for _ in range(runs)]
    single = [anyio.run(_waits, False) for _ in range(runs)]
    cpu_b, cpu_s = (median([run[0] for run in runs_]) / JOBS for runs_ in (batch, single))
    checks_b, checks_s = (batch[0][1] / JOBS, single[0][1] / JOBS)
    r = ratio(cpu_b, cpu_s)
    yield Row(
        f"wait_for_generations, {JOBS} jobs at 4 providers",
        f"one call: {checks_b:.1f} checks, {cpu_b * 1000:.2f} ms CPU per job, {batch[0][2]:.0f} s virtual; "
        f"{JOBS} wait_for_generation calls: {checks_s:.1f} checks, {cpu_s * 1000:.2f} ms CPU per job, "
        f"{single[0][2]:.0f} s; CPU ratio {r:.2f}x (medians of {runs})",
        "checks per job equal; CPU per job <= 1.0x",
        checks_b <= checks_s and r <= 1.0,
    )


def _fill(path: Path, count: int) -> None:
    now = time.time()
    result = {
        "provider": "skillsvideo",
        "task_id": "",
        "status": "succeeded",
        "done": True,
        "provider_status": "COMPLETED",
        "progress": 100,
        "outputs": [{"url": "https://cdn.example.com/output/x.mp4", "kind": "video", "mime_type": "video/mp4"}],
        "checked_at": "2026-11-22T10:00:00Z",
    }
    providers = list(PROVIDER_IDS)
    with sqlite3.connect(path) as db:
        db.executemany(
            "INSERT INTO genresult_jobs (provider, task_id, status, result, saved, first_seen, last_checked)"
            " VALUES (?, ?, ?, ?, NULL, ?, ?)",
            (
                (
                    providers[n % 4],
                    f"job-{n}",
                    "succeeded",
                    json.dumps({**result, "provider": providers[n % 4], "task_id": f"job-{n}"}),
                    now - n,
                    now - n,
                )
                for n in range(count)
            ),
        )


async def _listing(folder: Path, calls: int) -> tuple[list[float], list[float]]:
    path = folder / "jobs.sqlite3"
    settings = Settings(db=str(path))
    async with open_service(settings, Redactor()) as service:
        # A first listing opens the store (at its first use) and so creates the schema the rows go into.
        await service.list_jobs(limit=1)
        _fill(path, LISTED)
        ours: list[float] = []
        for _ in range(calls):
            started = time.perf_counter()
            listed = await service.list_jobs(limit=20)
            ours.append(time.perf_counter() - started)
        assert listed.total == LISTED and len(listed.jobs) == 20
    bare: list[float] = []
    with sqlite3.connect(path) as db:
        for _ in range(calls):
            started = time.perf_counter()
            rows = db.execute("SELECT result, saved FROM genresult_jobs ORDER BY last_checked DESC LIMIT 20").fetchall()
            bare.append(time.perf_counter() - started)
        assert len(rows) == 20
    return ours, bare


def list_rows(calls: int) -> Iterator[Row]:
    with tempfile.TemporaryDirectory() as folder:
        ours, bare = anyio.run(_listing, Path(folder), calls)
    o, b = median(ours), median(bare)
    yield Row(
        f"list_generations over {LISTED:,} jobs (SQLite, limit 20)",
        f"{o * 1000:.2f} ms against a bare SELECT of the same rows {b * 1000:.3f} ms: {ratio(o, b):.0f}x "
        f"(medians of {calls}; ours counts the {LISTED:,} for total and builds 20 results)",
        "interactive: <= 50 ms",
        o <= 0.05,
    )


async def _checks(db: str, checks: int) -> float:
    sandbox = Sandbox(VirtualClock(), auto_create=False)
    sandbox["skillsvideo"].add_job("gen_done", Timeline(queued_s=0, running_s=0))
    settings = Settings(provider_env=sandbox.env(), db=db)
    async with open_service(settings, Redactor(), transport=httpx.ASGITransport(app=sandbox.app)) as service:
        for _ in range(20):
            await service.check("skillsvideo", "gen_done")
        # The warm-up's rows written now, so the store's opening (at its first use) is not counted as a check's.
        await service.registry.flush()
        started = time.process_time()
        for _ in range(checks):
            await service.check("skillsvideo", "gen_done")
        # And the write of what the checks left, which the writer would make after the lingering moment: a
        # check's recording is not done until its row is written.
        await service.registry.flush()
        return (time.process_time() - started) / checks


def record_rows(checks: int, runs: int) -> Iterator[Row]:
    on: list[float] = []
    off: list[float] = []
    with tempfile.TemporaryDirectory() as folder:
        for n in range(runs):
            # In turn, in alternating order, so drift hits both alike; one ratio per round.
            order = ("on", "off") if n % 2 == 0 else ("off", "on")
            for which in order:
                if which == "on":
                    on.append(anyio.run(_checks, str(Path(folder) / f"jobs-{n}.sqlite3"), checks))
                else:
                    off.append(anyio.run(_checks, "off", checks))
    spread = Spread.of(per_round(on, off))
    yield Row.judged(
        "cost of recording (CPU per check, registry on/off)",
        f"on {median(on) * 1000:.3f} ms, off {median(off) * 1000:.3f} ms: {spread.text()} (SQLite; runs of {checks})",
        RECORD_TARGET,
        spread,
    )


def rows(quick: bool) -> Iterator[Row]:
    yield from wait_rows(runs=1 if quick else 3)
    yield from list_rows(calls=20 if quick else 100)
    yield from record_rows(checks=200 if quick else 1000, runs=5 if quick else 9)


def _main(argv: list[str]) -> Any:
    from bench.report import render_rows

    print(render_rows(list(rows(quick="--quick" in argv))))


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
