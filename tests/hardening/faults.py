"""What the hardening tests share: the fault matrix itself, task ids per provider, a wired-up server.

The matrix is data: each `Case` is a scripted provider misbehaviour and what `get_generation_result` must
answer for it. `docs/FAULTS.md` is the same table in prose; keep them together.
"""

from __future__ import annotations

import itertools
import re
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
from mcp import Client
from mcp.types import CallToolResult, TextContent
from starlette.types import ASGIApp, Receive, Scope, Send

from sandbox import EMULATORS, Fault
from server.app import build_server
from server.settings import Settings
from tests.providers.kit import Expected, kit
from tools.clock import Clock
from tools.polling import PollPolicy
from tools.providers import ADAPTERS
from tools.redact import Redactor
from tools.result import GenerationResult

PROVIDERS = sorted(set(ADAPTERS) & set(EMULATORS))

# Short, so that the faults which must run into the time limit keep the suite fast.
REQUEST_TIMEOUT_S = 0.25
# The limit where the cases that run into it are played at every provider at once (`Case.timed`): room for
# thirteen providers' calls side by side on a busy machine. Those cases' faults outlast it, and so the
# shorter one too.
TIMED_REQUEST_TIMEOUT_S = 1.0
# What a real answer over loopback may add to the time limit on a busy two-core machine.
SLACK_S = 1.5

_serial = itertools.count(1)


def new_task_id(provider: str) -> str:
    """A valid id of the provider's own form, a new one each call."""
    return EMULATORS[provider].sandbox_id(next(_serial))


@dataclass(frozen=True)
class Case:
    """One misbehaviour, and what it must give (`Expected`), the same at every provider unless its test
    module's kit says otherwise (`ProviderKit.fault_overrides`)."""

    name: str
    faults: tuple[Fault, ...]
    code: str | None
    transient: bool = False
    status: str | None = None
    timed: bool = False
    """It runs into the request time limit, real seconds on a real socket: played at every provider at once."""

    def expected(self, provider: str) -> Expected:
        return kit(provider).fault_overrides.get(self.name, Expected(self.code, self.status, self.transient))


UNAVAILABLE = "provider_unavailable"
PROTOCOL = "provider_protocol_error"

CASES: list[Case] = [
    Case("429 with Retry-After in seconds", (Fault.rate_limited(7),), UNAVAILABLE, transient=True),
    Case("429 with Retry-After as a date", (Fault.rate_limited(7, as_date=True),), UNAVAILABLE, transient=True),
    Case("429 without Retry-After", (Fault.rate_limited(),), UNAVAILABLE, transient=True),
    Case("500", (Fault.server_error(500),), UNAVAILABLE, transient=True),
    Case("502", (Fault.server_error(502),), UNAVAILABLE, transient=True),
    Case("503", (Fault.server_error(503),), UNAVAILABLE, transient=True),
    Case("504", (Fault.server_error(504),), UNAVAILABLE, transient=True),
    Case("connection cut mid-body", (Fault.reset(),), UNAVAILABLE, transient=True),
    Case("read timeout", (Fault.read_timeout(TIMED_REQUEST_TIMEOUT_S * 2),), UNAVAILABLE, transient=True, timed=True),
    Case(
        "slow drip past the time limit",
        (Fault.drip(TIMED_REQUEST_TIMEOUT_S / 10, 4),),
        UNAVAILABLE,
        transient=True,
        timed=True,
    ),
    Case("HTML error page with 502", (Fault("html", 502),), UNAVAILABLE, transient=True),
    Case("empty body with 503", (Fault("empty", 503),), UNAVAILABLE, transient=True),
    Case("malformed JSON with 200", (Fault("malformed_json", 200),), PROTOCOL),
    Case("HTML page with 200", (Fault("html", 200),), PROTOCOL),
    Case("empty body with 200", (Fault("empty", 200),), PROTOCOL),
    Case("an error inside a 200", (Fault.error_in_ok("Internal error, try later"),), PROTOCOL),
    # The matrix checks that no more than the cap (plus one socket read) was read off the wire.
    Case("a 64 MiB body", (Fault.oversized(),), PROTOCOL),
    Case("a body announced over the cap", (Fault.oversized(4 << 20, declare_length=True),), PROTOCOL),
    Case("redirect to another host", (Fault.redirect(),), PROTOCOL),
    Case("redirect on the same host", (Fault.redirect("/elsewhere", 307),), PROTOCOL),
]


class Seen:
    """Wraps an ASGI app and notes the Host and path of every request that reaches it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.requests: list[tuple[str, str]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = dict(scope["headers"]).get(b"host", b"").decode()
            self.requests.append((host, scope["path"]))
        await self.app(scope, receive, send)


# Loading the CA bundle takes longer than a loopback call; the network transports share one TLS context.
_TLS = ssl.create_default_context()


def network_transport() -> httpx.AsyncHTTPTransport:
    """httpx's own network transport, as the server uses when no transport is given."""
    return httpx.AsyncHTTPTransport(verify=_TLS)


class CountingTransport(httpx.AsyncBaseTransport):
    """The real network transport, counting every body byte the server's client reads off the wire."""

    def __init__(self) -> None:
        self.inner = network_transport()
        self.body_bytes = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_Counted(response.stream, self),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


class _Counted(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, counter: CountingTransport) -> None:
        self.inner = inner
        self.counter = counter

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.inner:
            self.counter.body_bytes += len(chunk)
            yield chunk

    async def aclose(self) -> None:
        await self.inner.aclose()


def fast_policy() -> PollPolicy:
    return PollPolicy(floor_s=0.5, first_delay_s=0.5, landing_s=0.5, error_first_s=0.5)


@asynccontextmanager
async def mcp_client(
    env: dict[str, str],
    clock: Clock,
    *,
    redactor: Redactor | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    **settings: Any,
) -> AsyncIterator[Client]:
    """An in-memory MCP client on a server that reaches the providers over the real network (loopback)."""
    settings.setdefault("request_timeout_s", REQUEST_TIMEOUT_S)
    server = build_server(
        Settings(provider_env=env, **settings),
        redactor=redactor or Redactor(),
        transport=transport or network_transport(),
        clock=clock,
        policy=fast_policy(),
    )
    async with Client(server) as client:
        yield client


def text_of(reply: CallToolResult) -> str:
    return "\n".join(part.text for part in reply.content if isinstance(part, TextContent))


def error_code(reply: CallToolResult) -> str | None:
    """The stable code a tool error starts with, or None for a result."""
    if not reply.is_error:
        return None
    return text_of(reply).split(":", 1)[0]


def result_of(reply: CallToolResult) -> GenerationResult:
    assert not reply.is_error, text_of(reply)
    return GenerationResult.model_validate(reply.structured_content)


def spellings(secret: str) -> list[str]:
    """Every way a secret may travel: raw in bodies, percent-encoded by one rule or another in URLs."""
    upper = quote(secret, safe="")
    return [
        secret,
        upper,
        quote(secret),  # the default keeps "/"
        quote_plus(secret),
        re.sub("%[0-9A-F]{2}", lambda escape: escape[0].lower(), upper),  # lower-case hex is just as valid
        quote(secret, safe="/+=&~"),
    ]


def leaks(blob: str, secrets: list[str]) -> list[str]:
    """The secrets that appear in `blob` in any of their spellings."""
    return [secret for secret in secrets if any(spelled in blob for spelled in spellings(secret))]
