"""Wan emulator: Alibaba DashScope / Model Studio asynchronous tasks, `GET /api/v1/tasks/{task_id}`.

Follows PROVIDERS-THIRD.md §2: Bearer auth (`DASHSCOPE_API_KEY`); every answer is `{request_id, output,
usage}` with `output.task_id` and `output.task_status` in `PENDING`, `RUNNING`, `SUCCEEDED`, `FAILED`,
`CANCELED` (one L); times are zone-less `YYYY-MM-DD HH:mm:ss.SSS` strings; `output.video_url` (an OSS URL
signed with `Expires`, valid 24 h) and `usage` only once succeeded (the Wan 2.7 field names, or the 2.1
ones with a job's detail `usage="2.1"`); a failed task is HTTP 200 with `output.code` and
`output.message`; an id that does not exist (or contains `missing`, or starts with `dead`) is HTTP 200
with `UNKNOWN`, as the docs say of unknown and expired ids. Request errors are top-level
`{code, message, request_id}` (`InvalidApiKey` for a wrong key).

Sandbox ids are UUIDs, as DashScope's are: starting with `fa11` the job fails, with `cace1` it is canceled.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
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
    "canceled": "CANCELED",
}

_CODES = {
    400: "InvalidParameter",
    401: "InvalidApiKey",
    403: "AccessDenied",
    404: "NotFound",
    429: "Throttling.RateQuota",
    500: "InternalError",
}

_REQUEST_IDS = uuid.UUID("7a1c9e52-3d4b-4f6a-8b2c-1d0e9f8a7b6c")


class WanEmulator(Emulator):
    id = "wan"
    api_prefix = "/api/v1"
    api_key_env = "DASHSCOPE_API_KEY"
    base_url_env = "WAN_BASE_URL"
    sandbox_key = "sk-sandbox0dashscope0123456789abc"

    @classmethod
    def sandbox_id(cls, n: int, outcome: Outcome = "succeeded") -> str:
        prefix = {"succeeded": "", "failed": "fa11", "canceled": "cace1"}[outcome]
        return prefixed_uuid(prefix, n + 1)

    @classmethod
    def finished_id(cls, n: int) -> str:
        return prefixed_uuid(FINISHED_UUID_PREFIX, n + 1)

    def finished_at_start(self, task_id: str) -> bool:
        return task_id.startswith(FINISHED_UUID_PREFIX)

    def accepts_new_id(self, task_id: str) -> bool:
        return super().accepts_new_id(task_id) and not task_id.startswith("dead")

    def outcome_for(self, task_id: str) -> Outcome:
        if task_id.startswith("fa11"):
            return "failed"
        if task_id.startswith("cace1"):
            return "canceled"
        return "succeeded"

    def routes(self) -> list[BaseRoute]:
        return [Route(f"{self.api_prefix}/tasks/{{task_id}}", self.get_task, methods=["GET"])]

    def error_body(self, status: int, message: str, job: Job | None = None) -> Any:
        return {"code": _CODES.get(status, "InternalError"), "message": message, "request_id": self._request_id()}

    async def get_task(self, request: Request) -> Response:
        await self.record(request)
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return JSONResponse(self.error_body(401, "Invalid API-key provided."), 401)
        task_id = request.path_params["task_id"]
        job = self.find_job(task_id)
        if job is None:
            output = {"task_id": task_id, "task_status": "UNKNOWN"}
            return JSONResponse({"request_id": self._request_id(), "output": output})
        if (fault := await self.take_fault(job)) is not None:
            return fault
        return JSONResponse(self.render(request, job, job.view(self.clock.monotonic())))

    def render(self, request: Request, job: Job, view: JobView) -> dict[str, Any]:
        submitted = self.clock.now() - timedelta(seconds=view.elapsed_s)
        output: dict[str, Any] = {
            "task_id": job.task_id,
            "task_status": _STATUS[view.phase],
            "submit_time": _time(submitted),
        }
        if view.phase != "queued":
            output["scheduled_time"] = _time(submitted + timedelta(seconds=job.timeline.queued_s))
        body: dict[str, Any] = {"request_id": self._request_id(), "output": output}
        if view.done:
            output["end_time"] = _time(submitted + timedelta(seconds=_length(job)))
        if view.phase == "failed":
            output["code"] = job.detail.get("code", "DataInspectionFailed")
            output["message"] = job.detail.get("message", "Output data may contain inappropriate content.")
        if view.phase == "succeeded":
            output["orig_prompt"] = job.detail.get("prompt", "a kitten running in the moonlight")
            expires = int((self.clock.now() + timedelta(hours=24)).timestamp())
            output["video_url"] = self.file_url(
                request,
                f"{job.task_id}.mp4",
                Expires=str(expires),
                OSSAccessKeyId="LTAISANDBOX",
                Signature="c2FuZGJveA==",
            )
            seconds = job.detail.get("duration", 5)
            if job.detail.get("usage") == "2.1":
                body["usage"] = {"video_duration": seconds, "video_count": 1, "video_ratio": "1280*720"}
            else:
                body["usage"] = {
                    "duration": seconds,
                    "input_video_duration": 0,
                    "output_video_duration": seconds,
                    "video_count": 1,
                    "SR": 720,
                }
        return body

    def _request_id(self) -> str:
        return str(uuid.uuid5(_REQUEST_IDS, str(len(self.requests))))


def _length(job: Job) -> float:
    return job.timeline.queued_s + job.timeline.running_s


def _time(moment: datetime) -> str:
    """DashScope's zone-less time, to the millisecond (Beijing time on the real service)."""
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"
