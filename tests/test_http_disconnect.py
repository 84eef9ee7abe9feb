"""A client that hangs up on the POST carrying its request gets that request cancelled (server/http.py).

The middleware is driven here with scripted ASGI messages and a recording app, so each case is exact and
fast; tests/test_process.py shows the same end to end, with a real client process killed mid-wait.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client
from starlette.types import Message, Receive, Scope, Send

from sandbox import Sandbox, Timeline
from server.app import build_server
from server.http import CancelOnDisconnect, http_app
from server.settings import Settings
from tests.hardening.loopback import bound_socket, serving
from tools.clock import VirtualClock
from tools.redact import Redactor
from tools.result import GenerationResult

HEADERS = [
    (b"host", b"127.0.0.1:8000"),
    (b"origin", b"http://127.0.0.1:8000"),
    (b"authorization", b"Bearer tok"),
    (b"mcp-session-id", b"0123abcd"),
    (b"mcp-protocol-version", b"2025-11-25"),
    (b"content-type", b"application/json"),
    (b"content-length", b"99"),
    (b"accept", b"application/json, text/event-stream"),
]


def post(headers: list[tuple[bytes, bytes]] = HEADERS) -> Scope:
    return {"type": "http", "method": "POST", "path": "/mcp", "headers": headers}


def call(request_id: object = 7) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": {"name": "x"}}).encode()


class Recorder:
    """The MCP app's stand-in: reads the body, answers as told, and notes every request it was handed."""

    def __init__(self, *, finish: bool) -> None:
        self.finish = finish
        self.seen: list[tuple[Scope, bytes]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = (await receive())["body"]
        self.seen.append((scope, body))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"event: message\n", "more_body": True})
        if self.finish:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        # Listening for the hang-up, as the SDK's SSE response does.
        assert (await receive())["type"] == "http.disconnect"


def client_messages(body: bytes) -> Receive:
    """The body, then the hang-up."""
    messages: list[Message] = [{"type": "http.request", "body": body, "more_body": False}, {"type": "http.disconnect"}]

    async def receive() -> Message:
        return messages.pop(0)

    return receive


async def ignore(message: Message) -> None:
    """The client's side of the wire is not under test here."""


async def drive(app: Recorder, scope: Scope, body: bytes) -> None:
    with anyio.fail_after(5):
        await CancelOnDisconnect(app)(scope, client_messages(body), ignore)


@pytest.mark.parametrize("request_id", [7, "req-7"])
async def test_a_hang_up_before_the_answer_sends_the_session_a_cancel_for_that_request_with_its_headers(
    request_id: object,
) -> None:
    app = Recorder(finish=False)
    await drive(app, post(), call(request_id))
    assert len(app.seen) == 2
    scope, body = app.seen[1]
    notice: dict[str, Any] = json.loads(body)
    assert notice["method"] == "notifications/cancelled" and "id" not in notice
    # The id keeps its JSON type: the session matches 7 and "7" as different requests.
    assert notice["params"]["requestId"] == request_id
    headers = dict(scope["headers"])
    assert (scope["method"], scope["path"]) == ("POST", "/mcp")
    for name in (b"host", b"origin", b"authorization", b"mcp-session-id", b"mcp-protocol-version"):
        assert headers[name] == dict(HEADERS)[name]
    assert headers[b"content-length"] == str(len(body)).encode()
    assert headers[b"content-type"] == b"application/json"


async def test_a_hang_up_after_the_whole_answer_went_out_cancels_nothing() -> None:
    app = Recorder(finish=True)
    await drive(app, post(), call())
    assert len(app.seen) == 1


@pytest.mark.parametrize(
    "body",
    [
        json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}).encode(),
        json.dumps({"jsonrpc": "2.0", "id": 3, "result": {}}).encode(),
        json.dumps({"jsonrpc": "2.0", "id": True, "method": "tools/call"}).encode(),
        b'{"jsonrpc": "2.0", "id": 3, "meth',
    ],
    ids=["notification", "response", "bool-id", "cut-short"],
)
async def test_a_hang_up_on_anything_but_a_whole_request_cancels_nothing(body: bytes) -> None:
    app = Recorder(finish=False)
    await drive(app, post(), body)
    assert len(app.seen) == 1


async def test_requests_outside_a_stateful_session_pass_through_untouched() -> None:
    # 2026-era requests and stateless ones carry no session id: their own POST's hang-up cancels them.
    app = Recorder(finish=False)
    await drive(app, post([h for h in HEADERS if h[0] != b"mcp-session-id"]), call())
    assert len(app.seen) == 1


async def test_a_legacy_client_that_stays_gets_its_answers_through_the_middleware() -> None:
    sandbox = Sandbox(VirtualClock(), auto_create=False)
    sandbox["skillsvideo"].add_job("gen_stay", Timeline(queued_s=0, running_s=0))
    settings = Settings(provider_env=sandbox.env())
    mcp = build_server(settings, redactor=Redactor(), transport=httpx.ASGITransport(app=sandbox.app))
    sock = bound_socket()
    app = http_app(mcp, settings, host="127.0.0.1", port=sock.getsockname()[1], stateless=False, allowed_hosts=[])
    with serving(app, sock, lifespan=True) as server, anyio.fail_after(20):
        async with Client(f"{server.root}/mcp", mode="legacy") as client:
            for _ in range(3):
                reply = await client.call_tool(
                    "wait_for_generation", {"provider": "skillsvideo", "task_id": "gen_stay", "timeout_s": 5}
                )
                assert GenerationResult.model_validate(reply.structured_content).status == "succeeded"
    assert len(sandbox["skillsvideo"].requests) == 3


async def test_a_hang_up_finds_the_id_of_a_request_padded_far_past_what_is_kept() -> None:
    app = Recorder(finish=False)
    padded = json.dumps(
        {"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "x", "pad": "p" * 1_000_000}}
    ).encode()
    await drive(app, post(), padded)
    assert [json.loads(body)["params"]["requestId"] for _, body in app.seen[1:]] == [9]
