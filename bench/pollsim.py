"""Poll policy: ours against the peers' schedules, played in virtual time over many jobs.

Every policy watches the same jobs (durations log-uniform over 5 s..10 min, part of each spent queued) and
is scored on provider checks per job and detection delay (from the moment the job finished to the check
that saw it). Ours runs through the real wait engine (`tools.polling.wait_until_done`) on a `VirtualClock`,
so what is measured is what the server does, not a re-implementation of it. The peers are the schedules
other MCP servers use: a fixed 5 s, 15 s or 20 s clock, and 250 ms doubling to a 10 s cap; like ours they
check once at the start.

Hints: `none` (status only, like skills.video), `eta` (a seconds-to-finish estimate, like ModelsLab, off
by a per-job factor of up to 20 % either way) and `progress` (a percentage, like TensorPix and Flexstack,
rising along a per-job curve that is not quite linear).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

import anyio

from bench.report import Detail, Row
from bench.stats import mean, median, percentile
from tools.clock import VirtualClock
from tools.polling import PollPolicy, WaitMemory, wait_until_done
from tools.result import JobState

HINTS = ("none", "eta", "progress")
SHORTEST_S, LONGEST_S = 5.0, 600.0
# One wait long enough for every job: the policy is judged on its schedule, not on where a deadline cuts it.
LONG_WAIT_S = 1800.0
# What agents actually do by default: wait 50 s, then call again with the same task id.
CLIENT_WAIT_S = 50.0


@dataclass(frozen=True)
class SimJob:
    queued_s: float
    running_s: float
    eta_bias: float
    """The reported ETA is the true remaining time times this."""
    curve: float
    """Reported progress is 100 * x ** curve for x the fraction of the running time gone."""

    @property
    def duration(self) -> float:
        return self.queued_s + self.running_s

    def state(self, t: float, hints: str) -> JobState:
        if t >= self.duration:
            return JobState(status="succeeded", provider_status="done", progress=100.0)
        eta = (self.duration - t) * self.eta_bias if hints == "eta" else None
        if t < self.queued_s:
            return JobState(status="queued", provider_status="queued", eta_s=eta)
        fraction = (t - self.queued_s) / self.running_s
        progress = math.floor(100 * fraction**self.curve) if hints == "progress" else None
        return JobState(status="running", provider_status="running", progress=progress, eta_s=eta)


def make_jobs(count: int, seed: int = 5) -> list[SimJob]:
    rng = random.Random(seed)
    jobs = []
    for _ in range(count):
        duration = math.exp(rng.uniform(math.log(SHORTEST_S), math.log(LONGEST_S)))
        queued = duration * rng.uniform(0.0, 0.3)
        jobs.append(SimJob(queued, duration - queued, rng.uniform(0.8, 1.2), rng.uniform(0.8, 1.25)))
    return jobs


@dataclass(frozen=True)
class Score:
    policy: str
    hints: str
    checks: float
    """Mean provider checks per job."""
    delay_median: float
    delay_p95: float

    def better_on_both(self, other: Score) -> bool:
        return self.checks < other.checks and self.delay_median < other.delay_median


def score(policy: str, hints: str, outcomes: Sequence[tuple[int, float]]) -> Score:
    checks = [float(n) for n, _ in outcomes]
    delays = [d for _, d in outcomes]
    return Score(policy, hints, mean(checks), median(delays), percentile(delays, 95))


# ---- the peers: schedules that ignore everything but the clock ----


def fixed(interval: float) -> Callable[[int], float]:
    return lambda _n: interval


def doubling(first: float, cap: float) -> Callable[[int], float]:
    return lambda n: min(cap, first * 2 ** (n - 1))


PEERS: dict[str, Callable[[int], float]] = {
    "fixed 5 s": fixed(5.0),
    "fixed 15 s": fixed(15.0),
    "fixed 20 s": fixed(20.0),
    "250 ms doubling, 10 s cap": doubling(0.25, 10.0),
}


def play_schedule(job: SimJob, delay_after: Callable[[int], float]) -> tuple[int, float]:
    """(checks, detection delay) for a schedule: check at 0, then wait `delay_after(n)` after the n-th check."""
    t, checks = 0.0, 0
    while True:
        checks += 1
        if t >= job.duration:
            return checks, t - job.duration
        t += delay_after(checks)


# ---- ours: the real wait engine on a virtual clock ----


async def play_ours(job: SimJob, hints: str, rng: random.Random, wait_s: float) -> tuple[int, float]:
    """(checks, detection delay) for our engine: waits of `wait_s` each, called again until the job is done."""
    clock = VirtualClock()
    # The default policy, its jitter drawn from the run's seeded `rng` so that every run plays alike.
    policy = replace(PollPolicy(), rng=rng)

    async def read(_budget: float) -> JobState:
        return job.state(clock.monotonic(), hints)

    # As the service does: what a timed-out wait learned paces the next call about the same job.
    memory = WaitMemory()
    checks = 0
    while True:
        outcome = await wait_until_done(read, clock=clock, policy=policy, timeout_s=wait_s, memory=memory, key="job")
        checks += outcome.polls
        if not outcome.timed_out:
            return checks, clock.monotonic() - job.duration


async def _play_all_ours(jobs: Sequence[SimJob], seed: int) -> dict[tuple[str, float], list[tuple[int, float]]]:
    results: dict[tuple[str, float], list[tuple[int, float]]] = {}
    for hints in HINTS:
        for wait_s in (LONG_WAIT_S, CLIENT_WAIT_S):
            rng = random.Random(seed)
            results[hints, wait_s] = [await play_ours(job, hints, rng, wait_s) for job in jobs]
    return results


@dataclass(frozen=True)
class PolicyResult:
    ours: dict[str, Score]
    """Per hint mode, one wait long enough for the job."""
    ours_resumed: dict[str, Score]
    """Per hint mode, 50 s waits called again until done (what agents do by default)."""
    peers: dict[str, Score]

    def with_hints_target(self, hints: str) -> tuple[bool, float]:
        """>= 2x fewer checks than fixed 5 s, at no more median delay. Returns (holds, check ratio)."""
        baseline, ours = self.peers["fixed 5 s"], self.ours[hints]
        fewer = baseline.checks / ours.checks
        return fewer >= 2.0 and ours.delay_median <= baseline.delay_median, fewer

    def dominating_peers(self) -> list[str]:
        """Peers better than ours on both checks and median delay, without hints (the target: none)."""
        ours = self.ours["none"]
        return [name for name, peer in self.peers.items() if peer.better_on_both(ours)]


def run(jobs_count: int, seed: int = 5) -> PolicyResult:
    jobs = make_jobs(jobs_count, seed)
    played = anyio.run(_play_all_ours, jobs, seed)
    ours = {h: score("ours", h, played[h, LONG_WAIT_S]) for h in HINTS}
    resumed = {h: score("ours, 50 s calls", h, played[h, CLIENT_WAIT_S]) for h in HINTS}
    peers = {
        name: score(name, "any", [play_schedule(job, schedule) for job in jobs]) for name, schedule in PEERS.items()
    }
    return PolicyResult(ours, resumed, peers)


def rows(result: PolicyResult) -> Iterator[Row]:
    base = result.peers["fixed 5 s"]
    for hints in ("eta", "progress"):
        holds, fewer = result.with_hints_target(hints)
        ours = result.ours[hints]
        yield Row(
            f"poll policy, {hints} hints",
            f"{fewer:.1f}x fewer checks than fixed 5 s ({ours.checks:.1f} vs {base.checks:.1f}/job); "
            f"median delay {ours.delay_median:.1f} s vs {base.delay_median:.1f} s",
            ">= 2x fewer, median delay <= fixed 5 s",
            holds,
        )
    ours = result.ours["none"]
    beaten_by = result.dominating_peers()
    yield Row(
        "poll policy, no hints",
        f"ours {ours.checks:.1f} checks/job, median delay {ours.delay_median:.1f} s; "
        + (f"beaten on both by: {', '.join(beaten_by)}" if beaten_by else "no peer better on both"),
        "no peer better on both",
        not beaten_by,
    )


def detail(result: PolicyResult, jobs_count: int) -> Detail:
    table: list[tuple[str, ...]] = []
    for hints in HINTS:
        for s in (result.ours[hints], result.ours_resumed[hints]):
            table.append((s.policy, hints, f"{s.checks:.1f}", f"{s.delay_median:.2f}", f"{s.delay_p95:.2f}"))
    for s in result.peers.values():
        table.append((s.policy, "(ignored)", f"{s.checks:.1f}", f"{s.delay_median:.2f}", f"{s.delay_p95:.2f}"))
    return Detail(
        f"Poll policies over {jobs_count} jobs of 5 s..10 min (virtual time)",
        ("policy", "hints", "checks/job", "delay median s", "delay p95 s"),
        tuple(table),
    )
