"""MiniMax Hailuo video emulator (v1): `GET /v1/query/video_generation?task_id=` and
`GET /v1/files/retrieve?file_id=`, Bearer auth, errors inside HTTP 200.

Shapes follow PROVIDERS-MORE.md §6: TitleCase statuses (`Preparing` for the first half of the queue, then
`Queueing`, `Processing`, `Success`, `Fail`; a job's detail `fail_word="Failed"` shows the other spelling);
`file_id` a string in the query reply and a number in the file reply; `video_width`/`video_height` on
`Success` only; `download_url` a signed URL (OSS style, `Expires` in unix seconds) valid for 9 hours from the
file lookup; every answer carries `base_resp`. The two requests of a read are named `query` and `file` for
faults aimed at one of them.

Assumptions [inf], as labelled there: a missing `Authorization` is code 1004 with the "login fail" message
and a key the emulator does not know (another region's, say) is 2049 "invalid api key", both in HTTP 200;
an unknown task or file id is 2013 "invalid params"; a failed job carries 1027 "output video sensitive" in
its `base_resp` (detail `fail_code`/`fail_msg` replace them; `fail_code=0` shows a bare `Fail`); `file_id` is
`""` while the job is not done. A faulted HTTP error carries 1002 (429) or 1000 (5xx); an error inside a 200
carries detail `error_code` (default 1024, internal error).
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sandbox.core import Emulator, Job, JobView, Outcome

URL_LIFETIME_S = 9 * 3600
_MISSING_AUTH = "login fail: Please carry the API secret key in the 'Authorization' field of the request header"


def _base_resp(code: int = 0, message: str = "success") -> dict[str, Any]:
    return {"base_resp": {"status_code": code, "status_msg": message}}


class MiniMaxEmulator(Emulator):
    """MiniMax video generation tasks and their files.

    Sandbox ids: MiniMax task ids are digits. Any run of digits is a task that succeeds, except: starting
    with `9` it fails, and starting with `404` no such task exists (2013).
    """

    id = "minimax"
    api_prefix = "/v1"
    api_key_env = "MINIMAX_API_KEY"
    base_url_env = "MINIMAX_BASE_URL"
    sandbox_key = "eyJhbGciOiJSUzI1NiJ9.sandbox-minimax-global-0123456789"
    outcomes = ("succeeded", "failed")

    @classmethod
    def sandbox_id(cls, n: int, outcome: Outcome = "succeeded") -> str:
        if outcome not in cls.outcomes:
            raise ValueError(f"{cls.id} jobs cannot end {outcome}")
        return ("9" if outcome == "failed" else "1") + f"{n:014d}"

    def routes(self) -> list[BaseRoute]:
        return [
            Route(f"{self.api_prefix}/query/video_generation", self.query, methods=["GET"]),
            Route(f"{self.api_prefix}/files/retrieve", self.retrieve, methods=["GET"]),
        ]

    def error_body(self, status: int, message: str, job: Job | None = None) -> Any:
        if status == 429:
            code = 1002
        elif status >= 500:
            code = 1000
        else:
            code = job.detail.get("error_code", 1024) if job is not None else 1024
        return _base_resp(code, message)

    @classmethod
    def finished_id(cls, n: int) -> str:
        return "7" + f"{n:014d}"

    def finished_at_start(self, task_id: str) -> bool:
        # Task ids are digits: ones starting with 7 are finished when first seen.
        return task_id.startswith("7")

    def accepts_new_id(self, task_id: str) -> bool:
        return task_id.isascii() and task_id.isdigit() and not task_id.startswith("404")

    def outcome_for(self, task_id: str) -> Outcome:
        return "failed" if task_id.startswith("9") else "succeeded"

    def file_id(self, job: Job) -> str:
        """The task's video file id: 15 digits, never a leading zero (the file reply sends it as a number)."""
        digest = int(hashlib.sha256(job.task_id.encode()).hexdigest(), 16)
        return str(10**14 + digest % (9 * 10**14))

    # ---- endpoints ----

    async def query(self, request: Request) -> Response:
        await self.record(request)
        if (denied := self._authenticate(request)) is not None:
            return denied
        task_id = request.query_params.get("task_id", "")
        job = self.find_job(task_id) if task_id else None
        if job is None:
            return JSONResponse(_base_resp(2013, "invalid params, task_id is invalid"))
        if (fault := await self.take_fault(job, "query")) is not None:
            return fault
        return JSONResponse(self.render(job, job.view(self.clock.monotonic())))

    async def retrieve(self, request: Request) -> Response:
        await self.record(request)
        if (denied := self._authenticate(request)) is not None:
            return denied
        wanted = request.query_params.get("file_id", "")
        for job in self.jobs.values():
            if self.file_id(job) == wanted and job.view(self.clock.monotonic()).phase == "succeeded":
                if (fault := await self.take_fault(job, "file")) is not None:
                    return fault
                return JSONResponse(self._file(request, job))
        return JSONResponse(_base_resp(2013, "invalid params, file_id is invalid"))

    def _authenticate(self, request: Request) -> Response | None:
        header = request.headers.get("authorization", "")
        if header == f"Bearer {self.api_key}":
            return None
        if not header.startswith("Bearer ") or not header.removeprefix("Bearer ").strip():
            return JSONResponse(_base_resp(1004, _MISSING_AUTH))
        return JSONResponse(_base_resp(2049, "invalid api key"))

    # ---- wire shapes ----

    def render(self, job: Job, view: JobView) -> dict[str, Any]:
        body: dict[str, Any] = {"task_id": job.task_id, "file_id": ""}
        if view.phase == "queued":
            body["status"] = "Preparing" if view.elapsed_s < job.timeline.queued_s / 2 else "Queueing"
        elif view.phase == "running":
            body["status"] = "Processing"
        elif view.phase == "succeeded":
            width, height = job.detail.get("size", (1920, 1080))
            body.update(status="Success", file_id=self.file_id(job), video_width=width, video_height=height)
        else:
            body["status"] = job.detail.get("fail_word", "Fail")
            code = job.detail.get("fail_code", 1027)
            return {
                **body,
                **_base_resp(code, job.detail.get("fail_msg", "output video sensitive") if code else "success"),
            }
        return {**body, **_base_resp()}

    def _file(self, request: Request, job: Job) -> dict[str, Any]:
        now = self.clock.now().timestamp()
        expires = str(math.floor(now) + URL_LIFETIME_S)
        signature = hashlib.sha256(f"{job.task_id}\n{expires}".encode()).hexdigest()[:28]
        url = self.file_url(
            request,
            f"{job.task_id}/output.mp4",
            Expires=expires,
            OSSAccessKeyId="LTAI5tSandboxMiniMax",
            Signature=signature,
        )
        return {
            "file": {
                "file_id": int(self.file_id(job)),
                "bytes": job.detail.get("bytes", 5896337),
                "created_at": math.floor(now),
                "filename": "output.mp4",
                "purpose": "video_generation",
                "download_url": url,
            },
            **_base_resp(),
        }
