"""The job registry and the multi-job wait, in-process on the emulators:

- wait_for_generations over 50 jobs at four providers against 50 separate wait_for_generation calls made at
  once, through the in-memory MCP client, in virtual time (a clock whose concurrent sleepers share one
  timeline): provider checks and CPU per job, side by side;
- list_generations over a registry of 100,000 jobs (SQLite) against the two statements it sends (the page
  and the count for `total`), sent bare to the same file with `sqlite3`, in rounds of alternating order;
- the cost of recording: CPU per check with the registry on (SQLite) and off.
"""

from __future__ import annotations

import json
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import httpx
from mcp import Client

from bench.report import Row
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
# A listing may cost its SQL once more at most: the hand-off to the store's thread and 20 results built.
LIST_TARGET = 2.0


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
    """In rounds, each the one call and the fifty in turn (which goes first alternates): CPU per job, the
    median of the per-round ratios with its spread; the checks per job must not grow."""
    batch: list[tuple[float, int, float]] = []
    single: list[tuple[float, int, float]] = []
    for r in range(runs):
        for one_call in (True, False) if r % 2 == 0 else (False, True):
            (batch if one_call else single).append(anyio.run(_waits, one_call))
    spread = Spread.of(per_round([run[0] for run in batch], [run[0] for run in single]))
    cpu_b, cpu_s = (median([run[0] for run in runs_]) / JOBS for runs_ in (batch, single))
    checks_b, checks_s = (max(run[1] for run in batch) / JOBS, min(run[1] for run in single) / JOBS)
    yield Row.judged(
        f"wait_for_generations, {JOBS} jobs at 4 providers: CPU per job / {JOBS} wait_for_generation calls",
        f"one call: {checks_b:.1f} checks, {cpu_b * 1000:.2f} ms CPU per job, {batch[0][2]:.0f} s virtual; "
        f"{JOBS} calls: {checks_s:.1f} checks, {cpu_s * 1000:.2f} ms CPU per job, {single[0][2]:.0f} s; "
        f"{spread.text()}",
        1.0,
        spread,
        also=checks_b <= checks_s,
        condition="no more checks per job",
        why=f"the one call made {checks_b:.1f} checks per job against {checks_s:.1f}",
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


async def _listing(folder: Path, rounds: int, calls: int) -> tuple[list[float], list[float], list[float]]:
    """Per round, the median time of `calls` listings of 20 through the service, then of the same two statements
    (the page and the count for `total`) sent bare with sqlite3 on the same file, and of the page alone."""
    path = folder / "jobs.sqlite3"
    settings = Settings(db=str(path))
    page = "SELECT result, saved FROM genresult_jobs ORDER BY last_checked DESC LIMIT 20"
    ours: list[float] = []
    bare: list[float] = []
    rows_only: list[float] = []

    def timed(run: Callable[[], object]) -> float:
        times = []
        for _ in range(calls):
            started = time.perf_counter()
            run()
            times.append(time.perf_counter() - started)
        return median(times)

    async with open_service(settings, Redactor()) as service:
        # A first listing opens the store (at its first use) and so creates the schema the rows go into.
        await service.list_jobs(limit=1)
        _fill(path, LISTED)
        with sqlite3.connect(path) as db:

            async def listing() -> float:
                times = []
                for _ in range(calls):
                    started = time.perf_counter()
                    listed = await service.list_jobs(limit=20)
                    times.append(time.perf_counter() - started)
                assert listed.total == LISTED and len(listed.jobs) == 20
                return median(times)

            def sql() -> float:
                return timed(lambda: (db.execute(page).fetchall(), db.execute("SELECT count(*) FROM genresult_jobs")))

            # Round 0 is a warm-up, not counted: the first reads of the freshly filled file pay for its cache.
            for n in range(rounds + 1):
                # In turn, in alternating order, so drift hits both alike; one ratio per round.
                if n % 2:
                    bare.append(sql())
                    ours.append(await listing())
                else:
                    ours.append(await listing())
                    bare.append(sql())
                rows_only.append(timed(lambda: db.execute(page).fetchall()))
    return ours[1:], bare[1:], rows_only[1:]


def list_rows(rounds: int, calls: int) -> Iterator[Row]:
    with tempfile.TemporaryDirectory() as folder:
        ours, bare, rows_only = anyio.run(_listing, Path(folder), rounds, calls)
    spread = Spread.of(per_round(ours, bare))
    yield Row.judged(
        f"list_generations over {LISTED:,} jobs (SQLite, limit 20) / the same SQL sent bare",
        f"{median(ours) * 1000:.2f} ms against {median(bare) * 1000:.2f} ms for its two statements bare (the page and "
        f"the count of the {LISTED:,} for total): {spread.text()}; the page alone {median(rows_only) * 1000:.3f} ms",
        LIST_TARGET,
        spread,
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
        # Round 0 is a warm-up, not counted: the process's first runs pay first uses (up to 1.19x in round 0).
        for n in range(runs + 1):
            # In turn, in alternating order, so drift hits both alike; one ratio per round.
            order = ("on", "off") if n % 2 == 0 else ("off", "on")
            for which in order:
                if which == "on":
                    on.append(anyio.run(_checks, str(Path(folder) / f"jobs-{n}.sqlite3"), checks))
                else:
                    off.append(anyio.run(_checks, "off", checks))
    on, off = on[1:], off[1:]
    spread = Spread.of(per_round(on, off))
    yield Row.judged(
        "cost of recording (CPU per check, registry on/off)",
        f"on {median(on) * 1000:.3f} ms, off {median(off) * 1000:.3f} ms: {spread.text()} (SQLite; runs of {checks})",
        RECORD_TARGET,
        spread,
    )


def rows(quick: bool) -> Iterator[Row]:
    yield from wait_rows(runs=5 if quick else 9)
    yield from list_rows(rounds=5 if quick else 9, calls=20)
    yield from record_rows(checks=200 if quick else 1000, runs=5 if quick else 9)


def _main(argv: list[str]) -> Any:
    from bench.report import render_rows

    print(render_rows(list(rows(quick="--quick" in argv))))


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
