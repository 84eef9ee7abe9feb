"""The poll policy (pure, no clock) and the wait loop (virtual clock, scripted reads)."""

from __future__ import annotations

import math
import random
from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tools.clock import VirtualClock
from tools.errors import ProviderUnavailable, TaskNotFound
from tools.polling import MAX_ETA_S, WINDOW, PollPolicy, PollView, Sample, WaitMemory, wait_until_done
from tools.result import JobState, Status

STEADY = PollPolicy(jitter=0.0)


def state(status: Status = "running", progress: float | None = None, eta_s: float | None = None) -> JobState:
    return JobState(status=status, provider_status=status.upper(), progress=progress, eta_s=eta_s)


def view(
    *samples: Sample,
    elapsed: float | None = None,
    timeout_s: float = 1000.0,
    errors_in_a_row: int = 0,
    retry_after: float | None = None,
    fixed_interval: float | None = None,
) -> PollView:
    now = samples[-1].at if elapsed is None else elapsed
    return PollView(now, timeout_s - now, samples, errors_in_a_row, retry_after, fixed_interval)


def delays_of(policy: PollPolicy, states: Iterable[JobState]) -> list[float]:
    """Play `states` as the answers of successive checks, each made when the policy said."""
    samples: list[Sample] = []
    delays: list[float] = []
    now = 0.0
    for answer in states:
        samples.append(Sample(now, answer))
        delay = policy.next_delay(view(*samples[-WINDOW:]))
        assert delay is not None
        delays.append(delay)
        now += delay
    return delays


# ---- the policy ----


def test_a_job_without_hints_is_checked_with_exponential_backoff_up_to_the_cap() -> None:
    delays = delays_of(STEADY, [state("queued")] * 12)
    assert delays[:4] == pytest.approx([STEADY.first_delay_s * STEADY.growth**n for n in range(4)])
    assert max(delays) == STEADY.cap_s and delays[-1] == STEADY.cap_s


def test_jitter_only_shortens_the_backoff_and_a_policy_with_a_seeded_rng_repeats_it() -> None:
    def play(seed: int) -> list[float]:
        return delays_of(PollPolicy(jitter=0.2, rng=random.Random(seed)), [state("queued")] * 12)

    first = play(7)
    assert first == play(7) != play(8)
    steady = delays_of(STEADY, [state("queued")] * 12)
    assert first != steady
    assert all(0.8 * base <= jittered <= base for jittered, base in zip(first, steady, strict=True))


def test_an_eta_puts_the_next_check_just_after_the_promised_finish() -> None:
    delay = STEADY.next_delay(view(Sample(2.0, state(eta_s=10)), elapsed=2.2))
    assert delay == pytest.approx(2.0 + 10 + STEADY.aim_after_s - 2.2)


def test_an_eta_past_the_cap_is_checked_at_the_cap_to_hear_a_better_one() -> None:
    assert STEADY.next_delay(view(Sample(0.0, state(eta_s=300)))) == STEADY.cap_s


def test_an_eta_that_keeps_passing_without_the_job_finishing_backs_off_instead_of_polling_at_the_floor() -> None:
    delays = delays_of(STEADY, [state(eta_s=5)] + [state(eta_s=0)] * 8)
    assert delays[0] == 6.0
    assert delays[1:5] == pytest.approx([STEADY.first_delay_s * STEADY.growth**n for n in range(4)])


def test_a_late_job_that_gives_a_new_eta_is_checked_just_after_the_new_one() -> None:
    delays = delays_of(STEADY, [state(eta_s=5), state(eta_s=15), state(eta_s=8)])
    assert delays == [6.0, 16.0, 9.0]


def test_progress_aims_just_after_the_finish_its_slope_predicts() -> None:
    samples = (Sample(0, state(progress=10)), Sample(2, state(progress=20)), Sample(4, state(progress=30)))
    # 5 %/s: 70 % more takes 14 s, so the job should be done at 18 s.
    assert STEADY.next_delay(view(*samples)) == pytest.approx(18 + STEADY.aim_after_s - 4)


def test_one_odd_progress_reading_does_not_throw_the_slope() -> None:
    readings = [(0, 30), (2, 20), (4, 30), (6, 40), (8, 50)]
    samples = [Sample(t, state(progress=p)) for t, p in readings]
    assert STEADY.finish_estimate(samples) == pytest.approx(8 + 50 / 5)


def test_the_slope_follows_the_recent_rate_not_the_whole_history() -> None:
    readings = [(0, 0), (10, 1), (20, 2), (30, 3), (32, 13), (34, 23), (36, 33), (38, 43), (40, 53)]
    samples = [Sample(t, state(progress=p)) for t, p in readings]
    assert STEADY.finish_estimate(samples) == pytest.approx(40 + 47 / 5)


def test_progress_that_stands_still_gives_no_estimate_and_the_backoff_takes_over() -> None:
    samples = [Sample(t, state(progress=40)) for t in (0, 1, 2.6)]
    assert STEADY.finish_estimate(samples) is None
    assert STEADY.next_delay(view(*samples)) == pytest.approx(STEADY.first_delay_s * STEADY.growth**2)


def test_a_two_second_wait_keeps_its_second_check_whatever_milliseconds_its_first_took() -> None:
    # Real time: the first check and its report took a few milliseconds of the 2 s (floor 1 s + landing 1 s).
    after_real_check = PollView(elapsed=0.012, remaining=1.988, samples=(Sample(0.0, state("queued")),), report_s=0.003)
    assert STEADY.next_delay(after_real_check) == pytest.approx(0.985)
    too_short = PollView(elapsed=0.012, remaining=1.5, samples=(Sample(0.0, state("queued")),))
    assert STEADY.next_delay(too_short) is None


def test_a_fixed_interval_wins_over_hints_but_not_below_the_floor() -> None:
    hinted = Sample(0, state(eta_s=100))
    assert STEADY.next_delay(view(hinted, fixed_interval=7.0)) == 7.0
    assert STEADY.next_delay(view(hinted, fixed_interval=0.1)) == STEADY.floor_s
    assert STEADY.next_delay(view(hinted, fixed_interval=120.0)) == 120.0


def test_transient_errors_back_off_exponentially_and_never_before_retry_after() -> None:
    def after(errors: int, retry_after: float | None = None) -> float | None:
        return STEADY.next_delay(view(elapsed=10, errors_in_a_row=errors, retry_after=retry_after))

    assert [after(n) for n in (1, 2, 3, 4, 5, 6, 7)] == [1, 2, 4, 8, 16, STEADY.cap_s, STEADY.cap_s]
    assert after(1, retry_after=7) == 7
    assert after(5, retry_after=7) == 16
    assert after(1, retry_after=0.2) == STEADY.floor_s
    assert STEADY.next_delay(view(elapsed=10, errors_in_a_row=1, retry_after=3, fixed_interval=5)) == 5


@pytest.mark.parametrize(
    ("fields", "longest"),
    [({"cap_s": 5}, 5), ({"cap_s": 5, "error_cap_s": 3}, 3), ({"cap_s": 5, "error_cap_s": 60}, 5)],
)
def test_the_backoff_after_errors_never_passes_the_cap_but_retry_after_still_does(
    fields: dict[str, Any], longest: float
) -> None:
    policy = PollPolicy(jitter=0.0, floor_s=0.5, **fields)
    delays = [policy.next_delay(view(elapsed=10, errors_in_a_row=n)) for n in range(1, 20)]
    assert max(d for d in delays if d is not None) == longest and delays[-1] == longest
    assert policy.next_delay(view(elapsed=10, errors_in_a_row=9, retry_after=12)) == 12


def test_a_retry_after_beyond_the_deadline_ends_the_wait() -> None:
    assert STEADY.next_delay(view(elapsed=40, timeout_s=50, errors_in_a_row=1, retry_after=20)) is None
    assert STEADY.next_delay(view(elapsed=40, timeout_s=50, errors_in_a_row=1, retry_after=9)) == 9


def test_the_last_check_lands_just_before_the_deadline() -> None:
    hinted = Sample(40, state(eta_s=300))
    assert STEADY.next_delay(view(hinted, timeout_s=50)) == pytest.approx(10 - STEADY.landing_s)


def test_a_check_that_would_leave_no_room_for_another_becomes_the_last() -> None:
    # 8.5 s of budget; the ETA asks for 8 s, which would leave 0.5 s: less than the floor, so go at 8.5 s.
    hinted = Sample(40.5, state(eta_s=7))
    assert STEADY.next_delay(view(hinted, timeout_s=50)) == pytest.approx(8.5)


def test_no_check_is_planned_when_less_than_the_floor_is_left() -> None:
    assert STEADY.next_delay(view(Sample(48.5, state()), timeout_s=50)) is None


@given(
    elapsed=st.floats(0, 2000),
    timeout_s=st.floats(0.01, 2000),
    eta=st.none() | st.floats(0, 5000),
    progress=st.none() | st.floats(0, 100),
    errors=st.integers(0, 200),
    retry_after=st.none() | st.floats(0, 5000),
    fixed=st.none() | st.floats(0.001, 5000),
    report_s=st.floats(0, 100),
    seed=st.integers(0, 2**32),
)
def test_a_planned_check_is_never_past_the_deadline_nor_closer_than_the_floor_nor_before_retry_after(
    elapsed: float,
    timeout_s: float,
    eta: float | None,
    progress: float | None,
    errors: int,
    retry_after: float | None,
    fixed: float | None,
    report_s: float,
    seed: int,
) -> None:
    policy = PollPolicy(rng=random.Random(seed))
    samples = (Sample(max(0.0, elapsed - 3), state(progress=0)), Sample(elapsed, state(progress=progress, eta_s=eta)))
    delay = policy.next_delay(
        PollView(
            elapsed=elapsed,
            remaining=timeout_s - elapsed,
            samples=samples,
            errors_in_a_row=errors,
            retry_after=retry_after if errors else None,
            fixed_interval=fixed,
            report_s=report_s,
        )
    )
    if delay is not None:
        # The check after this pause, and its progress report, still fit before the deadline.
        assert policy.floor_s <= delay <= timeout_s - elapsed - policy.landing_s - report_s
        if errors and retry_after is not None:
            assert delay >= retry_after


@pytest.mark.parametrize(
    "fields", [{"floor_s": 0}, {"floor_s": 5, "cap_s": 2}, {"growth": 0.5}, {"jitter": 1}, {"landing_s": 0}]
)
def test_a_policy_that_could_poll_without_pause_or_shrink_is_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="PollPolicy"):
        PollPolicy(**fields)


@pytest.mark.parametrize("name", ["floor_s", "cap_s", "first_delay_s", "landing_s", "error_first_s", "error_cap_s"])
@pytest.mark.parametrize("value", [0.0, -1.0, math.nan, math.inf])
def test_every_duration_of_a_policy_must_be_a_finite_positive_number_of_seconds(name: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"PollPolicy.*{name}"):
        PollPolicy(**dict[str, Any]({name: value}))


@pytest.mark.parametrize("value", [-0.5, math.nan, math.inf])
def test_aim_after_may_be_zero_but_not_negative_or_endless(value: float) -> None:
    assert PollPolicy(aim_after_s=0).aim_after_s == 0
    with pytest.raises(ValueError, match=r"PollPolicy.*aim_after_s"):
        PollPolicy(aim_after_s=value)


@pytest.mark.parametrize("growth", [math.nan, math.inf])
def test_a_growth_that_is_no_finite_number_is_refused(growth: float) -> None:
    with pytest.raises(ValueError, match="PollPolicy"):
        PollPolicy(growth=growth)


@pytest.mark.parametrize("eta", [1e300, 1e18, MAX_ETA_S * 2])
def test_an_absurd_eta_plans_like_a_long_job_and_reads_as_one(eta: float) -> None:
    assert STEADY.finish_estimate([Sample(0, state(eta_s=eta))]) == MAX_ETA_S
    assert STEADY.next_delay(view(Sample(0, state(eta_s=eta)))) == STEADY.cap_s


async def test_progress_messages_stay_short_whatever_numbers_the_provider_sends() -> None:
    clock = VirtualClock()
    heard: list[str] = []
    answers = [state(eta_s=1e300), state(progress=1e300, eta_s=-5), state(progress=math.nan, eta_s=45)]

    async def read(budget_s: float) -> JobState:
        return answers[min(len(heard), len(answers) - 1)]

    async def report(progress: float, total: float | None, message: str) -> None:
        heard.append(message)

    await wait_until_done(read, clock=clock, policy=STEADY, timeout_s=60, report=report)
    assert heard[0].startswith("running (ETA over a day); next check in")
    assert heard[1].startswith("running 100%;") and "ETA" not in heard[1]
    assert heard[2].startswith("running (ETA 45s);")
    assert max(len(message) for message in heard) < 80


# ---- the loop ----

Script = Callable[[float], JobState]


def scripted(
    clock: VirtualClock, script: Script, log: list[tuple[float, float]]
) -> Callable[[float], Awaitable[JobState]]:
    async def read(budget_s: float) -> JobState:
        log.append((clock.monotonic(), budget_s))
        return script(clock.monotonic())

    return read


async def test_the_first_check_goes_out_at_once() -> None:
    clock = VirtualClock()
    log: list[tuple[float, float]] = []
    outcome = await wait_until_done(
        scripted(clock, lambda now: state("succeeded", 100), log),
        clock=clock,
        policy=STEADY,
        timeout_s=50,
    )
    assert log[0][0] == 0.0 and clock.sleeps == []
    assert (outcome.polls, outcome.timed_out, outcome.elapsed_s) == (1, False, 0.0)


async def test_an_eta_from_the_provider_is_followed_to_the_finish() -> None:
    clock = VirtualClock()
    log: list[tuple[float, float]] = []

    def job(now: float) -> JobState:
        return state("succeeded", 100) if now >= 37 else state(eta_s=37 - now)

    outcome = await wait_until_done(scripted(clock, job, log), clock=clock, policy=STEADY, timeout_s=50)
    # The first ETA (37 s) is past the cap: look at the cap, hear 17 s more, then check just after.
    assert [at for at, _ in log] == pytest.approx([0, STEADY.cap_s, 38])
    assert outcome.state.status == "succeeded" and outcome.polls == 3


async def test_a_wait_that_runs_out_never_passes_its_deadline_and_hands_requests_only_the_time_left() -> None:
    clock = VirtualClock()
    log: list[tuple[float, float]] = []
    outcome = await wait_until_done(
        scripted(clock, lambda now: state("queued"), log),
        clock=clock,
        policy=PollPolicy(),
        timeout_s=50,
    )
    assert outcome.timed_out and outcome.state.status == "queued"
    assert log[-1][0] == pytest.approx(50 - PollPolicy().landing_s)
    assert all(at + budget <= 50 + 1e-9 for at, budget in log)
    assert sum(clock.sleeps) == pytest.approx(outcome.elapsed_s) and outcome.polls == len(log)


async def test_progress_rises_strictly_after_every_check_and_ends_at_the_total() -> None:
    clock = VirtualClock()
    log: list[tuple[float, float]] = []
    heard: list[tuple[float, float | None, str]] = []

    async def report(progress: float, total: float | None, message: str) -> None:
        heard.append((progress, total, message))

    def job(now: float) -> JobState:
        return state("succeeded", 100) if now >= 20 else state(progress=min(99, now * 5))

    await wait_until_done(scripted(clock, job, log), clock=clock, policy=PollPolicy(), timeout_s=50, report=report)
    values = [progress for progress, _, _ in heard]
    assert len(heard) == len(log)
    assert all(earlier < later for earlier, later in pairwise(values))
    assert values[-1] == 50 and {total for _, total, _ in heard} == {50}
    assert heard[-1][2] == "succeeded; waited 21s of 50s"
    assert "running" in heard[1][2] and "%" in heard[1][2] and "waited" in heard[1][2]


async def test_only_trouble_until_the_deadline_is_provider_unavailable_with_the_last_reason() -> None:
    clock = VirtualClock()
    tries: list[float] = []

    async def read(budget_s: float) -> JobState:
        tries.append(clock.monotonic())
        raise ProviderUnavailable(f"Try {len(tries)} failed (HTTP 503).")

    with pytest.raises(ProviderUnavailable) as raised:
        await wait_until_done(read, clock=clock, policy=STEADY, timeout_s=20)
    assert f"Try {len(tries)} failed" in raised.value.message and len(tries) > 3
    assert tries[-1] <= 20 - STEADY.landing_s
    assert f"in {clock.monotonic():.1f}s of 20s ({len(tries)} tries)" in raised.value.message


async def test_a_first_answer_with_a_retry_after_past_the_deadline_says_how_long_it_took_and_when_to_call_again() -> (
    None
):
    clock = VirtualClock()
    tries: list[float] = []

    async def read(budget_s: float) -> JobState:
        tries.append(clock.monotonic())
        clock.advance(0.4)
        raise ProviderUnavailable("Rate limited (HTTP 429).", retry_after=60)

    with pytest.raises(ProviderUnavailable) as raised:
        await wait_until_done(read, clock=clock, policy=STEADY, timeout_s=50)
    assert tries == [0] and clock.sleeps == []
    message = raised.value.message
    assert "in 0.4s of 50s (1 try)" in message and "within 50s" not in message
    assert "Rate limited" in message and "Retry-After" in message and "call again in 60s" in message
    assert raised.value.retry_after == 60


async def test_a_slow_progress_reporter_comes_out_of_the_pauses_and_the_wait_still_ends_by_its_deadline() -> None:
    clock = VirtualClock()
    log: list[tuple[float, float]] = []
    heard: list[float] = []

    async def slow_report(progress: float, total: float | None, message: str) -> None:
        heard.append(progress)
        clock.advance(3)

    outcome = await wait_until_done(
        scripted(clock, lambda now: state("queued"), log), clock=clock, policy=STEADY, timeout_s=20, report=slow_report
    )
    checks = [at for at, _ in log]
    # Each check goes out when the policy said, counted from the check before: the report's 3 s are inside
    # the 2 s, 3 s, 4.5 s pauses (or the pause is skipped), not added to them.
    assert checks[:4] == pytest.approx([0, 3, 6, 10.5])
    assert clock.monotonic() <= 20 and outcome.timed_out
    assert all(at + budget <= 20 for at, budget in log)
    assert heard[-1] == 20 and all(earlier < later for earlier, later in pairwise(heard))


async def test_a_fixed_interval_is_kept_from_check_to_check_however_long_the_report_takes() -> None:
    clock = VirtualClock()
    log: list[tuple[float, float]] = []

    async def slow_report(progress: float, total: float | None, message: str) -> None:
        clock.advance(2)

    await wait_until_done(
        scripted(clock, lambda now: state("queued"), log),
        clock=clock,
        policy=STEADY,
        timeout_s=30,
        poll_interval_s=5,
        report=slow_report,
    )
    # At 25 s a check and its 2 s report leave no room for another 5 s later: the last lands at 30 - 1 - 2.
    assert [at for at, _ in log] == [0, 5, 10, 15, 20, 25, 27]
    assert clock.monotonic() == 30  # the wait answers at its deadline


async def test_a_report_that_eats_the_time_for_the_next_check_ends_the_wait_without_another_and_fills_the_bar() -> None:
    clock = VirtualClock()
    log: list[tuple[float, float]] = []
    heard: list[tuple[float, str]] = []

    async def report(progress: float, total: float | None, message: str) -> None:
        heard.append((progress, message))
        # The second report stalls for longer than the wait has left for a check; the others are quick.
        clock.advance(15 if len(heard) == 2 else 0)

    outcome = await wait_until_done(
        scripted(clock, lambda now: state("queued"), log), clock=clock, policy=STEADY, timeout_s=20, report=report
    )
    assert [at for at, _ in log] == [0, STEADY.first_delay_s]
    # No check after the slow report, and no answer before the deadline either.
    assert outcome.timed_out and outcome.polls == 2 and clock.monotonic() == 20 == outcome.elapsed_s
    # The stalled report promised a check that never came: a last one says so, and fills the bar.
    assert heard[1] == (STEADY.first_delay_s, "queued; next check in 3s; waited 2s of 20s")
    assert heard[-1] == (20, "queued; no time left for another check; waited 17s of 20s")


async def test_after_a_report_that_runs_past_the_deadline_the_answer_goes_at_once() -> None:
    clock = VirtualClock()
    log: list[tuple[float, float]] = []
    heard: list[float] = []

    async def report(progress: float, total: float | None, message: str) -> None:
        heard.append(progress)
        clock.advance(25 if len(heard) == 2 else 0)

    outcome = await wait_until_done(
        scripted(clock, lambda now: state("queued"), log), clock=clock, policy=STEADY, timeout_s=20, report=report
    )
    assert [at for at, _ in log] == [0, STEADY.first_delay_s] and outcome.timed_out
    assert heard == [0, STEADY.first_delay_s] and clock.monotonic() == STEADY.first_delay_s + 25


async def test_a_retry_after_that_fit_before_the_deadline_is_not_blamed_for_ending_the_wait() -> None:
    clock = VirtualClock()
    heard: list[tuple[float, str]] = []

    async def read(budget_s: float) -> JobState:
        if clock.monotonic() == 0:
            return state("queued")
        raise ProviderUnavailable("Rate limited (HTTP 429).", retry_after=3)

    async def report(progress: float, total: float | None, message: str) -> None:
        heard.append((progress, message))
        # A report stalls after the 429: its 3 s would have fit, the stall leaves no time for the retry.
        clock.advance(15 if len(heard) == 2 else 0)

    outcome = await wait_until_done(read, clock=clock, policy=STEADY, timeout_s=20, report=report)
    assert outcome.timed_out and outcome.state.status == "queued" and outcome.polls == 2
    assert heard[1] == (STEADY.first_delay_s, "Rate limited (HTTP 429); retrying in 3s; waited 2s of 20s")
    assert heard[-1] == (20, "Rate limited (HTTP 429); giving up; waited 17s of 20s")
    assert outcome.note is not None and "past" not in outcome.note and "deadline" not in outcome.note
    assert "asked for 3s" in outcome.note and "no time was left for another check" in outcome.note


async def test_trouble_after_a_good_answer_ends_in_that_answer_with_the_retry_after_noted() -> None:
    clock = VirtualClock()

    async def read(budget_s: float) -> JobState:
        if clock.monotonic() == 0:
            return state(progress=10)
        raise ProviderUnavailable("Rate limited (HTTP 429).", retry_after=90)

    outcome = await wait_until_done(read, clock=clock, policy=STEADY, timeout_s=20)
    assert outcome.timed_out and outcome.state.progress == 10 and outcome.polls == 2
    assert outcome.note is not None and "90s" in outcome.note


async def test_a_permanent_answer_ends_the_wait_at_the_check_that_got_it() -> None:
    clock = VirtualClock()
    tries: list[float] = []

    async def read(budget_s: float) -> JobState:
        tries.append(clock.monotonic())
        if len(tries) < 3:
            raise ProviderUnavailable("Server error (HTTP 502).")
        raise TaskNotFound("No such task.")

    with pytest.raises(TaskNotFound):
        await wait_until_done(read, clock=clock, policy=STEADY, timeout_s=50)
    assert len(tries) == 3


# ---- memory across waits ----


async def test_a_wait_that_resumes_a_timed_out_one_checks_at_once_then_keeps_its_pace() -> None:
    clock = VirtualClock()
    memory = WaitMemory()
    log: list[tuple[float, float]] = []
    read = scripted(clock, lambda now: state("queued"), log)
    first = await wait_until_done(read, clock=clock, policy=STEADY, timeout_s=50, memory=memory, key="job")
    last_gap = clock.sleeps[-2]
    clock.advance(2)
    resumed_at = clock.monotonic()
    await wait_until_done(read, clock=clock, policy=STEADY, timeout_s=50, memory=memory, key="job")
    second = [at for at, _ in log[first.polls :]]
    assert second[0] == resumed_at
    assert second[1] - second[0] >= last_gap > STEADY.first_delay_s


async def test_a_slope_spans_the_two_waits_so_the_resumed_one_aims_at_the_finish_from_its_first_check() -> None:
    clock = VirtualClock()
    memory = WaitMemory()
    log: list[tuple[float, float]] = []

    def job(now: float) -> JobState:
        return state("succeeded", 100) if now >= 100 else state(progress=now)

    read = scripted(clock, job, log)
    await wait_until_done(read, clock=clock, policy=STEADY, timeout_s=3, memory=memory, key="job")
    clock.advance(90)
    await wait_until_done(read, clock=clock, policy=STEADY, timeout_s=50, memory=memory, key="job")
    assert [at for at, _ in log][-2:] == pytest.approx([93, 100 + STEADY.aim_after_s])


def test_memory_forgets_finished_jobs_old_news_and_the_least_recently_used() -> None:
    memory = WaitMemory(size=2, horizon_s=100)

    def ended_with(*samples: Sample) -> PollView:
        return PollView(elapsed=samples[-1].at, remaining=0, samples=samples)

    memory.keep("a", ended_with(Sample(0, state())), start=0)
    memory.keep("b", ended_with(Sample(0, state())), start=0)
    assert memory.recall("a", now=10).samples == (Sample(-10, state()),)
    memory.keep("c", ended_with(Sample(0, state())), start=0)
    assert memory.recall("b", now=10).samples == ()
    assert memory.recall("a", now=101).samples == ()
    memory.keep("c", ended_with(Sample(0, state()), Sample(5, state("succeeded", 100))), start=0)
    assert memory.recall("c", now=10).samples == ()


async def test_a_retry_after_that_outlived_a_wait_holds_the_first_check_of_the_next() -> None:
    clock = VirtualClock()
    memory = WaitMemory()
    tries: list[float] = []
    heard: list[tuple[float, str]] = []

    async def read(budget_s: float) -> JobState:
        tries.append(clock.monotonic())
        if len(tries) == 2:
            raise ProviderUnavailable("Rate limited (HTTP 429).", retry_after=60)
        return state("queued")

    async def report(progress: float, total: float | None, message: str) -> None:
        heard.append((progress, message))

    first = await wait_until_done(read, clock=clock, policy=STEADY, timeout_s=20, memory=memory, key="job")
    assert first.timed_out and tries == [0, STEADY.first_delay_s]
    assert first.note is not None and "60s" in first.note and "past this call's deadline" in first.note
    clock.advance(1)
    held_off = await wait_until_done(read, clock=clock, policy=STEADY, timeout_s=30, memory=memory, key="job")
    # Nothing is sent before the Retry-After runs out: the answer is the state last read, with when to call.
    assert tries == [0, STEADY.first_delay_s]
    assert (held_off.state.status, held_off.timed_out, held_off.polls, held_off.elapsed_s) == ("queued", True, 0, 0)
    assert held_off.checked_at == clock.now() - timedelta(seconds=STEADY.first_delay_s + 1)
    assert held_off.note is not None and "Retry-After" in held_off.note and "Call again in 59s" in held_off.note
    clock.advance(9)
    await wait_until_done(read, clock=clock, policy=STEADY, timeout_s=100, memory=memory, key="job", report=report)
    assert tries[2] == STEADY.first_delay_s + 60
    assert heard[0][0] == 0 and "holding 50s" in heard[0][1] and heard[1][0] == 50


async def test_a_retry_after_that_outlasts_the_next_wait_with_nothing_read_is_provider_unavailable_saying_when() -> (
    None
):
    clock = VirtualClock()
    memory = WaitMemory()
    tries: list[float] = []
    heard: list[tuple[float, str]] = []

    async def read(budget_s: float) -> JobState:
        tries.append(clock.monotonic())
        raise ProviderUnavailable("Rate limited (HTTP 429).", retry_after=90)

    async def report(progress: float, total: float | None, message: str) -> None:
        heard.append((progress, message))

    with pytest.raises(ProviderUnavailable):
        await wait_until_done(read, clock=clock, policy=STEADY, timeout_s=20, memory=memory, key="job")
    clock.advance(5)
    with pytest.raises(ProviderUnavailable) as raised:
        await wait_until_done(read, clock=clock, policy=STEADY, timeout_s=50, memory=memory, key="job", report=report)
    assert tries == [0] and raised.value.retry_after == 85
    assert "85s" in raised.value.message and "waited 0s" in raised.value.message
    assert "Call again in 85s" in raised.value.message
    assert heard == [(50, heard[0][1])] and "Retry-After" in heard[0][1]
