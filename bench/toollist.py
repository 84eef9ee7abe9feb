"""The tool list: the bytes of the `tools/list` answer, as compact JSON, for every tool the server offers.

Clients send it into the model's context with every session (some with the output schemas too, such as
pydantic-ai's `include_return_schema`), so its size is a cost every conversation pays. The anchor is the
list as it was with two tools and uncompacted schemas: 10.7 KB (10,846 bytes).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import anyio
from mcp import Client

from bench.report import Row
from server.app import build_server
from server.settings import Settings

TARGET_BYTES = 12_000
BEFORE_TWO_TOOLS = 10_846


async def _measure() -> tuple[int, int]:
    async with Client(build_server(Settings())) as client:
        listed = await client.list_tools()
    wire = listed.model_dump(mode="json", by_alias=True, exclude_none=True)
    return len(json.dumps(wire, separators=(",", ":"))), len(listed.tools)


def rows() -> Iterator[Row]:
    size, tools = anyio.run(_measure)
    yield Row(
        f"tools/list, all {tools} tools (compact JSON)",
        f"{size / 1000:.1f} KB ({size} bytes) vs {BEFORE_TWO_TOOLS / 1000:.1f} KB for two tools before",
        f"< {TARGET_BYTES / 1000:.0f} KB",
        size < TARGET_BYTES,
    )
