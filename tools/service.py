"""What the tools do, independent of MCP: a check or a bounded wait at a provider; downloads: `tools.downloads`."""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

import anyio
import httpx

from tools.clock import Clock, SystemClock
from tools.downloads import DownloadConfig, Downloader
from tools.errors import GenResultError, InvalidArgument, ProviderProtocolError, ProviderUnavailable, UnknownProvider
from tools.polling import PollPolicy, ProgressReporter, WaitMemory, WaitOutcome, wait_until_done
from tools.providers.base import Adapter, Reply, RequestBuilder, Then
from tools.redact import Redactor
from tools.registry import LIST_LIMIT_MAX, Registry
from tools.result import (
    DONE_STATUSES,
    STATUSES,
    BatchResult,
    Cost,
    GenerationResult,
    JobError,
    JobFailure,
    JobList,
    JobState,
    Output,
)
from tools.safety import MAX_CODE, MAX_MESSAGE, MAX_NOTE, MAX_OUTPUTS, MAX_WORD, clean_text, safe_url
from tools.wire import MAX_BODY_BYTES, BodyTooLarge, bounded

logger = logging.getLogger(__name__)

DEFAULT_WAIT_S = 50.0
DEFAULT_MAX_WAIT_S = 1800.0
DEFAULT_REQUEST_TIMEOUT_S = 20.0

# Requests in flight to one provider at once; more wait their turn here, inside their own deadline. httpcore's
# pool does work in proportion to its connections times its queued requests at every request, so letting a
# burst of checks (a thousand waits starting together) queue inside it costs more CPU than the checks and
# can stall the process until waits time out (`python -m bench`, concurrency).
MAX_IN_FLIGHT_PER_PROVIDER = 16

# The most requests one read of a job may take: the longest documented chain is two (status then result,
# query then file) plus Kling's second family; anything longer is an adapter going round in circles.
MAX_REQUESTS_PER_READ = 4

# No provider id is longer; a longer one is unknown without being looked at.
MAX_PROVIDER_ID_LEN = 64

# Jobs one wait_for_generations call follows at most (DESIGN.md §2).
MAX_JOBS_PER_WAIT = 50


STOPPED_NOTE = (
    "The server is stopping, so this wait ended early with the state last read: call again to keep waiting "
    "(once the server is back, if it is restarting)."
)
STOPPED_UNREAD = (
    "The server is stopping before this job's state could be read: call again in a moment (once the server is "
    "back, if it is restarting)."
)


class Stopping:
    """Set once the server is stopping. Every wait in flight then ends at once, a provider request in flight
    included, and answers with the state it last read (`timed_out: true` and `STOPPED_NOTE`); a wait that
    starts after answers at once. The server sets it; a wait watches it as it watches its deadline."""

    def __init__(self) -> None:
        self._set = False
        self._waits: set[anyio.CancelScope] = set()

    def set(self) -> None:
        self._set = True
        for wait in list(self._waits):
            wait.cancel()

    def is_set(self) -> bool:
        return self._set

    @contextmanager
    def watch(self) -> Iterator[anyio.CancelScope]:
        """A scope around one wait, cancelled when the server stops; its `cancelled_caught` says it was."""
        with anyio.CancelScope() as scope:
            if self._set:
                scope.cancel()
            self._waits.add(scope)
            try:
                yield scope
            finally:
                self._waits.discard(scope)


@dataclass
class RequestCount:
    """How many provider requests a check or a wait has sent (`polls` in the result)."""

    requests: int = 0


class Lanes:
    """One provider's connections, each in an HTTP client of its own, lent out for one request at a time.

    httpcore's pool looks at every connection it holds, idle ones too (a poll() syscall each, and a scan
    quadratic in the idle ones), at the start and the end of every request: with 16 connections to a provider
    that cost ~0.45 ms of a check's ~2 ms CPU (`python -m bench`, concurrency). A client that holds one
    connection has nothing to scan. At most `width` are lent at once. The last one returned goes out first, so
    under light load a few connections stay warm and the rest expire idle as httpx's keep-alive expiry says.
    """

    def __init__(self, open_client: Callable[[], httpx.AsyncClient], width: int = MAX_IN_FLIGHT_PER_PROVIDER) -> None:
        self._open_client = open_client
        self._turns = anyio.Semaphore(width)
        self._idle: list[httpx.AsyncClient] = []
        self.opened: list[httpx.AsyncClient] = []

    @asynccontextmanager
    async def lend(self) -> AsyncIterator[httpx.AsyncClient]:
        async with self._turns:
            client = self._idle.pop() if self._idle else self._open()
            try:
                yield client
            finally:
                self._idle.append(client)

    def _open(self) -> httpx.AsyncClient:
        client = bounded(self._open_client())
        self.opened.append(client)
        return client


class GenerationService:
    """Holds the configured adapters and their HTTP clients; owned by the server's lifespan.

    `http` is one client that every request goes through (its owner closes it), or a function that opens a
    client for one connection: each provider then gets `Lanes` of them, which `aclose` closes.
    """

    def __init__(
        self,
        adapters: Mapping[str, Adapter],
        http: httpx.AsyncClient | Callable[[], httpx.AsyncClient],
        *,
        redactor: Redactor,
        clock: Clock | None = None,
        policy: PollPolicy | None = None,
        max_wait_s: float = DEFAULT_MAX_WAIT_S,
        request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
        downloads: DownloadConfig | None = None,
        registry: Registry | None = None,
        stopping: Stopping | None = None,
    ) -> None:
        self.adapters = dict(adapters)
        self._owns_clients = not isinstance(http, httpx.AsyncClient)
        open_client = (lambda: http) if isinstance(http, httpx.AsyncClient) else http
        self.lanes = {adapter.id: Lanes(open_client) for adapter in self.adapters.values()}
        self.redact = redactor
        self.clock = clock or SystemClock()
        self.policy = policy or PollPolicy()
        self.memory = WaitMemory()
        self.registry = registry or Registry.off(self.clock)
        self.max_wait_s = max_wait_s
        self.request_timeout_s = request_timeout_s
        self.downloads = Downloader(self, downloads or DownloadConfig(read_timeout_s=request_timeout_s))
        self.stopping = stopping or Stopping()

    async def aclose(self) -> None:
        """Close the clients the service opened; a client it was given stays open."""
        if self._owns_clients:
            for lanes in self.lanes.values():
                for client in lanes.opened:
                    await client.aclose()

    def adapter(self, provider: str) -> Adapter:
        # Bounded before any work, and never quoted back: an answer that echoed wrong guesses but hid a
        # configured secret would tell a caller which guess was the secret.
        found = self.adapters.get(provider.strip().lower()) if len(provider) <= MAX_PROVIDER_ID_LEN else None
        if found is None:
            known = ", ".join(sorted(self.adapters))
            raise UnknownProvider(f"No provider by that name. Use one of: {known}.")
        return found

    def _prepare(self, provider: str, task_id: str) -> tuple[Adapter, str]:
        adapter = self.adapter(provider)
        task_id = adapter.validate_task_id(task_id)
        adapter.require_configured()
        return adapter, task_id

    async def check(self, provider: str, task_id: str) -> GenerationResult:
        """One look at the job, no waiting."""
        adapter, wire_id = self._prepare(provider, task_id)
        state = await self._read(adapter, wire_id, self.request_timeout_s)
        result = GenerationResult.from_state(adapter.id, task_id, state, self.clock.now())
        await self.registry.record(result)
        return result

    async def record(self, result: GenerationResult) -> None:
        """Keep the job's state in the registry, as the result shows it (the download tool calls this too)."""
        await self.registry.record(result)

    async def wait(
        self,
        provider: str,
        task_id: str,
        timeout_s: float = DEFAULT_WAIT_S,
        poll_interval_s: float | None = None,
        report: ProgressReporter | None = None,
    ) -> GenerationResult:
        """Check until the job is done or `timeout_s` passes; running out of time is an answer, not an error.

        The first check goes out at once. `report(progress, total, message)` hears after every check. The
        wait ends by `timeout_s` (each request's own time limit shrinks to what is left), unless `timeout_s`
        is shorter than the policy's `landing_s`, which one request may always have.
        """
        timeout_s, note = self.bound_timeout(timeout_s)
        if poll_interval_s is not None and not (math.isfinite(poll_interval_s) and poll_interval_s > 0):
            raise InvalidArgument(
                "poll_interval_s must be a positive number of seconds, or null to let the server choose."
            )
        adapter, wire_id = self._prepare(provider, task_id)
        notes = [note] if note else []
        if poll_interval_s is not None and poll_interval_s < self.policy.floor_s:
            notes.append(
                f"poll_interval_s {poll_interval_s:g} was raised to the server's floor of {self.policy.floor_s:g}s."
            )
        job = _Tracked(adapter, wire_id, task_id)
        start = self.clock.monotonic()
        with self.stopping.watch():
            outcome = await self._follow(job, timeout_s, poll_interval_s, report, self.clock)
            if outcome.note:
                notes.append(outcome.note)
            return job.answer(outcome, " ".join(notes) or None)
        cut = job.cut_short(self.clock.monotonic() - start, notes)
        if isinstance(cut, JobFailure):
            raise ProviderUnavailable(cut.error.message)
        return cut

    async def _follow(
        self,
        job: _Tracked,
        timeout_s: float,
        poll_interval_s: float | None,
        report: ProgressReporter | None,
        clock: Clock,
    ) -> WaitOutcome:
        """The wait loop on one job: every state read is recorded, and the pace is kept in the registry too,
        so a wait resumed by another replica (or after a restart) picks up where this one left off."""

        async def read(budget_s: float) -> JobState:
            state = await self._read(job.adapter, job.wire_id, min(self.request_timeout_s, budget_s), job.sent)
            job.last = GenerationResult.from_state(job.adapter.id, job.task_id, state, self.clock.now())
            await self.registry.record(job.last)
            return state

        key = (job.adapter.id, job.wire_id)
        shared = self.registry.store is not None
        if shared:
            answered, memory = await self.registry.recall(*key)
            if answered:
                self.memory.restore(key, memory, self.clock.monotonic(), self.clock.now().timestamp())
        try:
            return await wait_until_done(
                read,
                clock=clock,
                policy=self.policy,
                timeout_s=timeout_s,
                poll_interval_s=poll_interval_s,
                report=report,
                memory=self.memory,
                key=key,
            )
        finally:
            # Also after a cancel: what was learned is true, and the next wait (anywhere) paces itself by it.
            if shared:
                with anyio.CancelScope(shield=True):
                    await self.registry.keep(
                        *key, self.memory.export(key, self.clock.monotonic(), self.clock.now().timestamp())
                    )

    async def wait_many(
        self,
        jobs: Sequence[tuple[str, str]],
        until: str = "all",
        timeout_s: float = DEFAULT_WAIT_S,
        report: ProgressReporter | None = None,
    ) -> BatchResult:
        """Wait on several jobs at once under one deadline, each paced by its own poll schedule.

        `until="all"` returns when every job is done (or cannot be checked), `"any"` when the first is done:
        the others stop at their next pause, never in the middle of a request. A job that cannot be checked
        fills its slot with its error and leaves the others alone. Reports say how many are done and what the
        slowest one is doing.
        """
        if until not in ("all", "any"):
            raise InvalidArgument(f"until must be 'all' or 'any', not {self.redact(str(until))[:20]!r}.")
        if not 1 <= len(jobs) <= MAX_JOBS_PER_WAIT:
            raise InvalidArgument(
                f"jobs must list 1 to {MAX_JOBS_PER_WAIT} {{provider, task_id}} objects, not {len(jobs)}; "
                "split a longer list over several calls."
            )
        timeout_s, note = self.bound_timeout(timeout_s)
        clock = _Stoppable(self.clock)
        start = self.clock.monotonic()
        tracked: list[_Tracked | None] = [None] * len(jobs)
        slots: list[GenerationResult | JobFailure | None] = [None] * len(jobs)
        heard: list[str] = [""] * len(jobs)
        reported = 0.0

        async def tell() -> None:
            nonlocal reported
            if report is None:
                return
            done = sum(1 for job in tracked if job is not None and job.last is not None and job.last.done)
            done += sum(1 for slot in slots if isinstance(slot, JobFailure))
            waiting = [i for i, job in enumerate(tracked) if job is not None and not (job.last and job.last.done)]
            line = f"{done} of {len(jobs)} done"
            if waiting:
                slowest = min(waiting, key=lambda i: _progress_of(tracked[i]))
                who = tracked[slowest]
                assert who is not None
                line += f"; slowest {who.adapter.id} {self.redact(who.task_id)[:40]}: {heard[slowest] or 'checking'}"
            # Progress must rise with every notification, and end at the total.
            reported = min(timeout_s, max(self.clock.monotonic() - start, reported + 0.001))
            await report(reported, timeout_s, line)

        async def follow(i: int, provider: str, task_id: str) -> None:
            try:
                adapter, wire_id = self._prepare(provider, task_id)
                job = tracked[i] = _Tracked(adapter, wire_id, task_id)

                async def hear(_progress: float, _total: float | None, message: str) -> None:
                    heard[i] = message
                    await tell()

                try:
                    outcome = await self._follow(job, timeout_s, None, hear, clock)
                except _Stopped:
                    slots[i] = job.stopped(self.clock.monotonic() - start)
                    return
                slots[i] = job.answer(outcome, outcome.note)
                if until == "any" and outcome.state.status in DONE_STATUSES:
                    clock.stop()
            except GenResultError as exc:
                slots[i] = JobFailure(
                    provider=self.redact(str(provider))[:40],
                    task_id=self.redact(str(task_id))[:200],
                    error=JobError(code=exc.code, message=self.redact(exc.message)),
                )
                await tell()

        with self.stopping.watch() as watched:
            async with anyio.create_task_group() as group:
                for i, (provider, task_id) in enumerate(jobs):
                    group.start_soon(follow, i, provider, task_id)
        stopped = watched.cancelled_caught
        if stopped:
            for i, ((provider, task_id), job) in enumerate(zip(jobs, tracked, strict=True)):
                if slots[i] is None:
                    slots[i] = (
                        job.cut_short(self.clock.monotonic() - start)
                        if job is not None
                        else JobFailure(
                            provider=self.redact(str(provider))[:40],
                            task_id=self.redact(str(task_id))[:200],
                            error=JobError(code=ProviderUnavailable.code, message=STOPPED_UNREAD),
                        )
                    )
        results = [slot for slot in slots if slot is not None]
        assert len(results) == len(jobs)
        done = sum(1 for slot in results if isinstance(slot, GenerationResult) and slot.done)
        pending = sum(1 for slot in results if isinstance(slot, GenerationResult) and not slot.done)
        return BatchResult(
            results=results,
            done=done,
            pending=pending,
            elapsed_s=round(self.clock.monotonic() - start, 1),
            polls=sum(job.sent.requests for job in tracked if job is not None),
            timed_out=stopped or (pending > 0 and (until == "all" or done == 0)),
            note=" ".join(part for part in (note, STOPPED_NOTE if stopped else None) if part) or None,
        )

    async def list_jobs(self, provider: str | None = None, status: str | None = None, limit: int = 20) -> JobList:
        """The jobs the registry holds, most recently checked first; no provider request."""
        if provider is not None:
            provider = self.adapter(provider).id
        if status is not None and status not in STATUSES:
            raise InvalidArgument(
                f"status must be one of {', '.join(STATUSES)}, or null for all, not {self.redact(status)[:20]!r}."
            )
        if not 1 <= limit <= LIST_LIMIT_MAX:
            raise InvalidArgument(f"limit must be 1 to {LIST_LIMIT_MAX}, not {limit}.")
        jobs, total = await self.registry.list(provider, status, limit)
        return JobList(jobs=jobs, total=total)

    def bound_timeout(self, timeout_s: float) -> tuple[float, str | None]:
        if not math.isfinite(timeout_s) or timeout_s <= 0:
            raise InvalidArgument(
                f"timeout_s must be a positive number of seconds (at most {self.max_wait_s:g}); "
                "keep it under the client's own tool-call time limit, or pass null for the server's default."
            )
        if timeout_s > self.max_wait_s:
            return self.max_wait_s, (
                f"timeout_s {timeout_s:g} was lowered to the server's limit of {self.max_wait_s:g}s "
                "(GENRESULT_MAX_WAIT_S)."
            )
        return timeout_s, None

    async def _read(
        self, adapter: Adapter, task_id: str, timeout_s: float, count: RequestCount | None = None
    ) -> JobState:
        """Every request one read of the job takes, each through the same lanes, bound, checks and redaction.

        `timeout_s` bounds the whole read, however many requests it takes (waiting for a lane included), so a
        slow trickle of bytes or a read of several requests cannot carry a wait past its deadline.
        """
        build: RequestBuilder = adapter.build_request
        parse: Callable[[Reply], JobState | Then] = adapter.parser_for(task_id)
        own_errors = False
        try:
            with anyio.fail_after(timeout_s):
                for _ in range(MAX_REQUESTS_PER_READ):
                    if count is not None:
                        count.requests += 1
                    reply = await self._fetch(adapter, build, timeout_s, task_id)
                    outcome = read_reply(adapter, reply, self.redact, parse, own_errors=own_errors)
                    if isinstance(outcome, JobState):
                        return outcome
                    build, parse, own_errors = outcome.build, outcome.parse, outcome.own_errors
        except TimeoutError:
            raise ProviderUnavailable(
                f"{adapter.display_name} did not answer within {timeout_s:.3g}s. Try again shortly."
            ) from None
        raise ProviderProtocolError(
            f"{adapter.display_name} needed more than {MAX_REQUESTS_PER_READ} requests to read one job."
        )

    async def _fetch(self, adapter: Adapter, build: RequestBuilder, timeout_s: float, task_id: str) -> Reply:
        auth = adapter.auth()
        try:
            async with self.lanes[adapter.id].lend() as client:
                request = build(client, task_id)
                request.extensions["timeout"] = httpx.Timeout(timeout_s).as_dict()
                response = await client.send(
                    request,
                    auth=auth if auth is not None else httpx.USE_CLIENT_DEFAULT,
                    stream=True,
                    follow_redirects=False,
                )
                try:
                    body = await response.aread()
                finally:
                    await response.aclose()
        except BodyTooLarge:
            raise _too_large(adapter) from None
        except httpx.TimeoutException:
            raise ProviderUnavailable(
                f"{adapter.display_name} did not answer within {timeout_s:.3g}s. Try again shortly."
            ) from None
        except httpx.TransportError as exc:
            reason = self.redact(str(exc)) or type(exc).__name__
            raise ProviderUnavailable(
                f"Could not reach {adapter.display_name}: {reason}. Check the network and "
                f"{adapter.base_url_env} (unset means the provider's public API), then try again."
            ) from None
        except httpx.InvalidURL as exc:
            # Settings refuse a base URL they cannot read; this catches what only httpx finds wrong.
            raise ProviderProtocolError(
                f"{adapter.display_name}'s URL cannot be used ({exc}). Check {adapter.base_url_env}."
            ) from None
        except httpx.DecodingError:
            raise ProviderProtocolError(
                f"{adapter.display_name} sent a body that does not decode as its Content-Encoding says."
            ) from None
        except UnicodeEncodeError:
            # httpx sends headers as ASCII: a key pasted with an accented or invisible character (settings
            # refuse those at start) or a token the provider itself issued with one cannot be sent at all.
            raise ProviderProtocolError(
                f"A credential for {adapter.display_name} has characters an HTTP header cannot carry (not ASCII). "
                f"Check {adapter.credential_hint.removeprefix('set ')}: set it again from the provider's page, "
                "or, if the provider issued the token itself, try again later."
            ) from None
        logger.debug("%s %s -> HTTP %s, %d bytes", adapter.id, task_id, response.status_code, len(body))
        # A reply without a `Date` gets our clock's, so a Retry-After given as a date can still be read.
        return Reply.from_response(response, body, date=self.clock.now())


@dataclass
class _Tracked:
    """One job a wait follows: what it reads (the last state, kept as it arrives) and what it sent."""

    adapter: Adapter
    wire_id: str
    task_id: str
    sent: RequestCount = field(default_factory=RequestCount)
    last: GenerationResult | None = None

    def answer(self, outcome: WaitOutcome, note: str | None) -> GenerationResult:
        result = GenerationResult.from_state(self.adapter.id, self.task_id, outcome.state, outcome.checked_at)
        return result.model_copy(
            update={
                "elapsed_s": round(outcome.elapsed_s, 1),
                # Provider requests, not checks: a read of fal or MiniMax may take two.
                "polls": self.sent.requests,
                "timed_out": outcome.timed_out,
                "note": note,
            }
        )

    def stopped(self, elapsed_s: float) -> GenerationResult | JobFailure:
        """The answer for a job left when another finished first (until="any")."""
        if self.last is None:
            return JobFailure(
                provider=self.adapter.id,
                task_id=self.task_id,
                error=JobError(
                    code=ProviderUnavailable.code,
                    message="Not checked: the provider had asked for a pause (Retry-After) and another job "
                    "finished first. Call again to wait for this one.",
                ),
            )
        return self.last.model_copy(
            update={
                "elapsed_s": round(elapsed_s, 1),
                "polls": self.sent.requests,
                "timed_out": False,
                "note": "Not done yet when another job finished first (until=any); call again to keep waiting.",
            }
        )

    def cut_short(self, elapsed_s: float, notes: Sequence[str] = ()) -> GenerationResult | JobFailure:
        """The answer for a job whose wait the server's stop ended: the state last read, timed out."""
        if self.last is None:
            return JobFailure(
                provider=self.adapter.id,
                task_id=self.task_id,
                error=JobError(code=ProviderUnavailable.code, message=STOPPED_UNREAD),
            )
        return self.last.model_copy(
            update={
                "elapsed_s": round(elapsed_s, 1),
                "polls": self.sent.requests,
                "timed_out": True,
                "note": " ".join([*notes, STOPPED_NOTE]),
            }
        )


def _progress_of(job: _Tracked | None) -> float:
    """How far a job has come, for picking the slowest: an unread or unknown one counts as not started."""
    if job is None or job.last is None or job.last.progress is None:
        return -1.0
    return job.last.progress


class _Stopped(Exception):
    """Raised from a pause of a job whose batch no longer needs it (until="any")."""


class _Stoppable:
    """The service's clock for the jobs of one batch, whose pauses `stop` ends (requests in flight finish)."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._pauses: set[anyio.CancelScope] = set()
        self.stopped = False

    def monotonic(self) -> float:
        return self._clock.monotonic()

    def now(self) -> datetime:
        return self._clock.now()

    async def sleep(self, seconds: float) -> None:
        if not self.stopped:
            with anyio.CancelScope() as pause:
                self._pauses.add(pause)
                try:
                    await self._clock.sleep(seconds)
                finally:
                    self._pauses.discard(pause)
        if self.stopped:
            raise _Stopped

    def stop(self) -> None:
        self.stopped = True
        for pause in self._pauses:
            pause.cancel()


def read_reply(
    adapter: Adapter,
    reply: Reply,
    redact: Redactor,
    parse: Callable[[Reply], JobState | Then] | None = None,
    *,
    own_errors: bool = False,
) -> JobState | Then:
    """One reply of a read to the job's state, the next request of the read, or the tool error it means: what
    every request does after sending. `parse` is the parser this reply goes to (the adapter's first one unless
    an earlier reply said otherwise)."""
    if not own_errors:
        adapter.common_errors(reply, adapter.error_message(reply))
    try:
        outcome = (parse or adapter.parse)(reply)
    except ArithmeticError:
        # JSON integers have no size limit: one past a float's range overflows wherever it is turned into a
        # float or divided, and pydantic does not make that a ValidationError.
        raise ProviderProtocolError(f"{adapter.display_name} answered a number too large to read.") from None
    return outcome if isinstance(outcome, Then) else _clean(outcome, redact, urlsplit(adapter.base_url).hostname)


def _clean(state: JobState, redact: Redactor, own_host: str | None) -> JobState:
    """The state as it may leave the server: every provider string cleaned of secrets and of what could
    carry an attack (`tools.safety`), every number finite.

    Done here, once, for every adapter: a provider can echo a key in any field (a pre-signed URL signed with
    it, a status word, an error code), and an adapter that forgot one field would leak it. Python's JSON
    parser takes `NaN` and `Infinity` from a sloppy provider, a huge value may overflow to infinity, and
    dividing by a tiny frame rate does too; strict JSON carries none of them, so such a number is dropped,
    like a missing field, rather than sinking the whole answer. Text is redacted before it is cut: a cut
    could leave half a key that no longer matches.
    """

    def number(value: float | None) -> float | None:
        return value if value is None or math.isfinite(value) else None

    def text(value: str | None, limit: int) -> str | None:
        return value if value is None else clean_text(redact(value), limit)

    def link(value: str | None) -> str | None:
        return value if value is None else safe_url(redact(value), own_host)

    outputs: list[Output] = []
    refused = 0
    for output in state.outputs:
        url = link(output.url)
        if url is None:
            refused += 1
            continue
        if len(outputs) < MAX_OUTPUTS:
            thumbnail = link(output.thumbnail_url)
            update = {
                "url": url,
                "thumbnail_url": thumbnail,
                "mime_type": text(output.mime_type, MAX_WORD),
                "expires_at": text(output.expires_at, MAX_WORD),
                "fps": number(output.fps),
                "duration_s": number(output.duration_s),
            }
            outputs.append(output.model_copy(update=update))
    listed = len(outputs)
    usable = len(state.outputs) - refused
    notes = [text(state.note, MAX_NOTE)]
    if refused:
        notes.append(
            f"{refused} output(s) left out: their URL was not an https link to a public host (or http to the "
            "provider's own configured host), so it cannot be handed on safely."
        )
    if usable > listed:
        notes.append(f"The provider listed {usable} outputs; the first {listed} are shown.")
    error = state.error
    if error is not None:
        error = JobError(
            code=clean_text(redact(error.code), MAX_CODE), message=clean_text(redact(error.message), MAX_MESSAGE)
        )
    cost = state.cost
    if cost is not None:
        cost = (
            None
            if not math.isfinite(cost.amount)
            else Cost(amount=cost.amount, unit=clean_text(redact(cost.unit), MAX_WORD))
        )
    return state.model_copy(
        update={
            "provider_status": clean_text(redact(state.provider_status), MAX_WORD),
            "progress": number(state.progress),
            "eta_s": number(state.eta_s),
            "outputs": tuple(outputs),
            "error": error,
            "cost": cost,
            "note": " ".join(note for note in notes if note) or None,
        }
    )


def _too_large(adapter: Adapter) -> ProviderProtocolError:
    return ProviderProtocolError(
        f"{adapter.display_name} sent an answer larger than {MAX_BODY_BYTES // 1024} KiB; "
        "a job status is a few KiB, so it was not read further."
    )
