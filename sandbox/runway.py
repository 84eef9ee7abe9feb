"""Runway emulator: `GET /v1/tasks/{id}` with `Authorization: Bearer key_...` and `X-Runway-Version`.

Shapes follow PROVIDERS-MORE.md §3: `{id, createdAt, status}` plus `progress` (0-1) while `RUNNING`, `output[]`
and `previewUrls[]` on `SUCCEEDED`, `failure` and `failureCode` on `FAILED`, `CANCELLED` with two Ls. A job
whose detail says `throttled` waits as `THROTTLED` instead of `PENDING`; one whose detail says `deleted` is
gone (404), as after a DELETE. Output URLs are signed with a `_jwt` whose `exp` is 48 h after the read (every
read hands out fresh ones, as the API does). [inf]: the wording of the 400/404 bodies, the answer to a
missing version header (400), the JWT's claims.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from datetime import UTC, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sandbox.core import FINISHED_UUID_PREFIX, Emulator, Job, JobView, Outcome, prefixed_uuid

_STATUS = {
    "queued": "PENDING",
    "running": "RUNNING",
    "succeeded": "SUCCEEDED",
    "failed": "FAILED",
    "canceled": "CANCELLED",
}
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
URL_LIFETIME = timedelta(hours=48)


class RunwayEmulator(Emulator):
    """Sandbox ids are UUIDs: starting with `fa11` a task fails, with `cace1` it is cancelled, with `dead`
    it does not exist."""

    id = "runway"
    api_prefix = "/v1"
    api_key_env = "RUNWAYML_API_SECRET"
    base_url_env = "RUNWAY_BASE_URL"
    sandbox_key = "key_" + "0123456789abcdef" * 8

    @classmethod
    def sandbox_id(cls, n: int, outcome: Outcome = "succeeded") -> str:
        prefix = {"succeeded": "5a4d", "failed": "fa11", "canceled": "cace1"}[outcome]
        return prefixed_uuid(prefix, n)

    @classmethod
    def finished_id(cls, n: int) -> str:
        return prefixed_uuid(FINISHED_UUID_PREFIX, n + 1)

    def finished_at_start(self, task_id: str) -> bool:
        return task_id.startswith(FINISHED_UUID_PREFIX)

    def accepts_new_id(self, task_id: str) -> bool:
        return bool(_CANONICAL_UUID.fullmatch(task_id)) and not task_id.startswith("dead")

    def outcome_for(self, task_id: str) -> Outcome:
        if task_id.startswith("fa11"):
            return "failed"
        if task_id.startswith("cace1"):
            return "canceled"
        return "succeeded"

    def routes(self) -> list[BaseRoute]:
        return [Route(f"{self.api_prefix}/tasks/{{task_id}}", self.get_task, methods=["GET"])]

    def error_body(self, status: int, message: str, job: Job | None = None) -> Any:
        return {"error": message}

    async def get_task(self, request: Request) -> Response:
        await self.record(request)
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return JSONResponse(self.error_body(401, "Invalid API key. Check the key and the host."), 401)
        if request.headers.get("x-runway-version") != "2024-11-06":
            return JSONResponse(self.error_body(400, "Missing or unsupported X-Runway-Version header."), 400)
        job = self.find_job(request.path_params["task_id"])
        if job is None or job.detail.get("deleted"):
            return JSONResponse(self.error_body(404, "Task not found."), 404)
        if (fault := await self.take_fault(job)) is not None:
            return fault
        return JSONResponse(self.render(request, job, job.view(self.clock.monotonic())))

    def render(self, request: Request, job: Job, view: JobView) -> dict[str, Any]:
        created = self.clock.now() - timedelta(seconds=view.elapsed_s)
        body: dict[str, Any] = {
            "id": job.task_id,
            "createdAt": created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "status": _STATUS[view.phase],
        }
        if view.phase == "queued" and job.detail.get("throttled"):
            body["status"] = "THROTTLED"
        elif view.phase == "running":
            body["progress"] = round(view.progress / 100, 2)
        elif view.phase == "succeeded":
            jwt = self._jwt(job)
            body["output"] = [self.file_url(request, f"{job.task_id}.mp4", _jwt=jwt)]
            body["previewUrls"] = [self.file_url(request, f"{job.task_id}-preview.jpg", _jwt=jwt)]
        elif view.phase == "failed":
            body["failure"] = job.detail.get("failure", "Your input was flagged by our content moderation system.")
            body["failureCode"] = job.detail.get("failure_code", "SAFETY.INPUT.TEXT")
        return body

    def _jwt(self, job: Job) -> str:
        """A token shaped like the CDN's: header, claims with the expiry, and a stand-in signature."""
        expires = int((self.clock.now() + URL_LIFETIME).timestamp())

        def part(data: dict[str, Any]) -> str:
            return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

        claims = part({"sub": job.task_id, "exp": expires})
        signature = hashlib.sha256(f"{job.task_id}{expires}".encode()).hexdigest()[:43]
        return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{claims}.{signature}"
