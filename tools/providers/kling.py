"""Kling (official API): `GET {base}/videos/{family}/{task_id}` with a Bearer JWT signed for every request.

As PROVIDERS-MORE.md §5 records it (mirrors of the official docs, real captures) and the docs' error table:

- Credentials are a key pair. Each request carries a fresh HS256 JWT (`{"alg":"HS256","typ":"JWT"}`, claims
  `iss` = access key, `exp` = now + 1800, `nbf` = now - 5) signed with the secret key, made here with the
  standard library. Each token is registered with the redactor as a transient secret (a bounded set: a new
  one every request would otherwise grow it for ever) and never logged.
- Each task family has its own path, so an id is `{family}/{task_id}`; a bare id is read as `text2video`
  and, when that says not found, once more as `image2video` in the same read. `effects` lives at
  `/v1/videos/effects/{id}` like the rest. The path segment may also be the caller's `external_task_id`.
- Every answer is the envelope `{code, message, request_id, data}`; `code != 0` is an error whatever the HTTP
  status, even inside a 200, and is read by its documented meaning: 1000-1004 the token (1003/1004: not yet
  valid or expired, which for a token made a moment ago means this machine's clock is off), 1100-1103 and
  1304 the account, 1200-1202 the request, 1203 no such resource, 1300/1301 the platform's policies,
  1302/1303 rate and concurrency limits (retried), 5000-5002 the server (retried).
- A task is `submitted`, `processing`, `succeed` (that spelling) or `failed`, the reason in
  `task_status_msg`; a failed task is still `code: 0` in a 200. `task_result.videos[]` has `url` and
  `duration` as a string of seconds. No progress, ETA or size is given. Videos are cleared 30 days after
  creation (`created_at`, Unix milliseconds), which is as close to an expiry as the API says.
- Ids are 18-digit strings above 2^53 (or older base64-like ones): they stay strings throughout.

What is not documented, and chosen here [inf]: how an unknown task is answered (read as not found: HTTP 404
with no other code, or code 1203 under any status), and that the clock of the
token is this machine's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import mimetypes
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, NoReturn, Self
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from tools.errors import (
    AuthenticationFailed,
    InvalidTaskId,
    ProviderNotConfigured,
    ProviderProtocolError,
    ProviderUnavailable,
)
from tools.providers.base import (
    SAFE_TASK_ID,
    Adapter,
    Reply,
    Then,
    check_task_id,
    env_value,
    finite_number,
    normalize_status,
    parse_wire,
    retry_after_seconds,
)
from tools.redact import Redactor
from tools.result import JobError, JobState, Output, Status, format_utc

FAMILIES = ("text2video", "image2video", "multi-image2video", "video-extend", "lip-sync", "effects", "omni-video")
# A bare id is read as the first, then (on not found) as the second.
BARE_FAMILIES = ("text2video", "image2video")

TOKEN_LIFETIME_S = 1800
# The docs' own example starts the token's validity a little early, for clocks slightly apart.
TOKEN_LEEWAY_S = 5
_JWT_HEADER = {"alg": "HS256", "typ": "JWT"}

RETENTION = timedelta(days=30)

STATUS_WORDS: Mapping[str, Status] = {
    "submitted": "queued",
    "processing": "running",
    "succeed": "succeeded",
    "failed": "failed",
}

# A family, a slash, and an id of the shared safe form.
_COMPOUND_ID = re.compile(r"[a-z0-9-]+/[A-Za-z0-9][A-Za-z0-9._~:-]*")
_DESCRIBED = "letters, digits and . _ ~ : -, alone or after a family and a slash, e.g. image2video/867283741759111202"

_TOKEN_CODES = frozenset({1000, 1001, 1002})
_CLOCK_CODES = {1003: "is not valid yet", 1004: "has expired"}
_ACCOUNT_CODES = frozenset({1100, 1101, 1102, 1103, 1304})
_REQUEST_CODES = frozenset({1200, 1201, 1300, 1301})
_WRONG_PATH = 1202
_NOT_FOUND = 1203
_BUSY_CODES = frozenset({1302, 1303, 5000, 5001, 5002})
# Codes whose meaning outranks an HTTP status that would otherwise be retried (a 429 for an account in
# arrears is not worth waiting out) or read on its own.
_DECIDED_BY_CODE = _TOKEN_CODES | set(_CLOCK_CODES) | _ACCOUNT_CODES | _REQUEST_CODES | {_WRONG_PATH, _NOT_FOUND}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _compact_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def sign_jwt(access_key: str, secret_key: str, now: float) -> str:
    """The API token of the docs for the time `now` (Unix seconds): HS256 over the header and the claims."""
    issued = int(now)
    claims = {"iss": access_key, "exp": issued + TOKEN_LIFETIME_S, "nbf": issued - TOKEN_LEEWAY_S}
    signing_input = f"{_b64url(_compact_json(_JWT_HEADER))}.{_b64url(_compact_json(claims))}"
    signature = hmac.new(secret_key.encode(), signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{_b64url(signature)}"


def _whole_or_none(value: object) -> int | None:
    number = finite_number(value)
    return None if number is None else int(number)


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


# Fields that only add to an answer: one that cannot be read is dropped, not the answer with it.
_Millis = Annotated[int | None, BeforeValidator(_whole_or_none)]
_Text = Annotated[str | None, BeforeValidator(_text_or_none)]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", defer_build=True)


class _Video(_Wire):
    url: _Text = None
    duration: Annotated[float | None, BeforeValidator(finite_number)] = None


class _TaskResult(_Wire):
    videos: list[_Video] | None = None


# The ids in an answer (`task_id`, `videos[].id`) are not read: the task id stays the string the caller gave,
# so an 18-digit one never passes through a number.
class _Task(_Wire):
    task_status: str
    task_status_msg: _Text = None
    task_result: _TaskResult | None = None
    created_at: _Millis = None


class _Envelope(_Wire):
    message: _Text = None
    data: _Task | None = None


class _Code(_Wire):
    """The error part of the envelope, read from any body, however little of the rest is readable."""

    code: int | None = None
    message: _Text = None


def _code_of(body: bytes) -> tuple[int | None, str]:
    try:
        parsed = _Code.model_validate_json(body)
    except (ValidationError, ValueError, RecursionError):
        return None, ""
    return parsed.code, (parsed.message or "").strip()


class Kling(Adapter):
    id = "kling"
    display_name = "Kling"
    default_base_url = "https://api-singapore.klingai.com/v1"
    base_url_env = "KLING_BASE_URL"
    credential_hint = "set KLING_ACCESS_KEY and KLING_SECRET_KEY"
    credential_envs = ("KLING_ACCESS_KEY", "KLING_SECRET_KEY")
    example_task_id = "867283741759111202"
    account_page = "the Kling developer console, resource packs and billing"

    def __init__(
        self,
        base_url: str,
        redactor: Redactor,
        access_key: str | None,
        secret_key: str | None,
        now: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(base_url, redactor)
        self.access_key = access_key
        self.secret_key = secret_key
        self.now = now

    @classmethod
    def from_env(cls, env: Mapping[str, str], redactor: Redactor) -> Self:
        access_key = env_value(env, "KLING_ACCESS_KEY")
        secret_key = env_value(env, "KLING_SECRET_KEY")
        redactor.add(access_key)
        redactor.add(secret_key)
        return cls(env_value(env, cls.base_url_env) or cls.default_base_url, redactor, access_key, secret_key)

    @property
    def configured(self) -> bool:
        return self.access_key is not None and self.secret_key is not None

    def require_configured(self) -> None:
        # Half a key pair is the likelier slip than none: say which half is missing.
        pair = zip(self.credential_envs, (self.access_key, self.secret_key), strict=True)
        missing = [name for name, value in pair if not value]
        if missing:
            verb = "is" if len(missing) == 1 else "are"
            raise ProviderNotConfigured(
                f"Kling has no credentials: {' and '.join(missing)} {verb} not set. Set KLING_ACCESS_KEY and "
                "KLING_SECRET_KEY (the key pair from the Kling developer console; both are needed), then restart "
                "the server."
            )

    def validate_task_id(self, task_id: str) -> str:
        """`{family}/{task_id}` with a documented family, or a bare task id; each part checked on its own."""
        if "/" not in task_id:
            return check_task_id(task_id, SAFE_TASK_ID, _DESCRIBED)
        check_task_id(task_id, _COMPOUND_ID, _DESCRIBED)
        family = task_id.partition("/")[0]
        if family not in FAMILIES:
            raise InvalidTaskId(
                "The task id names a family Kling does not have. Pass the id as the create "
                "call returned it, alone (read as text2video, then image2video) or as family/task_id with one of: "
                f"{', '.join(FAMILIES)}."
            )
        return task_id

    def build_request(self, client: httpx.AsyncClient, task_id: str) -> httpx.Request:
        family, bare = _split(task_id)
        return self._request(client, family, bare)

    def parser_for(self, task_id: str) -> Callable[[Reply], JobState | Then]:
        if "/" in task_id:
            return self.parse
        fallback = BARE_FAMILIES[1]

        def parse_bare(reply: Reply) -> JobState | Then:
            if _not_found(reply):
                return Then(lambda client, bare_id: self._request(client, fallback, bare_id), self._parse_fallback)
            return self.parse(reply)

        return parse_bare

    def parse(self, reply: Reply) -> JobState:
        return self._read(reply, "")

    def _parse_fallback(self, reply: Reply) -> JobState:
        return self._read(reply, " as text2video or image2video (for another family pass family/task_id)")

    def _request(self, client: httpx.AsyncClient, family: str, task_id: str) -> httpx.Request:
        token = sign_jwt(self.access_key or "", self.secret_key or "", self.now())
        self.redact.add_transient(token)
        return client.build_request(
            "GET",
            self.url("videos", family, task_id),
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
        )

    def common_errors(self, reply: Reply, detail: str = "") -> None:
        # The docs pair each code with an HTTP status, and the code is the finer word: a 429 with 1102 (the
        # resource pack is used up) is the account refused, not a limit to wait out.
        if reply.status_code >= 400 and _code_of(reply.body)[0] in _DECIDED_BY_CODE:
            return
        super().common_errors(reply, detail)

    def _read(self, reply: Reply, not_found_hint: str) -> JobState:
        code, message = _code_of(reply.body)
        if _not_found(reply):
            raise self.not_found(not_found_hint)
        if code is not None and code != 0:
            raise self._coded(code, message, reply)
        if reply.status_code != 200:
            self._by_status(reply, message)
        envelope = parse_wire(_Envelope, reply.json(), self.display_name)
        if envelope.data is None:
            raise ProviderProtocolError(
                f"Kling answered without the task (no `data`).{self.quoted(envelope.message or '')} "
                f"Check {self.base_url_env}: it must end in /v1 of the Kling API."
            )
        return self._state(envelope.data)

    def _state(self, task: _Task) -> JobState:
        status = normalize_status(task.task_status, STATUS_WORDS)
        videos = [video for video in (task.task_result.videos or []) if video.url] if task.task_result else []
        if status == "succeeded" and not videos:
            # The task is done but its video is not listed yet: another read will bring it.
            status = "running"
        error = None
        reason = (task.task_status_msg or "").strip()
        if status == "failed" and reason:
            error = JobError(code=task.task_status.strip(), message=reason)
        expires_at = _expiry(task.created_at)
        return JobState(
            status=status,
            provider_status=task.task_status,
            outputs=tuple(_output(video, expires_at) for video in videos) if status == "succeeded" else (),
            error=error,
        )

    def _coded(self, code: int, message: str, reply: Reply) -> Exception:
        words = f"{message} [code {code}]" if message else f"code {code}"
        if code in _TOKEN_CODES:
            return self.auth_failed(words)
        if code in _CLOCK_CODES:
            return AuthenticationFailed(
                f"Kling says the token {_CLOCK_CODES[code]}.{self.quoted(words)} Each token is made for its request "
                "from this machine's clock, so the clock is off: set it right (NTP), then check again."
            )
        if code in _ACCOUNT_CODES:
            return self.account_refused(reply.status_code, words)
        if code in _BUSY_CODES:
            retry_after = retry_after_seconds(reply.headers.get("retry-after"), reply.headers.get("date"))
            what = "is limiting requests" if code in (1302, 1303) else "had a server error"
            return ProviderUnavailable(
                f"Kling {what} (HTTP {reply.status_code}).{self.quoted(words)} Wait and try again.",
                retry_after=retry_after,
            )
        if code == _WRONG_PATH:
            return ProviderProtocolError(
                f"Kling does not know this request (HTTP {reply.status_code}).{self.quoted(words)} "
                f"Check {self.base_url_env}: it must end in /v1 of the Kling API."
            )
        return ProviderProtocolError(
            f"Kling refused the request (HTTP {reply.status_code}).{self.quoted(words)} Check the task id: pass it "
            f"as the create call returned it, alone or as family/task_id. {self.base_url_env} sets the host."
        )

    def _by_status(self, reply: Reply, message: str) -> NoReturn:
        status = reply.status_code
        if status == 401:
            raise self.auth_failed(message)
        if status in (402, 403):
            raise self.account_refused(status, message)
        raise ProviderProtocolError(
            f"Kling answered HTTP {status}, which its query endpoint does not use.{self.quoted(message)} "
            f"Check {self.base_url_env}."
        )


def _split(task_id: str) -> tuple[str, str]:
    family, slash, bare = task_id.partition("/")
    return (family, bare) if slash else (BARE_FAMILIES[0], task_id)


def _not_found(reply: Reply) -> bool:
    code, _ = _code_of(reply.body)
    # A 404 whose code says something else (the path is wrong, the token is refused) is read by that code.
    return code == _NOT_FOUND or (reply.status_code == 404 and code in (None, 0))


def _expiry(created_at_ms: int | None) -> str | None:
    if created_at_ms is None or created_at_ms <= 0:
        return None
    try:
        created = datetime.fromtimestamp(created_at_ms / 1000, UTC)
        return format_utc(created + RETENTION)
    except (OverflowError, OSError, ValueError):
        return None


def _output(video: _Video, expires_at: str | None) -> Output:
    url = video.url or ""
    return Output(
        url=url,
        kind="video",
        # The documented outputs are MP4 files; a URL naming another type is taken at its word.
        mime_type=mimetypes.guess_type(urlsplit(url).path)[0] or "video/mp4",
        duration_s=video.duration,
        expires_at=expires_at,
    )
