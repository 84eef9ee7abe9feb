"""skills.video emulator: `GET /api/v1/generation/{id}`, Bearer auth, both status vocabularies.

Shapes follow PROVIDERS.md §4. Assumption, flagged there as [inf]: a video result's `data` mirrors the
documented image shape (`type: "video"`, `videos[]` plus `video` = the first). A job's `detail` may set
`vocabulary="prediction"` (starting/processing/succeeded/...) and `kind` = `video` | `image` | `audio`.
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


class SkillsVideoEmulator(Emulator):
    id = "skillsvideo"
    api_prefix = "/api/v1"
    api_key_env = "SKILLSVIDEO_API_KEY"
    base_url_env = "SKILLSVIDEO_BASE_URL"
    sandbox_key = "sk-sandbox-skillsvideo-0123456789"

    def routes(self) -> list[BaseRoute]:
        return [Route(f"{self.api_prefix}/generation/{{task_id:path}}", self.get_generation, methods=["GET"])]

    def error_body(self, status: int, message: str) -> Any:
        sub = {
            401: "UNAUTHORIZED",
            402: "INSUFFICIENT_CREDITS",
            404: "NOT_FOUND",
            429: "RATE_LIMITED",
            502: "FAILED",
            503: "PROVIDER_UNAVAILABLE",
            504: "TIMEOUT",
        }.get(status, "FAILED")
        return {"error": sub, "code": f"VIDEO_GENERATION_{sub}", "message": message}

    async def get_generation(self, request: Request) -> Response:
        await self.record(request)
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return JSONResponse(self.error_body(401, "Invalid or missing API key."), 401)
        job = self.find_job(request.path_params["task_id"])
        if job is None:
            return JSONResponse(self.error_body(404, "Generation not found."), 404)
        if (fault := await self.take_fault(job)) is not None:
            return fault
        return JSONResponse(self.render(job, job.view(self.clock.monotonic())))

    def render(self, job: Job, view: JobView) -> dict[str, Any]:
        words = _PREDICTION if job.detail.get("vocabulary") == "prediction" else _QUEUE_STATE
        body: dict[str, Any] = {"id": job.task_id, "status": words[view.phase]}
        if job.detail.get("vocabulary") != "prediction":
            body["input"] = {
                "prompt": job.detail.get("prompt", "a cat walking through neon rain"),
                "duration": 5,
                "aspect_ratio": "16:9",
                "n": 1,
            }
        body["data"] = self._data(job) if view.phase == "succeeded" else None
        charged = 0 if view.phase in ("failed", "canceled") else 20
        body["usage"] = {"total": charged, "subscription": charged, "permanent": 0}
        if view.phase == "failed":
            body["code"] = job.detail.get("code", "VIDEO_GENERATION_CONTENT_REJECTED")
            body["message"] = job.detail.get("message", "Content was rejected by moderation.")
        if view.phase == "canceled":
            body["code"] = "VIDEO_GENERATION_CANCELED"
            body["message"] = "The generation was canceled."
        return body

    def _data(self, job: Job) -> dict[str, Any]:
        kind = job.detail.get("kind", "video")
        cdn = "https://cdn.example.com/output"
        media: dict[str, Any]
        if kind == "image":
            media = {
                "url": f"{cdn}/{job.task_id}.png",
                "file_name": f"{job.task_id}.png",
                "content_type": "image/png",
                "width": 1024,
                "height": 1024,
            }
        elif kind == "audio":
            media = {
                "url": f"{cdn}/{job.task_id}.mp3",
                "file_name": f"{job.task_id}.mp3",
                "content_type": "audio/mpeg",
            }
        else:
            media = {
                "url": f"{cdn}/{job.task_id}.mp4",
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
