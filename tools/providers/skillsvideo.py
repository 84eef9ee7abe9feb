"""skills.video open platform: `GET {base}/generation/{id}` with `Authorization: Bearer <key>`.

As documented at docs.skills.video (api-reference/get-generation-result, http-status, sse, model pages):

- Two status vocabularies: QueueState (IN_QUEUE, IN_PROGRESS, COMPLETED, FAILED, CANCELED) on the result
  endpoint, and PredictionStatus (starting, processing, succeeded, failed, canceled) on some model pages.
- `data` is null until the job completes (PredictionStatus answers leave it out); a FAILED job carries a
  sanitized `code` and `message`; `usage` is `{total, subscription, permanent}` in credits.
- Only the image output is documented (`data.images[]`, with `data.image` repeating the first). Video and
  audio are read by analogy (`videos[]`/`video`, `audios[]`/`audio`), and a bare `data.url` or plain URL
  strings are accepted too, so an undocumented shape still yields its files.
- HTTP errors carry `{"error": <legacy>, "code": "<FAMILY>_<SUB>", "message": <sanitized>}`; older copies
  of the page show `error` and `message` only. The docs say to branch on `code`, and so do we, whatever the
  HTTP status: FAILED (502), TIMEOUT (504) and CONTENT_REJECTED (422) are the generation's end, a failed
  job; RATE_LIMITED (429) and PROVIDER_UNAVAILABLE (503) stay retryable, as their status says;
  INSUFFICIENT_CREDITS (402) is the account refused (`authentication_failed`); UNSUPPORTED_MODEL and
  INVALID_INPUT (400) quote the provider (`provider_protocol_error`). Any other answer is read by its HTTP
  status: 401/402/403 `authentication_failed`, 404 `task_not_found`, another 4xx `provider_protocol_error`.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Mapping
from typing import Annotated, Any

import httpx
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, model_validator

from tools.errors import ProviderProtocolError
from tools.providers.base import (
    KeyedAdapter,
    Reply,
    finite_number,
    normalize_status,
    parse_wire,
)
from tools.result import Cost, JobError, JobState, Output, OutputKind, Status

# The documented words of both enums; other spellings (CANCELLED, SUCCESS, ...) fall to the shared table.
STATUS_WORDS: Mapping[str, Status] = {
    "in_queue": "queued",
    "in_progress": "running",
    "completed": "succeeded",
    "failed": "failed",
    "canceled": "canceled",
    "starting": "queued",
    "processing": "running",
    "succeeded": "succeeded",
}


# Error codes are `<FAMILY>_<SUB>`; clients are to branch on them (docs: http-status).
_FAMILIES = ("VIDEO_GENERATION_", "IMAGE_GENERATION_", "TTS_GENERATION_")
# The sub-codes that say the generation itself ended: a failed job, whatever the HTTP status (502, 504, 422).
_GENERATION_ENDED = frozenset({"FAILED", "TIMEOUT", "CONTENT_REJECTED"})
# The sub-codes whose answer the code decides even on a 5xx, which `common_errors` would otherwise retry.
_DECIDED_BY_CODE = _GENERATION_ENDED | {"INSUFFICIENT_CREDITS", "UNSUPPORTED_MODEL", "INVALID_INPUT"}


def _whole_or_none(value: object) -> int | None:
    number = finite_number(value)
    return None if number is None else round(number)


# Media metadata beyond the documented image fields is guessed; a value we cannot read is dropped rather
# than sinking an otherwise good answer.
_Float = Annotated[float | None, BeforeValidator(finite_number)]
_Int = Annotated[int | None, BeforeValidator(_whole_or_none)]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", defer_build=True)


class _Media(_Wire):
    url: str
    file_name: str | None = None
    content_type: str | None = None
    width: _Int = None
    height: _Int = None
    duration: _Float = None
    fps: _Float = None
    size: _Int = None
    thumbnail_url: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _bare_url(cls, value: Any) -> Any:
        return {"url": value} if isinstance(value, str) else value


class _Data(_Wire):
    type: str | None = None
    videos: list[_Media] | None = None
    video: _Media | None = None
    images: list[_Media] | None = None
    image: _Media | None = None
    audios: list[_Media] | None = None
    audio: _Media | None = None
    url: str | None = None


class _Usage(_Wire):
    total: float | None = None
    subscription: float | None = None
    permanent: float | None = None

    @property
    def credits(self) -> float | None:
        if self.total is not None:
            return self.total
        if self.subscription is None and self.permanent is None:
            return None
        return (self.subscription or 0.0) + (self.permanent or 0.0)


class _Generation(_Wire):
    id: str | None = None
    status: str | None = None
    data: _Data | None = None
    usage: _Usage | None = None
    code: str | None = None
    message: str | None = None


class _ErrorBody(_Wire):
    code: str | None = None
    error: str | None = None
    message: str | None = None


class SkillsVideo(KeyedAdapter):
    id = "skillsvideo"
    display_name = "skills.video"
    default_base_url = "https://open.skills.video/api/v1"
    base_url_env = "SKILLSVIDEO_BASE_URL"
    api_key_env = "SKILLSVIDEO_API_KEY"
    credential_hint = "set SKILLSVIDEO_API_KEY"
    credential_envs = ("SKILLSVIDEO_API_KEY",)
    example_task_id = "gen_demo123"
    account_page = "skills.video dashboard, Billing/Credits"

    def build_request(self, client: httpx.AsyncClient, task_id: str) -> httpx.Request:
        return client.build_request(
            "GET",
            self.url("generation", task_id),
            headers={"Authorization": f"Bearer {self.api_key}", "Accept": "application/json"},
        )

    def common_errors(self, reply: Reply, detail: str = "") -> None:
        # The docs say to branch on `code`, not on the HTTP status: a 502 `*_FAILED` or a 504 `*_TIMEOUT` is
        # the generation's own end, not trouble to retry, so such a code reaches `parse` whatever the status.
        if reply.status_code >= 400 and _sub_code(_error_code(reply.body)) in _DECIDED_BY_CODE:
            return
        super().common_errors(reply, detail)

    def parse(self, reply: Reply) -> JobState:
        if reply.status_code not in (200, 202):
            return self._http_error(reply)
        gen = parse_wire(_Generation, reply.json(), self.display_name)
        if gen.status is None:
            said = self.quoted(self._words(gen.message, gen.code))
            raise ProviderProtocolError(f"skills.video answered HTTP {reply.status_code} without a status.{said}")
        status = normalize_status(gen.status, STATUS_WORDS)
        error = None
        if status in ("failed", "canceled") and (gen.code or gen.message):
            error = self._job_error(gen.code or gen.status.upper(), gen.message)
        credits = gen.usage.credits if gen.usage is not None else None
        succeeded = status == "succeeded"
        # No percent is ever reported, so none is given: `done` already says a finished job is finished.
        return JobState(
            status=status,
            provider_status=gen.status,
            outputs=self._outputs(gen.data) if succeeded else (),
            error=error,
            cost=None if credits is None else Cost(amount=credits, unit="credits"),
        )

    def _job_error(self, code: str, message: str | None) -> JobError:
        # A code alone still reads as a sentence: VIDEO_GENERATION_TIMEOUT -> "Video generation timeout."
        return JobError(code=code, message=message or f"{code.replace('_', ' ').capitalize()}.")

    def _http_error(self, reply: Reply) -> JobState:
        """An HTTP answer other than 200/202, read by its `code` first (`<FAMILY>_<SUB>`), then by its status.

        429, 5xx without a deciding code, and redirects never get here (`common_errors`).
        """
        status = reply.status_code
        code = _error_code(reply.body)
        message = self.error_message(reply)
        words = self._words(message, code)
        said = self.quoted(words)
        sub = _sub_code(code)
        if code and sub in _GENERATION_ENDED:
            # The generation itself ended: a failed job in the provider's words, as a FAILED status would be.
            return JobState(status="failed", provider_status=code, error=self._job_error(code, _message_of(reply)))
        if sub == "INSUFFICIENT_CREDITS" or status == 402:
            # Not a job state and not worth retrying: like a rejected key, the account behind the key is
            # refused service until the user acts on it, so it shares authentication_failed.
            raise self.account_refused(status, words)
        if status == 401:
            raise self.auth_failed(words)
        if status == 403:
            raise self.account_refused(status, words)
        if status == 404:
            raise self.not_found()
        if sub in ("UNSUPPORTED_MODEL", "INVALID_INPUT") or (400 <= status < 500 and said):
            raise ProviderProtocolError(
                f"skills.video refused the request (HTTP {status}).{said} Check the task id: pass the generation "
                "id exactly as the create call returned it."
            )
        raise ProviderProtocolError(
            f"skills.video answered HTTP {status}, which its result endpoint does not use.{said}"
        )

    def _words(self, message: str | None, code: str | None) -> str:
        """The provider's sanitized message with its machine-readable code (`quoted` cleans it of secrets)."""
        tagged = f"[{code}]" if code and code != message else None
        return " ".join(part for part in (message, tagged) if part)

    def _outputs(self, data: _Data | None) -> tuple[Output, ...]:
        if data is None:
            return ()
        groups: list[tuple[OutputKind, list[_Media] | None, _Media | None]] = [
            ("video", data.videos, data.video),
            ("image", data.images, data.image),
            ("audio", data.audios, data.audio),
        ]
        outputs: list[Output] = []
        for kind, many, single in groups:
            # The singular field repeats the plural list's first item: the list is the whole answer when present.
            for media in many if many else [single] if single else []:
                outputs.append(self._output(media, kind))
        if not outputs and data.url:
            outputs.append(Output(url=data.url, kind=_kind_of(data.type, data.url)))
        return tuple(outputs)

    def _output(self, media: _Media, kind: OutputKind) -> Output:
        mime = media.content_type or mimetypes.guess_type(media.file_name or media.url.split("?")[0])[0]
        return Output(
            url=media.url,
            kind=kind,
            mime_type=mime,
            width=media.width,
            height=media.height,
            fps=media.fps,
            duration_s=media.duration,
            size_bytes=media.size,
            thumbnail_url=media.thumbnail_url or None,
        )


def _error_code(body: bytes) -> str | None:
    """`code` from an error body, or the legacy `error` where an older deployment sends only that."""
    try:
        parsed = _ErrorBody.model_validate_json(body)
    except ValidationError:
        return None
    return parsed.code or parsed.error


def _sub_code(code: str | None) -> str | None:
    """The part of `<FAMILY>_<SUB>` after a documented family, e.g. CONTENT_REJECTED; None for other codes."""
    if code:
        for family in _FAMILIES:
            if code.upper().startswith(family):
                return code.upper().removeprefix(family)
    return None


def _message_of(reply: Reply) -> str | None:
    try:
        return _ErrorBody.model_validate_json(reply.body).message
    except ValidationError:
        return None


def _kind_of(declared: str | None, url: str) -> OutputKind:
    word = (declared or mimetypes.guess_type(url.split("?")[0])[0] or "").split("/")[0]
    return _KINDS.get(word.lower(), "file")


_KINDS: Mapping[str, OutputKind] = {"video": "video", "image": "image", "audio": "audio"}
