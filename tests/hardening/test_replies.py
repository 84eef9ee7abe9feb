"""What the service does with a provider's HTTP reply before any adapter reads it, and after.

Replies here are built by hand (httpx's MockTransport) because each is something no emulator sends on
purpose: a key echoed inside a finished job's URLs and words, a Retry-After of four hundred digits, Date
headers sent twice, and compressed bodies, a bomb among them.
"""

from __future__ import annotations

import gzip
import json
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client

from sandbox import EMULATORS
from server.app import build_server
from server.settings import Settings
from tests.providers.kit import kit
from tools.clock import VirtualClock
from tools.providers import ADAPTERS
from tools.providers.base import Reply
from tools.redact import REDACTED, Redactor
from tools.wire import MAX_BODY_BYTES

KEY = "sk-live-Q7x9Zr2LmT4p"
# Every provider configured with the same key, so any of them may echo it.
ENV = {name: KEY for cls in EMULATORS.values() for name in cls().credentials()}
Handler = Callable[[httpx.Request], httpx.Response]


@asynccontextmanager
async def client_for(handler: Handler, clock: VirtualClock) -> AsyncIterator[Client]:
    server = build_server(
        Settings(provider_env=ENV), redactor=Redactor(), transport=httpx.MockTransport(handler), clock=clock
    )
    async with Client(server) as client:
        yield client


def answer(body: Any, status: int = 200, headers: list[tuple[str, str]] | None = None) -> Handler:
    content = json.dumps(body).encode()
    return lambda request: httpx.Response(status, content=content, headers=headers or [])


def in_turn(bodies: list[Any]) -> Handler:
    """The bodies, one per request, in order: the replies of one read of several requests."""
    replies = iter(bodies)
    return lambda request: httpx.Response(200, content=json.dumps(next(replies)).encode())


@pytest.mark.parametrize("provider", sorted(ADAPTERS))
async def test_a_key_echoed_in_a_finished_jobs_urls_never_reaches_the_result(provider: str) -> None:
    task_id, bodies = kit(provider).finished_with_key(KEY)
    async with client_for(in_turn(bodies), VirtualClock()) as client:
        result = await client.call_tool("get_generation_result", {"provider": provider, "task_id": task_id})
    text = result.content[0].text  # type: ignore[union-attr]
    assert result.structured_content is not None and result.structured_content["status"] == "succeeded", text
    assert KEY not in text and KEY not in json.dumps(result.structured_content)
    assert REDACTED in result.structured_content["outputs"][0]["url"]


async def test_a_key_echoed_in_a_status_word_and_an_error_code_never_reaches_the_result() -> None:
    failed = {
        "data": {"is_success": False, "data": {"task_id": "job-1", "percent": 0, "status": f"FAILED-{KEY}"}},
        "errors": [{"code": KEY, "message": f"the key {KEY} may not use this model"}],
        "error_description": "",
        "status": "failed",
    }
    async with client_for(answer(failed), VirtualClock()) as client:
        result = await client.call_tool("get_generation_result", {"provider": "flexstack", "task_id": "job-1"})
    content = result.structured_content
    assert content is not None and content["status"] == "failed", result
    assert KEY not in json.dumps(content) and KEY not in result.content[0].text  # type: ignore[union-attr]
    assert content["error"]["code"] == REDACTED and content["provider_status"] == f"FAILED-{REDACTED}"


@pytest.mark.parametrize("retry_after", ["9" * 400, "1e400", "86401"])
async def test_a_retry_after_nobody_could_mean_is_ignored_and_the_wait_goes_on(retry_after: str) -> None:
    clock = VirtualClock()
    replies = iter(
        [
            httpx.Response(503, json={"detail": "busy"}, headers={"Retry-After": retry_after}),
            httpx.Response(200, json={"id": "gen_1", "status": "COMPLETED", "data": None}),
        ]
    )
    async with client_for(lambda request: next(replies), clock) as client:
        result = await client.call_tool(
            "wait_for_generation", {"provider": "skillsvideo", "task_id": "gen_1", "timeout_s": 30}
        )
    assert result.structured_content is not None, result
    assert result.structured_content["status"] == "succeeded" and result.structured_content["polls"] == 2
    assert clock.monotonic() < 30


@pytest.mark.parametrize("date_headers", [2, 0], ids=["date-sent-twice", "no-date"])
async def test_a_retry_after_given_as_a_date_is_honoured_to_the_second_however_the_date_comes(
    date_headers: int,
) -> None:
    # uvicorn adds a Date of its own to an app's, and httpx joins the two with ", ": no date survives that;
    # a reply without a Date at all is measured against our clock.
    clock = VirtualClock()
    sent_at: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent_at.append(clock.monotonic())
        if len(sent_at) > 1:
            return httpx.Response(200, json={"id": "gen_1", "status": "COMPLETED", "data": None})
        now = clock.now()
        headers = [("date", format_datetime(now, usegmt=True))] * date_headers
        headers.append(("retry-after", format_datetime(now + timedelta(seconds=37), usegmt=True)))
        return httpx.Response(429, json={"detail": "slow down"}, headers=headers)

    async with client_for(handler, clock) as client:
        result = await client.call_tool(
            "wait_for_generation", {"provider": "skillsvideo", "task_id": "gen_1", "timeout_s": 50}
        )
    assert result.structured_content is not None and result.structured_content["status"] == "succeeded", result
    assert sent_at[0] == 0 and 37 <= sent_at[1] < 39, sent_at


SUCCEEDED = {"id": "gen_1", "status": "COMPLETED", "data": None, "usage": {"total": 3}}


class OnTheWire(httpx.AsyncByteStream):
    """A body that arrives in network-sized reads, as from a socket (a `content=` body is read up front)."""

    def __init__(self, body: bytes, read_size: int = 65_536) -> None:
        self._body, self._read_size = body, read_size

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self._body), self._read_size):
            yield self._body[start : start + self._read_size]


def packed(body: bytes, coding: str, read_size: int = 65_536) -> Handler:
    return lambda request: httpx.Response(200, stream=OnTheWire(body, read_size), headers={"Content-Encoding": coding})


def raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


@pytest.mark.parametrize(
    ("coding", "pack"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", raw_deflate),
        ("gzip, gzip", lambda data: gzip.compress(gzip.compress(data))),
    ],
    ids=["gzip", "deflate-zlib", "deflate-raw", "gzip-twice"],
)
@pytest.mark.parametrize("read_size", [65_536, 1], ids=["whole", "a-byte-at-a-time"])
async def test_a_compressed_answer_is_read_like_a_plain_one(
    coding: str, pack: Callable[[bytes], bytes], read_size: int
) -> None:
    body = pack(json.dumps(SUCCEEDED).encode())
    async with client_for(packed(body, coding, read_size), VirtualClock()) as client:
        result = await client.call_tool("get_generation_result", {"provider": "skillsvideo", "task_id": "gen_1"})
    assert result.structured_content is not None, result
    assert result.structured_content["status"] == "succeeded"
    assert result.structured_content["cost"] == {"amount": 3.0, "unit": "credits"}


async def test_the_server_asks_only_for_codings_it_can_unpack_under_the_cap() -> None:
    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request.headers.get("accept-encoding", ""))
        return httpx.Response(200, json=SUCCEEDED)

    # Through the service's own clients (the server's lanes), as the providers see it.
    async with client_for(handler, VirtualClock()) as client:
        await client.call_tool("get_generation_result", {"provider": "skillsvideo", "task_id": "gen_1"})
    assert asked == ["gzip, deflate"]


async def test_a_body_in_a_coding_that_was_not_asked_for_is_a_protocol_error() -> None:
    async with client_for(packed(b"\x8b\x00", "br"), VirtualClock()) as client:
        result = await client.call_tool("get_generation_result", {"provider": "skillsvideo", "task_id": "gen_1"})
    assert result.is_error and "provider_protocol_error" in result.content[0].text  # type: ignore[union-attr]


async def test_a_gzip_bomb_is_refused_without_unpacking_it() -> None:
    # 64 MiB of zeros packs into ~64 KiB: under the cap on the wire, 64 times the cap unpacked.
    unpacked_size = 64 * MAX_BODY_BYTES
    bomb = gzip.compress(b"\0" * unpacked_size, compresslevel=9)
    assert len(bomb) < MAX_BODY_BYTES
    tracemalloc.start()
    try:
        async with client_for(packed(bomb, "gzip"), VirtualClock()) as client:
            tracemalloc.reset_peak()
            with anyio.fail_after(30):
                result = await client.call_tool(
                    "get_generation_result", {"provider": "skillsvideo", "task_id": "gen_1"}
                )
            _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    text = result.content[0].text  # type: ignore[union-attr]
    assert result.is_error and "provider_protocol_error" in text and "1024 KiB" in text, text
    # Unpacked whole, or a network read at a time, the bomb would take tens of MiB.
    assert peak < 8 * MAX_BODY_BYTES, peak


def test_a_reply_keeps_the_first_of_repeated_headers_and_stands_in_for_a_missing_date() -> None:
    sent = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    stamped = format_datetime(sent, usegmt=True)
    twice = httpx.Response(429, headers=[("Date", stamped), ("Date", stamped), ("Retry-After", "7")])
    assert Reply.from_response(twice, b"").headers == {"date": stamped, "retry-after": "7"}
    bare = httpx.Response(429, headers=[("Retry-After", "7")])
    assert Reply.from_response(bare, b"", date=sent).headers["date"] == stamped
    assert "date" not in Reply.from_response(bare, b"").headers


async def test_a_login_answer_too_large_to_read_is_refused_once_for_all_the_calls_waiting_on_it() -> None:
    # A body we will not read settles the login like a refusal: the calls queued behind it share the error
    # instead of each sending the password again.
    logins: list[httpx.Request] = []
    bomb = gzip.compress(b"\0" * (16 * MAX_BODY_BYTES))

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/user/login"):
            logins.append(request)
            return httpx.Response(200, stream=OnTheWire(bomb), headers={"Content-Encoding": "gzip"})
        return httpx.Response(401, json={"detail": "token required"})

    env = {"FLEXSTACK_USERNAME": "someone", "FLEXSTACK_PASSWORD": "pass-word-123"}
    server = build_server(
        Settings(provider_env=env), redactor=Redactor(), transport=httpx.MockTransport(handler), clock=VirtualClock()
    )
    texts: list[str] = []

    async def check(client: Client, task_id: str) -> None:
        result = await client.call_tool("get_generation_result", {"provider": "flexstack", "task_id": task_id})
        assert result.is_error
        texts.append(result.content[0].text)  # type: ignore[union-attr]

    async with Client(server) as client:
        with anyio.fail_after(30):
            async with anyio.create_task_group() as group:
                for number in range(10):
                    group.start_soon(check, client, f"job-{number}")
    assert len(logins) == 1
    assert len(texts) == 10 and all("provider_protocol_error" in text and "login" in text for text in texts), texts
    # The login asked only for the codings we unpack under the cap.
    assert logins[0].headers["accept-encoding"] == "gzip, deflate"
