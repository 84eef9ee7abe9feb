"""What one client may hold of the HTTP server: request bodies, unknown arguments, sessions, connections."""

from __future__ import annotations

import logging
import socket
import threading
import uuid
from contextlib import AsyncExitStack

import anyio
import anyio.to_thread
import httpx
import pytest
from mcp import Client
from starlette.types import Receive, Scope, Send

from sandbox import Sandbox
from server.app import build_server
from server.connections import guarded_protocol
from server.http import transport_security
from server.logs import FloodFilter, SessionIdFilter, session_tag
from server.sessions import SessionTable
from server.settings import Settings
from tests.hardening.loopback import LoopbackServer, serving
from tests.hardening.test_http_transport import INITIALIZE, MCP_HEADERS, TOKEN, initialize, mcp_over_http
from tools.clock import VirtualClock
from tools.mcp_tools import ERROR_META

AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def test_a_body_over_64_kib_gets_413_before_the_mcp_app_holds_it() -> None:
    padded = {**INITIALIZE, "params": {**INITIALIZE["params"], "pad": "p" * 70_000}}  # type: ignore[dict-item]
    with mcp_over_http() as server:
        async with httpx.AsyncClient() as http:
            declared = await http.post(f"{server.root}/mcp", json=padded, headers={**MCP_HEADERS, **AUTH})

            async def chunks():  # type: ignore[no-untyped-def]
                for _ in range(10):
                    yield b"p" * 10_000

            streamed = await http.post(f"{server.root}/mcp", content=chunks(), headers={**MCP_HEADERS, **AUTH})
            honest = await http.post(f"{server.root}/mcp", json=INITIALIZE, headers={**MCP_HEADERS, **AUTH})
    assert (declared.status_code, streamed.status_code) == (413, 413)
    assert declared.json()["error"] == "request_too_large"
    assert honest.status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"probe": "Summer2024!-guess"},
        [{"jsonrpc": "2.0", "id": "Summer2024!-guess"}],
        {"jsonrpc": "1.0", "id": 1, "method": "Summer2024!-guess"},
    ],
)
async def test_json_that_is_no_json_rpc_message_is_refused_without_quoting_it(body: object) -> None:
    with mcp_over_http() as server:
        async with httpx.AsyncClient() as http:
            refused = await http.post(f"{server.root}/mcp", json=body, headers={**MCP_HEADERS, **AUTH})
    assert refused.status_code == 400
    assert refused.json()["error"] == {
        "code": -32600,
        "message": "Invalid Request: not a JSON-RPC 2.0 request, notification or response",
    }
    assert "Summer2024" not in refused.text


@pytest.mark.parametrize("tool", ["wait_for_generation", "get_generation_result"])
async def test_an_unknown_argument_is_refused_by_name_before_any_wait(connect, tool: str) -> None:  # type: ignore[no-untyped-def]
    async with connect() as client:
        assert isinstance(client, Client)
        reply = await client.call_tool(
            tool, {"provider": "skillsvideo", "task_id": "gen_x", "timeout_s": 30, "pad": "p" * 100_000}
        )
    assert reply.is_error and reply.meta is not None
    error = reply.meta[ERROR_META]
    assert error["code"] == "invalid_argument"
    assert "'pad'" in error["message"] and "p" * 50 not in error["message"]


async def test_a_server_bound_to_another_loopback_address_serves_clients_that_name_it() -> None:
    with mcp_over_http(token=None, host="127.0.0.2") as server:
        named = await initialize(server, Host=f"127.0.0.2:{server.port}")
        usual = await initialize(server)
        rebound = await initialize(server, Host=f"127.0.0.3:{server.port}")
    assert (named.status_code, usual.status_code, rebound.status_code) == (200, 200, 421)


def test_session_ids_are_logged_as_a_short_hash() -> None:
    session_id = uuid.uuid4().hex
    record = logging.LogRecord("mcp", logging.INFO, __file__, 1, "Created session %s", (session_id,), None)
    assert SessionIdFilter().filter(record)
    assert session_id not in record.getMessage()
    assert record.getMessage() == f"Created session {session_tag(session_id)}"


def test_a_flood_of_one_warning_logs_one_line_per_interval_with_the_count_held_back() -> None:
    now = [0.0]
    flood = FloodFilter(interval_s=10, clock=lambda: now[0])

    def warn(text: str = "socket.accept() out of system resource") -> logging.LogRecord:
        return logging.LogRecord("asyncio", logging.ERROR, __file__, 1, text, None, None)

    passed = [record for _ in range(5000) if flood.filter(record := warn())]
    other = flood.filter(warn("something else"))
    now[0] = 10.5
    after = warn()
    assert len(passed) == 1 and other and flood.filter(after)
    assert after.getMessage().endswith("(4999 more like it held back)")


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


def stalled(port: int, sends: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(sends)
    return sock


def closed_by_server(sock: socket.socket, within_s: float) -> bool:
    sock.settimeout(within_s)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


async def test_stalled_connections_are_bounded_and_closed_while_a_real_client_is_served() -> None:
    protocol = guarded_protocol(max_connections=20, head_timeout_s=1.0)
    with serving(hello, http=protocol, timeout_keep_alive=1) as server, anyio.fail_after(15):
        attackers = [stalled(server.port, b"" if n % 2 else b"GET / HTTP/1.1\r\nHost: x\r\n") for n in range(60)]
        try:
            async with httpx.AsyncClient() as http:
                answers = [(await http.get(f"{server.root}/")).status_code for _ in range(5)]
            # Past the bound, the oldest stalled ones were closed at once to make room.
            evicted = sum(closed_by_server(sock, 0.05) for sock in attackers[:40])
            # The rest, by the head deadline.
            late = [closed_by_server(sock, 3.0) for sock in attackers[40:]]
        finally:
            for sock in attackers:
                sock.close()
    assert answers == [200] * 5
    assert evicted >= 40 - 1 and all(late)


INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


def client_at(address: str) -> httpx.AsyncClient:
    """An HTTP client whose connections come from `address` (any of 127.0.0.0/8): one client to the server."""
    return httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(local_address=address), timeout=10)


async def open_session(http: httpx.AsyncClient, server: LoopbackServer) -> str:
    opened = await http.post(f"{server.root}/mcp", json=INITIALIZE, headers=MCP_HEADERS)
    assert opened.status_code == 200, opened.text
    return opened.headers["mcp-session-id"]


async def session_answers(http: httpx.AsyncClient, server: LoopbackServer, session_id: str) -> int:
    """The HTTP status a notification in the session gets: 202 while it lives, 404 once it has ended."""
    sent = await http.post(
        f"{server.root}/mcp", json=INITIALIZED, headers={**MCP_HEADERS, "Mcp-Session-Id": session_id}
    )
    return sent.status_code


async def test_a_client_past_its_session_bound_loses_its_longest_idle_session_and_no_one_else_does() -> None:
    with mcp_over_http(token=None, http_sessions_per_client=3) as server, anyio.fail_after(30):
        async with client_at("127.0.0.1") as greedy, client_at("127.0.0.2") as other:
            theirs = await open_session(other, server)
            mine = [await open_session(greedy, server) for _ in range(3)]
            assert await session_answers(greedy, server, mine[0]) == 202
            # mine[1] is now the one idle longest.
            mine.append(await open_session(greedy, server))
            answers = [await session_answers(greedy, server, session) for session in mine]
            assert await session_answers(other, server, theirs) == 202
            assert await open_session(other, server)
    assert answers == [202, 404, 202, 202]


async def test_a_client_whose_sessions_are_all_busy_is_refused_with_what_to_do_while_others_open_theirs() -> None:
    with mcp_over_http(token=None, http_sessions_per_client=2) as server, anyio.fail_after(30):
        async with client_at("127.0.0.1") as busy, client_at("127.0.0.2") as other, AsyncExitStack() as streams:
            for _ in range(2):
                session = await open_session(busy, server)
                # An open event stream keeps a session busy for as long as it is open.
                stream = busy.stream(
                    "GET", f"{server.root}/mcp", headers={"Accept": "text/event-stream", "Mcp-Session-Id": session}
                )
                assert (await streams.enter_async_context(stream)).status_code == 200
            refused = await busy.post(f"{server.root}/mcp", json=INITIALIZE, headers=MCP_HEADERS)
            served = await open_session(other, server)
    assert refused.status_code == 429 and served
    error = refused.json()["error"]
    assert "2 sessions open, all busy" in error["message"]
    assert all(advice in error["message"] for advice in ("Mcp-Session-Id", "DELETE /mcp", "--stateless"))


async def test_a_full_session_table_makes_room_from_the_client_holding_the_most() -> None:
    sandbox = Sandbox(VirtualClock())
    mcp = build_server(Settings(provider_env=sandbox.env()), transport=httpx.ASGITransport(app=sandbox.app))
    sdk_app = mcp.streamable_http_app(transport_security=transport_security("127.0.0.1", 0, []))
    app = SessionTable(sdk_app, per_client=10, idle_s=300, max_sessions=3)
    with serving(app, lifespan=True) as server, anyio.fail_after(30):
        async with client_at("127.0.0.1") as big, client_at("127.0.0.2") as small, client_at("127.0.0.3") as new:
            bigs = [await open_session(big, server) for _ in range(2)]
            smalls = [await open_session(small, server)]
            newcomer = await open_session(new, server)
            answers = [await session_answers(big, server, s) for s in bigs]
            answers += [await session_answers(small, server, s) for s in smalls]
            answers += [await session_answers(new, server, newcomer)]
    assert answers == [404, 202, 202, 202]


async def test_an_idle_session_ends_after_the_idle_setting() -> None:
    ended = threading.Event()

    class Heard(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "idle timeout" in record.getMessage():
                ended.set()

    sdk_log = logging.getLogger("mcp.server.streamable_http_manager")
    heard, level = Heard(), sdk_log.level
    sdk_log.addHandler(heard)
    sdk_log.setLevel(logging.INFO)
    try:
        with mcp_over_http(token=None, http_session_idle_s=0.5) as server, anyio.fail_after(30):
            async with client_at("127.0.0.1") as http:
                session = await open_session(http, server)
                # Nothing may touch the session while it idles: its end is heard in the server's log.
                assert await anyio.to_thread.run_sync(ended.wait, 20)
                after = await session_answers(http, server, session)
    finally:
        sdk_log.removeHandler(heard)
        sdk_log.setLevel(level)
    assert after == 404
