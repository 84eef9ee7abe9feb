"""What one client may hold of the HTTP server: request bodies, unknown arguments, sessions, connections."""

from __future__ import annotations

import httpx
import pytest
from mcp import Client

from tests.hardening.test_http_transport import INITIALIZE, MCP_HEADERS, TOKEN, mcp_over_http
from tools.mcp_tools import ERROR_META

AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def test_a_body_over_256_kib_gets_413_before_the_mcp_app_holds_it() -> None:
    padded = {**INITIALIZE, "params": {**INITIALIZE["params"], "pad": "p" * 300_000}}  # type: ignore[dict-item]
    with mcp_over_http() as server:
        async with httpx.AsyncClient() as http:
            declared = await http.post(f"{server.root}/mcp", json=padded, headers={**MCP_HEADERS, **AUTH})

            async def chunks():  # type: ignore[no-untyped-def]
                for _ in range(40):
                    yield b"p" * 10_000

            streamed = await http.post(f"{server.root}/mcp", content=chunks(), headers={**MCP_HEADERS, **AUTH})
            honest = await http.post(f"{server.root}/mcp", json=INITIALIZE, headers={**MCP_HEADERS, **AUTH})
    assert (declared.status_code, streamed.status_code) == (413, 413)
    assert declared.json()["error"] == "request_too_large"
    assert honest.status_code == 200


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
