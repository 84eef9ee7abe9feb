"""Runway developer API: `GET {base}/tasks/{id}` with `Authorization: Bearer <RUNWAYML_API_SECRET>` and the
required `X-Runway-Version: 2024-11-06`.

The task is a union on `status` (SDK): `PENDING`, `THROTTLED` (accepted, waiting for concurrency: not a
failure), `RUNNING` with `progress` (a float the SDK gives no scale; the API's is 0-1, so it is scaled to
percent, and a value above 1 is read as a percent already), `SUCCEEDED` with `output[]` URLs that expire
within 24-48 h (re-fetched on every read), `FAILED` with `failure` and an optional `failureCode`
(`SAFETY.INPUT.TEXT`, `INTERNAL.BAD_OUTPUT.CODE01`, ...), and `CANCELLED` (two Ls: cancelled or deleted).
A deleted task is a 404. Output URLs carry a signed `_jwt` whose `exp` claim says when they stop working;
it is read, unverified, for `expires_at`. `previewUrls` (thumbnails, read by Runway's own MCP server) are
paired with the outputs. Errors are `{"error": "..."}`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, field_validator

from tools.providers.base import (
    NOT_JSON,
    KeyedAdapter,
    Reply,
    check_task_id,
    finite_number,
    kind_of,
    mime_of,
    normalize_status,
    parse_wire,
)
from tools.providers.tensorpix import UUID_TASK_ID
from tools.result import JobError, JobState, Output, Status, format_utc

API_VERSION = "2024-11-06"

STATUS_WORDS: Mapping[str, Status] = {
    "pending": "queued",
    "throttled": "queued",
    "running": "running",
    "succeeded": "succeeded",
    "failed": "failed",
    "cancelled": "canceled",
}


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", defer_build=True)


class _Task(_Wire):
    status: str
    progress: float | None = None
    output: list[Any] | None = None
    previewUrls: list[Any] | None = None
    failure: str | None = None
    failureCode: str | None = None

    @field_validator("progress", mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        return finite_number(value)

    @field_validator("output", "previewUrls", mode="before")
    @classmethod
    def _list_only(cls, value: Any) -> Any:
        return value if isinstance(value, list) else None

    @field_validator("failure", "failureCode", mode="before")
    @classmethod
    def _text_only(cls, value: Any) -> Any:
        return value if isinstance(value, str) else None


class Runway(KeyedAdapter):
    id = "runway"
    display_name = "Runway"
    default_base_url = "https://api.dev.runwayml.com/v1"
    base_url_env = "RUNWAY_BASE_URL"
    api_key_env = "RUNWAYML_API_SECRET"
    credential_hint = "set RUNWAYML_API_SECRET"
    credential_envs = ("RUNWAYML_API_SECRET",)
    example_task_id = "182bd5e5-6e1a-4fe4-a799-aa6d9a6ab26e"
    account_page = "dev.runwayml.com (Billing)"

    def validate_task_id(self, task_id: str) -> str:
        described = "a UUID such as 182bd5e5-6e1a-4fe4-a799-aa6d9a6ab26e"
        return check_task_id(task_id, UUID_TASK_ID, described).lower()

    def build_request(self, client: httpx.AsyncClient, task_id: str) -> httpx.Request:
        return client.build_request(
            "GET",
            self.url("tasks", task_id),
            headers={
                "Authorization": f"Bearer {self.api_key}",
                "X-Runway-Version": API_VERSION,
                "Accept": "application/json",
            },
        )

    def parse(self, reply: Reply) -> JobState:
        self.refuse_unless_ok(
            reply,
            not_found_hint=" (a deleted or cancelled task cannot be fetched again)",
            check="Check the id (a task UUID as the create call returned it) and RUNWAY_BASE_URL (the API is "
            "api.dev.runwayml.com).",
        )
        task = parse_wire(_Task, reply.json(), self.display_name)
        status = normalize_status(task.status, STATUS_WORDS)
        progress = None
        if status == "running" and task.progress is not None and task.progress >= 0:
            progress = min(100.0, task.progress * 100 if task.progress <= 1 else task.progress)
        outputs: tuple[Output, ...] = ()
        if status == "succeeded":
            urls = [url for url in task.output or [] if isinstance(url, str) and url.strip()]
            previews = [url for url in task.previewUrls or [] if isinstance(url, str)]
            outputs = tuple(_output(url, previews[i] if i < len(previews) else None) for i, url in enumerate(urls))
        error = None
        if status == "failed" and (task.failure or task.failureCode):
            error = JobError(code=task.failureCode or "FAILED", message=task.failure or task.failureCode or "")
        return JobState(status=status, provider_status=task.status, progress=progress, outputs=outputs, error=error)


def _output(url: str, thumbnail: str | None) -> Output:
    mime = mime_of(url)
    return Output(
        url=url, kind=kind_of(mime, "video"), mime_type=mime, thumbnail_url=thumbnail, expires_at=jwt_expiry(url)
    )


def jwt_expiry(url: str) -> str | None:
    """When a URL signed with a `_jwt` query stops working: the token's `exp` claim, read without verifying."""
    token = dict(parse_qsl(urlsplit(url).query)).get("_jwt")
    if not token or token.count(".") != 2:
        return None
    payload = token.split(".")[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (binascii.Error, *NOT_JSON):
        return None
    exp = finite_number(claims.get("exp")) if isinstance(claims, dict) else None
    if exp is None:
        return None
    try:
        return format_utc(datetime.fromtimestamp(exp, UTC))
    except (OverflowError, OSError, ValueError):
        return None
