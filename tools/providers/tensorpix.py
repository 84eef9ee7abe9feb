"""TensorPix video generation: `GET {base}/video-gen/jobs/{id}/` with `Authorization: Token <key>`.

The API is Django REST Framework: ids are UUIDs, paths end in a slash (without it Django answers a redirect,
which we never follow), and errors are `{"detail": "..."}`. `status` is a plain string with no documented
values; the enhancement-jobs API of the same backend mentions `IN_QUEUE`, and the rest is read through the
shared vocabulary. `generated_video` stays null until the job is done; its `file` is a pre-signed URL that
expires (a fresh one comes with every read), so the expiry is read from the URL's own query.
`cost` is a decimal string in credits. No failure-reason field is documented; the common names are read if
the API sends one. The account is refused (`authentication_failed`) with 403 on plans without API access and
with a 400 whose words speak of Credits when they run out; any other 4xx quotes the provider.
"""

from __future__ import annotations

import json
import mimetypes
import re
from collections.abc import Mapping
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, field_validator

from tools.errors import ProviderProtocolError
from tools.providers.base import (
    NOT_JSON,
    KeyedAdapter,
    Reply,
    check_task_id,
    duration_from,
    finite_number,
    mime_of,
    normalize_status,
    parse_wire,
    presigned_url_expiry,
)
from tools.result import Cost, JobError, JobState, Output, Status

# What tells the documented 400 for running out of Credits from any other 400.
_CREDITS = re.compile(r"\bcredits?\b|\bbalance\b", re.IGNORECASE)

UUID_TASK_ID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")

# Only `IN_QUEUE` is documented (enhancement jobs); the other words come from the shared table.
STATUS_WORDS: Mapping[str, Status] = {"in_queue": "queued"}


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", defer_build=True)


class _GeneratedVideo(_Wire):
    name: str | None = None
    width: int | None = None
    height: int | None = None
    n_frames: int | None = None
    framerate: float | None = None
    size: int | None = None
    file: str | None = None
    thumbnail: str | None = None


class _Job(_Wire):
    status: str
    cost: str | float | None = None
    generated_video: _GeneratedVideo | None = None
    progress: float | None = None
    # Undocumented: read when present, ignored when they are not text.
    error: str | None = None
    error_message: str | None = None
    failure_reason: str | None = None
    detail: str | None = None

    @field_validator("error", "error_message", "failure_reason", "detail", mode="before")
    @classmethod
    def _text_only(cls, value: Any) -> Any:
        return value if isinstance(value, str) else None

    def reason(self) -> str | None:
        for text in (self.error, self.error_message, self.failure_reason, self.detail):
            if text and text.strip():
                return text.strip()
        return None


class TensorPix(KeyedAdapter):
    id = "tensorpix"
    display_name = "TensorPix"
    default_base_url = "https://backend.tensorpix.ai/api"
    base_url_env = "TENSORPIX_BASE_URL"
    api_key_env = "TENSORPIX_API_KEY"
    credential_hint = "set TENSORPIX_API_KEY"
    credential_envs = ("TENSORPIX_API_KEY",)
    example_task_id = "3c90c3cc-0d44-4b50-8888-8dd25736052a"
    account_page = "app.tensorpix.ai/billing"

    def validate_task_id(self, task_id: str) -> str:
        """A UUID in its canonical 8-4-4-4-12 form, sent lowercase (the form the API itself returns)."""
        described = "a UUID such as 3c90c3cc-0d44-4b50-8888-8dd25736052a"
        return check_task_id(task_id, UUID_TASK_ID, described).lower()

    def build_request(self, client: httpx.AsyncClient, task_id: str) -> httpx.Request:
        return client.build_request(
            "GET",
            # The trailing slash is part of the documented path: without it Django redirects.
            self.url("video-gen", "jobs", task_id) + "/",
            headers={"Authorization": f"Token {self.api_key}", "Accept": "application/json"},
        )

    def parse(self, reply: Reply) -> JobState:
        code = reply.status_code
        if code == 401:
            raise self.auth_failed(self.error_message(reply))
        if code == 404:
            raise self.not_found()
        if code != 200:
            said = self.error_message(reply) or _drf_errors(reply.body)
            # 403 is what plans without API access get; running out of credits is a 400 "with an appropriate
            # message" (docs: essentials/credits), whose words are all that tell it from another 400.
            if code in (402, 403) or (code == 400 and _CREDITS.search(said)):
                raise self.account_refused(code, said)
            if not said:
                raise ProviderProtocolError(f"TensorPix refused the request (HTTP {code}) without a reason.")
            words = self.redact(said)[:300].rstrip(".")
            raise ProviderProtocolError(
                f"TensorPix refused the request (HTTP {code}): {words}. Check the task id: it must be a video-gen "
                "job id as the create call returned it (enhancement jobs have their own API)."
            )
        job = parse_wire(_Job, reply.json(), self.display_name)
        status = normalize_status(job.status, STATUS_WORDS)
        video = job.generated_video
        url = video.file if video is not None else None
        if status == "running" and url:
            # No status list is documented, but the video is documented to appear only once the job is
            # done: a ready file outranks a word we could only read as "not over".
            status = "succeeded"
        elif status == "succeeded" and not url:
            # A null `file` means the video is not stored yet; another read will bring it.
            status = "running"
        error = None
        reason = job.reason() if status in ("failed", "canceled") else None
        if reason:
            error = JobError(code=job.status.strip().upper(), message=reason)
        progress = job.progress
        if progress is not None:
            progress = min(100.0, max(0.0, progress))
        return JobState(
            status=status,
            provider_status=job.status,
            progress=progress,
            outputs=(_output(video, url),) if status == "succeeded" and video is not None and url else (),
            error=error,
            cost=_credits(job.cost),
        )


def _drf_errors(body: bytes) -> str:
    """A Django REST Framework validation body's words (`{"field": ["..."]}`), where there is no `detail`."""
    try:
        data = json.loads(body)
    except NOT_JSON:
        return ""
    if not isinstance(data, dict):
        return ""
    words: list[str] = []
    for field, value in data.items():
        texts = [value] if isinstance(value, str) else value if isinstance(value, list) else []
        said = "; ".join(text.strip() for text in texts if isinstance(text, str) and text.strip())
        if said:
            words.append(said if field == "non_field_errors" else f"{field}: {said}")
    return " ".join(words)


def _output(video: _GeneratedVideo, url: str) -> Output:
    duration = duration_from(video.n_frames, video.framerate)
    return Output(
        url=url,
        kind="video",
        # The name is the user's title and may lack an extension; the URL's path ends in the stored file's.
        mime_type=mimetypes.guess_type(video.name or "")[0] or mime_of(url),
        width=video.width,
        height=video.height,
        fps=video.framerate,
        frames=video.n_frames,
        duration_s=duration,
        size_bytes=video.size,
        thumbnail_url=video.thumbnail,
        expires_at=presigned_url_expiry(url),
    )


def _credits(cost: str | float | None) -> Cost | None:
    amount = None if cost is None else finite_number(cost)
    return None if amount is None else Cost(amount=amount, unit="credits")

    return None
