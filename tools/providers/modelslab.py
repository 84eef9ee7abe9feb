"""ModelsLab: `POST {base}/v6/video/fetch/{id}` (or the enterprise `/v1/enterprise/video/fetch/{id}`).

There is no auth header: the API key travels in the JSON body, `{"key": "..."}`. Ids are int64. The status
enum is `success`, `processing`, `error`, and the docs' own polling sample also checks `failed`; both
failure words are terminal. `processing` carries `eta` (seconds), `fetch_result` and `future_links`;
`success` carries `output[]`, its CDN mirrors in `proxy_links[]`, `generationTime` and `meta` (the echoed
request parameters: `width`, `height`, `num_frames`, `fps`, `output_type`, ...). No cost is reported.

Errors are `{"status": "error", "message": "..."}`, on legacy endpoints spelled `messege`, and the body
decides: an HTTP 200 can carry `status: error`. Such a body is a failed job unless its words are the
documented ones for a refused key or an unknown id, which are tool errors instead. The documented HTTP
codes for the fetch are 400, 401, 404 ("Video not found") and 500; 402/403 mean credits or plan (the
account is refused: `authentication_failed`), and another 4xx quotes the provider; 429 may name
`retry_after` in the body.

Outputs: `output` holds the files; `proxy_links` mirrors the same files on a CDN (the docs' own example
repeats the very same URL), so listing both would show every file twice. The result lists `output`, falls
back to `proxy_links` when `output` is empty, and then to `future_links`, which on success is where the
file now is. A `.gif` (`output_type: gif`) is the video result of a video model, so it is `kind: video`
with `mime_type: image/gif`.
"""

from __future__ import annotations

import json
import math
import mimetypes
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Annotated, Any, Self

import httpx
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from tools.errors import InvalidTaskId, ProviderProtocolError
from tools.providers.base import (
    NOT_JSON,
    KeyedAdapter,
    Reply,
    check_task_id,
    duration_from,
    env_value,
    finite_number,
    normalize_status,
    parse_wire,
)
from tools.redact import Redactor
from tools.result import JobError, JobState, Output, OutputKind, Status

STATUS_WORDS: Mapping[str, Status] = {
    "success": "succeeded",
    "processing": "running",
    "error": "failed",
    "failed": "failed",
}

ENDPOINT_ENV = "MODELSLAB_ENDPOINT"
ENDPOINT_PATHS: Mapping[str, tuple[str, ...]] = {
    "v6": ("v6", "video", "fetch"),
    "enterprise": ("v1", "enterprise", "video", "fetch"),
}

INT64_MAX = 2**63 - 1
_DIGITS = re.compile(r"[0-9]+")

# ModelsLab has no error codes, only sentences. The HTTP code comes first (401, 404); in a body these read
# only the documented wording ("Invalid API key", a missing `key`, "Video not found", a request or id not
# found), so that a generation that failed for any other reason ("No video was generated: ...", "Invalid
# image key frame", "Model not found for this request") stays a failed job.
_KEY_REFUSED = re.compile(
    r"\b(invalid|wrong|incorrect|revoked|expired)\s+api[\s_-]?key\b"
    r"|\bapi[\s_-]?key\s+(is\s+|has\s+been\s+)?(required|missing|invalid|not\s+valid|revoked|expired)\b"
    r"|^\W*(the\s+)?[`'\"]?key[`'\"]?\s+(field\s+)?(is\s+)?(required|missing)\b"
    r"|\bmissing\s+(the\s+)?[`'\"]?(api[\s_-]?)?key[`'\"]?(\s+(parameter|field))?\W*$"
    r"|^\W*(unauthori[sz]ed|unauthenticated)\W*$",
    re.IGNORECASE,
)
_NOT_FOUND = re.compile(
    r"^\W*(the\s+)?(video|request|fetch\s+request|id|task)(\s+id)?\s+(was\s+)?not\s+found\b"
    r"|^\W*no\s+(such\s+)?(video|request)\s+(found|exists)\b"
    r"|^\W*invalid\s+(request\s+|video\s+)?id\W*$",
    re.IGNORECASE,
)
# The documented refusals of an account (error-codes page): out of credits, or a feature beyond the plan.
_ACCOUNT_REFUSED = re.compile(r"\binsufficient\s+credits?\b|\brequires\s+a\s+\w+\s+subscription\b", re.IGNORECASE)

_MESSAGE_LIMIT = 300


def _urls(value: object) -> list[str]:
    # The legacy processing example sends `"output": ""`; a lone URL string is read the same generous way.
    if isinstance(value, str):
        return [value.strip()] if value.strip() else []
    if isinstance(value, list):
        return [item.strip() for item in value if isinstance(item, str) and item.strip()]
    return []


def _number(value: object) -> float | None:
    # `meta` echoes request parameters as the caller sent them, so numbers may arrive as strings or nulls.
    number = finite_number(value)
    return number if number is not None and number >= 0 else None


def _object(value: object) -> object:
    # PHP serializes an empty `meta` as `[]`.
    return value if isinstance(value, dict) else None


_Urls = Annotated[list[str], BeforeValidator(_urls)]
_Number = Annotated[float | None, BeforeValidator(_number)]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", defer_build=True)


class _Meta(_Wire):
    width: _Number = None
    height: _Number = None
    num_frames: _Number = None
    fps: _Number = None


class _Fetch(_Wire):
    status: str
    eta: _Number = None
    output: _Urls = Field(default_factory=list)
    proxy_links: _Urls = Field(default_factory=list)
    future_links: _Urls = Field(default_factory=list)
    meta: Annotated[_Meta | None, BeforeValidator(_object)] = None
    message: Any = None
    messege: Any = None

    def said(self) -> str:
        """The provider's reason, from `message` or the legacy `messege`; validation errors come as objects."""
        for value in (self.message, self.messege):
            if isinstance(value, str) and value.strip():
                return value.strip()
            if isinstance(value, dict | list) and value:
                return json.dumps(value, separators=(",", ":"))
        return ""


class _ErrorBody(_Wire):
    retry_after: _Number = None


class ModelsLab(KeyedAdapter):
    id = "modelslab"
    display_name = "ModelsLab"
    default_base_url = "https://modelslab.com/api"
    base_url_env = "MODELSLAB_BASE_URL"
    api_key_env = "MODELSLAB_API_KEY"
    credential_hint = "set MODELSLAB_API_KEY"
    credential_envs = ("MODELSLAB_API_KEY",)
    setting_envs = (ENDPOINT_ENV,)
    example_task_id = "148"
    account_page = "modelslab.com dashboard"

    def __init__(self, base_url: str, redactor: Redactor, api_key: str | None, endpoint: str = "v6") -> None:
        super().__init__(base_url, redactor, api_key)
        self._path = ENDPOINT_PATHS[endpoint]

    @classmethod
    def from_env(cls, env: Mapping[str, str], redactor: Redactor) -> Self:
        raw = env_value(env, ENDPOINT_ENV) or "v6"
        endpoint = raw.lower()
        if endpoint not in ENDPOINT_PATHS:
            raise ValueError(
                f"{ENDPOINT_ENV}={raw[:40]!r} is not a ModelsLab endpoint: use 'v6' (the default, "
                "POST {base}/v6/video/fetch/{id}) or 'enterprise' (POST {base}/v1/enterprise/video/fetch/{id})."
            )
        return cls(cls.base_url_from(env), redactor, cls.api_key_from(env, redactor), endpoint)

    def validate_task_id(self, task_id: str) -> str:
        check_task_id(task_id, _DIGITS, "digits only: ModelsLab ids are whole numbers such as 147")
        if len(task_id) > 19 or int(task_id) > INT64_MAX:
            raise InvalidTaskId(
                f"The task id ({len(task_id)} digits) is larger than any ModelsLab id "
                "(they are 64-bit integers). Pass the id exactly as the generation call returned it."
            )
        return task_id

    def build_request(self, client: httpx.AsyncClient, task_id: str) -> httpx.Request:
        return client.build_request(
            "POST",
            self.url(*self._path, task_id),
            json={"key": self.api_key},
            headers={"Accept": "application/json"},
        )

    def common_errors(self, reply: Reply, detail: str = "") -> None:
        # The docs put the 429 wait in the body (`retry_after`); a Retry-After header, when sent, wins.
        if reply.status_code == 429 and "retry-after" not in reply.headers:
            hint = _body_retry_after(reply.body)
            if hint is not None:
                reply = replace(reply, headers={**reply.headers, "retry-after": str(math.ceil(hint))})
        super().common_errors(reply, detail)

    def parse(self, reply: Reply) -> JobState:
        code = reply.status_code
        if code == 401:
            raise self.auth_failed(self.error_message(reply))
        if code in (402, 403):
            raise self.account_refused(code, self.error_message(reply))
        if code == 404:
            raise self.not_found()
        fetch = parse_wire(_Fetch, reply.json(), self.display_name)
        status = normalize_status(fetch.status, STATUS_WORDS)
        said = self.redact(fetch.said())[:_MESSAGE_LIMIT]
        if status == "failed":
            if _KEY_REFUSED.search(said):
                raise self.auth_failed(said)
            if _NOT_FOUND.search(said):
                raise self.not_found()
        if not 200 <= code < 300:
            if status != "failed":
                word = self.redact(fetch.status)[:40]
                raise ProviderProtocolError(f"ModelsLab answered HTTP {code} with the status {word!r}.")
            if _ACCOUNT_REFUSED.search(said):
                raise self.account_refused(code, said)
            # The request carries nothing but the id, the key (refusals of which are read above) and the
            # endpoint, so those are what to look at.
            raise ProviderProtocolError(
                f"ModelsLab refused the fetch request (HTTP {code}): {said.rstrip('.') or 'no reason given'}. "
                f"Check the task id, and that {ENDPOINT_ENV} (v6 or enterprise) names the API that started the job."
            )
        if status == "failed":
            return JobState(
                status="failed",
                provider_status=fetch.status,
                error=JobError(code=fetch.status, message=said) if said else None,
            )
        if status == "succeeded":
            urls = fetch.output or fetch.proxy_links or fetch.future_links
            return JobState(
                status="succeeded",
                provider_status=fetch.status,
                outputs=tuple(self._output(url, fetch.meta) for url in dict.fromkeys(urls)),
            )
        return JobState(status=status, provider_status=fetch.status, eta_s=fetch.eta)

    def _output(self, url: str, meta: _Meta | None) -> Output:
        mime = mimetypes.guess_type(url.split("?", 1)[0].split("#", 1)[0])[0]
        kind = _kind_of(mime)
        if kind != "video" or meta is None:
            return Output(url=url, kind=kind, mime_type=mime)
        frames = int(meta.num_frames) if meta.num_frames else None
        fps = meta.fps or None
        return Output(
            url=url,
            kind=kind,
            mime_type=mime,
            width=int(meta.width) if meta.width else None,
            height=int(meta.height) if meta.height else None,
            fps=fps,
            frames=frames,
            duration_s=duration_from(frames, fps),
        )


def _kind_of(mime: str | None) -> OutputKind:
    # The fetch serves video generations: a GIF is the animation itself, and an unknown extension is most
    # likely a video too.
    if mime is None or mime == "image/gif":
        return "video"
    return _KINDS.get(mime.split("/", 1)[0], "file")


_KINDS: Mapping[str, OutputKind] = {"video": "video", "image": "image", "audio": "audio"}


def _body_retry_after(body: bytes) -> float | None:
    try:
        data = json.loads(body)
    except NOT_JSON:
        return None
    if not isinstance(data, dict):
        return None
    return parse_wire(_ErrorBody, data, "ModelsLab").retry_after
