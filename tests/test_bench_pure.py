"""The benchmarks' pure parts: statistics, the table, the peers' schedules and the verdict rules.

No timing here: benchmarks are run with `python -m bench`, never asserted on in tests.
"""

from __future__ import annotations

import json
import random
import socket
from collections import Counter

import anyio
import pytest

from bench.compactness import Pair, rows
from bench.hostile import KINDS, PADDED_WAITS, Burst, Calls, closed_by_server, outcome, span, wait_body
from bench.pollsim import PEERS, PolicyResult, Score, SimJob, doubling, fixed, make_jobs, play_ours, play_schedule
from bench.report import Row, render_rows, render_table, verdict
from bench.stats import Spread, median, per_round, percentile
from server.http import MAX_BODY_BYTES
from tools.mcp_tools import ERROR_META


def test_percentile_is_the_nearest_rank_and_always_a_measured_value() -> None:
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert percentile(values, 95) == 5.0
    assert percentile(values, 50) == 3.0
    assert percentile(values, 20) == 1.0
    assert percentile(list(range(1, 101)), 95) == 95
    assert median([1.0, 2.0, 3.0, 10.0]) == 2.5


def test_percentile_of_nothing_is_an_error_not_a_number() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)


def test_the_table_pads_every_column_and_marks_each_target() -> None:
    text = render_rows([Row("a", "1.00x", "<= 2x", True), Row("longer name", "3.00x", "<= 2x", False)])
    lines = text.splitlines()
    assert lines[0].startswith("| benchmark   | measured | target | verdict |")
    assert {len(line) for line in lines} == {len(lines[0])}
    assert lines[2].endswith("| holds   |") and lines[3].endswith("| MISSED  |")


def test_a_table_row_with_a_missing_cell_is_refused() -> None:
    with pytest.raises(ValueError):
        render_table(("a", "b"), [("only one",)])


def test_a_fixed_schedule_checks_at_once_then_every_interval_until_it_sees_the_job_done() -> None:
    job = SimJob(queued_s=2.0, running_s=10.0, eta_bias=1.0, curve=1.0)
    # Checks at 0, 5, 10, 15: the one at 15 s sees the job that finished at 12 s.
    assert play_schedule(job, fixed(5.0)) == (4, 3.0)


def test_the_doubling_peer_starts_at_a_quarter_second_and_stops_growing_at_its_cap() -> None:
    delays = [doubling(0.25, 10.0)(n) for n in range(1, 9)]
    assert delays == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert set(PEERS) == {"fixed 5 s", "fixed 15 s", "fixed 20 s", "250 ms doubling, 10 s cap"}


def test_a_simulated_job_reports_only_the_hints_it_was_given() -> None:
    job = SimJob(queued_s=10.0, running_s=100.0, eta_bias=1.0, curve=1.0)
    assert job.state(50.0, "none").progress is None and job.state(50.0, "none").eta_s is None
    assert job.state(50.0, "eta").eta_s == pytest.approx(60.0)
    assert job.state(60.0, "progress").progress == 50
    assert job.state(110.0, "progress").status == "succeeded"


def test_simulated_jobs_span_five_seconds_to_ten_minutes_and_repeat_for_a_seed() -> None:
    jobs = make_jobs(500, seed=1)
    assert all(5.0 <= job.duration <= 600.0 for job in jobs)
    assert jobs == make_jobs(500, seed=1)


def test_our_engine_on_a_virtual_clock_finds_every_job_done_without_sleeping() -> None:
    job = SimJob(queued_s=3.0, running_s=30.0, eta_bias=1.0, curve=1.0)

    async def play() -> tuple[int, float]:
        with anyio.fail_after(5):
            return await play_ours(job, "eta", random.Random(1), wait_s=1800.0)

    checks, delay = anyio.run(play)
    assert checks >= 2
    assert 0.0 <= delay <= 30.0


def _score(policy: str, checks: float, delay: float) -> Score:
    return Score(policy, "none", checks, delay, delay * 2)


def test_a_peer_counts_as_better_only_when_it_wins_on_both_checks_and_delay() -> None:
    ours = {hints: _score("ours", 10.0, 5.0) for hints in ("none", "eta", "progress")}
    peers = {
        "fixed 5 s": _score("fixed 5 s", 25.0, 2.5),
        "fewer checks, later": _score("x", 8.0, 9.0),
        "both better": _score("y", 9.0, 4.0),
    }
    assert PolicyResult(ours, ours, peers).dominating_peers() == ["both better"]


def test_hints_must_halve_the_checks_of_fixed_5_s_without_a_later_median() -> None:
    peers = {"fixed 5 s": _score("fixed 5 s", 25.0, 2.5)}
    good = {"eta": _score("ours", 12.0, 2.5)}
    late = {"eta": _score("ours", 5.0, 2.6)}
    busy = {"eta": _score("ours", 13.0, 1.0)}
    assert PolicyResult(good, good, peers).with_hints_target("eta") == (True, pytest.approx(25 / 12))
    assert PolicyResult(late, late, peers).with_hints_target("eta")[0] is False
    assert PolicyResult(busy, busy, peers).with_hints_target("eta")[0] is False


def test_compactness_is_our_bytes_over_the_providers_raw_bytes() -> None:
    assert Pair("p", "running", "processing", raw=500, ours=150, peer_text=700).ratio == pytest.approx(0.3)


def test_compactness_holds_on_the_sum_and_on_each_large_answer_but_not_on_tiny_ones() -> None:
    tiny = Pair("p", "failed", "error", raw=55, ours=200, peer_text=64)
    large = Pair("p", "succeeded", "success", raw=2000, ours=600, peer_text=2300)
    [row] = rows([tiny, large])
    assert row.holds  # 800 / 2364 overall; the tiny answer cannot be cut below the required fields
    [bloated] = rows([tiny, Pair("p", "running", "run", raw=400, ours=700, peer_text=500), large])
    assert not bloated.holds


def test_a_compactness_miss_says_when_the_required_fields_alone_are_over_the_target() -> None:
    lean = Pair("p", "running", "processing", raw=500, ours=300, peer_text=560, floor=200)
    [missed] = rows([lean])
    assert not missed.holds and missed.why == ""  # 0.54x, but the contract allows 0.36x: the code is to blame
    tight = Pair("p", "running", "processing", raw=500, ours=300, peer_text=560, floor=290)
    [by_contract] = rows([tight])
    assert not by_contract.holds and "0.52x" in by_contract.why and "contract" in by_contract.why


def test_a_single_result_over_its_peer_text_is_blamed_on_the_contract_only_when_its_links_alone_are() -> None:
    # 400 B of peer text; our 500 B result needs 420 B for the required fields, the video url and its thumbnail
    linked = Pair("p", "succeeded", "done", raw=380, ours=500, peer_text=400, floor=250, link_floor=420)
    [forced] = rows([linked])
    assert not forced.holds and "p succeeded 1.05x" in forced.why and "thumbnail_url" in forced.why
    padded = Pair("p", "succeeded", "done", raw=380, ours=500, peer_text=400, floor=250, link_floor=380)
    [ours_to_cut] = rows([padded])
    assert not ours_to_cut.holds and "thumbnail_url" not in ours_to_cut.why  # 0.95x would do: the rest is ours


def test_a_spread_is_the_median_and_middle_half_of_the_per_round_ratios() -> None:
    spread = Spread.of(per_round([1.1, 1.2, 1.0, 1.3, 5.0], [1.0, 1.0, 1.0, 1.0, 1.0]))
    assert (spread.median, spread.rounds) == (pytest.approx(1.2), 5)
    assert spread.low == pytest.approx(1.1) and spread.high == pytest.approx(1.3)  # one wild round moves neither


def test_a_verdict_is_given_only_when_the_middle_half_of_the_rounds_is_on_one_side_of_the_target() -> None:
    assert Spread(1.05, 1.0, 1.1, 9).verdict(1.15) is True
    assert Spread(1.3, 1.2, 1.4, 9).verdict(1.15) is False
    assert Spread(1.1, 1.0, 1.2, 9).verdict(1.15) is None


def test_a_floor_target_holds_when_the_whole_middle_half_is_at_or_over_it() -> None:
    assert Spread(0.85, 0.82, 0.9, 7).verdict(0.8, at_least=True) is True
    assert Spread(0.7, 0.6, 0.75, 7).verdict(0.8, at_least=True) is False
    assert Spread(0.8, 0.7, 0.85, 7).verdict(0.8, at_least=True) is None
    row = Row.judged("downloads", "0.77x", 0.8, Spread(0.77, 0.66, 0.83, 7), at_least=True)
    assert row.target == ">= 0.8x" and row.holds is None and "0.66-0.83x" in row.why


def test_a_row_judged_on_a_straddling_spread_is_unstable_and_says_why() -> None:
    row = Row.judged("cold start", "1.10x", 1.15, Spread(1.1, 1.0, 1.2, 9))
    assert row.holds is None and verdict(row.holds) == "unstable" and "1.00-1.20x" in row.why
    assert Row.judged("cold start", "1.0x", 1.15, Spread(1.0, 0.9, 1.1, 9), also=False).holds is False


def test_a_row_whose_condition_failed_is_missed_whatever_its_spread_and_names_the_condition() -> None:
    straddling = Spread(1.9, 1.5, 2.5, 7)
    assert Row.judged("stalled", "1.9x", 2.0, straddling, also=False).holds is False
    row = Row.judged("stalled", "1.9x", 2.0, straddling, also=False, condition="every call answered", why="gave up")
    assert (row.holds, row.target, row.why) == (False, "<= 2x, every call answered", "gave up")
    assert Row.judged("stalled", "1.1x", 2.0, Spread(1.1, 1.0, 1.2, 7), condition="every call answered").holds


def test_a_phase_with_an_unanswered_call_has_no_finite_p95() -> None:
    answered = Calls(latencies=[0.004] * 19 + [0.010])
    assert answered.p95() == pytest.approx(0.004)
    assert Calls(latencies=[0.004] * 20, wrong=["the client gave up"]).p95() == float("inf")
    assert Calls().p95() == float("inf")


def test_a_padded_wait_puts_its_id_first_and_its_padding_where_its_kind_says() -> None:
    plain, over_cap, at_cap = KINDS
    body = wait_body(at_cap, 7, "job-7")
    assert body.startswith(b'{"jsonrpc": "2.0", "id": 7,')
    sent = json.loads(body)["params"]
    assert (
        set(sent["arguments"]) == {"provider", "task_id", "timeout_s"} and len(sent["_meta"]["bench.example/pad"]) > 0
    )
    assert "pad" in json.loads(wait_body(over_cap, 7, "job-7"))["params"]["arguments"]
    # The accepted kind must stay under the server's body cap, the attack over it, or the rows measure nothing.
    assert len(body) <= MAX_BODY_BYTES < len(wait_body(over_cap, 7, "job-7"))
    assert len(wait_body(plain, 7, "job-7")) < 1024


def test_a_padded_call_is_told_apart_by_its_status_and_the_answer_with_its_id() -> None:
    def event(message: dict[str, object]) -> str:
        return f"event: message\ndata: {json.dumps(message)}\n\n"

    progress = event({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progress": 1}})
    timed_out = event({"jsonrpc": "2.0", "id": 3, "result": {"structuredContent": {"done": False, "timed_out": True}}})
    refused = event(
        {"jsonrpc": "2.0", "id": 3, "result": {"isError": True, "_meta": {ERROR_META: {"code": "invalid_argument"}}}}
    )
    finished = event(
        {"jsonrpc": "2.0", "id": 3, "result": {"structuredContent": {"done": True, "status": "succeeded"}}}
    )
    assert outcome(413, "", 3) == "refused"
    assert outcome(200, progress + timed_out, 3) == "held"
    assert outcome(200, refused, 3) == "invalid_argument"
    assert outcome(200, finished, 3) == "answered succeeded"
    assert outcome(200, progress + timed_out, 4) == "no answer"
    assert outcome(503, "", 3) == "HTTP 503"


def test_a_burst_is_right_only_when_every_call_had_its_kinds_outcome() -> None:
    kind = KINDS[-1]
    held = Burst(
        kind, rss_idle=10_000_000, rss_peak=30_000_000, outcomes=Counter({"held": PADDED_WAITS}), body_bytes=250_000
    )
    short = Burst(kind, 0, 0, Counter({"held": PADDED_WAITS - 1, "no answer": 1}), body_bytes=250_000)
    assert held.right() and not short.right()
    assert held.added_mb == pytest.approx(20.0) and held.per_body() == pytest.approx(2.0)


def test_a_stalled_connection_counts_as_closed_once_the_server_has_hung_up_on_it() -> None:
    ours, theirs = socket.socketpair()
    with ours:
        ours.setblocking(False)
        assert not closed_by_server(ours)
        theirs.sendall(b"x")
        assert not closed_by_server(ours)  # data is no hang-up
        theirs.close()
        ours.recv(1)
        assert closed_by_server(ours)
    assert (span([744, 744]), span([743, 744])) == ("744", "743-744")
