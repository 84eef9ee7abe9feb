"""The tools as third-party clients meet them: error texts that start with their code, the code as data,
arguments that clients widen or garble, and descriptions without the source's indentation."""

from __future__ import annotations

import json
from typing import Any

import pytest
from mcp.types import CallToolResult

from sandbox import Sandbox, Timeline
from tests.conftest import Connect
from tools.clock import VirtualClock
from tools.mcp_tools import ERROR_META

CODES = ("unknown_provider", "invalid_task_id", "invalid_argument", "task_not_found", "provider_not_configured")


def text_of(reply: CallToolResult) -> str:
    assert reply.content and reply.content[0].type == "text"
    return reply.content[0].text


def error_of(reply: CallToolResult) -> tuple[str, str]:
    """The error as a client reads it without parsing text: (code, message) from `_meta`."""
    assert reply.is_error and reply.meta is not None, reply
    data: dict[str, str] = reply.meta[ERROR_META]
    return data["code"], data["message"]


@pytest.mark.parametrize("mode", ["auto", "legacy"])
@pytest.mark.parametrize(
    ("tool", "arguments", "code"),
    [
        ("get_generation_result", {"provider": "nope", "task_id": "gen_1"}, "unknown_provider"),
        ("get_generation_result", {"provider": "skillsvideo", "task_id": "a/b"}, "invalid_task_id"),
        ("get_generation_result", {"provider": "skillsvideo", "task_id": "gen_missing"}, "task_not_found"),
        ("wait_for_generation", {"provider": "skillsvideo", "task_id": "gen_1", "timeout_s": -1}, "invalid_argument"),
        (
            "wait_for_generation",
            {"provider": "skillsvideo", "task_id": "gen_1", "timeout_s": "soon"},
            "invalid_argument",
        ),
        ("wait_for_generation", {"provider": "skillsvideo"}, "invalid_argument"),
    ],
)
async def test_a_tool_error_text_starts_with_its_code_and_carries_code_and_message_as_data(
    connect: Connect, mode: str, tool: str, arguments: dict[str, Any], code: str
) -> None:
    async with connect(mode=mode) as client:
        reply = await client.call_tool(tool, arguments)
    text = text_of(reply)
    assert text.startswith(f"{code}: "), text
    assert error_of(reply) == (code, text.removeprefix(f"{code}: "))
    assert "Error executing tool" not in text


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"provider": "skillsvideo", "task_id": "gen_1", "timeout_s": "soon"}, "timeout_s"),
        ({"provider": "skillsvideo", "task_id": "gen_1", "poll_interval_s": [1]}, "poll_interval_s"),
        ({"provider": "skillsvideo", "task_id": "gen_1", "timeout_s": True}, "timeout_s"),
        ({"provider": None, "task_id": "gen_1"}, "provider"),
        ({"task_id": "gen_1"}, "provider"),
    ],
)
async def test_unreadable_arguments_are_invalid_argument_in_our_words_naming_the_field_not_its_value(
    connect: Connect, sandbox: Sandbox, arguments: dict[str, Any], field: str
) -> None:
    async with connect() as client:
        reply = await client.call_tool("wait_for_generation", arguments)
    code, message = error_of(reply)
    assert code == "invalid_argument" and field in message, message
    # No pydantic text, no echo of what was sent.
    assert "validation error" not in message.lower() and "pydantic" not in message.lower()
    assert "soon" not in message
    assert sandbox["skillsvideo"].requests == []


async def test_null_for_an_optional_argument_means_its_default(
    connect: Connect, sandbox: Sandbox, clock: VirtualClock
) -> None:
    # mcp-use widens number arguments to number-or-null and sends null.
    sandbox["skillsvideo"].add_job("gen_1", Timeline(queued_s=1000))
    arguments = {"provider": "skillsvideo", "task_id": "gen_1", "timeout_s": None, "poll_interval_s": None}
    async with connect(default_wait_s=7) as client:
        reply = await client.call_tool("wait_for_generation", arguments)
    assert not reply.is_error, text_of(reply)
    assert reply.structured_content is not None
    assert (reply.structured_content["timed_out"], reply.structured_content["elapsed_s"]) == (True, 7)
    assert clock.monotonic() == 7


async def test_tool_descriptions_reach_the_model_without_the_sources_indentation(connect: Connect) -> None:
    async with connect() as client:
        tools = (await client.list_tools()).tools
    for tool in tools:
        assert tool.description and "\n " not in tool.description, (tool.name, tool.description)
        assert tool.description == tool.description.strip()


async def test_the_wait_tool_tells_the_model_to_keep_its_timeout_under_the_clients_own_limit(connect: Connect) -> None:
    async with connect(default_wait_s=5) as client:
        (wait,) = [tool for tool in (await client.list_tools()).tools if tool.name == "wait_for_generation"]
    described = wait.input_schema["properties"]["timeout_s"]["description"]
    assert "tool-call time limit" in described and "null: 5" in described


async def test_the_whole_tool_list_stays_under_twelve_kilobytes_of_compact_json(connect: Connect) -> None:
    # Some clients put every output schema into the model's context (pydantic-ai's include_return_schema).
    async with connect() as client:
        listed = await client.list_tools()
    wire = json.dumps(listed.model_dump(mode="json", by_alias=True, exclude_none=True), separators=(",", ":"))
    assert len(wire) < 12_000, len(wire)


async def test_every_input_schema_is_self_contained_so_strict_mode_converters_accept_it(connect: Connect) -> None:
    # openai-agents' convert_schemas_to_strict refuses any `$ref` in an MCP tool's input schema and falls back to a
    # loose schema for that tool; mcp-use rebuilds the schema as a model. An inlined schema is one both take as is.
    async with connect() as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    for name, tool in tools.items():
        wire = json.dumps(tool.input_schema)
        assert "$ref" not in wire and "$defs" not in wire, (name, wire)
    job = tools["wait_for_generations"].input_schema["properties"]["jobs"]["items"]
    assert job["type"] == "object" and job["additionalProperties"] is False, job
    assert set(job["required"]) == {"provider", "task_id"} and set(job["properties"]) == {"provider", "task_id"}
    assert all("title" not in field for field in job["properties"].values()), job
