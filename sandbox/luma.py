"""Luma Dream Machine emulator: `GET` and `DELETE /dream-machine/v1/generations/{id}`, Bearer auth.

Shapes follow PROVIDERS-MORE.md §4 (openapi.yaml 1.1.0 and the SDK's `Generation`): `state` `queued`,
`dreaming`, `completed`, `failed`; `failure_reason`; `assets` `{video, image, progress_video}`; errors
`{"detail": "..."}`. DELETE answers 204 and forgets the generation; there is no cancel, so no job ends
canceled. Assumptions [inf], as labelled there: `assets` is null while queued; `progress_video` is filled while
dreaming; `image` is the video's thumbnail; a wrong key is a 401 and an unknown id a 404 with
`{"detail": "Generation not found"}`. A job's detail `failure_reason` replaces the default reason, and
`generation_type="image"` makes an image generation.
"""

from __future__ import annotations

import re
from datetime import UTC, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sandbox.core import FINISHED_UUID_PREFIX, Emulator, Job, JobView, Outcome, prefixed_uuid

_STATE = {"queued": "queued", "running": "dreaming", "succeeded": "completed", "failed": "failed"}

_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class LumaEmulator(Emulator):
    """Luma generations.

    Sandbox ids: Luma ids are UUIDs. Any UUID in the canonical lowercase form is a generation that completes,
    except: starting with `fa11` it fails, and starting with `dead` no such generation exists (404).
    """

    id = "luma"
    api_prefix = "/dream-machine/v1"
    api_key_env = "LUMAAI_API_KEY"
    base_url_env = "LUMA_BASE_URL"
    sandbox_key = "luma-sandbox-0123456789abcdef0123456789abcdef"
    outcomes = ("succeeded", "failed")

    @classmethod
    def sandbox_id(cls, n: int, outcome: Outcome = "succeeded") -> str:
        if outcome not in cls.outcomes:
            raise ValueError(f"{cls.id} jobs cannot end {outcome}")
        prefix = "fa11" if outcome == "failed" else ""
        return prefixed_uuid(prefix, n + 1)

    def routes(self) -> list[BaseRoute]:
        path = f"{self.api_prefix}/generations/{{generation_id}}"
        return [
            Route(path, self.get_generation, methods=["GET"]),
            Route(path, self.delete_generation, methods=["DELETE"]),
        ]

    def error_body(self, status: int, message: str, job: Job | None = None) -> Any:
        return {"detail": message}

    @classmethod
    def finished_id(cls, n: int) -> str:
        return prefixed_uuid(FINISHED_UUID_PREFIX, n + 1)

    def finished_at_start(self, task_id: str) -> bool:
        return task_id.startswith(FINISHED_UUID_PREFIX)

    def accepts_new_id(self, task_id: str) -> bool:
        return bool(_CANONICAL_UUID.fullmatch(task_id)) and not task_id.startswith("dead")

    def outcome_for(self, task_id: str) -> Outcome:
        return "failed" if task_id.startswith("fa11") else "succeeded"

    # ---- endpoints ----

    async def get_generation(self, request: Request) -> Response:
        await self.record(request)
        if (denied := self._authenticate(request)) is not None:
            return denied
        job = self.find_job(request.path_params["generation_id"])
        if job is None:
            return JSONResponse(self.error_body(404, "Generation not found"), 404)
        if (fault := await self.take_fault(job)) is not None:
            return fault
        return JSONResponse(self.render(request, job, job.view(self.clock.monotonic())))

    async def delete_generation(self, request: Request) -> Response:
        await self.record(request)
        if (denied := self._authenticate(request)) is not None:
            return denied
        if self.jobs.pop(request.path_params["generation_id"], None) is None:
            return JSONResponse(self.error_body(404, "Generation not found"), 404)
        return Response(status_code=204)

    def _authenticate(self, request: Request) -> Response | None:
        if request.headers.get("authorization") == f"Bearer {self.api_key}":
            return None
        return JSONResponse(self.error_body(401, "Invalid API key is provided"), 401)

    # ---- wire shapes ----

    def render(self, request: Request, job: Job, view: JobView) -> dict[str, Any]:
        created = self.clock.now() - timedelta(seconds=view.elapsed_s)
        kind = job.detail.get("generation_type", "video")
        prompt = job.detail.get("prompt", "a red fox in snow")
        assets: dict[str, str] | None = None
        if view.phase == "running" and kind == "video":
            assets = {"progress_video": self.file_url(request, f"{job.task_id}/progress.mp4")}
        elif view.phase == "succeeded" and kind == "image":
            assets = {"image": self.file_url(request, f"{job.task_id}/image_0.jpg")}
        elif view.phase == "succeeded":
            assets = {
                "video": self.file_url(request, f"{job.task_id}/video_0.mp4"),
                "image": self.file_url(request, f"{job.task_id}/video_0_thumb.jpg"),
            }
        failed = view.phase == "failed"
        return {
            "id": job.task_id,
            "generation_type": kind,
            "state": _STATE[view.phase],
            "failure_reason": job.detail.get("failure_reason", "Advanced prompt moderation failed") if failed else None,
            "created_at": created.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "assets": assets,
            "model": job.detail.get("model", "ray-2" if kind == "video" else "photon-1"),
            "request": {"generation_type": kind, "prompt": prompt, "model": "ray-2", "aspect_ratio": "16:9"},
        }
