"""The stateful session table, bounded per client (`SessionTable`); idle sessions end by the SDK's own timeout.

In stateful mode every `initialize` opens a session that the SDK keeps (about 38 KiB each) until the client
deletes it or it has been idle for `session_idle_timeout`, and its table of 10,000 is shared by everyone: one
client opening sessions in a loop filled it in 39 s (445 MB), after which every other client got 503. The SDK
has no bound per client, so this middleware keeps one.

A client is one network address, as uvicorn reports it (`scope["client"]`): the TCP peer, or, for a connection
from a proxy uvicorn trusts (`FORWARDED_ALLOW_IPS`, by default the loopback addresses), the address that proxy
says it forwards for. Not the bearer token: the server has one token, which every client sends, so a bound
per token would be one bound for everyone. Everything on one machine is one client, which is also what a
loopback server without a proxy sees.

A client at its bound that opens another session gets it, and its session that has been idle longest is
closed (as a DELETE from it would): a client that lost track of its sessions (restarted, killed, reconnected)
is still served, its forgotten sessions make room, and the client it ends is one that sent no request for the
longest time, which on its next request gets 404 and, as the protocol says, opens a new session. Refusing the
newest instead would lock a client out for the whole idle timeout after a few restarts. Only when all its
sessions are busy (a request in flight, or an open event stream) is the new one refused, with 429 and what
to do. A session with a request in flight is never closed here, nor by the SDK's idle timeout.

The whole table is bounded the same way: when it is full, the longest idle session of the client holding the
most sessions is closed to make room. Each busy session holds an open connection, and those are bounded far
below the table's size (`GENRESULT_HTTP_MAX_CONNECTIONS`), so a newcomer always finds room.

Sessions are known from what goes through here: one is counted from the first answer to its opening request
(which carries its id), and forgotten when it answers 404, is deleted, or has been idle past the SDK's timeout.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass

import anyio
from mcp.server.streamable_http import MCP_SESSION_ID_HEADER
from mcp.server.streamable_http_manager import DEFAULT_MAX_SESSIONS
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER
from mcp.types import INVALID_REQUEST
from mcp.types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("genresult.http")


SESSION_HEADER = MCP_SESSION_ID_HEADER.encode()
VERSION_HEADER = MCP_PROTOCOL_VERSION_HEADER.encode()
# The SDK routes requests whose version header names one of these (or that have none) to its session table;
# the others (the 2026 era) are served without a session.
SESSION_ERA = frozenset(version.encode() for version in HANDSHAKE_PROTOCOL_VERSIONS)

# Closing a session is one DELETE into the SDK; one too stuck to take it in this long has bigger trouble.
CLOSE_DELIVERY_S = 5.0


@dataclass(eq=False)
class _Session:
    id: str
    client: str
    idle_since: float
    busy: int = 0
    """Requests in flight (an open event stream counts for as long as it is open)."""
    doomed: bool = False
    """Chosen to be closed once the session being opened in its place is there."""


class SessionTable:
    """Bounds the stateful sessions each client holds (`per_client`) and all of them (`max_sessions`)."""

    def __init__(
        self, app: ASGIApp, *, per_client: int, idle_s: float, max_sessions: int = DEFAULT_MAX_SESSIONS
    ) -> None:
        self.app = app
        self.per_client = per_client
        self.idle_s = idle_s
        self.max_sessions = max_sessions
        self._sessions: dict[str, _Session] = {}
        self._clients: dict[str, dict[str, _Session]] = {}
        self._opening: dict[str, int] = {}
        self._opening_total = 0
        self._doomed_total = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        session_id = _header(scope, SESSION_HEADER)
        if session_id is not None:
            await self._serve(session_id.decode("latin-1"), scope, receive, send)
        elif _header(scope, VERSION_HEADER) in (None, *SESSION_ERA):
            await self._open(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _serve(self, session_id: str, scope: Scope, receive: Receive, send: Send) -> None:
        session = self._sessions.get(session_id)
        if session is None:
            # Unknown here means unknown to the SDK too, which answers 404.
            await self.app(scope, receive, send)
            return

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                status = message["status"]
                # Forgotten before the client hears of it, so its next request finds the room.
                if status == 404 or (scope["method"] == "DELETE" and status < 300):
                    self._forget(session)
            await send(message)

        session.busy += 1
        try:
            await self.app(scope, receive, watch)
        finally:
            session.busy -= 1
            session.idle_since = anyio.current_time()

    async def _open(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A request that may open a session: admitted when there is room or a session that can make room."""
        client = _client(scope)
        now = anyio.current_time()
        held = self._clients.get(client, {})
        self._prune(held, now)
        victim: _Session | None = None
        if self._count(held) + self._opening.get(client, 0) >= self.per_client:
            victim = _longest_idle(held.values())
            if victim is None:
                logger.warning("refused a session: a client's %d sessions are all busy", self.per_client)
                await _refuse(send, 429, self._busy_message())
                return
        elif len(self._sessions) - self._doomed_total + self._opening_total >= self.max_sessions:
            for sessions in list(self._clients.values()):
                self._prune(sessions, now)
            if len(self._sessions) - self._doomed_total + self._opening_total >= self.max_sessions:
                victim = self._roomiest_victim()
                if victim is None:
                    logger.warning("refused a session: all %d sessions are busy", self.max_sessions)
                    await _refuse(send, 503, FULL_MESSAGE)
                    return
        if victim is not None:
            victim.doomed = True
            self._doomed_total += 1
        self._opening[client] = self._opening.get(client, 0) + 1
        self._opening_total += 1
        opened: _Session | None = None
        pending = True

        def settle() -> None:
            nonlocal pending
            if pending:
                pending = False
                self._opening[client] -= 1
                self._opening_total -= 1
                if not self._opening[client]:
                    del self._opening[client]

        def spare() -> _Session | None:
            """The victim, no longer doomed; None if there was none or it was spared already."""
            nonlocal victim
            spared, victim = victim, None
            if spared is not None:
                spared.doomed = False
                self._doomed_total -= 1
            return spared

        async def watch(message: Message) -> None:
            nonlocal opened
            if message["type"] == "http.response.start" and message["status"] < 400:
                session_id = next((v for k, v in message.get("headers", []) if k.lower() == SESSION_HEADER), None)
                if session_id is not None:
                    # Counted from its first answer, busy with it: the client may use the id before it ends.
                    opened = _Session(session_id.decode("latin-1"), client, anyio.current_time(), busy=1)
                    settle()
                    self._add(opened)
                    # Closed before the client hears of its new session, so its next request finds it gone. One
                    # that took up a request meanwhile is in use: it stays, and the next opening makes up for it.
                    ending = spare()
                    if ending is not None and not ending.busy and ending.id in self._sessions:
                        self._forget(ending)
                        await self._close(ending, scope)
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            settle()
            spare()
            if opened is not None:
                opened.busy -= 1
                opened.idle_since = anyio.current_time()

    def _count(self, sessions: dict[str, _Session]) -> int:
        return sum(not session.doomed for session in sessions.values())

    def _prune(self, sessions: dict[str, _Session], now: float) -> None:
        """Forget the sessions the SDK's idle timeout has ended (it measures from the same moment, a little
        earlier)."""
        for session in list(sessions.values()):
            if not session.busy and not session.doomed and now - session.idle_since > self.idle_s:
                self._forget(session)

    def _roomiest_victim(self) -> _Session | None:
        for sessions in sorted(self._clients.values(), key=len, reverse=True):
            if (victim := _longest_idle(sessions.values())) is not None:
                return victim
        return None

    def _add(self, session: _Session) -> None:
        self._sessions[session.id] = session
        self._clients.setdefault(session.client, {})[session.id] = session

    def _forget(self, session: _Session) -> None:
        self._sessions.pop(session.id, None)
        held = self._clients.get(session.client)
        if held is not None:
            held.pop(session.id, None)
            if not held:
                del self._clients[session.client]

    async def _close(self, session: _Session, scope: Scope) -> None:
        """End the session as its client's DELETE would, with the Host and Origin of the request that just
        passed the SDK's checks."""
        kept = [(name, value) for name, value in scope["headers"] if name.lower() in (b"host", b"origin")]
        headers = [*kept, (SESSION_HEADER, session.id.encode("latin-1"))]
        receive = body_once(b"")

        async def send(message: Message) -> None:
            """The answer (200) is for nobody: the session's client did not ask."""

        logger.info("closed the longest idle session of a client at its bound of %d", self.per_client)
        with anyio.move_on_after(CLOSE_DELIVERY_S):
            await self.app({**scope, "method": "DELETE", "headers": headers}, receive, send)

    def _busy_message(self) -> str:
        return (
            f"This client already has {self.per_client} sessions open, all busy with requests. Send your "
            "requests in a session you hold (its Mcp-Session-Id), end the sessions you no longer need with "
            "DELETE /mcp, or wait for a call to finish; a server started with --stateless keeps no sessions. "
            "A client is one network address (GENRESULT_HTTP_SESSIONS_PER_CLIENT sets the bound)."
        )


FULL_MESSAGE = (
    "Every session this server holds is busy with requests. Try again when a call has finished, or use a "
    "server started with --stateless, which keeps no sessions."
)


def _longest_idle(sessions: Iterable[_Session]) -> _Session | None:
    idle = [session for session in sessions if not session.busy and not session.doomed]
    return min(idle, key=lambda session: session.idle_since, default=None)


def _client(scope: Scope) -> str:
    peer = scope.get("client")
    return str(peer[0]) if peer else ""


def _header(scope: Scope, name: bytes) -> bytes | None:
    return next((value for key, value in scope["headers"] if key.lower() == name), None)


async def _refuse(send: Send, status: int, message: str) -> None:
    body = json.dumps({"jsonrpc": "2.0", "id": None, "error": {"code": INVALID_REQUEST, "message": message}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def body_once(body: bytes) -> Receive:
    """An ASGI `receive` for a request the server sends itself: `body` whole, then a disconnect."""
    delivered = False

    async def receive() -> Message:
        nonlocal delivered
        if delivered:
            return {"type": "http.disconnect"}
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive
