"""TensorPix emulator: `GET /api/video-gen/jobs/{id}/` and `GET /api/video-gen/videos/{id}/`, DRF style.

Shapes follow PROVIDERS.md §3 and the stored API reference. What the docs leave open is labelled there as
[inf] and chosen here as follows: the status words `IN_QUEUE` (documented for enhancement jobs),
`PROCESSING`, `COMPLETED`, `FAILED`, `CANCELED`; no failure-reason field (none is documented); `cost`
"12.00"; pre-signed URLs in the S3 SigV4 query form, valid for an hour from the emulator clock's now, so
every read hands out a fresh one as the docs describe. The files are served at those URLs as S3 serves a
pre-signed GET: past `X-Amz-Date` + `X-Amz-Expires` it answers 403 with S3's XML `AccessDenied` "Request
has expired", and a URL whose signature is not the one handed out 403 `SignatureDoesNotMatch`.

Django REST Framework behaviours reproduced: a path without its trailing slash gets Django's APPEND_SLASH
answer (301 to the slash form, before any authentication); TokenAuthentication's 401 messages with
`WWW-Authenticate: Token`; `{"detail": "Not found."}` for an id that is unknown or not a UUID.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sandbox.core import FINISHED_UUID_PREFIX, Emulator, Job, JobView, Outcome, prefixed_uuid

_AMZ_DATE = "%Y%m%dT%H%M%SZ"

_STATUS = {
    "queued": "IN_QUEUE",
    "running": "PROCESSING",
    "succeeded": "COMPLETED",
    "failed": "FAILED",
    "canceled": "CANCELED",
}

_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

URL_LIFETIME_S = 3600
# The access key id is public in every pre-signed URL; this one is made up.
_ACCESS_KEY_ID = "AKIASANDBOX0TENSORPIX"

_VIDEO_NAMESPACE = uuid.UUID("5f0c1a52-7d2e-4e43-9a1b-0c4b8f6d2e11")


class TensorPixEmulator(Emulator):
    """TensorPix video-gen jobs.

    Sandbox ids: TensorPix ids are UUIDs, so the auto-created jobs follow their own rule. Any UUID in the
    canonical form is a job that succeeds, except: starting with `fa11` it fails, starting with `cace1` it is
    canceled, and starting with `dead` no such job exists (404), to show task_not_found; one starting with
    `d0e5` is finished already when first seen.
    """

    id = "tensorpix"
    api_prefix = "/api"
    api_key_env = "TENSORPIX_API_KEY"
    base_url_env = "TENSORPIX_BASE_URL"
    # DRF authtoken keys are 40 hex characters.
    sandbox_key = "5a4db0c05a4db0c0feedface0123456789abcdef"

    @classmethod
    def sandbox_id(cls, n: int, outcome: Outcome = "succeeded") -> str:
        prefix = {"succeeded": "", "failed": "fa11", "canceled": "cace1"}[outcome]
        return prefixed_uuid(prefix, n + 1)

    def routes(self) -> list[BaseRoute]:
        base = f"{self.api_prefix}/video-gen"
        return [
            Route(f"{base}/jobs/{{job_id}}/", self.get_job, methods=["GET"]),
            Route(f"{base}/videos/{{video_id}}/", self.get_video, methods=["GET"]),
            Route(f"{base}/jobs/{{job_id}}", self.append_slash, methods=["GET"]),
            Route(f"{base}/videos/{{video_id}}", self.append_slash, methods=["GET"]),
        ]

    def error_body(self, status: int, message: str, job: Job | None = None) -> Any:
        return {"detail": message}

    def file_access(self, request: Request, name: str) -> Response | None:
        query = request.query_params
        signed_at, lifetime = query.get("X-Amz-Date", ""), query.get("X-Amz-Expires", "")
        try:
            issued = datetime.strptime(signed_at, _AMZ_DATE).replace(tzinfo=UTC)
            expires = issued + timedelta(seconds=int(lifetime))
        except ValueError:
            return _s3_error(
                "AccessDenied", "Query-string authentication requires the Signature, Expires and Credential parameters"
            )
        if query.get("X-Amz-Signature") != _signature(name, signed_at):
            return _s3_error(
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        now = self.clock.now().astimezone(UTC)
        if now > expires:
            return _s3_error(
                "AccessDenied",
                "Request has expired",
                X_Amz_Expires=lifetime,
                Expires=expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
                ServerTime=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            )
        return None

    def accepts_new_id(self, task_id: str) -> bool:
        return bool(_CANONICAL_UUID.fullmatch(task_id)) and not task_id.startswith("dead")

    @classmethod
    def finished_id(cls, n: int) -> str:
        return prefixed_uuid(FINISHED_UUID_PREFIX, n + 1)

    def finished_at_start(self, task_id: str) -> bool:
        return task_id.startswith(FINISHED_UUID_PREFIX)

    def outcome_for(self, task_id: str) -> Outcome:
        if task_id.startswith("fa11"):
            return "failed"
        if task_id.startswith("cace1"):
            return "canceled"
        return "succeeded"

    # ---- endpoints ----

    async def append_slash(self, request: Request) -> Response:
        """Django's CommonMiddleware: a permanent redirect to the same path with a slash, query kept."""
        await self.record(request)
        target = request.url.path + "/"
        if request.url.query:
            target += "?" + request.url.query
        return Response(b"", 301, headers={"Location": target}, media_type="text/html; charset=utf-8")

    async def get_job(self, request: Request) -> Response:
        await self.record(request)
        if (denied := self._authenticate(request)) is not None:
            return denied
        job = self._lookup(request.path_params["job_id"])
        if job is None:
            return JSONResponse(self.error_body(404, "Not found."), 404)
        if (fault := await self.take_fault(job)) is not None:
            return fault
        return JSONResponse(self.render(job, job.view(self.clock.monotonic()), request))

    async def get_video(self, request: Request) -> Response:
        await self.record(request)
        if (denied := self._authenticate(request)) is not None:
            return denied
        wanted = request.path_params["video_id"].lower()
        for job in self.jobs.values():
            view = job.view(self.clock.monotonic())
            if view.phase == "succeeded" and self.video_id(job) == wanted:
                if (fault := await self.take_fault(job)) is not None:
                    return fault
                return JSONResponse(self._generated_video(job, view, request))
        return JSONResponse(self.error_body(404, "Not found."), 404)

    def _authenticate(self, request: Request) -> Response | None:
        """DRF TokenAuthentication: another scheme is no credentials at all, then the header's own checks."""
        words = request.headers.get("authorization", "").split()
        if not words or words[0].lower() != "token":
            message = "Authentication credentials were not provided."
        elif len(words) == 1:
            message = "Invalid token header. No credentials provided."
        elif len(words) > 2:
            message = "Invalid token header. Token string should not contain spaces."
        elif words[1] != self.api_key:
            message = "Invalid token."
        else:
            return None
        return JSONResponse(self.error_body(401, message), 401, headers={"WWW-Authenticate": "Token"})

    def _lookup(self, raw_id: str) -> Job | None:
        # Django's UUIDField reads any form `uuid.UUID` accepts; anything else is simply not found.
        try:
            task_id = str(uuid.UUID(raw_id))
        except ValueError:
            return None
        return self.find_job(task_id)

    # ---- wire shapes ----

    def render(self, job: Job, view: JobView, request: Request) -> dict[str, Any]:
        now = self.clock.now()
        started_at = None
        if view.phase != "queued":
            started_at = _drf_time(now - timedelta(seconds=view.elapsed_s - job.timeline.queued_s))
        images = job.detail.get("input_images", [])
        return {
            "id": job.task_id,
            "prompt": job.detail.get("prompt", "a red fox trotting through fresh snow at dawn"),
            "type": "i2v" if images else "t2v",
            "status": _STATUS[view.phase],
            "cost": job.detail.get("cost", "12.00"),
            "model": job.detail.get("model", "wan-2.1"),
            "generated_video": self._generated_video(job, view, request) if view.phase == "succeeded" else None,
            "input_images": images,
            "progress": view.progress,
            "started_at": started_at,
            "options": {"duration": 5, "resolution": "720p"},
        }

    def video_id(self, job: Job) -> str:
        return str(uuid.uuid5(_VIDEO_NAMESPACE, job.task_id))

    def _generated_video(self, job: Job, view: JobView, request: Request) -> dict[str, Any]:
        now = self.clock.now()
        timeline = job.timeline
        finished = now - timedelta(seconds=view.elapsed_s - timeline.queued_s - timeline.running_s)
        name = job.detail.get("name", "fox-in-snow.mp4")
        folder = f"video-gen/{job.task_id}"
        file_url = self.file_url(request, f"{folder}/{name}", **_presign(f"{folder}/{name}", now))
        thumbnail = self.file_url(request, f"{folder}/thumbnail.jpg", **_presign(f"{folder}/thumbnail.jpg", now))
        metadata: dict[str, Any] = {"width": 1280, "height": 720, "n_frames": 121, "framerate": 24.0, "size": 5123456}
        return {
            "id": self.video_id(job),
            "name": name,
            "created_at": _drf_time(finished),
            "job": job.task_id,
            "uploaded_video": {
                "id": uuid.UUID(job.task_id).int % 1_000_000,
                "name": name,
                **metadata,
                "created_at": _drf_time(finished),
                "owner": "sandbox@example.com",
                "thumbnail": thumbnail,
                "external_url": None,
                "bitrate": 8_000_000,
                "codec_id": "avc1",
                "bit_depth": 8,
                "chroma_subsampling": "4:2:0",
                "color_space": "bt709",
                "file": file_url,
            },
            **metadata,
            "file": file_url,
            "thumbnail": thumbnail,
        }


def _presign(key: str, now: datetime) -> dict[str, str]:
    """The query of an S3 SigV4 pre-signed GET; the signature is a stand-in that only this emulator checks."""
    amz_date = now.astimezone(UTC).strftime(_AMZ_DATE)
    return {
        "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
        "X-Amz-Credential": f"{_ACCESS_KEY_ID}/{amz_date[:8]}/eu-central-1/s3/aws4_request",
        "X-Amz-Date": amz_date,
        "X-Amz-Expires": str(URL_LIFETIME_S),
        "X-Amz-SignedHeaders": "host",
        "X-Amz-Signature": _signature(key, amz_date),
    }


def _signature(key: str, amz_date: str) -> str:
    return hashlib.sha256(f"{key}\n{amz_date}".encode()).hexdigest()


def _s3_error(code: str, message: str, **extra: str) -> Response:
    """S3's error document, as it answers a pre-signed GET it refuses."""
    fields = "".join(f"<{name.replace('_', '-')}>{value}</{name.replace('_', '-')}>" for name, value in extra.items())
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>{fields}"
        "<RequestId>SANDBOX0REQUEST0</RequestId><HostId>c2FuZGJveA==</HostId></Error>"
    )
    return Response(body, 403, media_type="application/xml")


def _drf_time(moment: datetime) -> str:
    """DRF's DateTimeField output: ISO 8601, UTC written as Z."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
