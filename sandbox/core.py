"""What every provider emulator shares: jobs with scripted timelines, scripted faults, a request log.

An emulator is an ASGI app (Starlette) that speaks one provider's documented API. Its jobs move through a
`Timeline` on an injectable clock (queued, running with progress, then an outcome), and each job can carry
a queue of `Fault`s that replace its next answers (429, 5xx, slow, malformed JSON, HTML, empty body) or
spoil them on the wire (a connection cut mid-body, a slow drip, an endless body, a redirect elsewhere).
The subclasses only know the provider's paths, auth and wire shapes.

Every emulator also serves the files its jobs produced at `/files/{name}` (the URLs `file_url` makes): real
small media checked in under `sandbox/media/`, chosen by the name's extension (`media_for`), with their MIME
type and Content-Length. A provider whose storage signs URLs or demands a key says so in `file_access`.
"""

from __future__ import annotations

import functools
import math
import random
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import UTC, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import quote, urlencode

import anyio
import anyio.lowlevel
import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


MEDIA = Path(__file__).resolve().parent / "media"

# The sample served for each extension a generated file may have (anything else is served the video).
MEDIA_BY_EXTENSION: dict[str, tuple[str, str]] = {
    ".mp4": ("clip.mp4", "video/mp4"),
    ".gif": ("clip.gif", "image/gif"),
    ".png": ("image.png", "image/png"),
    ".jpg": ("thumbnail.jpg", "image/jpeg"),
    ".jpeg": ("thumbnail.jpg", "image/jpeg"),
    ".wav": ("sound.wav", "audio/wav"),
    ".mp3": ("sound.mp3", "audio/mpeg"),
}


@functools.cache
def media(file_name: str) -> bytes:
    """A checked-in sample (a 1 s H.264 MP4, a PNG, a WAV, ...): a few KB each, every one a valid file."""
    return (MEDIA / file_name).read_bytes()


# UUIDs have no room for words: sandbox UUIDs tell their outcome by prefix, and this one is a job already
# finished when first seen (the `done` of other ids).
FINISHED_UUID_PREFIX = "d0e5"


def prefixed_uuid(prefix: str, n: int) -> str:
    """The canonical UUID made of hex `prefix` and then the number `n`: a sandbox id of a UUID provider."""
    digits = f"{prefix}{n:0{32 - len(prefix)}x}"
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


# Where a `redirect` fault points by default: another host, which must never see a request.
ELSEWHERE = "http://collector.genresult.invalid/collect"

FaultKind = Literal[
    "status", "slow", "malformed_json", "html", "empty", "error_in_ok", "redirect", "oversized", "reset", "drip"
]


@dataclass(frozen=True)
class Fault:
    """Replaces or spoils one answer for a job.

    - `status`: HTTP `status` (429, 500, 502, 503, 504) with the provider's error body, plus `Retry-After`
      when `retry_after` is set (seconds, or an HTTP date when `retry_after_date` is true).
    - `slow`: the normal answer after `delay_s` real seconds (to trip the client's timeout).
    - `malformed_json`, `html`, `empty`: a body that is not the documented JSON, with HTTP `status`.
    - `error_in_ok`: the provider's own error body (`error_body`), sent with HTTP 200.
    - `redirect`: HTTP `status` (302 unless another 3xx is given) to `location`, another host by default.
    - `oversized`: a 200 with a body of `size_bytes` (64 MiB unless given, far past any sane cap; with
      `declare_length` the size is announced in Content-Length), to show the client reads no further than
      its cap. Sent as fast as the client takes it, and stopped when the client hangs up.
    - `reset`: the normal answer's headers and half its body, then the connection is cut.
    - `drip`: the normal answer, `chunk_bytes` at a time, `delay_s` apart: every read arrives in time, the
      whole answer does not.

    `message` replaces the provider's error words in `status` and `error_in_ok` answers; `echo_credentials`
    appends what the request carried (Authorization header, body) raw and percent-encoded in a link, as
    providers that echo requests back do.

    `at` aims the fault at one request of a read that takes several (the emulator names them: fal's
    `status` and `result`, MiniMax's `query` and `file`): it waits at the head of the job's queue, and the
    job's other requests are answered normally, until that request comes. None hits the next request.
    """

    kind: FaultKind
    status: int = 500
    retry_after: float | None = None
    retry_after_date: bool = False
    delay_s: float = 0.0
    message: str | None = None
    echo_credentials: bool = False
    location: str = ELSEWHERE
    size_bytes: int | None = None
    declare_length: bool = False
    chunk_bytes: int = 8
    at: str | None = None

    def aimed_at(self, request: str) -> Fault:
        """This fault, played only on the request the emulator calls `request`."""
        return replace(self, at=request)

    @classmethod
    def rate_limited(cls, retry_after: float | None = None, *, as_date: bool = False) -> Fault:
        return cls("status", 429, retry_after, as_date)

    @classmethod
    def server_error(cls, status: int = 500) -> Fault:
        return cls("status", status)

    @classmethod
    def read_timeout(cls, delay_s: float) -> Fault:
        return cls("slow", delay_s=delay_s)

    @classmethod
    def error_in_ok(cls, message: str | None = None, *, echo_credentials: bool = False) -> Fault:
        return cls("error_in_ok", 200, message=message, echo_credentials=echo_credentials)

    @classmethod
    def redirect(cls, location: str | None = None, status: int = 302) -> Fault:
        return cls("redirect", status, location=location or ELSEWHERE)

    @classmethod
    def oversized(cls, size_bytes: int | None = None, *, declare_length: bool = False) -> Fault:
        return cls("oversized", 200, size_bytes=size_bytes, declare_length=declare_length)

    @classmethod
    def reset(cls) -> Fault:
        return cls("reset")

    @classmethod
    def drip(cls, interval_s: float, chunk_bytes: int = 8) -> Fault:
        return cls("drip", delay_s=interval_s, chunk_bytes=chunk_bytes)


@dataclass
class Chaos:
    """Faults at random, emulator-wide: each job answer with no scripted fault is replaced by one of `faults`
    with probability `rate`. `answers` and `faulted` count what happened, so a test can show the rate it got."""

    rate: float
    faults: tuple[Fault, ...]
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    answers: int = 0
    faulted: int = 0

    def draw(self) -> Fault | None:
        self.answers += 1
        if self.rng.random() >= self.rate:
            return None
        self.faulted += 1
        return self.rng.choice(self.faults)


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


@dataclass
class _Exchange:
    """One request in flight: what it carried, and the wire fault to play on its answer, if any."""

    request: LoggedRequest | None = None
    wire_fault: Fault | None = None


_EXCHANGE: ContextVar[_Exchange | None] = ContextVar("emulator_exchange", default=None)


class _WireFaults:
    """Plays `reset`, `drip` and `oversized` faults on the wire, on the answer the route produced."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        exchange = _Exchange()
        held: list[Message] = []

        async def hold(message: Message) -> None:
            # The fault is taken before the route answers, so this is known by the first message.
            if exchange.wire_fault is None:
                await send(message)
            else:
                held.append(message)

        token = _EXCHANGE.set(exchange)
        try:
            await self.app(scope, receive, hold)
        finally:
            _EXCHANGE.reset(token)
        if exchange.wire_fault is not None:
            await _spoil(exchange.wire_fault, held, receive, send)


async def _spoil(fault: Fault, held: list[Message], receive: Receive, send: Send) -> None:
    start = held[0]
    body = b"".join(message.get("body", b"") for message in held[1:])
    if fault.kind == "reset":
        await send(start)
        await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
        # On a socket the server drops the connection; in-process (httpx's ASGI transport) the exception
        # reaches the client as is, so it is the one httpx raises for a peer that hangs up mid-body.
        raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")
    async with anyio.create_task_group() as group:

        async def stop_when_gone() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            group.cancel_scope.cancel()

        group.start_soon(stop_when_gone)
        if fault.kind == "oversized":
            await _send_oversized(fault, send)
        else:
            await send(start)
            step = max(1, fault.chunk_bytes)
            chunks = [body[offset : offset + step] for offset in range(0, len(body), step)] or [b""]
            for index, chunk in enumerate(chunks):
                if index:
                    await anyio.sleep(fault.delay_s)
                await send({"type": "http.response.body", "body": chunk, "more_body": index < len(chunks) - 1})
        group.cancel_scope.cancel()


OVERSIZED_BYTES = 64 << 20
_PADDED = (b'{"status": "processing", "padding": "', b'"}')


async def _send_oversized(fault: Fault, send: Send) -> None:
    size = OVERSIZED_BYTES if fault.size_bytes is None else fault.size_bytes
    headers = [(b"content-type", b"application/json")]
    if fault.declare_length:
        headers.append((b"content-length", str(size + sum(map(len, _PADDED))).encode()))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": _PADDED[0], "more_body": True})
    chunk = b"x" * 65536
    for offset in range(0, size, len(chunk)):
        await send({"type": "http.response.body", "body": chunk[: size - offset], "more_body": True})
        # A server writing to a client that has gone may not wait at all: give the hang-up a turn.
        await anyio.lowlevel.checkpoint()
    await send({"type": "http.response.body", "body": _PADDED[1], "more_body": False})


class Emulator(ABC):
    """One provider's API. Subclasses give the routes, the id rule and the wire shapes."""

    id: ClassVar[str]
    api_prefix: ClassVar[str]
    """Path between the sandbox root and the documented paths: the base URL ends here."""
    api_key_env: ClassVar[str]
    base_url_env: ClassVar[str]
    sandbox_key: ClassVar[str]
    outcomes: ClassVar[tuple[Outcome, ...]] = ("succeeded", "failed", "canceled")
    """The ends a job can come to in this provider's words (not every API can say "canceled")."""
    pace: float = 1.0
    """How fast the jobs the sandbox invents live: 1 is 2 s queued and 6 s running; 0.25 is a quarter of
    that (`GENRESULT_SANDBOX_PACE`, so real-process tests and demos need not wait out real 8 s jobs)."""

    def __init__(self, clock: Clock | None = None, *, auto_create: bool = True) -> None:
        self.clock = clock or SystemClock()
        self.auto_create = auto_create
        self.jobs: dict[str, Job] = {}
        self.requests: list[LoggedRequest] = []
        self.api_key = self.sandbox_key
        self.chaos: Chaos | None = None
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
            outcome = self.outcome_for(task_id)
            if self.finished_at_start(task_id):
                timeline = Timeline(0, 0, outcome)
            else:
                timeline = Timeline(queued_s=2.0 * self.pace, running_s=6.0 * self.pace, outcome=outcome)
            job = self.add_job(task_id, timeline)
        return job

    def accepts_new_id(self, task_id: str) -> bool:
        """Ids containing `missing` are unknown to the provider, so the sandbox can show task_not_found."""
        return "missing" not in task_id.lower()

    def finished_at_start(self, task_id: str) -> bool:
        """Ids containing `done` are jobs already finished when first seen, so a one-shot command (`get`,
        `download`) finds their outputs."""
        return "done" in task_id.lower()

    def outcome_for(self, task_id: str) -> Outcome:
        lowered = task_id.lower()
        if "fail" in lowered:
            return "failed"
        if "cancel" in lowered:
            return "canceled"
        return "succeeded"

    @classmethod
    def sandbox_id(cls, n: int, outcome: Outcome = "succeeded") -> str:
        """The `n`th id of the provider's own form that the sandbox, seeing it first, turns into a job that
        ends in `outcome` (see `outcome_for`); one of `outcomes`."""
        if outcome not in cls.outcomes:
            raise ValueError(f"{cls.id} jobs cannot end {outcome}")
        return f"job-{n}" + {"succeeded": "", "failed": "-fail", "canceled": "-cancel"}[outcome]

    @classmethod
    def finished_id(cls, n: int) -> str:
        """The `n`th id of the provider's own form that the sandbox, seeing it first, turns into a job already
        succeeded (see `finished_at_start`): what a one-shot `download` in sandbox mode can save at once."""
        return f"job-done-{n}"

    def file_url(self, request: Request, name: str, **query: str) -> str:
        """Where this emulator serves a generated file (`name`, e.g. `{task}/clip.mp4`): on its own host and
        under its own root, so that sandbox downloads reach it, with `query` (a signature, an expiry)."""
        # The emulator's own root: where the sandbox mounted it (`root_path`), on the host the request used.
        root = str(request.url.replace(path=request.scope.get("root_path", ""), query="")).rstrip("/")
        tail = "?" + urlencode(query) if query else ""
        return f"{root}/files/{quote(name)}{tail}"

    def credentials(self) -> dict[str, str]:
        """The credential settings this emulator accepts."""
        return {self.api_key_env: self.api_key}

    def env(self, root: str) -> dict[str, str]:
        """The settings that point genresult-mcp at this emulator served under `root`."""
        return {**self.credentials(), self.base_url_env: root.rstrip("/") + self.api_prefix}

    # ---- the ASGI app ----

    @property
    def app(self) -> Starlette:
        if self._app is None:
            files = Route("/files/{name:path}", self.serve_file, methods=["GET"])
            self._app = Starlette(routes=[*self.routes(), files], middleware=[Middleware(_WireFaults)])
        return self._app

    async def serve_file(self, request: Request) -> Response:
        """A generated file, as the provider's storage serves it (see `file_access` and `media_for`)."""
        await self.record(request)
        name = request.path_params["name"]
        if (refused := self.file_access(request, name)) is not None:
            return refused
        body, media_type = self.media_for(name)
        return Response(body, media_type=media_type)

    def file_access(self, request: Request, name: str) -> Response | None:
        """The storage's refusal of this file request (an expired signature, a missing key), or None to serve
        it. Open by default, as public CDN links are."""
        return None

    def media_for(self, name: str) -> tuple[bytes, str]:
        """The bytes and MIME type served for the file `name`: the sample of its extension's kind."""
        file_name, media_type = MEDIA_BY_EXTENSION.get(Path(name).suffix.lower(), MEDIA_BY_EXTENSION[".mp4"])
        return media(file_name), media_type

    @abstractmethod
    def routes(self) -> list[BaseRoute]: ...

    @abstractmethod
    def error_body(self, status: int, message: str, job: Job | None = None) -> Any:
        """The provider's error JSON for an HTTP error of its own (used for faults and auth failures).

        `job` is the job whose scripted fault is being answered, so its detail can shape the body; None for
        answers about no job in particular (a wrong key, an unknown id).
        """

    async def record(self, request: Request) -> None:
        logged = LoggedRequest(
            request.method,
            request.url.path,
            request.url.query,
            {k.lower(): v for k, v in request.headers.items()},
            await request.body(),
            self.clock.monotonic(),
        )
        self.requests.append(logged)
        if (exchange := _EXCHANGE.get()) is not None:
            exchange.request = logged

    async def take_fault(self, job: Job, request: str | None = None) -> Response | None:
        """The job's next scripted fault (or a `chaos` one) as a response, or None to answer normally (also
        after `slow`, and for the faults played on the wire). `request` names which request of a read this
        is, for faults aimed at one (`Fault.at`)."""
        if job.faults and job.faults[0].at not in (None, request):
            return None
        if job.faults:
            fault = job.faults.popleft()
        elif self.chaos is not None and (drawn := self.chaos.draw()) is not None:
            fault = drawn
        else:
            return None
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
        if fault.kind == "error_in_ok":
            message = (fault.message or "Internal error") + self._echo(fault)
            return JSONResponse(self.error_body(200, message, job), 200)
        if fault.kind == "redirect":
            status = fault.status if 300 <= fault.status < 400 else 302
            return Response(b"", status, headers={"Location": fault.location})
        if fault.kind in ("reset", "drip", "oversized"):
            exchange = _EXCHANGE.get()
            if exchange is not None:
                exchange.wire_fault = fault
            return None
        headers: dict[str, str] = {}
        if fault.retry_after is not None:
            if fault.retry_after_date:
                when = self.clock.now() + timedelta(seconds=math.ceil(fault.retry_after))
                headers["Retry-After"] = format_datetime(when.astimezone(UTC), usegmt=True)
                headers["Date"] = format_datetime(self.clock.now().astimezone(UTC), usegmt=True)
            else:
                headers["Retry-After"] = str(math.ceil(fault.retry_after))
        message = fault.message or ("Too many requests" if fault.status == 429 else "Internal error")
        body = self.error_body(fault.status, message + self._echo(fault), job)
        return JSONResponse(body, fault.status, headers=headers)

    def _echo(self, fault: Fault) -> str:
        exchange = _EXCHANGE.get()
        if not fault.echo_credentials or exchange is None or exchange.request is None:
            return ""
        seen = exchange.request
        authorization = seen.headers.get("authorization", "")
        body = seen.body.decode("utf-8", "replace")
        link = f"https://status.genresult.invalid/help?auth={quote(authorization)}&body={quote(body)}"
        return f" (request {seen.method} {seen.path}, Authorization: {authorization}, body: {body}; see {link})"
