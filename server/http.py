"""The streamable HTTP transport: `/mcp`, loopback by default, optional bearer token, DNS-rebinding checks.

Five layers, outermost first:
- `check_bind` refuses to start off loopback without a strong `GENRESULT_HTTP_TOKEN` and the Host names
  clients will use (`--allow-host`): a server other machines can reach must know both.
- `BearerTokenMiddleware`, when a token is set, answers 401 to any request without exactly one
  `Authorization: Bearer <token>` header, before the MCP app sees it.
- `SessionTable` (stateful sessions only, `server.sessions`) bounds the sessions each client holds; idle ones
  end after `GENRESULT_HTTP_SESSION_IDLE_S` by the SDK's own timeout.
- `CancelOnDisconnect` (stateful sessions only) cancels a tool call whose client hangs up before the
  answer, as the client itself would have with `notifications/cancelled`.
- The SDK's Host/Origin validation (its DNS-rebinding protection) stays on everywhere: on loopback the
  loopback names at this port, elsewhere only the allowed names.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import signal
import socket
from types import FrameType
from typing import Any

import anyio
import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from sse_starlette.sse import AppStatus
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server import jsonrpc
from server.jsonrpc import ID_SCAN_BYTES, MAX_MESSAGE_BYTES
from server.sessions import SessionTable, body_once
from server.settings import Settings, SettingsError
from tools.service import Stopping

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})

# Off loopback the token is all that stands between the network and the providers' credentials.
MIN_TOKEN_CHARS = 24

UNAUTHORIZED_BODY = (
    b'{"error":"unauthorized","message":"Send the header Authorization: Bearer <GENRESULT_HTTP_TOKEN>."}'
)


def is_loopback(host: str) -> bool:
    host = host.strip().removeprefix("[").removesuffix("]")
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class BearerTokenMiddleware:
    """Demands exactly one `Authorization: Bearer <token>` on every HTTP request and websocket.

    The scheme word is read in any case (RFC 9110 §11.1); the token is compared as a SHA-256 digest with
    `hmac.compare_digest`, so neither its content nor its length shows in the time a refusal takes.
    """

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._expected = _digest(token.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and not self._authorized(scope):
            if scope["type"] == "http":
                await _unauthorized(send)
            else:
                await send({"type": "websocket.close", "code": 1008})
            return
        await self.app(scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        given = [value for name, value in scope["headers"] if name.lower() == b"authorization"]
        if len(given) != 1:
            return False
        scheme, _, token = given[0].partition(b" ")
        if scheme.lower() != b"bearer":
            return False
        return hmac.compare_digest(_digest(token), self._expected)


def _digest(token: bytes) -> bytes:
    return hashlib.sha256(token).digest()


async def _unauthorized(send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(UNAUTHORIZED_BODY)).encode()),
                (b"www-authenticate", b'Bearer realm="genresult-mcp"'),
            ],
        }
    )
    await send({"type": "http.response.body", "body": UNAUTHORIZED_BODY})


MAX_BODY_BYTES = MAX_MESSAGE_BYTES

TOO_LARGE_BODY = (
    b'{"error":"request_too_large","message":"A request body may be at most %d KiB; '
    b"send only the arguments the tool's input schema lists.\"}" % (MAX_BODY_BYTES // 1024)
)


# A body over the limit but no larger than this is read to its end, unkept, before the 413: closing a
# connection with unread bytes in its buffer makes the kernel reset it, and the client then sees a broken
# connection instead of the answer. Anything larger is answered and cut off at once.
DRAIN_BYTES = 1 << 20


class BodyLimitMiddleware:
    """Answers 413 to a request whose body is larger than `limit` bytes, declared or streamed, before the
    MCP app holds it whole (the SDK reads every body into memory before it parses it)."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = [value for name, value in scope["headers"] if name.lower() == b"content-length"]
        if any(not value.isdigit() or int(value) > self.limit for value in declared):
            if all(value.isdigit() and int(value) <= DRAIN_BYTES for value in declared):
                await _drain(receive, 0)
            await _too_large(send)
            return
        received = 0
        over = started = False
        rest = True

        async def bounded_receive() -> Message:
            nonlocal received, over, rest
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    over = True
                    rest = bool(message.get("more_body", False))
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if over and not started:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, bounded_receive, guarded_send)
        if over and not started:
            if rest:
                await _drain(receive, received)
            await _too_large(send)


async def _drain(receive: Receive, received: int) -> None:
    """Reads the rest of a refused body, keeping none of it, up to `DRAIN_BYTES` in all."""
    while received <= DRAIN_BYTES:
        message = await receive()
        if message["type"] != "http.request":
            return
        received += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


async def _too_large(send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(TOO_LARGE_BODY)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": TOO_LARGE_BODY})


SESSION_HEADER = b"mcp-session-id"

# Delivering the cancel is one notification into a session's queue; a session too stuck to take it in this
# long has bigger trouble, and the POST's task should not hang on it.
CANCEL_DELIVERY_S = 5.0


class CancelOnDisconnect:
    """Cancels a stateful session's request when the client hangs up on the POST that carries it.

    In a 2025-era stateful session the SDK runs every request in the session's own task, not in the task of
    the POST that carried it, and a client that goes away (killed, network gone) is only noticed by that POST:
    its answer stream closes, progress notifications are dropped unseen, and a wait would go on asking the
    provider until its timeout. So when the client disconnects before the whole answer went out, this sends
    the session what a client that gives up sends: `notifications/cancelled` for that request id, as a POST
    of its own with the request's headers (session id, protocol version, Host, Origin, token), so it passes
    the same checks. The server keeps no event store, so a dropped answer stream can never be resumed and
    cancelling loses nothing. The 2026 era and stateless sessions serve each request inside its POST, whose
    hang-up cancels it already; their POSTs carry no session id and pass through untouched.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not _has_header(scope, SESSION_HEADER):
            await self.app(scope, receive, send)
            return
        head = bytearray()
        answered = hung_up = False

        async def watch_receive() -> Message:
            nonlocal hung_up
            message = await receive()
            if message["type"] == "http.request":
                # Only the id is wanted, and clients put it before the params: a padded body is not copied.
                head.extend(message.get("body", b"")[: ID_SCAN_BYTES - len(head)])
            elif message["type"] == "http.disconnect" and not answered:
                hung_up = True
            return message

        async def watch_send(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                answered = True
            await send(message)

        await self.app(scope, watch_receive, watch_send)
        if hung_up and (request_id := jsonrpc.request_id(bytes(head))) is not None:
            await self._cancel(scope, request_id)

    async def _cancel(self, scope: Scope, request_id: str | int) -> None:
        notice = json.dumps(
            {
                "jsonrpc": "2.0",
                "method": "notifications/cancelled",
                "params": {"requestId": request_id, "reason": "The client disconnected."},
            }
        ).encode()
        replaced = (b"content-type", b"content-length", b"accept")
        headers = [(name, value) for name, value in scope["headers"] if name.lower() not in replaced]
        headers += [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(notice)).encode()),
            (b"accept", b"application/json, text/event-stream"),
        ]
        receive = body_once(notice)

        async def send(message: Message) -> None:
            """The answer (202 Accepted) has nobody to go to: the client is gone."""

        with anyio.move_on_after(CANCEL_DELIVERY_S):
            await self.app({**scope, "headers": headers}, receive, send)


def _has_header(scope: Scope, name: bytes) -> bool:
    return any(key.lower() == name for key, _ in scope["headers"])


# The SDK answers a body that is JSON but no JSON-RPC message with pydantic's validation text, which quotes
# what was sent (`input_value=...`, once per member of the message union, so about ten times over).
_SDK_VALIDATION_TEXT = b'"message":"Validation error:'

NOT_JSON_RPC = json.dumps(
    {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": -32600, "message": "Invalid Request: not a JSON-RPC 2.0 request, notification or response"},
    },
    separators=(",", ":"),
).encode()


class QuietRefusals:
    """Answers a body that is not a JSON-RPC message in our words (`-32600`, as over stdio), never quoting
    it: a caller's own value echoed back many times over is an amplifier, and no answer quotes what was sent.

    Only a 400 is looked at, and its body only when it is the SDK's validation refusal."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        held: Message | None = None

        async def quiet_send(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start" and message["status"] == 400:
                held = message
                return
            if held is not None and message["type"] == "http.response.body":
                start, held = held, None
                body = message.get("body", b"")
                if _SDK_VALIDATION_TEXT in body[:128] and not message.get("more_body", False):
                    headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
                    start = {**start, "headers": [*headers, (b"content-length", str(len(NOT_JSON_RPC)).encode())]}
                    message = {**message, "body": NOT_JSON_RPC}
                await send(start)
            await send(message)

        await self.app(scope, receive, quiet_send)


def transport_security(host: str, port: int, allowed_hosts: list[str]) -> TransportSecuritySettings:
    """Host/Origin validation stays on everywhere; off loopback the allowed names must be given."""
    # Port 0 asks the system for a free port, which is not known here: any port on a loopback name is fine.
    at = "*" if port == 0 else str(port)
    names = ["127.0.0.1", "localhost", "[::1]"]
    if is_loopback(host):
        # Any loopback address may be bound (127.0.0.2, say); clients then name that address.
        bound = host.strip().removeprefix("[").removesuffix("]")
        spelled = f"[{bound}]" if ":" in bound else bound
        names += [] if spelled.lower() in names else [spelled]
    hosts = [f"{name}:{at}" for name in names] if is_loopback(host) else []
    hosts += allowed_hosts
    origins = [f"http://{h}" for h in hosts] + [f"https://{h}" for h in hosts]
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins)


def check_bind(host: str, settings: Settings, allowed_hosts: list[str]) -> None:
    """Refuse, with the remedy, to listen where other machines can reach us without a token and Host names."""
    if is_loopback(host):
        return
    where = host or "every interface"
    token = settings.http_token
    if token is None or not allowed_hosts:
        raise SettingsError(
            f"Refusing to listen on {where}, which is reachable from other machines, without both "
            "GENRESULT_HTTP_TOKEN (clients must send it as a bearer token) and --allow-host NAME:PORT "
            "(the Host names clients use). Use --host 127.0.0.1 for local use."
        )
    if len(token) < MIN_TOKEN_CHARS:
        raise SettingsError(
            f"Refusing to listen on {where} with a GENRESULT_HTTP_TOKEN of {len(token)} characters: use at least "
            f"{MIN_TOKEN_CHARS}, e.g. from `python -c 'import secrets; print(secrets.token_urlsafe(32))'`, "
            "and --allow-host NAME:PORT as before."
        )


def http_app(
    mcp: MCPServer[Any], settings: Settings, *, host: str, port: int, stateless: bool, allowed_hosts: list[str]
) -> ASGIApp:
    check_bind(host, settings, allowed_hosts)
    app: ASGIApp = mcp.streamable_http_app(
        streamable_http_path="/mcp",
        stateless_http=stateless,
        transport_security=transport_security(host, port, allowed_hosts),
        host=host,
        session_idle_timeout=settings.http_session_idle_s,
    )
    if not stateless:
        app = CancelOnDisconnect(app)
        app = SessionTable(app, per_client=settings.http_sessions_per_client, idle_s=settings.http_session_idle_s)
    app = BodyLimitMiddleware(QuietRefusals(app))
    if settings.http_token:
        app = BearerTokenMiddleware(app, settings.http_token)
    return app


class StoppingServer(uvicorn.Server):
    """uvicorn that answers every wait in flight before it stops, and then exits 0, on SIGTERM or SIGINT.

    On a signal uvicorn stops accepting connections, waits up to `timeout_graceful_shutdown` for the open ones
    to finish, then cuts them; a wait holds its connection until its `timeout_s`, so it would be cut with no
    answer. Here the shutdown begins by setting `stopping`: every wait answers at once with the state it last
    read, and its connection closes after that answer (uvicorn asks each open connection to close once it
    has answered; one carrying an event stream is closed at once, `GuardedH11Protocol.shutdown`). A second
    SIGINT still stops at once, as with uvicorn.

    Two things uvicorn's stack does on its own are turned off for that: sse-starlette (the SDK's event
    streams) ends every stream half a second after the signal, answered or not; and uvicorn raises the signal
    again once it has stopped, which would end a clean stop by SIGTERM (exit 143) or KeyboardInterrupt.
    """

    def __init__(self, config: uvicorn.Config, stopping: Stopping) -> None:
        super().__init__(config)
        self.stopping = stopping
        AppStatus.disable_automatic_graceful_drain()  # type: ignore[no-untyped-call]  # untyped in sse-starlette

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # uvicorn's own, less the signal kept to be raised again after the stop.
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        else:
            self.should_exit = True

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.stopping.set()
        await super().shutdown(sockets)
