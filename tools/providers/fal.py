"""fal.ai queue: the status, then, once `COMPLETED`, the result: two requests for one read.

    GET {base}/{owner}/{app}/requests/{request_id}/status    202 while queued or running, 200 once complete
    GET {base}/{owner}/{app}/requests/{request_id}           the model's own status code, headers and body

`Authorization: Key <FAL_KEY>` (or `Key <id>:<secret>`, which is the same header). Requests use only
`{owner}/{app}` of the model id, never its endpoint sub-path (`fal-ai/kling-video/v2/master/text-to-video`
is polled under `fal-ai/kling-video`); the `workflows/` and `comfy/` namespaces keep three segments, and a
bare app id `123-myapp` is `123/myapp` (SDK). The task id is `{model_id}/requests/{request_id}`, or the
`status_url` / `response_url` itself when its host is the base URL's; each part is checked on its own and
travels as its own escaped path segment.

Statuses (SDK): `IN_QUEUE` with a 0-based `queue_position`, `IN_PROGRESS`, `COMPLETED`, which includes
failures: `COMPLETED` with `error` / `error_type` (`runner_disconnected`, ...) is a failed job, read without
asking for the result. The result call relays the model: a 2xx is its output, in which every file object
(`{url, content_type, file_name, file_size}`) at any depth is an output (`video`, `videos`, `images`,
`audio`... differ per model); a 4xx or a 5xx that carries fal's `x-fal-request-id` is the model's failure,
read from `detail` (a string, or a list of validation errors). A 429, or a 5xx without that header (an ingress
answer, which the SDK retries too), is passing trouble. The result is kept an hour after completion, or only 6
minutes when it is 10 KB or larger: a result gone after `COMPLETED` (404) is a finished job whose output can
no longer be read, not an unknown id, and the note says so.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, field_validator

from tools.errors import InvalidTaskId, ProviderProtocolError
from tools.providers.base import (
    NOT_JSON,
    KeyedAdapter,
    Reply,
    Then,
    finite_number,
    kind_of,
    mime_of,
    normalize_status,
    parse_wire,
)
from tools.result import JobError, JobState, Output

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# One segment of a model id: fal's own are lowercase words with dots and dashes (`v1.6`, `text-to-video`).
_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~-]{0,99}")
_NAMESPACES = ("workflows", "comfy")
_BARE_APP = re.compile(r"(\d+)-(.+)")
MAX_FILES = 10_000


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", defer_build=True)


class _Status(_Wire):
    status: str
    queue_position: int | None = None
    error: str | None = None
    error_type: str | None = None

    @field_validator("queue_position", mode="before")
    @classmethod
    def _whole(cls, value: Any) -> Any:
        number = finite_number(value)
        return int(number) if number is not None and number >= 0 and number.is_integer() else None

    @field_validator("error", "error_type", mode="before")
    @classmethod
    def _text_only(cls, value: Any) -> Any:
        return value if isinstance(value, str) and value.strip() else None


class Fal(KeyedAdapter):
    id = "fal"
    display_name = "fal.ai"
    default_base_url = "https://queue.fal.run"
    base_url_env = "FAL_BASE_URL"
    api_key_env = "FAL_KEY"
    credential_hint = "set FAL_KEY"
    credential_envs = ("FAL_KEY",)
    example_task_id = "fal-ai/kling-video/v2/master/text-to-video/requests/764cabcf-b745-4b3e-ae38-1200304cf45b"
    account_page = "fal.ai/dashboard/billing"

    def validate_task_id(self, task_id: str) -> str:
        """`{owner}/{app}/requests/{request_id}` as the requests need it, from either accepted form."""
        path = task_id
        if "://" in path:
            path = self._path_of_url(path)
        parts = path.split("/")
        if parts[-1] == "status":
            parts = parts[:-1]
        if len(parts) < 3 or parts[-2] != "requests" or not _UUID.fullmatch(parts[-1]):
            raise InvalidTaskId(
                "A fal task id is {model_id}/requests/{request_id} (the status_url or response_url path), e.g. "
                f"{self.example_task_id}, or that URL itself. Pass it as the submit call returned it."
            )
        model = parts[:-2]
        if len(model) == 1 and (bare := _BARE_APP.fullmatch(model[0])):
            model = [bare.group(1), bare.group(2)]
        if not all(_SEGMENT.fullmatch(segment) for segment in model) or len(model) > 12:
            raise InvalidTaskId(
                "The model id in this fal task id has characters fal's never have (letters, digits, . _ ~ - "
                "per segment, each starting with a letter or digit). Pass the id as the submit call returned it."
            )
        width = 3 if model[0] in _NAMESPACES else 2
        if len(model) < width:
            raise InvalidTaskId(
                f"A fal model id has at least {width} segments ({'{namespace}/' if width == 3 else ''}{{owner}}/"
                "{app}); pass the whole model path as the submit call's URLs show it."
            )
        return "/".join([*model[:width], "requests", parts[-1].lower()])

    def _path_of_url(self, url: str) -> str:
        try:
            parts = urlsplit(url)
            host = parts.hostname
        except ValueError:
            host = None
        base = urlsplit(self.base_url)
        if host is None or host != base.hostname or parts.scheme != base.scheme or parts.query or parts.fragment:
            raise InvalidTaskId(
                f"This URL is not on fal's queue host ({base.hostname}, from {self.base_url_env}); pass the "
                "status_url or response_url the submit call returned, or {model_id}/requests/{request_id}."
            )
        return parts.path.removeprefix(base.path.rstrip("/")).strip("/")

    def _segments(self, wire_id: str) -> list[str]:
        return wire_id.split("/")

    def build_request(self, client: httpx.AsyncClient, task_id: str) -> httpx.Request:
        return client.build_request("GET", self.url(*self._segments(task_id), "status"), headers=self._headers())

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Key {self.api_key}", "Accept": "application/json"}

    def parse(self, reply: Reply) -> JobState | Then:
        """The status: the job's state, or (complete without an error) the result call."""
        code = reply.status_code
        self._refusals(reply)
        if code not in (200, 202):
            said = self.error_message(reply)
            words = f": {self.redact(said)[:300].rstrip('.')}" if said else " without a reason"
            raise ProviderProtocolError(
                f"fal.ai refused the status request (HTTP {code}){words}. Check the task id: "
                "{model_id}/requests/{request_id} as the submit call returned it."
            )
        state = parse_wire(_Status, reply.json(), self.display_name)
        status = normalize_status(state.status, {"in_queue": "queued", "in_progress": "running"})
        if status == "succeeded":
            if state.error or state.error_type:
                error = JobError(code=state.error_type or "COMPLETED", message=state.error or state.error_type or "")
                return JobState(status="failed", provider_status=state.status, error=error)
            return Then(
                build=self._result_request, parse=functools.partial(self.parse_result, state.status), own_errors=True
            )
        note = None
        if status == "queued" and state.queue_position is not None:
            ahead = state.queue_position
            note = f"{ahead} request{'s' if ahead != 1 else ''} ahead of this one in fal's queue."
        return JobState(status=status, provider_status=state.status, note=note)

    def _result_request(self, client: httpx.AsyncClient, task_id: str) -> httpx.Request:
        return client.build_request("GET", self.url(*self._segments(task_id)), headers=self._headers())

    def parse_result(self, word: str, reply: Reply) -> JobState:
        """The model's answer, relayed: its output, its failure, or passing trouble at fal."""
        code = reply.status_code
        relayed = "x-fal-request-id" in reply.headers
        if code == 429 or (code >= 500 and not relayed) or 300 <= code < 400:
            self.common_errors(reply, self.error_message(reply))
        if code in (401, 403):
            self._refusals(reply)
        if code == 404:
            note = (
                "fal.ai no longer keeps this result: a result of 10 KB or more is kept 6 minutes after the request "
                "completes, a smaller one an hour. Its files may still be on the CDN; submit again for a new result."
            )
            return JobState(status="succeeded", provider_status=word, note=note)
        if code >= 400:
            detail = _detail(reply.body) or f"HTTP {code}"
            kind = reply.headers.get("x-fal-error-type") or _error_type(reply.body) or f"HTTP_{code}"
            return JobState(status="failed", provider_status=word, error=JobError(code=kind, message=detail))
        outputs = tuple(_files(reply.json()))
        return JobState(status="succeeded", provider_status=word, outputs=outputs)

    def _refusals(self, reply: Reply) -> None:
        code = reply.status_code
        if code == 401:
            raise self.auth_failed(self.error_message(reply))
        if code == 403:
            raise self.account_refused(code, self.error_message(reply))
        if code == 404:
            raise self.not_found(" (check that the model id is the one the request was submitted to)")


def _detail(body: bytes) -> str:
    """fal's `detail`: a string, or a list of validation errors (`{loc, msg, type}`)."""
    try:
        data = json.loads(body)
    except NOT_JSON:
        return ""
    detail = data.get("detail") if isinstance(data, dict) else None
    if isinstance(detail, str):
        return detail.strip()
    if isinstance(detail, list):
        said = []
        for item in detail[:5]:
            if isinstance(item, dict) and isinstance(item.get("msg"), str):
                where = ".".join(str(part) for part in item.get("loc", []) if isinstance(part, str | int))
                said.append(f"{where}: {item['msg']}" if where else item["msg"])
            elif isinstance(item, str):
                said.append(item)
        return "; ".join(said)
    return ""


def _error_type(body: bytes) -> str | None:
    try:
        data = json.loads(body)
    except NOT_JSON:
        return None
    kind = data.get("error_type") if isinstance(data, dict) else None
    return kind if isinstance(kind, str) and kind.strip() else None


def _files(result: Any) -> Iterator[Output]:
    """Every file object (`{url, content_type, file_name, file_size}`) in a model's output, at any depth."""
    pending = [result]
    seen = 0
    while pending and seen < MAX_FILES:
        value = pending.pop(0)
        seen += 1
        if isinstance(value, dict):
            url = value.get("url")
            if isinstance(url, str) and url.startswith(("https://", "http://")):
                yield _output(value, url)
                continue
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)


def _output(file: dict[str, Any], url: str) -> Output:
    declared = file.get("content_type")
    mime = declared if isinstance(declared, str) and "/" in declared else mime_of(url)
    size = finite_number(file.get("file_size"))

    def whole(name: str) -> int | None:
        number = finite_number(file.get(name))
        return int(number) if number is not None and number > 0 and number.is_integer() else None

    return Output(
        url=url,
        kind=kind_of(mime),
        mime_type=mime,
        size_bytes=int(size) if size is not None and size >= 0 and size.is_integer() else None,
        width=whole("width"),
        height=whole("height"),
        duration_s=finite_number(file.get("duration")),
    )
