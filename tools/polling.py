"""The bounded wait: when to check again, and the loop that does it.

`PollPolicy` is pure: given what is known so far (a `PollView`), it says how long to wait before the next
check, or that no further check fits before the deadline. Nothing in it sleeps or reads a clock (its jitter
comes from its own, seedable `rng`), so tests and benchmarks can play thousands of jobs in virtual time.
`wait_until_done` is the loop: it reads the job (the first time at once), asks the policy, reports progress,
sleeps on the injected clock until the time the policy gave, and stops when the job is done, the deadline
comes, or the caller cancels. Cancellation needs no code of its own: anyio delivers it inside the sleep or
the request, and nothing is left behind to send another.
"""

from __future__ import annotations

import math
import random
import statistics
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import combinations

from pydantic import BaseModel, ConfigDict, ValidationError

from tools.clock import Clock
from tools.errors import ProviderUnavailable
from tools.result import DONE_STATUSES, JobState

# Samples the policy looks back on: enough for a robust slope, and more than the backoff steps between the
# floor and any sensible cap, so forgetting older ones never changes a decision.
WINDOW = 10

# ETAs are read up to this: a day is past any generation job, so a provider's 1e300 plans like a long job and
# reads as one in a progress message, instead of as a 300-digit number.
MAX_ETA_S = 86_400.0


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
    report_s: float = 0.0
    """How long the last progress report took to deliver. The next will take about as long, and the one after
    the last check must fit before the deadline too, so the last check starts that much earlier."""


FLOOR_SLACK_S = 0.05


@dataclass(frozen=True)
class PollPolicy:
    """Delay before the next check.

    Preference: after transient trouble, exponential backoff from `error_first_s` up to `error_cap_s` (at
    most `cap_s`) that never undercuts Retry-After; a fixed interval the caller asked for; the provider's
    ETA; the finish estimated from the slope of reported progress; otherwise capped exponential backoff with
    jitter. A job still not done when its own estimate said it would be gets the backoff as well (from
    `first_delay_s`, growing while it stays late), so a stale ETA or a bar stuck at 99% cannot make us poll
    at the floor for ever.

    Never closer than `floor_s`, never further than `cap_s` (Retry-After and a caller's fixed interval may
    go past the cap), never past the deadline: the last check starts `landing_s` before it, plus the time the
    last progress report took (`PollView.report_s`).
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
    error_cap_s: float | None = None
    """The longest backoff after transient trouble, never above `cap_s` (the operator's longest pause); None
    means `cap_s`. Retry-After is honoured beyond it."""
    progress_points: int = 5
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)
    """Draws the jitter; a seeded one (`random.Random(7)`) makes every run pace alike."""

    def __post_init__(self) -> None:
        seconds = {
            "floor_s": self.floor_s,
            "cap_s": self.cap_s,
            "first_delay_s": self.first_delay_s,
            "landing_s": self.landing_s,
            "error_first_s": self.error_first_s,
            "error_cap_s": self.cap_s if self.error_cap_s is None else self.error_cap_s,
        }
        wrong = [name for name, value in seconds.items() if not (math.isfinite(value) and value > 0)]
        if not (math.isfinite(self.aim_after_s) and self.aim_after_s >= 0):
            wrong.append("aim_after_s")
        if wrong:
            raise ValueError(
                f"PollPolicy needs a finite number of seconds above 0 (aim_after_s: 0 or more) for {', '.join(wrong)}."
            )
        if self.floor_s > self.cap_s:
            raise ValueError(f"PollPolicy needs floor_s <= cap_s, got {self.floor_s:g} and {self.cap_s:g}.")
        if (
            not (math.isfinite(self.growth) and self.growth >= 1)
            or not 0 <= self.jitter < 1
            or self.progress_points < 2
        ):
            raise ValueError("PollPolicy needs a finite growth >= 1, 0 <= jitter < 1 and progress_points >= 2.")

    def next_delay(self, view: PollView) -> float | None:
        """Seconds to sleep before the next check, or None when no check fits before the deadline."""
        budget = self._budget(view)
        # The milliseconds a check and its report take must not cost a wait of floor_s + landing_s (2 s) its
        # second look: its last check may then come that much under the floor after the first.
        if budget < self.floor_s - FLOOR_SLACK_S:
            return None
        if self.retry_after_past_deadline(view):
            # The provider asked us to stay away past our deadline: another check would be rude and useless.
            return None
        delay = max(self.floor_s, self._wanted(view))
        if budget - delay < self.floor_s:
            # No room for a check after this one: make this one the last, just before the deadline.
            return budget
        return delay

    def retry_after_past_deadline(self, view: PollView) -> bool:
        """Whether the provider's Retry-After reaches past the latest moment another check could start."""
        return view.retry_after is not None and view.retry_after > self._budget(view)

    def finish_estimate(self, samples: Sequence[Sample]) -> float | None:
        """When the job should be done (seconds since the wait began), from the latest sample's point of view."""
        if not samples:
            return None
        last = samples[-1]
        if last.state.status in DONE_STATUSES:
            return None
        eta = sane_eta(last.state.eta_s)
        if eta is not None:
            return last.at + eta
        return self._finish_from_progress(samples)

    def _budget(self, view: PollView) -> float:
        # Seconds from the last check to the latest start of another whose request and report still fit.
        return view.remaining - self.landing_s - view.report_s

    def _wanted(self, view: PollView) -> float:
        if view.errors_in_a_row:
            cap = self.cap_s if self.error_cap_s is None else min(self.error_cap_s, self.cap_s)
            backoff = self._backoff(self.error_first_s, 2.0, view.errors_in_a_row, cap)
            return max(backoff, view.retry_after or 0.0, view.fixed_interval or 0.0)
        if view.fixed_interval is not None:
            return view.fixed_interval
        return self._paced(view.samples, view.elapsed)

    def _paced(self, samples: tuple[Sample, ...], elapsed: float) -> float:
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
        backoff = self._backoff(self.first_delay_s, self.growth, max(1, uninformed), self.cap_s)
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

    def _backoff(self, first: float, growth: float, step: int, cap: float) -> float:
        # Jitter only shortens, so the cap stays a cap; the exponent is bounded before it can overflow.
        base = min(cap, first * growth ** min(step - 1, 64))
        return base * (1.0 - self.jitter * self.rng.random())


def sane_eta(eta_s: float | None) -> float | None:
    """A provider's ETA as the wait uses it: None when it is no number of seconds ahead, at most `MAX_ETA_S`."""
    if eta_s is None or not math.isfinite(eta_s) or eta_s < 0:
        return None
    return min(eta_s, MAX_ETA_S)


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

    def export(self, key: Hashable, monotonic_now: float, wall_now: float) -> str | None:
        """What is remembered of the job as JSON text timed on the wall clock (epoch seconds), for a store.

        Monotonic clocks differ between processes; the wall clock is what replicas share.
        """
        entry = self._jobs.get(key)
        if entry is None:
            return None
        shift = wall_now - monotonic_now
        return _StoredMemory(
            samples=[(s.at + shift, s.state) for s in entry.samples],
            updated=entry.updated + shift,
            not_before=None if entry.not_before is None else entry.not_before + shift,
        ).model_dump_json(exclude_none=True)

    def restore(self, key: Hashable, text: str | None, monotonic_now: float, wall_now: float) -> None:
        """Take what `export` wrote (here or in another process) as this job's memory; None forgets it."""
        self._jobs.pop(key, None)
        if text is None:
            return
        try:
            stored = _StoredMemory.model_validate_json(text)
        except ValidationError:
            # Written by another version, or damaged: pacing from scratch is the safe way to go on.
            return
        shift = monotonic_now - wall_now
        samples = tuple(Sample(at + shift, state) for at, state in stored.samples[-WINDOW:])
        not_before = None if stored.not_before is None else stored.not_before + shift
        self._jobs[key] = _Remembered(samples, stored.updated + shift, not_before)
        while len(self._jobs) > self.size:
            self._jobs.popitem(last=False)


class _StoredMemory(BaseModel):
    model_config = ConfigDict(extra="ignore", defer_build=True)

    samples: list[tuple[float, JobState]]
    updated: float
    not_before: float | None = None


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
    memory: WaitMemory | None = None,
    key: Hashable = None,
) -> WaitOutcome:
    """Check `read` until the job is done or no further check fits in `timeout_s`.

    `read(budget_s)` makes one provider request that must give up after `budget_s`: the time left before
    the deadline less what the last progress report took, but never less than the policy's `landing_s`, so
    the wait ends at the deadline (or `landing_s` after its start, for a wait shorter than that). Transient
    trouble (`ProviderUnavailable`) is retried inside the deadline; any other error ends the wait at once.
    If time runs out before any state could be read, a `ProviderUnavailable` says how long was waited, the
    last reason and, where the provider gave one, its Retry-After.

    With a `memory`, the pace picks up where the last wait on the same `key` left off: the first check still
    goes out at once, unless that wait was given a Retry-After that has not run out yet. One that outlasts
    this wait too sends nothing: the answer is the state last read (timed out, with a note saying when to call
    again), or the `ProviderUnavailable` above when none was.

    `report` hears after every check: progress is seconds waited, total is `timeout_s`, and the last report
    (done or out of time) is exactly `timeout_s`, so a client's bar ends full. Time spent delivering reports
    comes out of the pauses, never on top of them; a report so slow that it leaves no time for the check
    that was to follow ends the wait without another, and one more report closes the bar, unless the slow one
    ran up to the deadline: then nothing more is sent. Only a report's own delivery may pass the deadline.
    """
    start = clock.monotonic()
    view = PollView(elapsed=0.0, remaining=timeout_s) if memory is None else memory.recall(key, start)
    view.remaining, view.fixed_interval = timeout_s, poll_interval_s
    try:
        if view.retry_after is not None:
            held_off = await _hold(view, start, clock, policy, timeout_s, report)
            if held_off is not None:
                return held_off
        return await _poll(read, view, start, clock, policy, timeout_s, report)
    finally:
        # Also after a cancel or an error: what was read is true, and the next call can pace itself by it.
        if memory is not None:
            memory.keep(key, view, start)


async def _hold(
    view: PollView, start: float, clock: Clock, policy: PollPolicy, timeout_s: float, report: ProgressReporter | None
) -> WaitOutcome | None:
    """Before the first check, sit out what is left of a Retry-After an earlier wait was given.

    One that outlasts this wait is not sat out: nothing may be sent before it ends, so the answer is the
    state the earlier wait read (returned here), or, when it read none, `ProviderUnavailable`.
    """
    hold = view.retry_after or 0.0
    waited = f"waited 0s of {timeout_s:g}s"
    if policy.retry_after_past_deadline(view):
        asked = (
            f"provider asked for {hold:.0f}s more before the next check (Retry-After), past this call's "
            f"{timeout_s:g}s deadline, so nothing was sent"
        )
        if report is not None:
            await report(timeout_s, timeout_s, f"the {asked}; {waited}")
        again = f"Call again in {math.ceil(hold)}s or later."
        if not view.samples:
            raise ProviderUnavailable(f"The {asked} (waited 0s). {again}", retry_after=hold)
        last = view.samples[-1]
        # Remembered samples lie before this wait's start, on the same clock: that is when the state was read.
        checked_at = clock.now() - timedelta(seconds=clock.monotonic() - (start + last.at))
        note = f"The {asked}: this is the state last read. {again}"
        return WaitOutcome(last.state, checked_at, 0.0, 0, timed_out=True, note=note)
    if report is not None:
        await report(0.0, timeout_s, f"holding {hold:.0f}s as the provider asked (Retry-After); {waited}")
    # Until a fixed time, so a slow report is part of the hold rather than added to it.
    if (pause := start + hold - clock.monotonic()) > 0:
        await clock.sleep(pause)
    return None


async def _poll(
    read: Callable[[float], Awaitable[JobState]],
    view: PollView,
    start: float,
    clock: Clock,
    policy: PollPolicy,
    timeout_s: float,
    report: ProgressReporter | None,
) -> WaitOutcome:
    deadline = start + timeout_s
    checked_at: datetime | None = None
    error: ProviderUnavailable | None = None
    polls = 0
    while True:
        polls += 1
        try:
            state = await read(max(policy.landing_s, deadline - clock.monotonic() - view.report_s))
        except ProviderUnavailable as exc:
            error = exc
            view.errors_in_a_row += 1
            view.retry_after = exc.retry_after
        else:
            checked_at = clock.now()
            view.samples = (*view.samples, Sample(clock.monotonic() - start, state))[-WINDOW:]
            view.errors_in_a_row = 0
            view.retry_after = None
        checked = clock.monotonic()
        view.elapsed = checked - start
        view.remaining = timeout_s - view.elapsed
        done = bool(view.samples) and view.samples[-1].state.status in DONE_STATUSES
        delay = None if done else policy.next_delay(view)
        # Asked before the report changes `report_s`, as the policy was. Only then may the messages say the
        # Retry-After reaches past the deadline: when the floor or a slow report ends the wait, it need not.
        turned_away = policy.retry_after_past_deadline(view)
        if report is not None:
            # Seconds waited rise strictly (checks are at least the floor apart) and stay below timeout_s
            # while another check follows, which leaves timeout_s itself free for the last report.
            progress = timeout_s if delay is None else view.elapsed
            await report(
                progress, timeout_s, _progress_message(view, error, delay, turned_away, view.elapsed, timeout_s)
            )
            view.report_s = clock.monotonic() - checked
        if delay is None:
            break
        # The wake time was fixed before the report went out, so delivering it comes out of the pause; and
        # the next check starts early enough that it and its own report (as slow as this one) still fit.
        now = clock.monotonic()
        latest = deadline - policy.landing_s - view.report_s
        if now > latest:
            if report is not None and now < deadline:
                # The report just sent promised a check that will not come. Like the report after a last
                # check, this one may pass the deadline by its own delivery, and by nothing else.
                await report(timeout_s, timeout_s, _progress_message(view, error, None, False, now - start, timeout_s))
            break
        if (pause := min(checked + delay, latest) - now) > 0:
            await clock.sleep(pause)
    if not done and not turned_away and (left := deadline - clock.monotonic()) > 0:
        # No further check fits, yet answering now would have an agent that loops on the wait call again at
        # once (a 2 s wait would act as a get): the wait takes the time it was given. A provider that asked us
        # to stay away (Retry-After past the deadline) is answered at once, with when to call again.
        await clock.sleep(left)
    waited = clock.monotonic() - start
    since_check = waited - view.elapsed
    if checked_at is None:
        assert error is not None
        raise _no_answer(error, view, polls, timeout_s, since_check, turned_away)
    note = None
    if turned_away:
        note = (
            f"The provider's last answer asked for {view.retry_after:.0f}s before the next check (Retry-After), "
            f"past this call's deadline: this is the state read before it. "
            f"Call again in {_retry_left(view, since_check)}s or later."
        )
    elif not done and view.retry_after is not None:
        # It fit in this call's budget: the next call sits out whatever is left of it by itself.
        note = (
            f"The provider's last answer asked for {view.retry_after:.0f}s before the next check (Retry-After), "
            "and no time was left for another check: this is the state read before it."
        )
    return WaitOutcome(view.samples[-1].state, checked_at, waited, polls, timed_out=not done, note=note)


def _no_answer(
    error: ProviderUnavailable, view: PollView, polls: int, timeout_s: float, since_check: float, turned_away: bool
) -> ProviderUnavailable:
    """Time ran out, or the provider's Retry-After reaches past it, before any state could be read."""
    tries = "1 try" if polls == 1 else f"{polls} tries"
    waited_s = view.elapsed + since_check
    said = f"No answer from the provider in {waited_s:.1f}s of {timeout_s:g}s ({tries}). Last: {error.message}"
    if not turned_away:
        return ProviderUnavailable(said, retry_after=view.retry_after)
    return ProviderUnavailable(
        f"{said} That Retry-After reaches past this call's deadline, so no further check was sent: call again in "
        f"{_retry_left(view, since_check)}s or later.",
        retry_after=view.retry_after,
    )


def _retry_left(view: PollView, since_check: float) -> int:
    """Whole seconds until the last check's Retry-After, given `since_check` seconds ago, runs out."""
    assert view.retry_after is not None
    return math.ceil(max(0.0, view.retry_after - since_check))


def _progress_message(
    view: PollView,
    error: ProviderUnavailable | None,
    delay: float | None,
    turned_away: bool,
    waited_s: float,
    timeout_s: float,
) -> str:
    waited = f"waited {waited_s:.0f}s of {timeout_s:g}s"
    state = view.samples[-1].state if view.samples else None
    if state is not None and state.status in DONE_STATUSES:
        return f"{_describe(state)}; {waited}"
    if view.errors_in_a_row and error is not None:
        # The first sentence names the provider and the HTTP status; the rest is advice for the final error.
        said = error.message.split(". ")[0].rstrip(".")
        if delay is not None:
            then = f"retrying in {delay:.0f}s"
        elif turned_away:
            then = f"giving up: it asked for {view.retry_after:.0f}s (Retry-After), past the deadline"
        else:
            then = "giving up"
        return f"{said}; {then}; {waited}"
    known = "no answer yet" if state is None else _describe(state)
    then = "no time left for another check" if delay is None else f"next check in {delay:.0f}s"
    return f"{known}; {then}; {waited}"


def _describe(state: JobState) -> str:
    if state.status in DONE_STATUSES:
        return state.status
    # A percent means something only while the job runs: queued jobs report 0 and finished ones say so.
    words: list[str] = [state.status]
    if state.progress is not None and state.status == "running" and math.isfinite(state.progress):
        words.append(f"{min(100.0, max(0.0, state.progress)):.0f}%")
    eta = sane_eta(state.eta_s)
    if eta is not None:
        words.append("(ETA over a day)" if eta == MAX_ETA_S else f"(ETA {eta:.0f}s)")
    return " ".join(words)
