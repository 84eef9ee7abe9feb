"""Replicate emulator: `GET /v1/predictions/{id}` with `Authorization: Bearer <token>`.

Shapes follow PROVIDERS-MORE.md §2: the prediction object (`id`, `model`, `version`, `input`, `logs`,
`output`, `data_removed`, `error`, `status`, `created_at`, `started_at`, `completed_at`, `metrics`, `urls`),
RFC 7807 problem details for errors, a tqdm bar in `logs` while processing. A canceled timeline is
`canceled`; a job whose detail says `aborted` ends `aborted` instead (the deadline passed before it started).
The output is one URL string (a job's detail `output_shape` may ask for `list` or `object`), served by the
sandbox; an hour after a prediction finished its output and logs are removed and `data_removed` is true, as
the API does. [inf]: the id alphabet of sandbox jobs, the log text, the wording of the 404 body.
"""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sandbox.core import Emulator, Job, JobView, Outcome

_STATUS = {
    "queued": "starting",
    "running": "processing",
    "succeeded": "succeeded",
    "failed": "failed",
    "canceled": "canceled",
}

_TITLES = {
    401: "Unauthenticated",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}

RETENTION_S = 3600.0
# The words the core gives a 429 fault, which Replicate's own throttle message replaces.
_BUSY = "Too many requests"


class ReplicateEmulator(Emulator):
    id = "replicate"
    api_prefix = "/v1"
    api_key_env = "REPLICATE_API_TOKEN"
    base_url_env = "REPLICATE_BASE_URL"
    sandbox_key = "r8_SandboxReplicateToken0123456789abcdef"

    @classmethod
    def sandbox_id(cls, n: int, outcome: Outcome = "succeeded") -> str:
        # Replicate's ids are 26 lowercase letters and digits; the outcome word is part of the id.
        word = {"succeeded": "q", "failed": "fail", "canceled": "cancel"}[outcome]
        return word + str(n).rjust(26 - len(word), "0")

    @classmethod
    def finished_id(cls, n: int) -> str:
        return "done" + str(n).rjust(22, "0")

    def file_access(self, request: Request, name: str) -> Response | None:
        # Files go with the prediction's data an hour after it finished: the delivery host then has nothing.
        job = self.jobs.get(name.split("/", 1)[0])
        if job is not None:
            view = job.view(self.clock.monotonic())
            finished_for = view.elapsed_s - job.timeline.queued_s - job.timeline.running_s
            if view.done and finished_for >= RETENTION_S:
                return Response(b"Not Found", 404, media_type="text/plain")
        return None

    def routes(self) -> list[BaseRoute]:
        return [Route(f"{self.api_prefix}/predictions/{{prediction_id}}", self.get_prediction, methods=["GET"])]

    def error_body(self, status: int, message: str, job: Job | None = None) -> Any:
        if status == 429:
            # The throttle answer is a bare detail (docs); an echoing fault's appendix is kept after it.
            return {"detail": "Request was throttled. Your rate limit resets in ~30s." + message.removeprefix(_BUSY)}
        return {"type": "about:blank", "title": _TITLES.get(status, "Error"), "status": status, "detail": message}

    async def get_prediction(self, request: Request) -> Response:
        await self.record(request)
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return JSONResponse(self.error_body(401, "You did not pass a valid authentication token"), 401)
        job = self.find_job(request.path_params["prediction_id"])
        if job is None:
            return JSONResponse(self.error_body(404, "The requested resource could not be found."), 404)
        if (fault := await self.take_fault(job)) is not None:
            return fault
        return JSONResponse(self.render(request, job, job.view(self.clock.monotonic())))

    def render(self, request: Request, job: Job, view: JobView) -> dict[str, Any]:
        now = self.clock.now()
        created = now - timedelta(seconds=view.elapsed_s)
        timeline = job.timeline
        base = str(request.url.replace(path=request.scope.get("root_path", "") + self.api_prefix, query=""))
        body: dict[str, Any] = {
            "id": job.task_id,
            "model": job.detail.get("model", "kwaivgi/kling-v2.1"),
            "version": "hidden",
            "input": {"prompt": job.detail.get("prompt", "a red fox trotting through fresh snow")},
            "logs": "",
            "output": None,
            "data_removed": False,
            "error": None,
            "status": _STATUS[view.phase],
            "created_at": _time(created),
            "urls": {
                "get": f"{base}/predictions/{job.task_id}",
                "cancel": f"{base}/predictions/{job.task_id}/cancel",
            },
        }
        if job.detail.get("aborted") and view.phase == "canceled":
            body["status"] = "aborted"
            return body
        if view.phase != "queued":
            body["started_at"] = _time(created + timedelta(seconds=timeline.queued_s))
        if view.phase == "running":
            steps = 50
            done = round(steps * view.progress / 100)
            bar = ("█" * (done // 5)).ljust(10)
            body["logs"] = f"Loading weights\n{view.progress:3d}%|{bar}| {done}/{steps} [00:30<00:45]\n"
            return body
        if not view.done:
            return body
        finished_for = view.elapsed_s - timeline.queued_s - timeline.running_s
        body["completed_at"] = _time(now - timedelta(seconds=finished_for))
        body["metrics"] = {"predict_time": round(timeline.running_s, 3), "total_time": round(view.elapsed_s, 3)}
        if finished_for >= RETENTION_S:
            body["data_removed"] = True
            return body
        body["logs"] = "100%|██████████| 50/50 [00:30<00:00]\n"
        if view.phase == "succeeded":
            url = self.file_url(request, f"{job.task_id}/output.mp4")
            shape = job.detail.get("output_shape", "string")
            body["output"] = [url] if shape == "list" else {"video": url} if shape == "object" else url
        elif view.phase == "failed":
            body["error"] = job.detail.get("error", "E005: The input or output was flagged as sensitive.")
        return body


def _time(moment: Any) -> str:
    """Replicate writes microseconds and `Z`."""
    return str(moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
