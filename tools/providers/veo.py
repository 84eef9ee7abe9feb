"""Google Veo through the Gemini API: `GET {base}/{operation name}` with `x-goog-api-key: <key>`.

A video job is a google.longrunning Operation named `models/{model}/operations/{operation_id}` (the
google-genai SDK's converters and tests, PROVIDERS-MORE.md §8). The task id is that name; each of its parts is
checked on its own and travels as its own escaped segment, `models` and `operations` as the literals they are.
The same operation API serves every long-running Gemini video model, so any model name of the right form is
read (the Veo 3.1 preview models were reported shut down on 2026-10-22: their operations answer 404).

- `done` is absent while the job runs, true once it is over; there is no status word, no progress, no
  queue position and no cost. `provider_status` is therefore `running` or `done`.
- Succeeded: `response.generateVideoResponse.generatedSamples[].video.uri`. The URI is a Files API download
  (`.../files/{id}:download?alt=media`) that needs the API key, which it never carries: each output says
  `requires_auth`, and `download_generation_outputs` fetches it.
- `done: true` with no samples, only `raiMediaFilteredCount`/`raiMediaFilteredReasons`, is a job the safety
  filters stopped: failed, with their reasons as the message.
- `error {code, message}` (a google.rpc.Status) on the operation is a failed job; code 1 (CANCELLED) is a
  canceled one.
- HTTP errors are `{"error": {"code", "message", "status", "details"}}`: a 400 whose ErrorInfo reason is
  `API_KEY_INVALID` (or `API_KEY_EXPIRED`) is a key rejected, as are 401 and 403 (the key's project may not
  use the API); 404 is an operation unknown or gone.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Annotated, Any, Self

import httpx
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

from tools.errors import InvalidTaskId, ProviderProtocolError, TaskNotFound
from tools.providers.base import (
    MAX_TASK_ID_LEN,
    NOT_JSON,
    KeyedAdapter,
    Reply,
    check_task_id,
    env_value,
    finite_number,
    parse_wire,
)
from tools.redact import Redactor
from tools.result import JobError, JobState, Output

# Each part starts with a letter or digit (httpx folds `.` and `..` segments even escaped). No `:`: on Google's
# APIs it starts a custom method (`models/x:predictLongRunning`), which a GET of an operation never names.
OPERATION_NAME = re.compile(r"models/[A-Za-z0-9][A-Za-z0-9._-]*/operations/[A-Za-z0-9][A-Za-z0-9_-]*")
_DESCRIBED = (
    "models/{model}/operations/{operation_id}, each part letters, digits and . _ - starting with a letter or digit"
)

# google.rpc.Code, for an operation error that carries only the number.
_RPC_CODES: Mapping[int, str] = dict(
    enumerate(
        (
            "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
            "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
            "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
        )
    )
)  # fmt: skip
_CANCELLED = 1

# The guides save every Veo video as .mp4, and the download URI's path (`...:download`) names no type.
_VEO_MIME_TYPE = "video/mp4"


def _text(value: Any) -> Any:
    return value if isinstance(value, str) else None


def _whole(value: Any) -> int | None:
    number = finite_number(value)
    return None if number is None or not number.is_integer() else int(number)


def _texts(value: Any) -> Any:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else None


_Text = Annotated[str | None, BeforeValidator(_text)]
_Int = Annotated[int | None, BeforeValidator(_whole)]
_Texts = Annotated[list[str] | None, BeforeValidator(_texts)]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", defer_build=True, alias_generator=to_camel)


class _Status(_Wire):
    """google.rpc.Status, as an operation's `error` and inside an HTTP error's envelope (which adds `status`)."""

    code: _Int = None
    message: _Text = None
    status: _Text = None


class _Video(_Wire):
    uri: _Text = None
    encoding: _Text = None


class _Sample(_Wire):
    video: _Video | None = None


class _VideoResponse(_Wire):
    generated_samples: list[_Sample] | None = None
    rai_media_filtered_count: _Int = None
    rai_media_filtered_reasons: _Texts = None


class _Response(_Wire):
    generate_video_response: _VideoResponse | None = None


class _Operation(_Wire):
    # Every operation has its name: a 200 without one is not an operation (an error envelope, say).
    name: str
    done: bool | None = None
    error: _Status | None = None
    response: _Response | None = None


class Veo(KeyedAdapter):
    id = "veo"
    display_name = "Google Veo (Gemini API)"
    default_base_url = "https://generativelanguage.googleapis.com/v1beta"
    base_url_env = "VEO_BASE_URL"
    api_key_env = "GEMINI_API_KEY"
    credential_hint = "set GEMINI_API_KEY (or GOOGLE_API_KEY)"
    credential_envs = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
    example_task_id = "models/veo-3.1-generate-preview/operations/vz341u0pmdlc"
    account_page = "aistudio.google.com/apikey"

    @classmethod
    def from_env(cls, env: Mapping[str, str], redactor: Redactor) -> Self:
        return cls(cls.base_url_from(env), redactor, cls.api_key_from(env, redactor))

    @classmethod
    def api_key_from(cls, env: Mapping[str, str], redactor: Redactor) -> str | None:
        """GEMINI_API_KEY, else GOOGLE_API_KEY; both are kept out of the output, since either may be echoed."""
        keys = [env_value(env, name) for name in cls.credential_envs]
        for key in keys:
            redactor.add(key)
        return next((key for key in keys if key), None)

    def validate_task_id(self, task_id: str) -> str:
        if task_id.startswith("projects/"):
            raise InvalidTaskId(
                "This is a Vertex AI operation name (projects/...); this provider reads the Gemini API's "
                "operations, named models/{model}/operations/{operation_id}. Pass the name the Gemini API returned."
            )
        if task_id.strip() and len(task_id) <= MAX_TASK_ID_LEN and not OPERATION_NAME.fullmatch(task_id):
            # Never quoted back: the caller may have pasted a key into it.
            raise InvalidTaskId(
                "The task id is not a Gemini API operation name. Pass the `name` the "
                f"generate call returned, whole (e.g. {self.example_task_id}): {_DESCRIBED}."
            )
        return check_task_id(task_id, OPERATION_NAME, _DESCRIBED)

    def download_headers(self, url: str) -> Mapping[str, str]:
        # The video URI never carries the key; the download sends it, to this API's own origin only.
        return {"x-goog-api-key": self.api_key} if self.api_key else {}

    def build_request(self, client: httpx.AsyncClient, task_id: str) -> httpx.Request:
        _, model, _, operation = task_id.split("/")
        return client.build_request(
            "GET",
            self.url("models", model, "operations", operation),
            headers={"x-goog-api-key": self.api_key or "", "Accept": "application/json"},
        )

    def error_message(self, reply: Reply) -> str:
        envelope = _envelope(reply.body)
        if envelope is None or not envelope.message or not envelope.message.strip():
            return ""
        # Redact before cutting: a cut could leave half a key that no longer matches.
        return self.redact(envelope.message.strip())[:300]

    def parse(self, reply: Reply) -> JobState:
        code = reply.status_code
        if not 200 <= code < 300:
            raise self._refusal(reply)
        operation = parse_wire(_Operation, reply.json(), self.display_name)
        error = operation.error
        # An operation with an error is over, whatever `done` says.
        if error is not None and (error.code or error.message):
            return _ended(error)
        if not operation.done:
            return JobState(status="running", provider_status="running")
        answer = operation.response.generate_video_response if operation.response else None
        samples = (answer.generated_samples if answer else None) or []
        outputs = tuple(
            Output(url=s.video.uri, kind="video", mime_type=s.video.encoding or _VEO_MIME_TYPE, requires_auth=True)
            for s in samples
            if s.video is not None and s.video.uri
        )
        if outputs:
            return JobState(status="succeeded", provider_status="done", outputs=outputs)
        return JobState(status="failed", provider_status="done", error=_no_video(answer))

    def _refusal(self, reply: Reply) -> Exception:
        code = reply.status_code
        said = self.error_message(reply)
        if code == 401 or (code == 400 and _key_rejected(reply.body)):
            return self.auth_failed(said)
        if code == 403:
            # PERMISSION_DENIED: the key's project may not use the API (not enabled, no billing, another project).
            return self.account_refused(code, said)
        if code == 404:
            return TaskNotFound(
                f"{self.display_name} has no operation with this name.{self.quoted(said)} Check the name: it is the "
                "`name` the generate call returned, under the same API key's project; operations of a model that "
                "has been shut down are gone with it."
            )
        words = self.quoted(said) or " It gave no reason."
        return ProviderProtocolError(
            f"{self.display_name} refused the request (HTTP {code}).{words} Check the task id: it must be the "
            "operation name as returned, models/{model}/operations/{operation_id}."
        )


def _ended(error: _Status) -> JobState:
    named = error.status or (_RPC_CODES.get(error.code) if error.code is not None else None)
    code = named or (str(error.code) if error.code is not None else "ERROR")
    canceled = error.code == _CANCELLED or named == "CANCELLED"
    message = (error.message or "").strip() or f"The operation ended with error {code}."
    return JobState(
        status="canceled" if canceled else "failed", provider_status="done", error=JobError(code=code, message=message)
    )


def _no_video(answer: _VideoResponse | None) -> JobError:
    """Why a finished operation has no video: the safety filters' reasons, where they say any."""
    reasons = (
        [reason.strip() for reason in (answer.rai_media_filtered_reasons or []) if reason.strip()] if answer else []
    )
    filtered = answer.rai_media_filtered_count if answer else None
    if reasons:
        return JobError(code="RAI_MEDIA_FILTERED", message=" ".join(reasons))
    if filtered:
        return JobError(
            code="RAI_MEDIA_FILTERED", message=f"Safety filters removed {filtered} video(s) and gave no reason."
        )
    return JobError(code="NO_VIDEO", message="The operation finished without a video and without saying why.")


def _envelope(body: bytes) -> _Status | None:
    """The `error` of a Google API error body, where the body is one."""
    try:
        data = json.loads(body)
    except NOT_JSON:
        return None
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return None
    try:
        return _Status.model_validate(error)
    except ValidationError:
        return None


def _key_rejected(body: bytes) -> bool:
    """A 400 that is about the key: Google says so in an ErrorInfo `reason` (API_KEY_INVALID, API_KEY_EXPIRED)."""
    try:
        data = json.loads(body)
    except NOT_JSON:
        return False
    error = data.get("error") if isinstance(data, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    if not isinstance(details, list):
        return False
    reasons = [detail.get("reason") for detail in details if isinstance(detail, dict)]
    return any(isinstance(reason, str) and reason.startswith("API_KEY_") for reason in reasons)
