"""What every provider adapter is made of, and the parts they share.

An adapter is small: settings read from the environment, task id validation, a request builder, and a
pure parser from the provider's reply (status, headers, bytes) to a `JobState`. Where one request cannot
read the job (fal's result after its status, MiniMax's file after its query, Kling's second family), the
parser answers `Then`: the next request and the parser of its reply, built from what this reply said.
Every parser stays a pure function of one reply (plus what an earlier parser handed on). The common HTTP
answers (429, 5xx, redirects) are read once, here, for all of them; sending each request of a read and
converting transport errors happen once in `tools.service`, and bounding the body in `tools.wire`.
"""

from __future__ import annotations

import json
import math
import mimetypes
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any, ClassVar, Self, TypeVar
from urllib.parse import parse_qsl, quote, urlsplit

import httpx
from pydantic import BaseModel, ValidationError

from tools.errors import (
    AuthenticationFailed,
    InvalidTaskId,
    ProviderNotConfigured,
    ProviderProtocolError,
    ProviderUnavailable,
    TaskNotFound,
)
from tools.redact import Redactor
from tools.result import JobState, OutputKind, Status, format_utc

MAX_TASK_ID_LEN = 256

# A Retry-After beyond this is not read: it is garbage (or an overflow), not a pause to honour.
MAX_RETRY_AFTER_S = 86_400.0

# Letters, digits and a few separators that cannot change a URL's path, query or host.
SAFE_TASK_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~:-]*")

SHARED_STATUS_WORDS: Mapping[str, Status] = {
    **dict.fromkeys(
        ("queued", "pending", "in_queue", "waiting", "submitted", "starting", "created", "throttled"),
        "queued",
    ),
    **dict.fromkeys(("running", "processing", "in_progress", "generating", "started", "dreaming"), "running"),
    **dict.fromkeys(("succeeded", "success", "completed", "complete", "done", "finished", "succeed"), "succeeded"),
    **dict.fromkeys(("failed", "failure", "error", "fail", "timed_out", "rejected"), "failed"),
    **dict.fromkeys(("canceled", "cancelled", "aborted"), "canceled"),
}


def normalize_status(word: str, table: Mapping[str, Status] | None = None) -> Status:
    """The provider's status word, read case-insensitively: its own table first, then the shared words.

    A word in neither maps to running: as far as we know the job is not over, and the word stays visible in
    `provider_status`.
    """
    key = word.strip().lower()
    if table and key in table:
        return table[key]
    return SHARED_STATUS_WORDS.get(key, "running")


# What `json.loads` raises on bytes that are not JSON. RecursionError: a few kilobytes of nested brackets
# are deeper than the parser will go.
NOT_JSON = (ValueError, UnicodeDecodeError, RecursionError)


@dataclass(frozen=True)
class Reply:
    """A provider's HTTP answer, as the parsers see it."""

    status_code: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_response(cls, response: httpx.Response, body: bytes, *, date: datetime | None = None) -> Reply:
        """The reply as read from httpx: the first value of each header, since httpx joins repeats with ", "
        and no date survives that (uvicorn adds a Date of its own to an app's). `date` stands in for a missing
        `Date` header."""
        headers: dict[str, str] = {}
        for name, value in response.headers.multi_items():
            headers.setdefault(name.lower(), value)
        if date is not None:
            headers.setdefault("date", format_datetime(date, usegmt=True))
        return cls(response.status_code, body, headers)

    def json(self) -> Any:
        """The body as JSON, or `provider_protocol_error` saying what came instead."""
        try:
            return json.loads(self.body)
        except NOT_JSON:
            raise ProviderProtocolError(
                f"HTTP {self.status_code} with a body that is not JSON ({describe_body(self.body)})."
            ) from None


def describe_body(body: bytes) -> str:
    if not body.strip():
        return "empty"
    head = body[:200].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")):
        return "an HTML page"
    return f"{len(body)} bytes"


RequestBuilder = Callable[[httpx.AsyncClient, str], httpx.Request]
"""`build(client, task_id)`: a request of the read, for the validated id."""


@dataclass(frozen=True)
class Then:
    """The read of a job goes on: `build(client, task_id)` makes the next request, `parse` reads its reply.

    `parse` has the same contract as `Adapter.parse`: pure, a `JobState`, another `Then`, or a
    `GenResultError`. With `own_errors` the parser reads every HTTP code itself (fal's result call answers
    with the model's own status code); otherwise 429, 5xx and redirects are read for it, as for the first.
    """

    build: RequestBuilder
    parse: Callable[[Reply], JobState | Then]
    own_errors: bool = False


M = TypeVar("M", bound=BaseModel)


def parse_wire(model: type[M], data: Any, provider_name: str) -> M:
    """Read `data` as the provider's documented shape, or say it is not."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        fields = ", ".join(".".join(str(p) for p in e["loc"]) or "(top level)" for e in exc.errors()[:3])
        raise ProviderProtocolError(
            f"{provider_name} answered a shape we cannot read (problem at: {fields})."
        ) from None


def finite_number(value: object) -> float | None:
    """A JSON number, or a number written as a string, as a finite float; anything else is None.

    Providers echo numbers loosely (strings, nulls, overflowing integers, NaN); an unreadable field is dropped
    so the rest of the answer still reaches the agent.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


_KINDS: Mapping[str, OutputKind] = {"video": "video", "image": "image", "audio": "audio"}


def mime_of(url: str) -> str | None:
    """The MIME type a URL's path names by its extension (query and fragment aside), where it names one."""
    try:
        path = urlsplit(url).path
    except ValueError:  # `http://[x`: a provider's broken URL names no type
        return None
    return mimetypes.guess_type(path)[0]


_SIGNED_AT = "%Y%m%dT%H%M%SZ"


def presigned_url_expiry(url: str) -> str | None:
    """When a pre-signed URL stops working, as ISO-8601 UTC, where its query says so; else None.

    Reads AWS Signature V4 and S3-compatible stores (`X-Amz-Date` + `X-Amz-Expires` seconds), Google Cloud
    Storage V4 (`X-Goog-Date` + `X-Goog-Expires`), Volcengine/BytePlus TOS V4 (`X-Tos-Date` + `X-Tos-Expires`),
    and the older V2 style (`Expires=<unix seconds>`).
    """
    try:
        params = {key.lower(): value for key, value in parse_qsl(urlsplit(url).query)}
    except ValueError:
        return None
    for prefix in ("x-amz-", "x-goog-", "x-tos-"):
        signed, lifetime = params.get(prefix + "date"), params.get(prefix + "expires")
        if signed and lifetime:
            try:
                start = datetime.strptime(signed, _SIGNED_AT).replace(tzinfo=UTC)
                seconds = int(lifetime)
                return format_utc(start + timedelta(seconds=seconds)) if seconds >= 0 else None
            except (ValueError, OverflowError):
                return None
    epoch = params.get("expires")
    if epoch and epoch.isdigit():
        try:
            return format_utc(datetime.fromtimestamp(int(epoch), UTC))
        except (OverflowError, OSError, ValueError):
            return None
    return None


def kind_of(mime: str | None, default: OutputKind = "file") -> OutputKind:
    """`video`, `image` or `audio` from a MIME type's major part; `default` where it says nothing."""
    if not mime:
        return default
    return _KINDS.get(mime.split("/", 1)[0].strip().lower(), "file")


def parse_iso(value: object) -> datetime | None:
    """An ISO-8601 time as providers write it (`Z` or an offset, any fraction), aware; anything else None."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    # Python 3.11 takes at most six fraction digits: Go and .NET write seven or nine.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def duration_from(frames: float | None, fps: float | None) -> float | None:
    """Seconds of video from a frame count and a frame rate, to the hundredth, where both make sense."""
    if not frames or not fps or frames <= 0 or fps <= 0:
        return None
    return finite_number(round(frames / fps, 2))


def retry_after_seconds(value: str | None, date: str | None = None) -> float | None:
    """Retry-After as seconds: delta-seconds, or an HTTP date (RFC 9110 §10.2.3).

    A date is measured against the reply's own `Date` header, which keeps this a function of the reply
    (and immune to our clock disagreeing with theirs); the service stamps a reply that came without one
    with its own clock's time. A value that cannot be read, or asks for more than a day, is None.
    """
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        # A 400-digit header is a float's infinity; nothing past a day is a wait anyone means.
        seconds = float(value)
        return seconds if seconds <= MAX_RETRY_AFTER_S else None
    try:
        when = parsedate_to_datetime(value)
        sent = parsedate_to_datetime(date) if date else None
    except (TypeError, ValueError, OverflowError):
        return None
    if sent is None or when.tzinfo is None or sent.tzinfo is None:
        return None
    seconds = max(0.0, (when - sent).total_seconds())
    return seconds if seconds <= MAX_RETRY_AFTER_S else None


class Adapter(ABC):
    """One provider's API. Subclasses set the class attributes and the four abstract parts."""

    id: ClassVar[str]
    display_name: ClassVar[str]
    default_base_url: ClassVar[str]
    base_url_env: ClassVar[str]
    credential_hint: ClassVar[str]
    """How to configure it, e.g. "set TENSORPIX_API_KEY"."""
    account_page: ClassVar[str] = ""
    """Where a user sees the account's credits and plan, for the account-refused message."""
    example_task_id: ClassVar[str]
    """An id of the provider's own form, for descriptions, the demo and tests."""
    credential_envs: ClassVar[tuple[str, ...]]
    """The environment variables that hold its credentials, for configuration files and manifests."""
    setting_envs: ClassVar[tuple[str, ...]] = ()
    """Any other environment variable it reads (an endpoint to choose, say)."""

    def __init__(self, base_url: str, redactor: Redactor) -> None:
        self.base_url = base_url.rstrip("/")
        self.redact = redactor

    @classmethod
    def env_names(cls) -> tuple[str, ...]:
        """Every environment variable it reads: its credentials, its base URL and its other settings."""
        return (*cls.credential_envs, cls.base_url_env, *cls.setting_envs)

    @classmethod
    @abstractmethod
    def from_env(cls, env: Mapping[str, str], redactor: Redactor) -> Self:
        """Read this provider's settings; register every credential with the redactor."""

    @property
    @abstractmethod
    def configured(self) -> bool: ...

    @abstractmethod
    def build_request(self, client: httpx.AsyncClient, task_id: str) -> httpx.Request:
        """The first request that reads the job. `task_id` is already validated."""

    @abstractmethod
    def parse(self, reply: Reply) -> JobState | Then:
        """Pure: the provider's reply to the normalized state, the next request of the read (`Then`), or a
        `GenResultError`."""

    def parser_for(self, task_id: str) -> Callable[[Reply], JobState | Then]:
        """The parser of the first reply of a read of `task_id` (already validated): `parse`, unless what the
        reply means depends on the id itself (an id of a short form whose not-found sends the read on to
        another path, which the reply cannot name). The id is then what the first request hands on."""
        return self.parse

    def auth(self) -> httpx.Auth | None:
        """An httpx auth flow for providers whose credentials need requests of their own (login, refresh)."""
        return None

    def download_headers(self, url: str) -> Mapping[str, str]:
        """The headers a download of one of this provider's outputs at `url` needs: none, unless the provider
        serves its files only to its key (Veo). `tools.downloads` sends them only to the base URL's own
        scheme, host and port, and never on after a redirect."""
        return {}

    def validate_task_id(self, task_id: str) -> str:
        """The id as it will travel, or `invalid_task_id`. Providers with a stricter id format override."""
        return check_task_id(task_id, SAFE_TASK_ID, "letters, digits and . _ ~ : -")

    def require_configured(self) -> None:
        if not self.configured:
            raise ProviderNotConfigured(
                f"{self.display_name} has no credentials: {self.credential_hint}, then restart the server."
            )

    def url(self, *path: str) -> str:
        """`base_url` plus path segments, each percent-escaped so a task id stays one segment."""
        return self.base_url + "".join("/" + quote(segment, safe="") for segment in path)

    def common_errors(self, reply: Reply, detail: str = "") -> None:
        """The HTTP answers that mean the same at every provider, whatever the body says."""
        code = reply.status_code
        suffix = self.quoted(detail)
        retry_after = retry_after_seconds(reply.headers.get("retry-after"), reply.headers.get("date"))
        # The agent decides when to call again; the provider's own figure is the best it can have.
        asked = f" It asked for {math.ceil(retry_after)} s (Retry-After)." if retry_after is not None else ""
        if code == 429:
            raise ProviderUnavailable(
                f"{self.display_name} is rate limiting (HTTP 429). Wait and try again.{asked}{suffix}",
                retry_after=retry_after,
            )
        if code >= 500:
            raise ProviderUnavailable(
                f"{self.display_name} had a server error (HTTP {code}). Try again shortly.{asked}{suffix}",
                retry_after=retry_after,
            )
        if 300 <= code < 400:
            raise ProviderProtocolError(
                f"{self.display_name} answered with a redirect (HTTP {code}), which is not followed. "
                f"Check {self.base_url_env}."
            )

    def error_message(self, reply: Reply) -> str:
        """The provider's own words from an error body, where it has any, cleaned of secrets."""
        try:
            data = json.loads(reply.body)
        except NOT_JSON:
            return ""
        if not isinstance(data, dict):
            return ""
        for key in ("message", "messege", "detail", "error_description", "error"):
            value = data.get(key)
            if isinstance(value, str) and value.strip():
                # Redact before cutting: a cut could leave half a key that no longer matches.
                return self.redact(value.strip())[:300]
        return ""

    def not_found(self, task_id_hint: str = "") -> TaskNotFound:
        return TaskNotFound(
            f"{self.display_name} has no task with this id{task_id_hint}. Check the id and the provider; "
            "ids from another account or endpoint are not visible with these credentials."
        )

    def auth_failed(self, detail: str = "") -> AuthenticationFailed:
        return AuthenticationFailed(
            f"{self.display_name} rejected the credentials.{self.quoted(detail)} "
            f"Check {self.credential_hint.removeprefix('set ')}."
        )

    def account_refused(self, code: int, detail: str = "") -> AuthenticationFailed:
        """The credentials are known, but the account may not do this: no credits left, or a plan without API."""
        where = f" ({self.account_page})" if self.account_page else ""
        return AuthenticationFailed(
            f"{self.display_name} refused the account (HTTP {code}).{self.quoted(detail)} Check the credits and "
            f"plan of the account{where} and {self.credential_hint.removeprefix('set ')}, then check again."
        )

    def refuse_unless_ok(self, reply: Reply, *, not_found_hint: str, check: str) -> None:
        """The usual refusals of a JSON API that answers 200 for a job it can read: 401 the key, 402/403 the
        account, 404 no such job (`not_found_hint` says why one may be missing), any other code the provider's
        own words and what to `check`."""
        code = reply.status_code
        if code == 200:
            return
        if code == 401:
            raise self.auth_failed(self.error_message(reply))
        if code in (402, 403):
            raise self.account_refused(code, self.error_message(reply))
        if code == 404:
            raise self.not_found(not_found_hint)
        said = self.error_message(reply)
        words = f": {self.redact(said)[:300].rstrip('.')}" if said else " without a reason"
        raise ProviderProtocolError(f"{self.display_name} refused the request (HTTP {code}){words}. {check}")

    def quoted(self, detail: str) -> str:
        """ " The provider said: ..." for a message, cleaned of secrets and cut to a readable length."""
        words = self.redact(detail.strip())[:300].rstrip(".")
        return f" The provider said: {words}." if words else ""


class KeyedAdapter(Adapter):
    """A provider whose one credential is an API key in one environment variable."""

    api_key_env: ClassVar[str]

    def __init__(self, base_url: str, redactor: Redactor, api_key: str | None) -> None:
        super().__init__(base_url, redactor)
        self.api_key = api_key

    @classmethod
    def from_env(cls, env: Mapping[str, str], redactor: Redactor) -> Self:
        return cls(cls.base_url_from(env), redactor, cls.api_key_from(env, redactor))

    @classmethod
    def base_url_from(cls, env: Mapping[str, str]) -> str:
        return env_value(env, cls.base_url_env) or cls.default_base_url

    @classmethod
    def api_key_from(cls, env: Mapping[str, str], redactor: Redactor) -> str | None:
        key = env_value(env, cls.api_key_env)
        redactor.add(key)
        return key

    @property
    def configured(self) -> bool:
        return self.api_key is not None


def check_task_id(task_id: str, pattern: re.Pattern[str], described: str) -> str:
    """The id, or `invalid_task_id`. The length is checked before anything else looks at the id, and the id
    is never quoted back: the caller may have pasted a key into it, and an answer that echoed other ids but
    hid a configured secret would confirm a guess of it."""
    if len(task_id) > MAX_TASK_ID_LEN:
        raise InvalidTaskId(
            f"The task id is {len(task_id)} characters; at most {MAX_TASK_ID_LEN} are accepted. "
            "Pass the id exactly as the provider returned it."
        )
    if not task_id.strip():
        raise InvalidTaskId("The task id is empty: pass the id the provider returned when the job started.")
    if not pattern.fullmatch(task_id):
        raise InvalidTaskId(
            f"The task id has characters this provider's ids never have (allowed: {described}). "
            "Pass the id exactly as the provider returned it."
        )
    return task_id


def env_value(env: Mapping[str, str], name: str) -> str | None:
    """A setting's value; unset, blank, or still the shipped mcp.json's `<your ...>` placeholder is None.

    A placeholder left in a client's config is a provider the user did not set up: it should answer
    `provider_not_configured`, not send the placeholder as a key and report the key rejected. Only that
    form counts, so a real value that happens to sit in angle brackets (a password) is kept.
    """
    value = env.get(name, "").strip()
    if value.startswith("<") and value.endswith(">") and value[1:].lower().startswith("your "):
        return None
    return value or None
