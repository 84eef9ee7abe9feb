"""MiniMax Hailuo video (v1): `GET {base}/query/video_generation?task_id={id}`, then on `Success`
`GET {base}/files/retrieve?file_id={file_id}` for the download URL; `Authorization: Bearer <key>` on both.

As documented (platform.minimax.io OpenAPI and error-code page, MiniMax-AI/MiniMax-MCP):

- Statuses are TitleCase: `Preparing`, `Queueing`, `Processing`, `Success`, `Fail` (one aggregator writes
  `Failed`; both are read). No progress, ETA, cost or cancel.
- On `Success` the query reply carries `file_id` (a string there; an int64 number in the file reply) and
  `video_width`/`video_height`; the file reply carries `download_url`, valid for 9 hours, `bytes` and
  `filename`. Both ids travel as a query parameter: each is checked to be digits before it goes anywhere.
- Errors come inside HTTP 200 as `base_resp.status_code != 0`, with the documented codes: 1004 and 2049 the
  key rejected (a key works only at its own region's host, global api.minimax.io or mainland api.minimaxi.com,
  so the message says which to set); 1008 and 2038 the account refused; 1002, 1039 and 1041 rate limits, and
  1000, 1001, 1024 and 1033 server trouble, all to retry; 2013 invalid params, which for a query of one id
  means no such task; 1026 and 1027 (sensitive input, output) a failed job. Any other code quotes MiniMax.
"""

from __future__ import annotations

import functools
import mimetypes
import re
from collections.abc import Mapping
from datetime import timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, field_validator

from tools.errors import AuthenticationFailed, GenResultError, ProviderProtocolError, ProviderUnavailable
from tools.providers.base import (
    KeyedAdapter,
    Reply,
    Then,
    check_task_id,
    finite_number,
    mime_of,
    normalize_status,
    parse_wire,
    presigned_url_expiry,
)
from tools.result import JobError, JobState, Output, Status, format_utc

# Task ids and file ids are decimal numbers; nothing else may reach a query string.
_DIGITS = re.compile(r"[0-9]{1,32}")

STATUS_WORDS: Mapping[str, Status] = {
    "preparing": "queued",
    "queueing": "queued",
    "processing": "running",
    "success": "succeeded",
    "fail": "failed",
    "failed": "failed",
}

URL_LIFETIME = timedelta(hours=9)

GLOBAL_BASE_URL = "https://api.minimax.io/v1"
MAINLAND_BASE_URL = "https://api.minimaxi.com/v1"

_KEY_REJECTED = frozenset({1004, 2049})
_ACCOUNT_REFUSED = frozenset({1008, 2038})
_RATE_LIMITED = frozenset({1002, 1039, 1041})
_SERVER_TROUBLE = frozenset({1000, 1001, 1024, 1033})
_INVALID_PARAMS = 2013
_JOB_FAILED = frozenset({1026, 1027})


def _whole_or_none(value: Any) -> int | None:
    number = finite_number(value)
    return None if number is None or number < 0 or number != int(number) else int(number)


def _digits_or_none(value: Any) -> str | None:
    """A file id as sent in either reply (a string of digits, or a JSON integer), as digits; else None."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        value = str(value)
    return value if isinstance(value, str) and _DIGITS.fullmatch(value) else None


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", defer_build=True)


class _BaseResp(_Wire):
    status_code: int | None = None
    status_msg: str | None = None

    @field_validator("status_code", mode="before")
    @classmethod
    def _code(cls, value: Any) -> Any:
        return _whole_or_none(value)

    @field_validator("status_msg", mode="before")
    @classmethod
    def _msg(cls, value: Any) -> Any:
        return value if isinstance(value, str) else None


class _Answer(_Wire):
    base_resp: _BaseResp | None = None


class _Query(_Answer):
    status: str | None = None
    file_id: str | None = None
    video_width: int | None = None
    video_height: int | None = None

    @field_validator("status", mode="before")
    @classmethod
    def _status(cls, value: Any) -> Any:
        return value if isinstance(value, str) and value.strip() else None

    @field_validator("file_id", mode="before")
    @classmethod
    def _file_id(cls, value: Any) -> Any:
        return _digits_or_none(value)

    @field_validator("video_width", "video_height", mode="before")
    @classmethod
    def _size(cls, value: Any) -> Any:
        return _whole_or_none(value)


class _File(_Wire):
    download_url: str | None = None
    bytes: int | None = None
    filename: str | None = None

    @field_validator("download_url", "filename", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return value if isinstance(value, str) and value.strip() else None

    @field_validator("bytes", mode="before")
    @classmethod
    def _bytes(cls, value: Any) -> Any:
        return _whole_or_none(value)


class _FileAnswer(_Answer):
    file: _File | None = None


class MiniMax(KeyedAdapter):
    id = "minimax"
    display_name = "MiniMax"
    default_base_url = GLOBAL_BASE_URL
    base_url_env = "MINIMAX_BASE_URL"
    api_key_env = "MINIMAX_API_KEY"
    credential_hint = "set MINIMAX_API_KEY"
    credential_envs = ("MINIMAX_API_KEY",)
    example_task_id = "176843862716480"
    account_page = "platform.minimax.io, Account/Billing"

    def validate_task_id(self, task_id: str) -> str:
        return check_task_id(task_id, _DIGITS, "digits only, e.g. 176843862716480")

    def build_request(self, client: httpx.AsyncClient, task_id: str) -> httpx.Request:
        # The id goes as a query parameter: httpx encodes it, and it was checked to be digits anyway.
        return client.build_request(
            "GET", self.url("query", "video_generation"), params={"task_id": task_id}, headers=self._headers()
        )

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}", "Accept": "application/json"}

    def parse(self, reply: Reply) -> JobState | Then:
        query = parse_wire(_Query, self._answer(reply), self.display_name)
        code, said = _base_resp(query)
        if code in _JOB_FAILED or (code != 0 and query.status is not None and _failed(query.status)):
            return JobState(
                status="failed",
                provider_status=query.status or "Fail",
                error=JobError(code=str(code), message=said or "The generation failed."),
            )
        if code != 0:
            raise self._error(code, said, "task")
        if query.status is None:
            raise ProviderProtocolError("MiniMax answered a task query without a status.")
        status = normalize_status(query.status, STATUS_WORDS)
        if status == "failed":
            return JobState(status="failed", provider_status=query.status)
        if status != "succeeded":
            return JobState(status=status, provider_status=query.status)
        file_id = query.file_id
        if file_id is None:
            raise ProviderProtocolError("MiniMax said the task succeeded but gave no file id (digits) to fetch.")
        return Then(
            build=functools.partial(self._file_request, file_id=file_id),
            parse=functools.partial(self.parse_file, query.status, query.video_width, query.video_height),
        )

    def _file_request(self, client: httpx.AsyncClient, task_id: str, file_id: str) -> httpx.Request:
        return client.build_request(
            "GET", self.url("files", "retrieve"), params={"file_id": file_id}, headers=self._headers()
        )

    def parse_file(self, word: str, width: int | None, height: int | None, reply: Reply) -> JobState:
        """The file reply of a succeeded task; `word`, `width` and `height` come from its query reply."""
        answer = parse_wire(_FileAnswer, self._answer(reply), self.display_name)
        code, said = _base_resp(answer)
        if code != 0:
            raise self._error(code, said, "file")
        video = answer.file
        if video is None or video.download_url is None:
            raise ProviderProtocolError("MiniMax answered the file lookup without a download_url.")
        url = video.download_url
        output = Output(
            url=url,
            kind="video",
            mime_type=mimetypes.guess_type(video.filename or "")[0] or mime_of(url) or "video/mp4",
            width=width,
            height=height,
            size_bytes=video.bytes,
            expires_at=presigned_url_expiry(url) or _nine_hours_after(reply.headers.get("date")),
        )
        return JobState(status="succeeded", provider_status=word, outputs=(output,))

    def _answer(self, reply: Reply) -> Any:
        """The JSON of a 200; any other HTTP answer as the error it is (429, 5xx, 3xx are read before this)."""
        code = reply.status_code
        if code == 200:
            return reply.json()
        said = self.error_message(reply) or _status_msg(reply)
        if code in (401, 403):
            raise self._key_rejected(said)
        if code == 404:
            raise self.not_found()
        raise ProviderProtocolError(f"MiniMax answered HTTP {code}, which its API does not use.{self.quoted(said)}")

    def _error(self, code: int, said: str, what: str) -> GenResultError:
        """A non-zero `base_resp.status_code` as the error the error-code page says it is."""
        # Redacted before it is cut or quoted: MiniMax may echo the key it was sent.
        said = self.redact(said)[:300]
        words = f"{said} ({code})" if said else f"error code {code}"
        if code in _KEY_REJECTED:
            return self._key_rejected(words)
        if code in _ACCOUNT_REFUSED:
            return AuthenticationFailed(
                f"MiniMax refused the account.{self.quoted(words)} Check the balance and the real-name verification "
                f"of the account ({self.account_page}) and MINIMAX_API_KEY, then check again."
            )
        if code in _RATE_LIMITED:
            return ProviderUnavailable(f"MiniMax is rate limiting ({words}). Wait and try again.")
        if code in _SERVER_TROUBLE:
            return ProviderUnavailable(f"MiniMax had trouble answering ({words}). Try again shortly.")
        if code == _INVALID_PARAMS and what == "task":
            return self.not_found(f" ({words})")
        if code == _INVALID_PARAMS:
            return ProviderProtocolError(
                f"MiniMax has no file for the id its own task query gave ({words}). Check the "
                "task again: the file may have been removed."
            )
        return ProviderProtocolError(f"MiniMax refused the {what} lookup.{self.quoted(words)}")

    def _key_rejected(self, words: str) -> AuthenticationFailed:
        """Keys are per region: a key from the other platform is rejected as invalid, so say which host to use."""
        host = urlsplit(self.base_url).hostname or ""
        if host == "api.minimaxi.com":
            other = f"a key from the global platform (minimax.io) needs MINIMAX_BASE_URL={GLOBAL_BASE_URL}"
        elif host == "api.minimax.io":
            other = f"a key from the mainland platform (minimaxi.com) needs MINIMAX_BASE_URL={MAINLAND_BASE_URL}"
        else:
            other = f"global keys use {GLOBAL_BASE_URL}, mainland keys {MAINLAND_BASE_URL} (MINIMAX_BASE_URL)"
        return AuthenticationFailed(
            f"MiniMax rejected the key.{self.quoted(words)} Check MINIMAX_API_KEY; a MiniMax key works only at its "
            f"own region's host ({self.base_url} now): {other}."
        )


def _base_resp(answer: _Answer) -> tuple[int, str]:
    """The answer's `base_resp` code (0 when it says nothing) and words."""
    resp = answer.base_resp
    if resp is None:
        return 0, ""
    return resp.status_code or 0, (resp.status_msg or "").strip()


def _failed(word: str) -> bool:
    return normalize_status(word, STATUS_WORDS) == "failed"


def _status_msg(reply: Reply) -> str:
    try:
        answer = _Answer.model_validate_json(reply.body)
    except ValueError:
        return ""
    return _base_resp(answer)[1]


def _nine_hours_after(date: str | None) -> str | None:
    """The documented lifetime of a download URL, counted from the reply's own Date (a pure function of it)."""
    if not date:
        return None
    try:
        sent = parsedate_to_datetime(date)
    except (TypeError, ValueError, OverflowError):
        return None
    if sent.tzinfo is None:
        return None
    try:
        return format_utc(sent + URL_LIFETIME)
    except OverflowError:
        return None
