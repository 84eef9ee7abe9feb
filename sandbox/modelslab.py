"""ModelsLab emulator: `POST /api/v6/video/fetch/{id}` and `POST /api/v1/enterprise/video/fetch/{id}`.

Shapes follow PROVIDERS.md §2 and the docs' own examples: the key in the JSON body, `processing` with
`eta`, `message`, `tip`, `fetch_result`, `future_links`, `output: []` and `meta`; `success` with
`generationTime`, `output`, `proxy_links` (the same file on the CDN host), `future_links` and `meta`;
errors as `{"status": "error", "message": "..."}`. A wrong or missing key answers 401 "Invalid API key"
and an unknown id 404 "Video not found", the codes the fetch OpenAPI lists. ModelsLab has no queued
word, so a queued job already reads `processing`.

A job's `detail` may set `failure_word` (`error`, the default, or `failed`), `message_key` (`message` or
the legacy `messege`), `message` (the failure text), `output_type` (`mp4` or `gif`), and the echoed
`width`, `height`, `num_frames`, `fps`.
"""

from __future__ import annotations

import math
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sandbox.core import Emulator, Job, JobView, Outcome

# The two stores a file is on (the R2 bucket, its CDN mirror), as folders of the emulator's own file route.
_R2 = "r2/video_generations"
_CDN = "cdn/video_generations"


class ModelsLabEmulator(Emulator):
    """ModelsLab's fetch API.

    Ids are integers, so the sandbox's rules for jobs it has not been told about read digits: an id ending
    in `404` is unknown (task_not_found), one ending in `4` fails, any other succeeds; one ending in `00` is
    finished already when first seen. ModelsLab has no
    cancel, so no job here ends canceled.
    """

    id = "modelslab"
    api_prefix = "/api"
    api_key_env = "MODELSLAB_API_KEY"
    base_url_env = "MODELSLAB_BASE_URL"
    sandbox_key = "mlsandbox0123456789abcdefMODELSLAB"
    outcomes = ("succeeded", "failed")

    @classmethod
    def sandbox_id(cls, n: int, outcome: Outcome = "succeeded") -> str:
        # Integer ids; one ending in 4 fails, and ids are kept clear of the 404 ending.
        if outcome not in cls.outcomes:
            raise ValueError(f"{cls.id} jobs cannot end {outcome}")
        return str(10 * (20_000 + n) + (4 if outcome == "failed" else 1))

    def routes(self) -> list[BaseRoute]:
        return [
            Route(f"{self.api_prefix}/v6/video/fetch/{{task_id}}", self.fetch, methods=["POST"]),
            Route(f"{self.api_prefix}/v1/enterprise/video/fetch/{{task_id}}", self.fetch, methods=["POST"]),
        ]

    def accepts_new_id(self, task_id: str) -> bool:
        return task_id.isdigit() and not task_id.endswith("404")

    def outcome_for(self, task_id: str) -> Outcome:
        return "failed" if task_id.endswith("4") else "succeeded"

    @classmethod
    def finished_id(cls, n: int) -> str:
        return str(100 * (30_000 + n))

    def finished_at_start(self, task_id: str) -> bool:
        return task_id.endswith("00")

    def error_body(self, status: int, message: str, job: Job | None = None) -> Any:
        return {"status": "error", "message": message}

    async def fetch(self, request: Request) -> Response:
        await self.record(request)
        if await self._key(request) != self.api_key:
            return JSONResponse(self.error_body(401, "Invalid API key"), 401)
        job = self.find_job(request.path_params["task_id"])
        if job is None:
            return JSONResponse(self.error_body(404, "Video not found"), 404)
        if (fault := await self.take_fault(job)) is not None:
            return fault
        return JSONResponse(self.render(job, job.view(self.clock.monotonic()), request))

    async def _key(self, request: Request) -> object:
        try:
            body = await request.json()
        except ValueError:
            return None
        return body.get("key") if isinstance(body, dict) else None

    def render(self, job: Job, view: JobView, request: Request) -> dict[str, Any]:
        if view.phase in ("failed", "canceled"):
            return {
                "status": job.detail.get("failure_word", "error"),
                job.detail.get("message_key", "message"): job.detail.get("message", "Failed to generate video"),
            }
        file = f"{job.task_id}.{job.detail.get('output_type', 'mp4')}"
        stored, mirrored = self.file_url(request, f"{_R2}/{file}"), self.file_url(request, f"{_CDN}/{file}")
        numeric_id = int(job.task_id) if job.task_id.isdigit() else job.task_id
        if view.phase == "succeeded":
            return {
                "status": "success",
                "generationTime": round(job.timeline.running_s, 2),
                "id": numeric_id,
                "output": [stored],
                "proxy_links": [mirrored],
                "meta": self._meta(job),
                "future_links": [stored],
            }
        return {
            "status": "processing",
            "tip": "Your video is processing in background, you can get this video using fetch API",
            "eta": math.ceil(view.remaining_s),
            "message": "Try to fetch request after seconds estimated",
            "fetch_result": str(request.url),
            "id": numeric_id,
            "output": [],
            "meta": self._meta(job),
            "future_links": [stored],
        }

    def _meta(self, job: Job) -> dict[str, Any]:
        return {
            "model_id": "cogvideox",
            "prompt": job.detail.get("prompt", "Space Station in space"),
            "width": job.detail.get("width", 512),
            "height": job.detail.get("height", 512),
            "num_frames": job.detail.get("num_frames", 25),
            "fps": job.detail.get("fps", 10),
            "output_type": job.detail.get("output_type", "mp4"),
            "seed": 3468127167,
            "temp": "no",
            "track_id": None,
            "webhook": None,
        }
