"""Replicate predictions: `GET {base}/predictions/{id}` with `Authorization: Bearer <REPLICATE_API_TOKEN>`.

Statuses (docs): `starting` (booting; a long stay is a cold boot), `processing`, `succeeded`, `failed`
(`error` says why), `canceled` (one L: by the user, or the deadline passed after starting) and `aborted`
(the deadline passed before it started; missing from older SDK enums). `output` is whatever the model
returns: for video models usually one URL string, for some a list, for others an object of named files, so
every URL found in it, at any depth, is an output. There is no progress field; the SDK reads the last
tqdm line of `logs` (` 40%|████      | 20/50 [00:30<00:45]`), and so do we. No cost either:
`metrics.predict_time`, the seconds billed, is reported as the cost in those units.

API predictions lose their input, output, files and logs an hour after they finish (`data_removed`
becomes true): a succeeded prediction whose files are gone says so in `note` rather than reading as a
success with nothing, and the outputs of a fresh one carry `expires_at`, an hour after `completed_at`.
Errors are RFC 7807 problem details (`{type, title, status, detail}`); 429 says when the limit resets.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, field_validator

from tools.providers.base import (
    KeyedAdapter,
    Reply,
    check_task_id,
    finite_number,
    kind_of,
    mime_of,
    normalize_status,
    parse_iso,
    parse_wire,
)
from tools.result import Cost, JobError, JobState, Output, Status, format_utc

STATUS_WORDS: Mapping[str, Status] = {
    "starting": "queued",
    "processing": "running",
    "succeeded": "succeeded",
    "failed": "failed",
    "canceled": "canceled",
    "aborted": "canceled",
}

# Ids are 26 lowercase base32-like characters (`gm3qorzdhgbfurvjtvhg6dckhu`); any mix of letters and digits of
# a sane length is let through, since nothing else can change the request.
TASK_ID = re.compile(r"[A-Za-z0-9]{1,64}")

# The tqdm bar the SDK reads progress from: ` 40%|████      | 20/50 [00:30<00:45]`.
_TQDM = re.compile(r"(\d{1,3})%\|[^|\n]*\|\s*(\d+)/(\d+)")
# A failure message that starts with Replicate's error code (`E005: The input or output was flagged ...`).
_ERROR_CODE = re.compile(r"(E\d{3,4})\b")
# How long API predictions keep their files after they finish (docs: data retention).
RETENTION = timedelta(hours=1)


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", defer_build=True)


class _Metrics(_Wire):
    predict_time: float | None = None

    @field_validator("predict_time", mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        return finite_number(value)


class _Prediction(_Wire):
    status: str
    output: Any = None
    error: Any = None
    logs: str | None = None
    data_removed: bool | None = None
    completed_at: str | None = None
    metrics: _Metrics | None = None

    @field_validator("logs", "completed_at", mode="before")
    @classmethod
    def _text_only(cls, value: Any) -> Any:
        return value if isinstance(value, str) else None

    @field_validator("data_removed", "metrics", mode="before")
    @classmethod
    def _loose(cls, value: Any) -> Any:
        # An unreadable flag or block is no flag or block: the status still says where the job is.
        return value if isinstance(value, bool | dict) else None


class Replicate(KeyedAdapter):
    id = "replicate"
    display_name = "Replicate"
    default_base_url = "https://api.replicate.com/v1"
    base_url_env = "REPLICATE_BASE_URL"
    api_key_env = "REPLICATE_API_TOKEN"
    credential_hint = "set REPLICATE_API_TOKEN"
    credential_envs = ("REPLICATE_API_TOKEN",)
    example_task_id = "gm3qorzdhgbfurvjtvhg6dckhu"
    account_page = "replicate.com/account/billing"

    def validate_task_id(self, task_id: str) -> str:
        described = "letters and digits, such as gm3qorzdhgbfurvjtvhg6dckhu"
        return check_task_id(task_id, TASK_ID, described)

    def build_request(self, client: httpx.AsyncClient, task_id: str) -> httpx.Request:
        return client.build_request(
            "GET",
            self.url("predictions", task_id),
            headers={"Authorization": f"Bearer {self.api_key}", "Accept": "application/json"},
        )

    def parse(self, reply: Reply) -> JobState:
        self.refuse_unless_ok(
            reply,
            not_found_hint=" (predictions made outside the API, or deleted, are not visible)",
            check="Check the id: it is the prediction id the create call returned.",
        )
        prediction = parse_wire(_Prediction, reply.json(), self.display_name)
        status = normalize_status(prediction.status, STATUS_WORDS)
        progress = _tqdm_percent(prediction.logs) if status == "running" else None
        outputs: tuple[Output, ...] = ()
        note = None
        if status == "succeeded":
            expires = parse_iso(prediction.completed_at)
            expires_at = format_utc(expires + RETENTION) if expires is not None else None
            outputs = tuple(_output(url, expires_at) for url in dict.fromkeys(_urls(prediction.output)))
            if not outputs and prediction.data_removed:
                note = (
                    "Replicate removed this prediction's output files: API predictions keep them for one hour "
                    "after they finish. Run the model again to get new files."
                )
        error = None
        if status in ("failed", "canceled") and isinstance(prediction.error, str) and prediction.error.strip():
            message = prediction.error.strip()
            found = _ERROR_CODE.match(message)
            error = JobError(code=found.group(1) if found else prediction.status.strip().upper(), message=message)
        seconds = prediction.metrics.predict_time if prediction.metrics is not None else None
        return JobState(
            status=status,
            provider_status=prediction.status,
            progress=progress,
            outputs=outputs,
            error=error,
            cost=Cost(amount=seconds, unit="predict seconds") if seconds is not None and seconds >= 0 else None,
            note=note,
        )


def _tqdm_percent(logs: str | None) -> float | None:
    """The percent of the last tqdm bar in the logs, as the SDK reads it; None where there is none."""
    if not logs:
        return None
    bars = list(_TQDM.finditer(logs[-4096:]))
    if not bars:
        return None
    found = bars[-1]
    current, total = int(found.group(2)), int(found.group(3))
    if total > 0 and current <= total:
        return round(100 * current / total, 1)
    return min(100.0, float(found.group(1)))


def _urls(output: Any) -> Iterator[str]:
    """Every http(s) URL in a model's output: a string, a list, or an object of them, at any depth."""
    pending = [output]
    seen = 0
    while pending and seen < 10_000:
        value = pending.pop(0)
        seen += 1
        if isinstance(value, str):
            if value.startswith(("https://", "http://")):
                yield value
        elif isinstance(value, list):
            pending.extend(value)
        elif isinstance(value, dict):
            pending.extend(value.values())


def _output(url: str, expires_at: str | None) -> Output:
    mime = mime_of(url)
    return Output(url=url, kind=kind_of(mime), mime_type=mime, expires_at=expires_at)
