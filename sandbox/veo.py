"""Google Veo (Gemini API) emulator: `GET /v1beta/models/{model}/operations/{operation_id}`.

Shapes follow PROVIDERS-MORE.md §8 (the google-genai SDK's converters, tests and error reader):

- A running operation is `{"name": ...}` alone: `done` absent (the absence of `metadata` is [inf]). Veo has no
  queue state, so a job still queued reads the same.
- A succeeded one has `done: true` and `response.generateVideoResponse.generatedSamples[].video.uri`, a Files
  API download URI (`.../files/{id}:download?alt=media`, served where the sandbox serves files) that carries
  no key: fetching it needs the key, as at Google.
- A failed one is, by default, the safety filters' answer: `done: true` with only `raiMediaFilteredCount` and
  `raiMediaFilteredReasons` (the reason text is the one a js-genai issue quotes). A job's detail
  `failure="error"` makes it an operation `error` instead (`{code: 13, message}`, code and words [inf]).
- A canceled one carries `error {code: 1, message}`, google.rpc's CANCELLED ([inf]: the Gemini API documents no
  cancel of its own).
- Auth as Google's front end answers it: no key (neither `x-goog-api-key` nor `?key=`) is a 403
  PERMISSION_DENIED for unregistered callers; a wrong key is a 400 INVALID_ARGUMENT whose ErrorInfo reason is
  API_KEY_INVALID, with a DebugInfo detail that repeats the key sent, as Google's does. An unknown operation is
  a 404 NOT_FOUND. Error bodies are `{"error": {"code", "message", "status"[, "details"]}}`.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sandbox.core import Emulator, Job, JobView, Outcome

# google.rpc.Code names of the HTTP codes the emulator answers with.
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_OPERATION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")

_RESPONSE_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse"
_FILTERED_REASON = (
    "We encountered an issue with the audio for your prompt, which means we could not create your video. "
    "Please try rephrasing your prompt. You have not been charged for this attempt."
)
_UNREGISTERED = (
    "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or "
    "other form of API consumer identity to call this API."
)
_KEY_INVALID = "API key not valid. Please pass a valid API key."
SANDBOX_MODEL = "veo-3.1-generate-preview"


class VeoEmulator(Emulator):
    """Gemini API operations of Veo video jobs.

    Sandbox ids: any operation name of the documented form, `models/{model}/operations/{operation_id}`, is a
    job that succeeds, except: `fail` in the operation id fails (the safety filters' answer), `cancel` in it is
    canceled, and `missing` in it is an operation Google does not know (404), to show task_not_found.
    """

    id = "veo"
    api_prefix = "/v1beta"
    api_key_env = "GEMINI_API_KEY"
    base_url_env = "VEO_BASE_URL"
    # Google API keys are 39 characters starting with AIza; this one is made up.
    sandbox_key = "AIzaSyA-sandbox_veo_emulator_0123456789"

    @classmethod
    def sandbox_id(cls, n: int, outcome: Outcome = "succeeded") -> str:
        if outcome not in cls.outcomes:
            raise ValueError(f"{cls.id} jobs cannot end {outcome}")
        # Operation ids are 12 lowercase letters and digits.
        operation = {"succeeded": f"sb{n:010d}", "failed": f"{n:08d}fail", "canceled": f"{n:06d}cancel"}[outcome]
        return f"models/{SANDBOX_MODEL}/operations/{operation}"

    @classmethod
    def finished_id(cls, n: int) -> str:
        return f"models/{SANDBOX_MODEL}/operations/done{n:08d}"

    def routes(self) -> list[BaseRoute]:
        return [
            Route(f"{self.api_prefix}/models/{{model}}/operations/{{operation}}", self.get_operation, methods=["GET"])
        ]

    def error_body(self, status: int, message: str, job: Job | None = None) -> Any:
        # An error inside a 200 is still an error envelope, with the code of a server error.
        code = status if status in _STATUS_NAMES else 500
        return {"error": {"code": code, "message": message, "status": _STATUS_NAMES[code]}}

    def accepts_new_id(self, task_id: str) -> bool:
        _, model, _, operation = task_id.split("/")
        well_formed = _MODEL.fullmatch(model) is not None and _OPERATION.fullmatch(operation) is not None
        return well_formed and "missing" not in operation.lower()

    # ---- endpoints ----

    async def get_operation(self, request: Request) -> Response:
        await self.record(request)
        if (denied := self._authenticate(request)) is not None:
            return denied
        params = request.path_params
        job = self.find_job(f"models/{params['model']}/operations/{params['operation']}")
        if job is None:
            return JSONResponse(self.error_body(404, "Requested entity was not found."), 404)
        if (fault := await self.take_fault(job)) is not None:
            return fault
        return JSONResponse(self.render(request, job, job.view(self.clock.monotonic())))

    def file_access(self, request: Request, name: str) -> Response | None:
        # Google serves a video's bytes only to the key that made it, exactly as it answers the reads.
        return self._authenticate(request)

    def _authenticate(self, request: Request) -> Response | None:
        key = request.headers.get("x-goog-api-key") or request.query_params.get("key")
        if not key:
            return JSONResponse(self.error_body(403, _UNREGISTERED), 403)
        if key == self.api_key:
            return None
        body = self.error_body(400, _KEY_INVALID)
        body["error"]["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            },
            {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US", "message": _KEY_INVALID},
            {"@type": "type.googleapis.com/google.rpc.DebugInfo", "detail": f"Invalid API key: {key}"},
        ]
        return JSONResponse(body, 400)

    # ---- wire shapes ----

    def render(self, request: Request, job: Job, view: JobView) -> dict[str, Any]:
        operation: dict[str, Any] = {"name": job.task_id}
        if not view.done:
            return operation
        operation["done"] = True
        if view.phase == "canceled":
            operation["error"] = {"code": 1, "message": "The operation was cancelled."}
        elif view.phase == "failed" and job.detail.get("failure") == "error":
            operation["error"] = {"code": 13, "message": job.detail.get("message", "Internal error encountered.")}
        elif view.phase == "failed":
            reasons = job.detail.get("reasons", [_FILTERED_REASON])
            operation["response"] = {
                "@type": _RESPONSE_TYPE,
                "generateVideoResponse": {"raiMediaFilteredCount": len(reasons), "raiMediaFilteredReasons": reasons},
            }
        else:
            samples = [
                {"video": {"uri": self.video_uri(request, job, index)}} for index in range(job.detail.get("videos", 1))
            ]
            operation["response"] = {"@type": _RESPONSE_TYPE, "generateVideoResponse": {"generatedSamples": samples}}
        return operation

    def file_id(self, job: Job, index: int = 0) -> str:
        """The Files API id of a job's video: 12 lowercase letters and digits, as Google's are."""
        digest = hashlib.sha256(f"{job.task_id}#{index}".encode()).digest()
        alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
        return "".join(alphabet[byte % len(alphabet)] for byte in digest[:12])

    def video_uri(self, request: Request, job: Job, index: int = 0) -> str:
        return self.file_url(request, f"{self.file_id(job, index)}:download", alt="media")
