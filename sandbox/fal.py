"""fal.ai queue emulator: `GET /{owner}/{app}/requests/{id}/status`, then `GET /{owner}/{app}/requests/{id}`.

Shapes follow PROVIDERS-MORE.md §1: `Authorization: Key <FAL_KEY>`; the status answers 202 with `IN_QUEUE`
(`queue_position`) or `IN_PROGRESS` (`logs` when `?logs=1`), then 200 `COMPLETED` with `metrics`; the result
answers with the model's own code, carrying `x-fal-request-id`. Requests are only found under `{owner}/{app}`
(three segments for `workflows/` and `comfy/`): polling under the full model path finds nothing, as at fal.

A failed timeline is a runner failure by default (`COMPLETED` with `error` and `error_type`); with the job
detail `failure="model"` the status is a clean `COMPLETED` and the result call answers 422 with a list
`detail`, as a model's validation error does. fal has no canceled state, so no job ends canceled. The result
is kept `result_ttl_s` after completion (detail; default an hour), then answers 404. The requests of a read
are named `status` and `result` for aimed faults. [inf]: the 404 and 401 wording, the log text, the UUIDs.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sandbox.core import FINISHED_UUID_PREFIX, Emulator, Job, JobView, Outcome, prefixed_uuid

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
MODEL = "fal-ai/kling-video/v2/master/text-to-video"
RESULT_TTL_S = 3600.0


def request_id(task_id: str) -> str:
    """The request id at the end of a task id (`{model}/requests/{id}`), or the id itself."""
    return task_id.rsplit("/", 1)[-1].lower()


class FalEmulator(Emulator):
    """Sandbox ids are `{model}/requests/{uuid}`; a uuid starting with `fa11` fails, with `dead` is unknown."""

    id = "fal"
    api_prefix = ""
    api_key_env = "FAL_KEY"
    base_url_env = "FAL_BASE_URL"
    sandbox_key = "3f0c1d2e-sandbox:0123456789abcdef0123456789abcdef"
    outcomes = ("succeeded", "failed")

    @classmethod
    def sandbox_id(cls, n: int, outcome: Outcome = "succeeded") -> str:
        if outcome not in cls.outcomes:
            raise ValueError(f"{cls.id} jobs cannot end {outcome}")
        prefix = "fa11" if outcome == "failed" else "5a4d"
        return f"{MODEL}/requests/{prefixed_uuid(prefix, n)}"

    def add_job(self, task_id: str, *args: Any, **detail: Any) -> Job:
        # Jobs are known by their request id alone: the queue's URLs carry no endpoint sub-path.
        return super().add_job(request_id(task_id), *args, **detail)

    @classmethod
    def finished_id(cls, n: int) -> str:
        return f"{MODEL}/requests/{prefixed_uuid(FINISHED_UUID_PREFIX, n + 1)}"

    def finished_at_start(self, task_id: str) -> bool:
        return task_id.startswith(FINISHED_UUID_PREFIX)

    def accepts_new_id(self, task_id: str) -> bool:
        return bool(_UUID.fullmatch(task_id)) and not task_id.startswith("dead")

    def outcome_for(self, task_id: str) -> Outcome:
        return "failed" if request_id(task_id).startswith("fa11") else "succeeded"

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/{app:path}/requests/{request_id}/status", self.get_status, methods=["GET"]),
            Route("/{app:path}/requests/{request_id}", self.get_result, methods=["GET"]),
        ]

    def error_body(self, status: int, message: str, job: Job | None = None) -> Any:
        return {"detail": message}

    def _job(self, request: Request) -> Job | Response:
        if request.headers.get("authorization") != f"Key {self.api_key}":
            return JSONResponse({"detail": "No user found for Key ID and Secret"}, 401)
        app = request.path_params["app"].split("/")
        width = 3 if app[0] in ("workflows", "comfy") else 2
        job = self.find_job(request.path_params["request_id"].lower()) if len(app) == width else None
        if job is None:
            return JSONResponse({"detail": "Request not found"}, 404)
        return job

    async def get_status(self, request: Request) -> Response:
        await self.record(request)
        job = self._job(request)
        if isinstance(job, Response):
            return job
        if (fault := await self.take_fault(job, "status")) is not None:
            return fault
        view = job.view(self.clock.monotonic())
        root = str(request.url.replace(path=request.scope.get("root_path", ""), query="")).rstrip("/")
        response_url = f"{root}/{request.path_params['app']}/requests/{job.task_id}"
        body: dict[str, Any] = {"response_url": response_url}
        if view.phase == "queued":
            ahead = max(0, round(view.remaining_s - job.timeline.running_s))
            return JSONResponse({"status": "IN_QUEUE", "queue_position": ahead, **body}, 202)
        if view.phase == "running":
            logs = [{"message": f"Generating video ({view.progress}%)", "level": "INFO", "source": "user"}]
            wanted = request.query_params.get("logs") in ("1", "true")
            return JSONResponse({"status": "IN_PROGRESS", "logs": logs if wanted else None, **body}, 202)
        body = {"status": "COMPLETED", "logs": None, "metrics": {"inference_time": job.timeline.running_s}, **body}
        if view.phase != "succeeded" and job.detail.get("failure", "runner") == "runner":
            body.update(metrics={}, error="Runner disconnected", error_type="runner_disconnected")
        return JSONResponse(body, 200)

    async def get_result(self, request: Request) -> Response:
        await self.record(request)
        job = self._job(request)
        if isinstance(job, Response):
            return job
        if (fault := await self.take_fault(job, "result")) is not None:
            return fault
        view = job.view(self.clock.monotonic())
        relayed = {"x-fal-request-id": job.task_id}
        if not view.done:
            return JSONResponse({"detail": "Request is still in progress"}, 400, headers=relayed)
        finished_for = view.elapsed_s - job.timeline.queued_s - job.timeline.running_s
        if finished_for > job.detail.get("result_ttl_s", RESULT_TTL_S):
            return JSONResponse({"detail": "Request not found"}, 404)
        if view.phase != "succeeded":
            if job.detail.get("failure", "runner") == "runner":
                return JSONResponse(
                    {"detail": "Runner disconnected", "error_type": "runner_disconnected"}, 500, headers=relayed
                )
            detail = [
                {"loc": ["body", "prompt"], "msg": "Prompt was flagged by the safety checker", "type": "value_error"}
            ]
            return JSONResponse({"detail": detail}, 422, headers=relayed)
        return JSONResponse(self.render(request, job, view), headers=relayed)

    def render(self, request: Request, job: Job, view: JobView) -> dict[str, Any]:
        video = {
            "url": self.file_url(request, f"{job.task_id}/output.mp4"),
            "content_type": "video/mp4",
            "file_name": "output.mp4",
            "file_size": 4817203,
        }
        return {"video": video, "seed": 42}
