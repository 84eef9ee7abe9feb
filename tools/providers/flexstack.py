"""Flexstack AI (the "Parrot API"): `GET {base}/ai/video_generation/{task_id}` with `Authorization: Bearer <token>`.

The token is either configured (FLEXSTACK_API_KEY) or obtained at run time: `POST {base}/user/login` with HTTP
Basic username:password answers `data.access_token` (both published SDKs read exactly that), and
`POST {base}/user/refresh_token` with the form field `refresh_token` renews it. The docs list the method of
the result call as POST; both SDKs send GET, and so do we.

Every answer is one envelope: `{"data": {"is_success", "data": {task_id, total_tasks, percent, status,
url_download}}, "errors": [...], "error_description": "", "status": "success", ...timings}`. Only the status
word COMPLETED is documented. Assumptions, labelled [inf] in PROVIDERS.md §1:
- other words are read through the shared vocabulary (PENDING, PROCESSING, FAILED, ...);
- a job failed when its word says so, or when the envelope reports an error (`is_success: false` together with
  `errors` or `error_description`); `is_success: false` alone is not taken as a failure, since nothing says a
  job still in the queue is a "success";
- an envelope that reports an error and carries no job at all is the provider saying it has no such task when
  its words say so ("Task not found", "no such task"); any other such error ("Internal error, try later") is
  read as trouble that may clear (`provider_unavailable`), so a wait keeps trying inside its deadline;
- the login answer's renewal token sits next to the access token as `data.refresh_token`; without one, a
  rejected token is renewed by logging in again.
"""

from __future__ import annotations

import base64
import copy
import mimetypes
import re
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import Self

import anyio
import httpx
from pydantic import BaseModel, ConfigDict

from tools.errors import GenResultError, ProviderProtocolError, ProviderUnavailable
from tools.providers.base import Adapter, Reply, env_value, normalize_status, parse_wire
from tools.redact import Redactor
from tools.result import JobError, JobState, Output, Status
from tools.wire import MAX_BODY_BYTES, BodyTooLarge

# Words that say the task itself is unknown, as opposed to any other error the envelope may carry.
_NO_SUCH_TASK = re.compile(
    r"\b(task|task[_ ]id|id|job|video|generation)\s+(was\s+)?not\s+(be\s+)?found\b"
    r"|\bno\s+(such\s+)?(task|job)\b"
    r"|\b(task|job)\s+(does\s*n[o']?t|did\s*n[o']?t)\s+exist\b"
    r"|^\W*not\s+found\W*$",
    re.IGNORECASE,
)

# A message longer than this is not a reason an agent needs in full, and it would crowd the compact answer.
_MAX_MESSAGE_CHARS = 300


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", defer_build=True)


class _ErrorItem(_Wire):
    code: str | int | None = None
    message: str | None = None
    msg: str | None = None
    detail: str | None = None


class _Envelope(_Wire):
    """What every answer shares: the outcome of the call, and the provider's own words about what went wrong."""

    errors: list[str | _ErrorItem] | None = None
    error_description: str | None = None
    status: str | None = None

    def said(self) -> str:
        if self.error_description and self.error_description.strip():
            return self.error_description.strip()
        words = [text for item in self.errors or [] if (text := _error_text(item))]
        return "; ".join(words)

    def error_code(self) -> str | None:
        for item in self.errors or []:
            if isinstance(item, _ErrorItem) and item.code is not None:
                return str(item.code)
        return None


class _Task(_Wire):
    task_id: str | None = None
    total_tasks: int | None = None
    percent: float | None = None
    status: str
    url_download: str | None = None


class _Result(_Wire):
    is_success: bool | None = None
    data: _Task | None = None


class _ResultEnvelope(_Envelope):
    data: _Result | None = None


class _Tokens(_Wire):
    access_token: str | None = None
    refresh_token: str | None = None


class _TokenEnvelope(_Envelope):
    data: _Tokens | None = None


def _error_text(item: str | _ErrorItem) -> str:
    if isinstance(item, str):
        return item.strip()
    return (item.message or item.msg or item.detail or "").strip()


@dataclass(frozen=True)
class Session:
    """Tokens from a login or a refresh; `refresh_token` is None when the provider sent none."""

    access_token: str
    refresh_token: str | None


class Flexstack(Adapter):
    id = "flexstack"
    display_name = "Flexstack AI"
    default_base_url = "https://api.flexstack.ai/v1"
    base_url_env = "FLEXSTACK_BASE_URL"
    credential_hint = "set FLEXSTACK_API_KEY (or FLEXSTACK_USERNAME and FLEXSTACK_PASSWORD)"
    credential_envs = ("FLEXSTACK_API_KEY", "FLEXSTACK_USERNAME", "FLEXSTACK_PASSWORD")
    example_task_id = "demo-video-7f3a"

    def __init__(
        self, base_url: str, redactor: Redactor, api_key: str | None, login: tuple[str, str] | None = None
    ) -> None:
        super().__init__(base_url, redactor)
        self._api_key = api_key
        self._login = login
        self._sessions = _Sessions(self, api_key, login)

    @classmethod
    def from_env(cls, env: Mapping[str, str], redactor: Redactor) -> Self:
        key = env_value(env, "FLEXSTACK_API_KEY")
        username = env_value(env, "FLEXSTACK_USERNAME")
        password = env_value(env, "FLEXSTACK_PASSWORD")
        login = (username, password) if username and password else None
        redactor.add(key)
        redactor.add(password)
        if login:
            redactor.add(basic_credentials(*login))
        return cls(env_value(env, cls.base_url_env) or cls.default_base_url, redactor, key, login)

    @property
    def configured(self) -> bool:
        return self._api_key is not None or self._login is not None

    def auth(self) -> httpx.Auth:
        return _SessionAuth(self._sessions)

    def build_request(self, client: httpx.AsyncClient, task_id: str) -> httpx.Request:
        return client.build_request(
            "GET", self.url("ai", "video_generation", task_id), headers={"Accept": "application/json"}
        )

    def parse(self, reply: Reply) -> JobState:
        code = reply.status_code
        if code == 401:
            raise self.auth_failed(self.error_message(reply))
        if code in (402, 403):
            raise self.account_refused(code, self.error_message(reply))
        if code == 404:
            raise self.not_found(self._provider_said(reply))
        if code != 200:
            said = self.error_message(reply)
            if not said:
                raise ProviderProtocolError(f"{self.display_name} refused the result request (HTTP {code}).")
            # The request carries nothing but the id and the token, and the token has its own codes.
            raise ProviderProtocolError(
                f"{self.display_name} refused the result request (HTTP {code}): {said.rstrip('.')}. "
                "Check the task id: pass it exactly as the create call returned it."
            )
        envelope = parse_wire(_ResultEnvelope, reply.json(), self.display_name)
        result = envelope.data
        said = envelope.said()
        if result is None or result.data is None:
            if _NO_SUCH_TASK.search(said):
                raise self.not_found(self._provider_said(reply))
            if said or (result is not None and result.is_success is False):
                # An error with no task in it may be anything ("Internal error, try later"): only words that
                # say the task is unknown end a wait as not found; the rest may clear, so it is retried.
                words = self.quoted(said)
                raise ProviderUnavailable(
                    f"{self.display_name} answered with an error and no task.{words} Try again shortly."
                )
            raise ProviderProtocolError(f"{self.display_name} answered without the task's data or an error.")
        task = result.data
        worded = normalize_status(task.status)
        status: Status = worded
        if result.is_success is False and said and worded not in ("failed", "canceled"):
            # The envelope reports an error whatever the word says: the body decides, not the word alone.
            status = "failed"
        error = None
        if status in ("failed", "canceled") and said:
            error_code = envelope.error_code() or (task.status.upper() if worded == status else "FAILED")
            error = JobError(code=error_code, message=self.redact(said)[:_MAX_MESSAGE_CHARS])
        progress = task.percent
        return JobState(
            status=status,
            provider_status=task.status,
            progress=None if progress is None else min(100.0, max(0.0, progress)),
            outputs=_outputs(task) if status == "succeeded" else (),
            error=error,
        )

    def error_message(self, reply: Reply) -> str:
        """The envelope's error words where the body is an envelope, else what the base finds."""
        try:
            envelope = _Envelope.model_validate_json(reply.body)
        except ValueError:
            return super().error_message(reply)
        said = envelope.said()
        return self.redact(said)[:_MAX_MESSAGE_CHARS] if said else super().error_message(reply)

    def read_login(self, reply: Reply) -> Session:
        """Tokens from a login answer, or `authentication_failed` in the provider's words."""
        self.common_errors(reply, self.error_message(reply))
        if reply.status_code != 200:
            raise self.auth_failed(self.error_message(reply) or f"HTTP {reply.status_code} from the login.")
        envelope = parse_wire(_TokenEnvelope, reply.json(), self.display_name)
        if envelope.data is not None and envelope.data.access_token:
            return Session(envelope.data.access_token, envelope.data.refresh_token or None)
        if envelope.said():
            raise self.auth_failed(envelope.said())
        raise ProviderProtocolError(f"{self.display_name} answered the login without data.access_token.")

    def read_refresh(self, reply: Reply) -> Session | None:
        """Tokens from a refresh answer; None when the refresh was refused, so the caller logs in again."""
        self.common_errors(reply, self.error_message(reply))
        if reply.status_code != 200:
            return None
        envelope = parse_wire(_TokenEnvelope, reply.json(), self.display_name)
        if envelope.data is None or not envelope.data.access_token:
            return None
        return Session(envelope.data.access_token, envelope.data.refresh_token or None)

    def _provider_said(self, reply: Reply) -> str:
        said = self.error_message(reply)
        return f" (the provider said: {said})" if said else ""


def _outputs(task: _Task) -> tuple[Output, ...]:
    url = (task.url_download or "").strip()
    if not url:
        return ()
    mime = mimetypes.guess_type(url.split("?")[0])[0]
    return (Output(url=url, kind="video", mime_type=mime),)


def basic_credentials(username: str, password: str) -> str:
    """The value after "Basic " in the login header: as secret as the password it encodes."""
    return base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


class _Sessions:
    """The tokens one adapter shares across all its calls, and the renewals (login, refresh) that get them.

    Single-flight: concurrent first calls, and concurrent 401s, cause one renewal between them and share its
    outcome. Renewals are numbered as they settle. A call notes the number when it starts and when it sends
    its token; under the lock it renews only if no renewal has settled since it sent the token and none has
    failed since it started. Otherwise that renewal's outcome is the call's too: the new token, or a fresh
    copy of the error it ended with. So a refused password is sent once, not once per waiting call (which
    could lock the account), and a login answering 503 is not tried again by every call queued behind it.
    A call that starts after a failed renewal settled tries again. A renewal that got no answer settles
    nothing: when the login request fails on the wire, or the call is canceled, httpx closes the flow at its
    yield, and the next call in line tries.
    """

    def __init__(self, adapter: Flexstack, api_key: str | None, login: tuple[str, str] | None) -> None:
        self.adapter = adapter
        self.access = api_key
        self.refresh: str | None = None
        self.basic = basic_credentials(*login) if login else None
        self.settled = 0
        self.failure: GenResultError | None = None
        """How the latest settled renewal failed; None when it succeeded (or none has settled)."""
        self.lock = anyio.Lock()

    def store(self, session: Session) -> None:
        self.adapter.redact.add(session.access_token)
        self.adapter.redact.add(session.refresh_token)
        self.access = session.access_token
        self.refresh = session.refresh_token or self.refresh
        self.failure = None
        self.settled += 1

    def fail(self, error: GenResultError) -> None:
        self.failure = error
        self.settled += 1

    def shared_failure(self) -> GenResultError | None:
        """A copy of the latest renewal's error to raise in this call: one exception object raised in many
        tasks would collect all their tracebacks."""
        return copy.copy(self.failure) if self.failure is not None else None


class _SessionAuth(httpx.Auth):
    """One call's Bearer auth over the adapter's shared `_Sessions`: logs in first if there is no token yet,
    and on a 401 renews the token once (refresh token, else a new login) and retries."""

    def __init__(self, sessions: _Sessions) -> None:
        self._sessions = sessions
        # Noted when the call starts, before it waits for a connection: a renewal that settles while it waits
        # is one it shares rather than repeats.
        self._started = sessions.settled

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        s = self._sessions
        if s.access is None:
            async with s.lock:
                if s.settled != self._started:
                    if (shared := s.shared_failure()) is not None:
                        raise shared
                else:
                    try:
                        response = yield self._login_request(request)
                        session = s.adapter.read_login(await self._reply(response))
                    except GenResultError as failed:
                        s.fail(failed)
                        raise
                    s.store(session)
        sent_at = s.settled
        request.headers["Authorization"] = f"Bearer {s.access}"
        response = yield request
        if response.status_code != 401 or s.basic is None:
            return
        async with s.lock:
            if s.settled != sent_at or (s.failure is not None and s.settled != self._started):
                # A renewal settled since this token went out, or one failed since the call started (its
                # token went out after, while the call waited for a connection, and met the same refusal).
                if (shared := s.shared_failure()) is not None:
                    raise shared
            else:
                try:
                    renewed = None
                    if s.refresh is not None:
                        response = yield self._refresh_request(request, s.refresh)
                        renewed = s.adapter.read_refresh(await self._reply(response))
                    if renewed is None:
                        response = yield self._login_request(request)
                        renewed = s.adapter.read_login(await self._reply(response))
                except GenResultError as failed:
                    s.fail(failed)
                    raise
                s.store(renewed)
        request.headers["Authorization"] = f"Bearer {s.access}"
        yield request

    def _login_request(self, original: httpx.Request) -> httpx.Request:
        return httpx.Request(
            "POST",
            self._sessions.adapter.url("user", "login"),
            headers={**_carried_headers(original), "Authorization": f"Basic {self._sessions.basic}"},
            extensions=_carried_extensions(original),
        )

    def _refresh_request(self, original: httpx.Request, refresh_token: str) -> httpx.Request:
        # The SDK sends the old access token along with the form; servers that want it get it.
        return httpx.Request(
            "POST",
            self._sessions.adapter.url("user", "refresh_token"),
            headers={**_carried_headers(original), "Authorization": f"Bearer {self._sessions.access}"},
            data={"refresh_token": refresh_token},
            extensions=_carried_extensions(original),
        )

    async def _reply(self, response: httpx.Response) -> Reply:
        # As protocol errors, a body we will not read settles the renewal like any refusal, so the calls
        # waiting for it do not each send the password again.
        name = self._sessions.adapter.display_name
        try:
            body = await response.aread()
        except BodyTooLarge:
            raise ProviderProtocolError(
                f"{name} sent an answer to the login larger than {MAX_BODY_BYTES // 1024} KiB."
            ) from None
        except httpx.DecodingError:
            raise ProviderProtocolError(
                f"{name} sent an answer to the login that does not decode as its Content-Encoding says."
            ) from None
        return Reply.from_response(response, body)


def _carried_headers(original: httpx.Request) -> dict[str, str]:
    # Requests made here skip the client's own defaults, so the ones that matter are carried over: the
    # codings we can unpack under the cap among them.
    carried = ("user-agent", "accept", "accept-encoding")
    return {name: original.headers[name] for name in carried if name in original.headers}


def _carried_extensions(original: httpx.Request) -> dict[str, object]:
    # Without the timeout extension a login would wait forever on a silent server.
    return {"timeout": original.extensions["timeout"]} if "timeout" in original.extensions else {}
