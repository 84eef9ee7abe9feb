"""The bounded wait: when to check again, and the loop that does it.

`PollPolicy` is pure: given what is known so far (a `PollView`), it says how long to wait before the next
check. Nothing in it sleeps or reads a clock, so tests and benchmarks can play thousands of jobs in virtual
time. `wait_until_done` is the loop: it reads the job, reports progress, asks the policy, sleeps on the
injected clock, and stops when the job is done, the deadline comes, or the caller cancels.
"""

from __future__ import annotations

import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from tools.clock import Clock
from tools.errors import ProviderUnavailable
from tools.result import DONE_STATUSES, JobState


@dataclass(frozen=True)
class Sample:
    """One successful check: when (seconds since the wait began) and what it said."""

    at: float
    state: JobState


@dataclass
class PollView:
    """What the policy may look at. Times are seconds since the wait began."""

    elapsed: float
    remaining: float
    samples: list[Sample] = field(default_factory=list)
    consecutive_errors: int = 0
    retry_after: float | None = None
    fixed_interval: float | None = None

    @property
    def checks(self) -> int:
        return len(self.samples) + self.consecutive_errors


@dataclass(frozen=True)
class PollPolicy:
    """Delay before the next check.

    Order of preference: a fixed interval the caller asked for; after transient trouble, exponential backoff
    that never undercuts Retry-After; the provider's ETA; the finish estimated from the slope of reported
    progress; otherwise capped exponential backoff with jitter. Always within [floor_s, cap_s], and never
    past the deadline: the last check is placed `landing_s` before it.
    """

    floor_s: float = 1.0
    cap_s: float = 30.0
    first_delay_s: float = 1.0
    growth: float = 1.6
    jitter: float = 0.15
    landing_s: float = 0.5
    error_first_s: float = 1.0
    error_cap_s: float = 30.0

    def next_delay(self, view: PollView, rng: random.Random | None = None) -> float | None:
        """Seconds to sleep before the next check, or None when no check fits before the deadline."""
        budget = view.remaining - self.landing_s
        if budget <= 0:
            return None
        delay = self._wanted(view, rng or random.Random())
        if view.retry_after is not None and view.retry_after > budget:
            # The provider asked us to stay away past our deadline: another check would be rude and useless.
            return None
        return min(delay, budget)

    def _wanted(self, view: PollView, rng: random.Random) -> float:
        if view.consecutive_errors:
            backoff = min(self.error_cap_s, self.error_first_s * 2 ** (view.consecutive_errors - 1))
            backoff = self._jittered(backoff, rng)
            if view.retry_after is not None:
                backoff = max(backoff, view.retry_after)
            return max(self.floor_s, backoff)
        if view.fixed_interval is not None:
            return max(self.floor_s, view.fixed_interval)
        hinted = self._from_hints(view)
        if hinted is not None:
            return self._clamp(hinted)
        return self._clamp(self._jittered(self.first_delay_s * self.growth ** max(0, len(view.samples) - 1), rng))

    def _from_hints(self, view: PollView) -> float | None:
        if not view.samples:
            return None
        last = view.samples[-1]
        if last.state.eta_s is not None and last.state.eta_s >= 0:
            # Aim a little after the promised finish; if the ETA was optimistic the next ETA corrects us.
            return last.state.eta_s + self.floor_s
        return self._from_progress(view.samples)

    def _from_progress(self, samples: list[Sample]) -> float | None:
        points = [
            (s.at, s.state.progress) for s in samples if s.state.progress is not None and s.state.status == "running"
        ]
        if len(points) < 2:
            return None
        (t0, p0), (t1, p1) = points[0], points[-1]
        if t1 <= t0 or p1 <= p0 or p1 >= 100:
            return None
        rate = (p1 - p0) / (t1 - t0)
        return (100.0 - p1) / rate

    def _clamp(self, seconds: float) -> float:
        return min(self.cap_s, max(self.floor_s, seconds))

    def _jittered(self, seconds: float, rng: random.Random) -> float:
        return seconds * (1 + rng.uniform(-self.jitter, self.jitter))


ProgressReporter = Callable[[float, float | None, str], Awaitable[None]]


@dataclass(frozen=True)
class WaitOutcome:
    state: JobState
    checked_at: datetime
    elapsed_s: float
    polls: int
    timed_out: bool


async def wait_until_done(
    read: Callable[[float], Awaitable[JobState]],
    *,
    clock: Clock,
    policy: PollPolicy,
    timeout_s: float,
    poll_interval_s: float | None = None,
    report: ProgressReporter | None = None,
    rng: random.Random | None = None,
) -> WaitOutcome:
    """Check `read` until the job is done or `timeout_s` passes.

    `read(budget_s)` makes one provider request that must not take longer than `budget_s`. Transient trouble
    (`ProviderUnavailable`) is retried inside the deadline; any other error ends the wait at once. If time
    runs out before any state could be read, the last `ProviderUnavailable` is raised.
    """
    start = clock.monotonic()
    view = PollView(elapsed=0.0, remaining=timeout_s, fixed_interval=poll_interval_s)
    checked_at: datetime | None = None
    last_error: ProviderUnavailable | None = None
    reported = -math.inf
    while True:
        try:
            state = await read(max(0.1, timeout_s - (clock.monotonic() - start)))
        except ProviderUnavailable as exc:
            last_error = exc
            view.consecutive_errors += 1
            view.retry_after = exc.retry_after
        else:
            view.consecutive_errors = 0
            view.retry_after = None
            checked_at = clock.now()
            view.samples.append(Sample(clock.monotonic() - start, state))
        view.elapsed = clock.monotonic() - start
        view.remaining = timeout_s - view.elapsed
        polls = view.checks
        latest = view.samples[-1].state if view.samples else None
        done = latest is not None and latest.status in DONE_STATUSES
        if report is not None:
            # Elapsed time against the budget is the one value that always rises; the message says the rest.
            value = max(view.elapsed, reported + 1e-3)
            reported = value
            await report(
                timeout_s if done else min(value, timeout_s),
                timeout_s,
                _progress_message(latest, last_error, view),
            )
        if latest is not None and checked_at is not None and done:
            return WaitOutcome(latest, checked_at, view.elapsed, polls, timed_out=False)
        delay = policy.next_delay(view, rng)
        if delay is None:
            break
        await clock.sleep(delay)
    if latest is None or checked_at is None:
        assert last_error is not None
        raise ProviderUnavailable(
            f"No answer from the provider within {timeout_s:g}s: {last_error.message}",
            retry_after=last_error.retry_after,
        )
    return WaitOutcome(latest, checked_at, view.elapsed, polls, timed_out=True)


def _progress_message(state: JobState | None, error: ProviderUnavailable | None, view: PollView) -> str:
    waited = f"waited {view.elapsed:.0f}s"
    if view.consecutive_errors and error is not None:
        return f"provider trouble, retrying ({error.code}); {waited}"
    if state is None:
        return waited
    percent = f" {state.progress:.0f}%" if state.progress is not None else ""
    return f"{state.status}{percent}; {waited}"
