"""The streamable HTTP transport, through a real uvicorn on 127.0.0.1 and the SDK's own HTTP client.

Loopback by default; with GENRESULT_HTTP_TOKEN every request needs `Authorization: Bearer <token>` (scheme
word in any case, compared in constant time); the SDK's Host/Origin checks stay on behind the token; off
loopback the server refuses to start without a strong token and the Host names clients will use.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from starlette.types import Message

from sandbox import Sandbox, Timeline
from server import http as transport
from server.app import build_server
from server.cli import _parser
from server.http import BearerTokenMiddleware, check_bind, http_app
from server.settings import Settings, SettingsError
from tests.hardening.loopback import LoopbackServer, bound_socket, serving
from tools.clock import VirtualClock
from tools.redact import Redactor
from tools.result import GenerationResult

TOKEN = "tok-3f9a1c7e5b2d4086a1e9c3b7d5f20468"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "probe", "version": "1"}},
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@contextmanager
def mcp_over_http(
    *,
    token: str | None = TOKEN,
    stateless: bool = False,
    host: str = "127.0.0.1",
    allowed_hosts: list[str] | None = None,
    **more: Any,
) -> Iterator[LoopbackServer]:
    """genresult-mcp's HTTP app on a real socket, answering from the in-process emulators; `more`: further
    `Settings` fields."""
    sandbox = Sandbox(VirtualClock(), auto_create=False)
    sandbox["skillsvideo"].add_job("gen_http", Timeline(queued_s=0, running_s=0))
    settings = Settings(provider_env=sandbox.env(), http_token=token, **more)
    mcp = build_server(settings, redactor=Redactor(), transport=httpx.ASGITransport(app=sandbox.app))
    sock = bound_socket()
    port = sock.getsockname()[1]
    app = http_app(mcp, settings, host=host, port=port, stateless=stateless, allowed_hosts=allowed_hosts or [])
    with serving(app, sock, lifespan=True) as server:
        yield server


@asynccontextmanager
async def sdk_client(url: str, headers: dict[str, str]) -> AsyncIterator[Client]:
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(10)) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        yield client


async def initialize(server: LoopbackServer, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.post(f"{server.root}/mcp", json=INITIALIZE, headers={**MCP_HEADERS, **headers})


def test_the_http_server_binds_to_loopback_unless_told_otherwise() -> None:
    args = _parser().parse_args(["serve", "--transport", "http"])
    assert args.host == "127.0.0.1"


@pytest.mark.parametrize("stateless", [False, True], ids=["stateful", "stateless"])
async def test_with_the_token_the_sdk_client_calls_the_tools(stateless: bool) -> None:
    with mcp_over_http(stateless=stateless) as server, anyio.fail_after(20):
        async with sdk_client(f"{server.root}/mcp", {"Authorization": f"Bearer {TOKEN}"}) as client:
            reply = await client.call_tool("get_generation_result", {"provider": "skillsvideo", "task_id": "gen_http"})
            waited = await client.call_tool(
                "wait_for_generation", {"provider": "skillsvideo", "task_id": "gen_http", "timeout_s": 5}
            )
    assert GenerationResult.model_validate(reply.structured_content).status == "succeeded"
    assert GenerationResult.model_validate(waited.structured_content).done


WRONG_AUTHORIZATIONS = [
    None, "", "Bearer", f"Basic {TOKEN}", f"Bearer {TOKEN[:-1]}", f"Bearer {TOKEN}x", f"Bearer x{TOKEN}",
    TOKEN, f"Bearer  {TOKEN} extra", f"Token {TOKEN}", f"Bearer {TOKEN.upper()}",
]  # fmt: skip


async def test_any_request_without_the_right_bearer_token_gets_401() -> None:
    with mcp_over_http() as server, anyio.fail_after(10):
        for authorization in WRONG_AUTHORIZATIONS:
            headers = {} if authorization is None else {"Authorization": authorization}
            answered = await initialize(server, **headers)
            async with httpx.AsyncClient() as http:
                other = await http.get(f"{server.root}/anything", headers=headers)
            assert answered.status_code == other.status_code == 401, authorization
            assert answered.headers["www-authenticate"].startswith("Bearer")
            assert TOKEN not in answered.text


async def test_the_sdk_client_without_the_token_is_turned_away() -> None:
    with mcp_over_http() as server, anyio.fail_after(10), pytest.raises(Exception) as refused:
        async with sdk_client(f"{server.root}/mcp", {}) as client:
            await client.list_tools()
    assert "error response" in repr(refused.value)


async def test_the_scheme_word_is_read_in_any_case_as_http_says() -> None:
    with mcp_over_http() as server, anyio.fail_after(10):
        for scheme in ("Bearer", "bearer", "BEARER"):
            answered = await initialize(server, Authorization=f"{scheme} {TOKEN}")
            assert answered.status_code == 200, (scheme, answered.text)


async def test_two_authorization_headers_are_refused_whatever_they_hold() -> None:
    with mcp_over_http() as server, anyio.fail_after(10):
        async with httpx.AsyncClient() as http:
            answered = await http.post(
                f"{server.root}/mcp",
                json=INITIALIZE,
                headers=httpx.Headers([*MCP_HEADERS.items(), ("Authorization", "Bearer nope"),
                                       ("Authorization", f"Bearer {TOKEN}")]),
            )  # fmt: skip
    assert answered.status_code == 401


async def test_host_and_origin_checks_stay_on_behind_the_token() -> None:
    good = f"Bearer {TOKEN}"
    with mcp_over_http() as server, anyio.fail_after(10):
        fine = await initialize(server, Authorization=good)
        local_page = await initialize(server, Authorization=good, Origin=f"http://127.0.0.1:{server.port}")
        rebound = await initialize(server, Authorization=good, Host=f"evil.example:{server.port}")
        foreign_page = await initialize(server, Authorization=good, Origin="http://evil.example")
    assert (fine.status_code, local_page.status_code) == (200, 200)
    assert rebound.status_code == 421
    assert foreign_page.status_code == 403


async def test_without_a_token_loopback_serves_anyone_local_but_keeps_the_host_check() -> None:
    with mcp_over_http(token=None) as server, anyio.fail_after(10):
        fine = await initialize(server)
        rebound = await initialize(server, Host="evil.example")
    assert fine.status_code == 200
    assert rebound.status_code == 421


async def test_off_loopback_only_the_allowed_host_names_are_served() -> None:
    # Bound to loopback for the test, configured as if on 0.0.0.0: the check is on the Host header.
    with mcp_over_http(host="0.0.0.0", allowed_hosts=["mcp.example.com:8443"]) as server, anyio.fail_after(10):
        named = await initialize(server, Authorization=f"Bearer {TOKEN}", Host="mcp.example.com:8443")
        by_address = await initialize(server, Authorization=f"Bearer {TOKEN}")
    assert named.status_code == 200, named.text
    assert by_address.status_code == 421


@pytest.mark.parametrize(
    ("host", "token", "allowed"),
    [
        ("0.0.0.0", None, ["mcp.example.com:8443"]),
        ("0.0.0.0", TOKEN, []),
        ("::", TOKEN, []),
        ("", None, ["mcp.example.com:8443"]),
        ("192.168.1.20", None, []),
        ("mcp.example.com", None, ["mcp.example.com:8443"]),
        ("0.0.0.0", "short", ["mcp.example.com:8443"]),
    ],
)
def test_off_loopback_the_server_refuses_to_start_without_a_strong_token_and_host_names(
    host: str, token: str | None, allowed: list[str]
) -> None:
    with pytest.raises(SettingsError) as refused:
        check_bind(host, Settings(http_token=token), allowed)
    message = str(refused.value)
    assert "GENRESULT_HTTP_TOKEN" in message and "--allow-host" in message
    assert token is None or token not in message


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"])
def test_loopback_needs_neither(host: str) -> None:
    check_bind(host, Settings(), [])


def test_off_loopback_with_a_strong_token_and_host_names_it_starts() -> None:
    check_bind("0.0.0.0", Settings(http_token=TOKEN), ["mcp.example.com:8443"])


async def test_the_token_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[Any, Any]] = []
    compare = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append((a, b))
        return compare(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    with mcp_over_http() as server, anyio.fail_after(10):
        refused = await initialize(server, Authorization="Bearer wrong")
        accepted = await initialize(server, Authorization=f"Bearer {TOKEN}")
    assert (refused.status_code, accepted.status_code) == (401, 200)
    assert len(compared) == 2
    assert {len(a) for pair in compared for a in pair} == {32}, "digests, so the length does not show either"


async def test_a_websocket_without_the_token_is_closed_before_the_app_sees_it() -> None:
    reached: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope["type"])

    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        sent.append(message)

    middleware = BearerTokenMiddleware(app, TOKEN)
    await middleware({"type": "websocket", "headers": [], "path": "/mcp"}, receive, send)
    await middleware({"type": "lifespan"}, receive, send)
    assert reached == ["lifespan"]
    assert sent and sent[0]["type"] == "websocket.close"


def test_the_401_body_is_json_that_says_what_to_send() -> None:
    body = json.loads(transport.UNAUTHORIZED_BODY)
    assert "GENRESULT_HTTP_TOKEN" in body["message"]
