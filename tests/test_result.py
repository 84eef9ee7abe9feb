from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

from tools.result import Cost, GenerationResult, JobState, Output, format_utc


def test_compact_text_is_the_structured_content_on_one_line_without_nulls() -> None:
    state = JobState(
        status="succeeded",
        provider_status="COMPLETED",
        progress=100,
        outputs=(Output(url="https://x/y.mp4", kind="video", width=1280, height=720),),
        cost=Cost(amount=12, unit="credits"),
    )
    result = GenerationResult.from_state("tensorpix", "abc", state, datetime(2026, 11, 22, 10, 0, 3, tzinfo=UTC))

    text = result.compact_json()

    assert "\n" not in text and ": " not in text and "null" not in text
    assert json.loads(text) == result.structured()
    assert result.done is True
    assert json.loads(text)["checked_at"] == "2026-11-22T10:00:03Z"


def test_only_succeeded_failed_and_canceled_are_done() -> None:
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    done = {
        status: GenerationResult.from_state("p", "t", JobState(status=status, provider_status=status), moment).done
        for status in ("queued", "running", "succeeded", "failed", "canceled")
    }
    assert done == {"queued": False, "running": False, "succeeded": True, "failed": True, "canceled": True}


def test_checked_at_is_always_utc_with_a_z() -> None:
    paris = timezone(timedelta(hours=1))
    assert format_utc(datetime(2026, 11, 22, 11, 0, 0, tzinfo=paris)) == "2026-11-22T10:00:00Z"


def test_the_declared_output_schema_lists_every_contract_field() -> None:
    fields = set(GenerationResult.model_json_schema()["properties"])
    contract = {
        "provider",
        "task_id",
        "status",
        "done",
        "provider_status",
        "progress",
        "eta_s",
        "outputs",
        "error",
        "cost",
        "checked_at",
        "elapsed_s",
        "polls",
        "timed_out",
    }
    assert contract <= fields


def test_whole_percent_and_eta_are_written_without_a_fraction() -> None:
    state = JobState(status="running", provider_status="processing", progress=45.0, eta_s=12.5)
    result = GenerationResult.from_state("modelslab", "148", state, datetime(2026, 1, 1, tzinfo=UTC))
    assert '"progress":45,' in result.compact_json()
    assert '"eta_s":12.5' in result.compact_json()
