"""Kling emulator: `GET /v1/videos/{family}/{task_id}`, a Bearer JWT checked on every request.

Follows PROVIDERS-MORE.md §5 and the docs' error table (mirrors of the official pages):

- The token is verified as Kling's docs make it: three base64url parts, header `alg` HS256, the signature
  by the secret key over the first two, `iss` the access key, `nbf` not in the future, `exp` not passed.
  A failure is HTTP 401 with the documented code: 1001 no Authorization, 1002 one that cannot be read,
  1000 a wrong key or signature, 1003 not yet valid, 1004 expired. Token times are judged by `wall`
  (real Unix time unless a test sets another): the server signs with real time, while job timelines move
  on the emulator's clock, which tests make virtual.
- Answers are the envelope `{code, message, request_id, data}`; a task is `submitted`, `processing`,
  `succeed` (with `watermark_info` and `task_result.videos[]` of `id`, `url`, `watermark_url`, `duration` as
  a string) or `failed` (reason in `task_status_msg`, `task_result` empty, as a captured answer shows), all
  in HTTP 200 with `code: 0`. `created_at`/`updated_at` are Unix milliseconds; ids are 18-digit strings.
- Each family has its own path; a job lives in one family (`add_job("image2video/...")`; a bare id is a
  `text2video` job), and asking another family for it is not found.

Assumptions [inf]: an unknown task is HTTP 404 with code 1203 and "task not found"; an unknown family in
the path is HTTP 404 with code 1202; a fault's error body pairs its HTTP status with the code the table
gives it (429 -> 1302, 500/502 -> 5000, 503 -> 5001, 504 -> 5002; an error inside a 200 is 5000), unless the
job's detail `error_code` says otherwise; the failure reason's words; the video's duration, "5.042".
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any, TypeGuard

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sandbox.core import Emulator, Fault, Job, JobView, Outcome, Timeline
from tools.clock import Clock

FAMILIES = ("text2video", "image2video", "multi-image2video", "video-extend", "lip-sync", "effects", "omni-video")

_STATUS = {"queued": "submitted", "running": "processing", "succeeded": "succeed", "failed": "failed"}

# The docs' error table: the code each HTTP status of a fault goes with, and the codes' own words.
_CODE_FOR_STATUS = {200: 5000, 400: 1200, 401: 1000, 403: 1103, 404: 1203, 429: 1302, 500: 5000, 502: 5000}
_CODE_FOR_STATUS |= {503: 5001, 504: 5002}
_AUTH_WORDS = {
    1000: "Authentication failed",
    1001: "Authorization is empty",
    1002: "Authorization is invalid",
    1003: "Authorization is not yet valid",
    1004: "Authorization has expired",
}

_FIRST_ID = 867283741759111202
DURATION = "5.042"


def _unb64url(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


class KlingEmulator(Emulator):
    """Kling's video tasks.

    Sandbox ids: Kling's are 18-digit strings. Any unseen id is a job that succeeds, except: containing
    `fail` it fails, and containing `missing` no such task exists (404). Kling has no cancel.
    """

    id = "kling"
    api_prefix = "/v1"
    api_key_env = "KLING_ACCESS_KEY"
    secret_key_env = "KLING_SECRET_KEY"
    base_url_env = "KLING_BASE_URL"
    sandbox_key = "AKsandboxKling0123456789"
    sandbox_secret = "SKsandboxKling9876543210abcdef"
    outcomes = ("succeeded", "failed")

    def __init__(self, clock: Clock | None = None, *, auto_create: bool = True) -> None:
        super().__init__(clock, auto_create=auto_create)
        self.secret_key = self.sandbox_secret
        self.wall: Callable[[], float] = time.time

    @classmethod
    def sandbox_id(cls, n: int, outcome: Outcome = "succeeded") -> str:
        if outcome not in cls.outcomes:
            raise ValueError(f"{cls.id} jobs cannot end {outcome}")
        return f"{_FIRST_ID + n}" + ("-fail" if outcome == "failed" else "")

    @classmethod
    def finished_id(cls, n: int) -> str:
        return f"{_FIRST_ID + n}-done"

    def credentials(self) -> dict[str, str]:
        return {self.api_key_env: self.api_key, self.secret_key_env: self.secret_key}

    def add_job(
        self, task_id: str, timeline: Timeline | None = None, faults: Iterable[Fault] = (), **detail: Any
    ) -> Job:
        """A job in the family its id names (`image2video/8672...`); a bare id is a text2video job."""
        return super().add_job(_in_family(task_id), timeline, faults, **detail)

    def routes(self) -> list[BaseRoute]:
        return [Route(f"{self.api_prefix}/videos/{{family}}/{{task_id}}", self.get_task, methods=["GET"])]

    def error_body(self, status: int, message: str, job: Job | None = None) -> Any:
        code = _CODE_FOR_STATUS.get(status, 5000)
        if job is not None and "error_code" in job.detail:
            code = job.detail["error_code"]
        return {"code": code, "message": message, "request_id": str(uuid.uuid4())}

    # ---- the endpoint ----

    async def get_task(self, request: Request) -> Response:
        await self.record(request)
        if (refused := self.check_token(request.headers.get("authorization", ""))) is not None:
            return JSONResponse(self.error_body(401, _AUTH_WORDS[refused]) | {"code": refused}, 401)
        family, task_id = request.path_params["family"], request.path_params["task_id"]
        if family not in FAMILIES:
            return JSONResponse(self.error_body(404, "request method is invalid") | {"code": 1202}, 404)
        job = self.find_job(f"{family}/{task_id}")
        if job is None:
            return JSONResponse(self.error_body(404, "task not found"), 404)
        if (fault := await self.take_fault(job, request=family)) is not None:
            return fault
        return JSONResponse(self.render(request, job, job.view(self.clock.monotonic())))

    def check_token(self, authorization: str) -> int | None:
        """None for a token Kling would take, else the documented code of why not."""
        if not authorization.strip():
            return 1001
        scheme, _, token = authorization.partition(" ")
        parts = token.split(".")
        if scheme != "Bearer" or len(parts) != 3:
            return 1002
        try:
            header = json.loads(_unb64url(parts[0]))
            claims = json.loads(_unb64url(parts[1]))
            signature = _unb64url(parts[2])
        except (binascii.Error, ValueError, UnicodeDecodeError):
            return 1002
        if not isinstance(header, dict) or header.get("alg") != "HS256" or not isinstance(claims, dict):
            return 1002
        expires, not_before = claims.get("exp"), claims.get("nbf")
        if not (_is_time(expires) and _is_time(not_before)):
            return 1002
        expected = hmac.new(self.secret_key.encode(), f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
        if claims.get("iss") != self.api_key or not hmac.compare_digest(signature, expected):
            return 1000
        now = self.wall()
        if not_before > now:
            return 1003
        if expires <= now:
            return 1004
        return None

    def render(self, request: Request, job: Job, view: JobView) -> dict[str, Any]:
        task_id = job.task_id.partition("/")[2]
        now = self.clock.now()
        created = now - timedelta(seconds=view.elapsed_s)
        total = job.timeline.queued_s + job.timeline.running_s
        updated = created + timedelta(seconds=min(view.elapsed_s, total)) if view.done else now
        info = {"external_task_id": job.detail["external_task_id"]} if "external_task_id" in job.detail else {}
        data: dict[str, Any] = {
            "task_id": task_id,
            "task_status": _STATUS[view.phase],
            "task_info": info,
            "created_at": round(created.timestamp() * 1000),
            "updated_at": round(updated.timestamp() * 1000),
        }
        if view.phase == "running":
            data |= {"task_status_msg": "", "task_result": {"videos": []}}
        elif view.phase == "succeeded":
            video_id = self.video_id(job)
            video = {
                "id": video_id,
                "url": self.file_url(request, f"{job.task_id}/{video_id}.mp4"),
                "watermark_url": "",
                "duration": job.detail.get("duration", DURATION),
            }
            data |= {"task_status_msg": "", "watermark_info": {"enabled": False}, "task_result": {"videos": [video]}}
        elif view.phase == "failed":
            reason = job.detail.get("reason", "Failure to pass the risk control system")
            data |= {"task_status_msg": reason, "task_result": {}}
        return {"code": 0, "message": "SUCCEED", "request_id": str(uuid.uuid4()), "data": data}

    def video_id(self, job: Job) -> str:
        """The generated video's own id: 18 digits, fixed for the job."""
        digest = int.from_bytes(hashlib.sha256(job.task_id.encode()).digest()[:8], "big")
        return str(10**17 + digest % (9 * 10**17))


def _is_time(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _in_family(task_id: str) -> str:
    return task_id if "/" in task_id else f"text2video/{task_id}"
