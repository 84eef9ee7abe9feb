"""The bounded wait: when to check again, and the loop that does it.

`PollPolicy` is pure: given what is known so far (a `PollView`), it says how long to wait before the next
check, or that no further check fits before the deadline. Nothing in it sleeps or reads a clock, so tests
and benchmarks can play thousands of jobs in virtual time. `wait_until_done` is the loop: it reads the job
(the first time at once), asks the policy, reports progress, sleeps on the injected clock, and stops when
the job is done, the deadline comes, or the caller cancels. Cancellation needs no code of its own: anyio
delivers it inside the sleep or the request, and nothing is left behind to send another.
"""

from __future__ import annotations

import math
import random
import statistics
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import combinations

from tools.clock import Clock
from tools.errors import ProviderUnavailable
from tools.result import DONE_STATUSES, JobState

# Samples the policy looks back on: enough for a robust slope, and more than the backoff steps between the
# floor and any sensible cap, so forgetting older ones never changes a decision.
WINDOW = 10

_SHARED_RNG = random.Random()


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
    samples: tuple[Sample, ...] = ()
    """The last `WINDOW` successful checks, oldest first; those of earlier waits on the job lie before 0."""
    errors_in_a_row: int = 0
    retry_after: float | None = None
    """The provider's Retry-After from the last check, when that check failed and it sent one."""
    fixed_interval: float | None = None


@dataclass(frozen=True)
class PollPolicy:
    """Delay before the next check.

    Preference: after transient trouble, exponential backoff that never undercuts Retry-After; a fixed
    interval the caller asked for; the provider's ETA; the finish estimated from the slope of reported
    progress; otherwise capped exponential backoff with jitter. A job still not done when its own estimate
    said it would be gets the backoff as well (from `first_delay_s`, growing while it stays late), so a
    stale ETA or a bar stuck at 99% cannot make us poll at the floor for ever.

    Never closer than `floor_s`, never further than `cap_s` (Retry-After and a caller's fixed interval may
    go past the cap), never past the deadline: the last check starts `landing_s` before it.
    """

    floor_s: float = 1.0
    cap_s: float = 20.0
    first_delay_s: float = 2.0
    growth: float = 1.5
    jitter: float = 0.15
    """Backoff delays are shortened by up to this fraction, so many waits started together spread out."""
    aim_after_s: float = 1.0
    """How long after an estimated finish to look: late enough to find it done, early enough to matter."""
    landing_s: float = 1.0
    """The last check starts this long before the deadline; each request may take at least this long."""
    error_first_s: float = 1.0
    error_cap_s: float = 30.0
    progress_points: int = 5

    def __post_init__(self) -> None:
        if not 0 < self.floor_s <= self.cap_s:
            raise ValueError(f"PollPolicy needs 0 < floor_s <= cap_s, got {self.floor_s:g} and {self.cap_s:g}.")
        if self.growth < 1 or not 0 <= self.jitter < 1 or self.landing_s <= 0 or self.progress_points < 2:
            raise ValueError("PollPolicy needs growth >= 1, 0 <= jitter < 1, landing_s > 0, progress_points >= 2.")

    def next_delay(self, view: PollView, rng: random.Random | None = None) -> float | None:
        """Seconds to sleep before the next check, or None when no check fits before the deadline."""
        budget = view.remaining - self.landing_s
        if budget < self.floor_s:
            return None
        if view.retry_after is not None and view.retry_after > budget:
            # The provider asked us to stay away past our deadline: another check would be rude and useless.
            return None
        delay = max(self.floor_s, self._wanted(view, rng or _SHARED_RNG))
        if budget - delay < self.floor_s:
            # No room for a check after this one: make this one the last, just before the deadline.
            return budget
        return delay

    def finish_estimate(self, samples: Sequence[Sample]) -> float | None:
        """When the job should be done (seconds since the wait began), from the latest sample's point of view."""
        if not samples:
            return None
        last = samples[-1]
        if last.state.status in DONE_STATUSES:
            return None
        eta = last.state.eta_s
        if eta is not None and math.isfinite(eta) and eta >= 0:
            return last.at + eta
        return self._finish_from_progress(samples)

    def _wanted(self, view: PollView, rng: random.Random) -> float:
        if view.errors_in_a_row:
            backoff = self._backoff(self.error_first_s, 2.0, view.errors_in_a_row, self.error_cap_s, rng)
            return max(backoff, view.retry_after or 0.0, view.fixed_interval or 0.0)
        if view.fixed_interval is not None:
            return view.fixed_interval
        return self._paced(view.samples, view.elapsed, rng)

    def _paced(self, samples: tuple[Sample, ...], elapsed: float, rng: random.Random) -> float:
        estimates = [self.finish_estimate(samples[: i + 1]) for i in range(len(samples))]
        # Trailing checks that told us nothing about the finish, or came after a finish already promised.
        uninformed = 0
        for i in reversed(range(len(samples))):
            promised = estimates[i - 1] if i else None
            if estimates[i] is not None and (promised is None or samples[i].at < promised):
                break
            uninformed += 1
        finish = estimates[-1] if estimates else None
        aimed = None if finish is None else min(self.cap_s, finish + self.aim_after_s - elapsed)
        if aimed is not None and not uninformed:
            return aimed
        backoff = self._backoff(self.first_delay_s, self.growth, max(1, uninformed), self.cap_s, rng)
        return backoff if aimed is None else max(aimed, backoff)

    def _finish_from_progress(self, samples: Sequence[Sample]) -> float | None:
        points = [
            (s.at, s.state.progress)
            for s in samples
            if s.state.status == "running" and s.state.progress is not None and math.isfinite(s.state.progress)
        ][-self.progress_points :]
        if len(points) < 2 or samples[-1].state.status != "running" or points[-1][0] != samples[-1].at:
            return None
        # Theil-Sen: the median of the pairwise slopes shrugs off one odd reading, where first-to-last does not.
        slopes = [(p2 - p1) / (t2 - t1) for (t1, p1), (t2, p2) in combinations(points, 2) if t2 > t1]
        if not slopes:
            return None
        rate = statistics.median(slopes)
        at, percent = points[-1]
        if rate <= 0 or percent >= 100:
            return None
        return at + (100.0 - percent) / rate

    def _backoff(self, first: float, growth: float, step: int, cap: float, rng: random.Random) -> float:
        # Jitter only shortens, so the cap stays a cap; the exponent is bounded before it can overflow.
        base = min(cap, first * growth ** min(step - 1, 64))
        return base * (1.0 - self.jitter * rng.random())


@dataclass(frozen=True)
class _Remembered:
    samples: tuple[Sample, ...]
    """Timed on the clock itself (monotonic seconds), not from the start of a wait."""
    updated: float
    not_before: float | None
    """When the provider's last Retry-After runs out, if the last check was turned away with one."""


class WaitMemory:
    """What earlier waits learned about jobs not yet done, so a wait that resumes a timed-out one keeps its pace.

    Agents wait 50 s and call again; without this, every call would start the backoff over and poll a long
    job at the floor again, a progress slope would need two fresh readings, and a Retry-After that outlived
    one call would be ignored by the next. Only pacing reads it: every answer still comes from a fresh check.
    Bounded: the least recently used jobs are forgotten past `size`, and what a wait ended with more than
    `horizon_s` ago is not used.
    """

    def __init__(self, size: int = 4096, horizon_s: float = 600.0) -> None:
        self.size = size
        self.horizon_s = horizon_s
        self._jobs: OrderedDict[Hashable, _Remembered] = OrderedDict()

    def recall(self, key: Hashable, now: float) -> PollView:
        """A view for a wait starting `now`, with what is remembered of the job.

        Its samples lie in the past (negative times); `retry_after` is how much longer the provider asked us
        to stay away, if it did; the wait fills in the rest.
        """
        entry = self._jobs.get(key)
        if entry is None or now - entry.updated > self.horizon_s:
            return PollView(elapsed=0.0, remaining=0.0)
        self._jobs.move_to_end(key)
        hold = None if entry.not_before is None or entry.not_before <= now else entry.not_before - now
        return PollView(0.0, 0.0, tuple(Sample(s.at - now, s.state) for s in entry.samples), retry_after=hold)

    def keep(self, key: Hashable, view: PollView, start: float) -> None:
        """Remember what a wait that began at `start` ended with; a job that is done is forgotten instead."""
        done = bool(view.samples) and view.samples[-1].state.status in DONE_STATUSES
        not_before = None if view.retry_after is None else start + view.elapsed + view.retry_after
        if done or (not view.samples and not_before is None):
            self._jobs.pop(key, None)
            return
        samples = tuple(Sample(s.at + start, s.state) for s in view.samples[-WINDOW:])
        self._jobs[key] = _Remembered(samples, start + view.elapsed, not_before)
        self._jobs.move_to_end(key)
        while len(self._jobs) > self.size:
            self._jobs.popitem(last=False)


ProgressReporter = Callable[[float, float | None, str], Awaitable[None]]
"""`report(progress, total, message)`: progress rises with every call; total is the wait's budget."""


@dataclass(frozen=True)
class WaitOutcome:
    state: JobState
    checked_at: datetime
    elapsed_s: float
    polls: int
    timed_out: bool
    note: str | None = None


async def wait_until_done(
    read: Callable[[float], Awaitable[JobState]],
    *,
    clock: Clock,
    policy: PollPolicy,
    timeout_s: float,
    poll_interval_s: float | None = None,
    report: ProgressReporter | None = None,
    rng: random.Random | None = None,
    memory: WaitMemory | None = None,
    key: Hashable = None,
) -> WaitOutcome:
    """Check `read` until the job is done or no further check fits in `timeout_s`.

    `read(budget_s)` makes one provider request that must give up after `budget_s`: the time left before
    the deadline, but never less than the policy's `landing_s`, so the wait ends at the deadline (or
    `landing_s` after its start, for a wait shorter than that). Transient trouble (`ProviderUnavailable`) is
    retried inside the deadline; any other error ends the wait at once. If time runs out before any state
    could be read, the last `ProviderUnavailable` is raised. With a `memory`, the pace picks up where the
    last wait on the same `key` left off: the first check still goes out at once, unless that wait was
    given a Retry-After that has not run out yet.

    `report` hears after every check: progress is seconds waited, total is `timeout_s`, and the last report
    (done or out of time) is exactly `timeout_s`, so a client's bar ends full.
    """
    start = clock.monotonic()
    view = PollView(elapsed=0.0, remaining=timeout_s) if memory is None else memory.recall(key, start)
    view.remaining, view.fixed_interval = timeout_s, poll_interval_s
    try:
        if view.retry_after is not None:
            await _hold(view, clock, policy, timeout_s, report)
        return await _poll(read, view, start, clock, policy, timeout_s, report, rng)
    finally:
        # Also after a cancel or an error: what was read is true, and the next call can pace itself by it.
        if memory is not None:
            memory.keep(key, view, start)


async def _hold(
    view: PollView, clock: Clock, policy: PollPolicy, timeout_s: float, report: ProgressReporter | None
) -> None:
    """Before the first check, sit out what is left of a Retry-After an earlier wait was given."""
    hold = view.retry_after or 0.0
    if hold > timeout_s - policy.landing_s:
        raise ProviderUnavailable(
            f"The provider asked for {hold:.0f}s more before the next check (Retry-After), longer than this "
            "wait; nothing was sent. Call again after that.",
            retry_after=hold,
        )
    if report is not None:
        await report(
            0.0, timeout_s, f"holding {hold:.0f}s as the provider asked (Retry-After); waited 0s of {timeout_s:g}s"
        )
    await clock.sleep(hold)


async def _poll(
    read: Callable[[float], Awaitable[JobState]],
    view: PollView,
    start: float,
    clock: Clock,
    policy: PollPolicy,
    timeout_s: float,
    report: ProgressReporter | None,
    rng: random.Random | None,
) -> WaitOutcome:
    checked_at: datetime | None = None
    error: ProviderUnavailable | None = None
    polls = 0
    while True:
        polls += 1
        try:
            state = await read(max(policy.landing_s, timeout_s - (clock.monotonic() - start)))
        except ProviderUnavailable as exc:
            error = exc
            view.errors_in_a_row += 1
            view.retry_after = exc.retry_after
        else:
            checked_at = clock.now()
            view.samples = (*view.samples, Sample(clock.monotonic() - start, state))[-WINDOW:]
            view.errors_in_a_row = 0
            view.retry_after = None
        view.elapsed = clock.monotonic() - start
        view.remaining = timeout_s - view.elapsed
        done = bool(view.samples) and view.samples[-1].state.status in DONE_STATUSES
        delay = None if done else policy.next_delay(view, rng)
        if report is not None:
            # Seconds waited rise strictly (every sleep is at least the floor) and stay below timeout_s
            # while another check follows, which leaves timeout_s itself free for the last report.
            progress = timeout_s if delay is None else view.elapsed
            await report(progress, timeout_s, _progress_message(view, error, delay, timeout_s))
        if delay is None:
            break
        await clock.sleep(delay)
    if checked_at is None:
        assert error is not None
        raise ProviderUnavailable(
            f"No answer from the provider within {timeout_s:g}s ({polls} tries). Last: {error.message}",
            retry_after=error.retry_after,
        )
    note = None
    if not done and view.retry_after is not None:
        note = f"The provider's last answer asked for {view.retry_after:.0f}s before the next check (Retry-After)."
    return WaitOutcome(view.samples[-1].state, checked_at, view.elapsed, polls, timed_out=not done, note=note)


def _progress_message(view: PollView, error: ProviderUnavailable | None, delay: float | None, timeout_s: float) -> str:
    waited = f"waited {view.elapsed:.0f}s of {timeout_s:g}s"
    state = view.samples[-1].state if view.samples else None
    if state is not None and state.status in DONE_STATUSES:
        return f"{_describe(state)}; {waited}"
    if view.errors_in_a_row and error is not None:
        # The first sentence names the provider and the HTTP status; the rest is advice for the final error.
        said = error.message.split(". ")[0].rstrip(".")
        then = "giving up" if delay is None else f"retrying in {delay:.0f}s"
        return f"{said}; {then}; {waited}"
    known = "no answer yet" if state is None else _describe(state)
    then = "no time left for another check" if delay is None else f"next check in {delay:.0f}s"
    return f"{known}; {then}; {waited}"


def _describe(state: JobState) -> str:
    if state.status in DONE_STATUSES:
        return state.status
    # A percent means something only while the job runs: queued jobs report 0 and finished ones say so.
    words: list[str] = [state.status]
    if state.progress is not None and state.status == "running":
        words.append(f"{state.progress:.0f}%")
    if state.eta_s is not None:
        words.append(f"(ETA {state.eta_s:.0f}s)")
    return " ".join(words)
