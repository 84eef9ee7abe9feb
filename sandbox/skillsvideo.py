"""skills.video emulator: `GET /api/v1/generation/{id}`, Bearer auth, both status vocabularies.

Follows docs.skills.video as recorded in PROVIDERS.md §4:

- QueueState answers (the default) carry `input`, `data` (null until COMPLETED) and `usage`, already
  charged while queued as in the documented submit examples.
- PredictionStatus answers (a job's detail `vocabulary="prediction"`) carry no `input`, leave `data` out
  until `succeeded` and show zero usage until then, as the Veo 3.1 pages' examples do.
- FAILED carries `code` and `message` (detail `code` and `message` override the defaults); CANCELED carries
  neither, since none is documented for it.
- HTTP errors are `{"error", "code", "message"}` with the documented codes and messages; a job's detail
  `error_code` and `error_message` replace them in the error answers its faults produce (e.g. a 502
  `VIDEO_GENERATION_FAILED`, a 504 `VIDEO_GENERATION_TIMEOUT`, a 400 `VIDEO_GENERATION_UNSUPPORTED_MODEL`,
  or an `IMAGE_GENERATION_` family code).

Assumptions [inf]: a video or audio result mirrors the documented image shape (`type`, `videos[]` plus
`video` = the first, likewise `audios[]`/`audio`); detail `kind` picks `video` (default), `image` or `audio`.
Outside the generation families (401, 403, 404, 500, gateway 502/504) error codes are not documented: plain
words are used, and the messages come from the page's table of status meanings. A failed job's usage is
shown as zero.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sandbox.core import Emulator, Job, JobView

_QUEUE_STATE = {
    "queued": "IN_QUEUE",
    "running": "IN_PROGRESS",
    "succeeded": "COMPLETED",
    "failed": "FAILED",
    "canceled": "CANCELED",
}
_PREDICTION = {
    "queued": "starting",
    "running": "processing",
    "succeeded": "succeeded",
    "failed": "failed",
    "canceled": "canceled",
}

# HTTP status -> (`code`, legacy `error`, `message`). The generation-family rows follow the docs' table; its
# examples show `error` equal to `code`, except for credits, where `error` is the bare sub-code. A 502 or 504
# fault is gateway trouble by default, with no generation code: the documented `VIDEO_GENERATION_FAILED`
# (502) and `VIDEO_GENERATION_TIMEOUT` (504) say the generation itself ended, which is a job's outcome, not a
# fault, and come from a job's detail `error_code`.
_ERRORS: dict[int, tuple[str, str, str]] = {
    400: ("VIDEO_GENERATION_INVALID_INPUT", "VIDEO_GENERATION_INVALID_INPUT", "Invalid request."),
    401: ("UNAUTHORIZED", "UNAUTHORIZED", "Authentication required or failed."),
    402: ("VIDEO_GENERATION_INSUFFICIENT_CREDITS", "INSUFFICIENT_CREDITS", "Insufficient credits for this generation."),
    403: ("FORBIDDEN", "FORBIDDEN", "Access forbidden."),
    404: ("NOT_FOUND", "NOT_FOUND", "Resource not found."),
    422: ("VIDEO_GENERATION_CONTENT_REJECTED", "VIDEO_GENERATION_CONTENT_REJECTED", "Validation error."),
    429: ("VIDEO_GENERATION_RATE_LIMITED", "VIDEO_GENERATION_RATE_LIMITED", "Rate limit exceeded. Please retry later."),
    500: ("INTERNAL_ERROR", "INTERNAL_ERROR", "Server error."),
    502: ("BAD_GATEWAY", "BAD_GATEWAY", "Bad gateway."),
    503: (
        "VIDEO_GENERATION_PROVIDER_UNAVAILABLE",
        "VIDEO_GENERATION_PROVIDER_UNAVAILABLE",
        "Upstream provider unavailable.",
    ),
    504: ("GATEWAY_TIMEOUT", "GATEWAY_TIMEOUT", "Gateway timeout."),
}

_CHARGE = 20


class SkillsVideoEmulator(Emulator):
    id = "skillsvideo"
    api_prefix = "/api/v1"
    api_key_env = "SKILLSVIDEO_API_KEY"
    base_url_env = "SKILLSVIDEO_BASE_URL"
    sandbox_key = "sk-sandbox-skillsvideo-0123456789"

    def routes(self) -> list[BaseRoute]:
        return [Route(f"{self.api_prefix}/generation/{{task_id:path}}", self.get_generation, methods=["GET"])]

    def error_body(self, status: int, message: str, job: Job | None = None) -> Any:
        code, legacy, documented = _ERRORS.get(status, ("ERROR", "ERROR", message))
        if job is not None and "error_code" in job.detail:
            code = legacy = job.detail["error_code"]
        if job is not None and "error_message" in job.detail:
            documented = job.detail["error_message"]
        return {"error": legacy, "code": code, "message": documented}

    async def get_generation(self, request: Request) -> Response:
        await self.record(request)
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return JSONResponse(self.error_body(401, ""), 401)
        job = self.find_job(request.path_params["task_id"])
        if job is None:
            return JSONResponse(self.error_body(404, ""), 404)
        if (fault := await self.take_fault(job)) is not None:
            return fault
        return JSONResponse(self.render(job, job.view(self.clock.monotonic()), request))

    def render(self, job: Job, view: JobView, request: Request) -> dict[str, Any]:
        prediction = job.detail.get("vocabulary") == "prediction"
        words = _PREDICTION if prediction else _QUEUE_STATE
        body: dict[str, Any] = {"id": job.task_id, "status": words[view.phase]}
        if not prediction:
            body["input"] = {
                "prompt": job.detail.get("prompt", "a cat walking through neon rain"),
                "duration": 5,
                "aspect_ratio": "16:9",
                "n": 1,
            }
        if view.phase == "succeeded":
            body["data"] = self._data(job, request)
        elif not prediction:
            body["data"] = None
        charged = _CHARGE if view.phase == "succeeded" or (not prediction and not view.done) else 0
        body["usage"] = {"total": charged, "subscription": charged, "permanent": 0}
        if view.phase == "failed":
            body["code"] = job.detail.get("code", "VIDEO_GENERATION_CONTENT_REJECTED")
            body["message"] = job.detail.get("message", "Content was rejected by moderation.")
        return body

    def _data(self, job: Job, request: Request) -> dict[str, Any]:
        kind = job.detail.get("kind", "video")

        def cdn(file_name: str) -> str:
            return self.file_url(request, f"output/{file_name}")

        media: dict[str, Any]
        if kind == "image":
            media = {
                "url": cdn(f"{job.task_id}.png"),
                "file_name": f"{job.task_id}.png",
                "content_type": "image/png",
                "width": 1024,
                "height": 1024,
            }
        elif kind == "audio":
            media = {
                "url": cdn(f"{job.task_id}.mp3"),
                "file_name": f"{job.task_id}.mp3",
                "content_type": "audio/mpeg",
            }
        else:
            media = {
                "url": cdn(f"{job.task_id}.mp4"),
                "file_name": f"{job.task_id}.mp4",
                "content_type": "video/mp4",
                "width": 1280,
                "height": 720,
            }
        return {
            "type": kind,
            "n": 1,
            "actual_prompt": job.detail.get("prompt", "a cat walking through neon rain"),
            f"{kind}s": [media],
            kind: media,
        }
