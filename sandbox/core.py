"""What every provider emulator shares: jobs with scripted timelines, scripted faults, a request log.

An emulator is an ASGI app (Starlette) that speaks one provider's documented API. Its jobs move through a
`Timeline` on an injectable clock (queued, running with progress, then an outcome), and each job can carry
a queue of `Fault`s that replace its next answers (429, 5xx, slow, malformed JSON, HTML, empty body).
The subclasses only know the provider's paths, auth and wire shapes.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, timedelta
from email.utils import format_datetime
from typing import Any, ClassVar, Literal

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from tools.clock import Clock, SystemClock

Phase = Literal["queued", "running", "succeeded", "failed", "canceled"]
Outcome = Literal["succeeded", "failed", "canceled"]


@dataclass(frozen=True)
class Timeline:
    """A job's life: `queued_s` in the queue, `running_s` running with progress rising evenly, then `outcome`."""

    queued_s: float = 2.0
    running_s: float = 6.0
    outcome: Outcome = "succeeded"

    def at(self, elapsed: float) -> JobView:
        if elapsed < self.queued_s:
            return JobView("queued", 0, self.queued_s + self.running_s - elapsed, elapsed)
        running_for = elapsed - self.queued_s
        if running_for < self.running_s:
            percent = math.floor(100 * running_for / self.running_s) if self.running_s else 100
            return JobView("running", min(99, percent), self.running_s - running_for, elapsed)
        # A failed or canceled job stops part way; where, does not matter to anyone but the progress field.
        return JobView(self.outcome, 100 if self.outcome == "succeeded" else 40, 0.0, elapsed)


@dataclass(frozen=True)
class JobView:
    """A job at one moment: what the emulators render into each provider's shape."""

    phase: Phase
    progress: int
    remaining_s: float
    elapsed_s: float

    @property
    def done(self) -> bool:
        return self.phase in ("succeeded", "failed", "canceled")


FaultKind = Literal["status", "slow", "malformed_json", "html", "empty"]


@dataclass(frozen=True)
class Fault:
    """Replaces one answer for a job.

    - `status`: HTTP `status` (429, 500, 502, 503, 504) with the provider's error body, plus `Retry-After`
      when `retry_after` is set (seconds, or an HTTP date when `retry_after_date` is true).
    - `slow`: the normal answer after `delay_s` real seconds (to trip the client's timeout).
    - `malformed_json`, `html`, `empty`: a body that is not the documented JSON, with HTTP `status`.
    """

    kind: FaultKind
    status: int = 500
    retry_after: float | None = None
    retry_after_date: bool = False
    delay_s: float = 0.0

    @classmethod
    def rate_limited(cls, retry_after: float | None = None, *, as_date: bool = False) -> Fault:
        return cls("status", 429, retry_after, as_date)

    @classmethod
    def server_error(cls, status: int = 500) -> Fault:
        return cls("status", status)


@dataclass
class Job:
    task_id: str
    created_at: float
    timeline: Timeline
    faults: deque[Fault] = field(default_factory=deque)
    detail: dict[str, Any] = field(default_factory=dict)

    def view(self, now: float) -> JobView:
        return self.timeline.at(now - self.created_at)


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    at: float


class Emulator(ABC):
    """One provider's API. Subclasses give the routes, the id rule and the wire shapes."""

    id: ClassVar[str]
    api_prefix: ClassVar[str]
    """Path between the sandbox root and the documented paths: the base URL ends here."""
    api_key_env: ClassVar[str]
    base_url_env: ClassVar[str]
    sandbox_key: ClassVar[str]

    def __init__(self, clock: Clock | None = None, *, auto_create: bool = True) -> None:
        self.clock = clock or SystemClock()
        self.auto_create = auto_create
        self.jobs: dict[str, Job] = {}
        self.requests: list[LoggedRequest] = []
        self.api_key = self.sandbox_key
        self._app: Starlette | None = None

    # ---- scripting, for tests and the sandbox ----

    def add_job(
        self, task_id: str, timeline: Timeline | None = None, faults: Iterable[Fault] = (), **detail: Any
    ) -> Job:
        job = Job(task_id, self.clock.monotonic(), timeline or Timeline(), deque(faults), detail)
        self.jobs[task_id] = job
        return job

    def find_job(self, task_id: str) -> Job | None:
        """The job, or in sandbox use a new plausible one for an id never seen (see `outcome_for`)."""
        job = self.jobs.get(task_id)
        if job is None and self.auto_create and self.accepts_new_id(task_id):
            job = self.add_job(task_id, Timeline(outcome=self.outcome_for(task_id)))
        return job

    def accepts_new_id(self, task_id: str) -> bool:
        """Ids containing `missing` are unknown to the provider, so the sandbox can show task_not_found."""
        return "missing" not in task_id.lower()

    def outcome_for(self, task_id: str) -> Outcome:
        lowered = task_id.lower()
        if "fail" in lowered:
            return "failed"
        if "cancel" in lowered:
            return "canceled"
        return "succeeded"

    def env(self, root: str) -> dict[str, str]:
        """The settings that point genresult-mcp at this emulator served under `root`."""
        return {self.api_key_env: self.api_key, self.base_url_env: root.rstrip("/") + self.api_prefix}

    # ---- the ASGI app ----

    @property
    def app(self) -> Starlette:
        if self._app is None:
            self._app = Starlette(routes=self.routes())
        return self._app

    @abstractmethod
    def routes(self) -> list[BaseRoute]: ...

    @abstractmethod
    def error_body(self, status: int, message: str) -> Any:
        """The provider's error JSON for an HTTP error of its own (used for faults and auth failures)."""

    async def record(self, request: Request) -> None:
        self.requests.append(
            LoggedRequest(
                request.method,
                request.url.path,
                request.url.query,
                {k.lower(): v for k, v in request.headers.items()},
                await request.body(),
                self.clock.monotonic(),
            )
        )

    async def take_fault(self, job: Job) -> Response | None:
        """The job's next scripted fault as a response, or None to answer normally (also after `slow`)."""
        if not job.faults:
            return None
        fault = job.faults.popleft()
        if fault.kind == "slow":
            await anyio.sleep(fault.delay_s)
            return None
        if fault.kind == "malformed_json":
            return Response(
                b'{"status": "proc',
                fault.status if fault.status != 500 else 200,
                media_type="application/json",
            )
        if fault.kind == "html":
            page = b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
            return Response(page, fault.status if fault.status != 500 else 502, media_type="text/html")
        if fault.kind == "empty":
            return Response(b"", fault.status if fault.status != 500 else 200)
        headers: dict[str, str] = {}
        if fault.retry_after is not None:
            if fault.retry_after_date:
                when = self.clock.now() + timedelta(seconds=math.ceil(fault.retry_after))
                headers["Retry-After"] = format_datetime(when.astimezone(UTC), usegmt=True)
                headers["Date"] = format_datetime(self.clock.now().astimezone(UTC), usegmt=True)
            else:
                headers["Retry-After"] = str(math.ceil(fault.retry_after))
        message = "Too many requests" if fault.status == 429 else "Internal error"
        return JSONResponse(self.error_body(fault.status, message), fault.status, headers=headers)
