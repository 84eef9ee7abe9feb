"""Seedance emulator: BytePlus ModelArk content generation tasks, `GET /api/v3/contents/generations/tasks/{id}`.

Follows PROVIDERS-THIRD.md §1: Bearer auth (`ARK_API_KEY`); the status words `queued`, `running`,
`succeeded`, `failed`, `cancelled` (two Ls) and `expired`; `content` only once succeeded, with `video_url` a
TOS pre-signed URL valid 24 h (`X-Tos-Expires=86400`); `error: {code, message}` on failure; `usage` in
tokens; timestamps in Unix seconds; OpenAI-style error bodies `{"error": {code, message, param, type}}`
whose messages end with "Request ID: ...". A task id that is unknown (or contains `missing`) is a 404
`NotFound` [inf: the code for an unknown task is not documented]. A job's detail `expired=True` ends a
failed job as `expired` instead, `code`/`message` replace the failure's, `last_frame=True` adds the
`last_frame_url` of tasks created with `return_last_frame`, and `frames=N` echoes a frame count instead of
`duration` (only one of the two is returned).

Sandbox ids look like Ark's, `cgt-20260820100000-` plus a suffix: `fail` in it fails, `cancel` cancels.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sandbox.core import Emulator, Job, JobView, Outcome

_STATUS = {
    "queued": "queued",
    "running": "running",
    "succeeded": "succeeded",
    "failed": "failed",
    "canceled": "cancelled",
}

# HTTP status -> (code, type) of the documented error table.
_ERRORS: dict[int, tuple[str, str]] = {
    400: ("InvalidParameter", "BadRequest"),
    401: ("AuthenticationError", "Unauthorized"),
    403: ("AccessDenied", "Forbidden"),
    404: ("NotFound", "NotFound"),
    429: ("RateLimitExceeded.EndpointRPMExceeded", "TooManyRequests"),
    500: ("InternalServiceError", "InternalServiceError"),
}

MODEL = "seedance-1-5-pro-251215"
_EPOCH = 1_787_220_000


class SeedanceEmulator(Emulator):
    id = "seedance"
    api_prefix = "/api/v3"
    api_key_env = "ARK_API_KEY"
    base_url_env = "SEEDANCE_BASE_URL"
    # ModelArk keys are UUID-shaped; this one is made up.
    sandbox_key = "5eedda4c-0b1e-4a2f-9c3d-7e6f5a4b3c2d"

    @classmethod
    def sandbox_id(cls, n: int, outcome: Outcome = "succeeded") -> str:
        suffix = {"succeeded": "a", "failed": "fail", "canceled": "cancel"}[outcome]
        return f"cgt-20260820100000-{suffix}{n}"

    def routes(self) -> list[BaseRoute]:
        path = f"{self.api_prefix}/contents/generations/tasks/{{task_id}}"
        return [Route(path, self.get_task, methods=["GET"])]

    def error_body(self, status: int, message: str, job: Job | None = None) -> Any:
        code, kind = _ERRORS.get(status, ("InternalServiceError", "InternalServiceError"))
        return {
            "error": {
                "code": code,
                "message": f"{message} Request ID: {_request_id(message)}",
                "param": "",
                "type": kind,
            }
        }

    async def get_task(self, request: Request) -> Response:
        await self.record(request)
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            words = "The API key or AK/SK in the request is missing or invalid."
            return JSONResponse(self.error_body(401, words), 401)
        task_id = request.path_params["task_id"]
        job = self.find_job(task_id)
        if job is None:
            return JSONResponse(self.error_body(404, f"The specified task {task_id} is not found."), 404)
        if (fault := await self.take_fault(job)) is not None:
            return fault
        return JSONResponse(self.render(request, job, job.view(self.clock.monotonic())))

    def render(self, request: Request, job: Job, view: JobView) -> dict[str, Any]:
        updated = _EPOCH + round(view.elapsed_s)
        body: dict[str, Any] = {"id": job.task_id, "model": MODEL, "status": _STATUS[view.phase]}
        if view.phase == "queued":
            body.update(service_tier="default", execution_expires_after=172800, priority=0)
        if view.phase == "failed" and job.detail.get("expired"):
            body.update(status="expired", execution_expires_after=3600)
        elif view.phase == "failed":
            code = job.detail.get("code", "OutputVideoSensitiveContentDetected")
            message = job.detail.get(
                "message", "The request failed because the output video may contain sensitive information."
            )
            body["error"] = {"code": code, "message": f"{message} Request ID: {_request_id(job.task_id)}"}
        if view.phase == "succeeded":
            body["content"] = self._content(request, job)
            body.update(seed=10, resolution="720p", ratio="16:9", framespersecond=24, generate_audio=True)
            body.update(draft=False, service_tier="default", execution_expires_after=172800)
            if "frames" in job.detail:
                body["frames"] = job.detail["frames"]
            else:
                body["duration"] = job.detail.get("duration", 5)
            tokens = job.detail.get("tokens", 108900)
            body["usage"] = {"completion_tokens": tokens, "total_tokens": tokens}
        body.update(created_at=_EPOCH, updated_at=updated)
        return body

    def _content(self, request: Request, job: Job) -> dict[str, str]:
        content = {"video_url": self._presigned(request, f"{job.task_id}/video.mp4")}
        if job.detail.get("last_frame"):
            content["last_frame_url"] = self._presigned(request, f"{job.task_id}/last_frame.png")
        return content

    def _presigned(self, request: Request, name: str) -> str:
        """A TOS pre-signed URL, valid 24 h from now; the signature is a stand-in nothing checks."""
        now = self.clock.now().astimezone(UTC)
        date = now.strftime("%Y%m%dT%H%M%SZ")
        return self.file_url(
            request,
            name,
            **{
                "X-Tos-Algorithm": "TOS4-HMAC-SHA256",
                "X-Tos-Credential": f"AKLTSANDBOX/{date[:8]}/ap-southeast-1/tos/request",
                "X-Tos-Date": date,
                "X-Tos-Expires": str(int(timedelta(hours=24).total_seconds())),
                "X-Tos-SignedHeaders": "host",
                "X-Tos-Signature": hashlib.sha256(f"{name}\n{date}".encode()).hexdigest(),
            },
        )


def _request_id(seed: str) -> str:
    return "0217" + hashlib.sha256(seed.encode()).hexdigest()[:28]
