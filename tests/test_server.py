"""The contract of DESIGN.md §2, through the in-memory MCP client against the in-process emulators."""

from __future__ import annotations

import json
from typing import Any

import pytest
from mcp import Client
from mcp.types import CallToolResult

from sandbox import Sandbox, Timeline
from tests.conftest import TOOL_NAMES, Connect, ServerFactory
from tools.providers import ADAPTERS
from tools.result import GenerationResult


def text_of(reply: CallToolResult) -> str:
    assert reply.content and reply.content[0].type == "text"
    return reply.content[0].text


async def test_the_tools_are_listed_with_the_annotations_of_the_design_and_the_result_schema(connect: Connect) -> None:
    async with connect() as client:
        listed = {tool.name: tool for tool in (await client.list_tools()).tools}

    assert set(listed) == TOOL_NAMES
    for name, tool in listed.items():
        hints = tool.annotations
        assert hints is not None
        writes = name == "download_generation_outputs"
        # The listing asks no provider: closed-world.
        world = name != "list_generations"
        assert (hints.read_only_hint, hints.idempotent_hint, hints.open_world_hint) == (not writes, True, world)
        if writes:
            assert hints.destructive_hint is False
        assert tool.output_schema is not None
    for name in ("get_generation_result", "wait_for_generation"):
        schema = listed[name].output_schema
        assert schema is not None
        assert {"provider", "task_id", "status", "done", "checked_at"} <= set(schema["required"])
        assert "outputs" in schema["properties"]
    many = listed["wait_for_generations"].output_schema
    assert many is not None and {"results", "done", "pending", "elapsed_s", "polls", "timed_out"} <= set(
        many["required"]
    )
    wait_args = listed["wait_for_generation"].input_schema["properties"]
    assert wait_args["timeout_s"]["default"] == 50
    assert listed["download_generation_outputs"].input_schema["properties"]["index"]["default"] is None


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_result_is_structured_and_its_text_is_the_same_object_as_compact_json(
    make_server: ServerFactory, sandbox: Sandbox, mode: str
) -> None:
    sandbox["skillsvideo"].add_job("gen_1", Timeline(queued_s=0, running_s=0))
    async with Client(make_server(), mode=mode) as client:  # type: ignore[arg-type]
        reply = await client.call_tool("get_generation_result", {"provider": "skillsvideo", "task_id": "gen_1"})

    assert not reply.is_error
    assert json.loads(text_of(reply)) == reply.structured_content
    assert "null" not in text_of(reply) and "\n" not in text_of(reply)
    result = GenerationResult.model_validate(reply.structured_content)
    assert (result.status, result.done, result.outputs[0].kind) == ("succeeded", True, "video")


async def error_text(connect: Connect, tool: str, arguments: dict[str, Any], **settings: Any) -> str:
    async with connect(**settings) as client:
        reply = await client.call_tool(tool, arguments)
    assert reply.is_error
    return text_of(reply)


async def test_an_unknown_provider_lists_the_known_ids(connect: Connect) -> None:
    text = await error_text(connect, "get_generation_result", {"provider": "no-such-provider", "task_id": "x1"})
    assert "unknown_provider" in text
    assert all(provider_id in text for provider_id in ADAPTERS)


async def test_an_over_long_provider_id_is_unknown_provider_not_a_validation_error(connect: Connect) -> None:
    text = await error_text(connect, "get_generation_result", {"provider": "p" * 500, "task_id": "x1"})
    assert "unknown_provider" in text and "skillsvideo" in text
    assert len(text) < 300


async def test_a_base_url_httpx_cannot_use_is_a_coded_error_naming_the_setting(
    connect: Connect, sandbox: Sandbox
) -> None:
    # Settings.from_env refuses it at start; a server built from settings made another way still answers.
    env = {**sandbox.env(), "SKILLSVIDEO_BASE_URL": "http://sandbox.invalid:abc/api"}
    text = await error_text(connect, "get_generation_result", {"provider": "skillsvideo", "task_id": "gen_1"}, env=env)
    assert "provider_protocol_error" in text and "SKILLSVIDEO_BASE_URL" in text


async def test_a_long_key_pasted_as_a_task_id_is_not_quoted_back_even_in_part(connect: Connect) -> None:
    key = "sv-" + "k" * 90 + "+/"
    text = await error_text(
        connect, "get_generation_result", {"provider": "skillsvideo", "task_id": key}, env={"SKILLSVIDEO_API_KEY": key}
    )
    assert "invalid_task_id" in text
    assert "k" * 20 not in text


@pytest.mark.parametrize("field", ["provider", "task_id"])
async def test_a_configured_secret_sent_as_an_argument_is_answered_exactly_as_a_wrong_guess(
    connect: Connect, sandbox: Sandbox, field: str
) -> None:
    # Were the secret redacted but a wrong guess echoed, any caller could confirm guesses of the secret.
    secret = "Summer2024!"
    env = {**sandbox.env(), "SKILLSVIDEO_API_KEY": secret}
    answers = []
    for guess in (secret, "Winter2023!"):
        arguments = {"provider": "skillsvideo", "task_id": "gen_1", field: guess}
        answers.append(await error_text(connect, "get_generation_result", arguments, env=env))
    assert answers[0] == answers[1]
    assert "Summer" not in answers[0] and "Winter" not in answers[0] and "[redacted]" not in answers[0]


async def test_a_four_megabyte_provider_id_is_refused_unread(connect: Connect) -> None:
    text = await error_text(connect, "get_generation_result", {"provider": "p" * (4 << 20), "task_id": "x1"})
    assert text.startswith("unknown_provider: ") and len(text) < 400


@pytest.mark.parametrize("provider_id", sorted(ADAPTERS))
async def test_a_provider_without_credentials_names_the_variable_to_set(connect: Connect, provider_id: str) -> None:
    valid_id = ADAPTERS[provider_id].example_task_id
    text = await error_text(connect, "get_generation_result", {"provider": provider_id, "task_id": valid_id}, env={})
    assert "provider_not_configured" in text
    assert ADAPTERS[provider_id].credential_hint.removeprefix("set ").split()[0] in text


@pytest.mark.parametrize("task_id", ["", "   ", "../../admin", "a/b", "x?y=1", "id#frag", "a" * 300, "new\nline"])
async def test_task_ids_that_could_change_the_request_are_refused_before_anything_is_sent(
    connect: Connect, sandbox: Sandbox, task_id: str
) -> None:
    text = await error_text(connect, "get_generation_result", {"provider": "skillsvideo", "task_id": task_id})
    assert "invalid_task_id" in text
    assert sandbox["skillsvideo"].requests == []


@pytest.mark.parametrize("timeout_s", [0, -1])
async def test_a_wait_with_a_non_positive_timeout_is_refused_with_the_limits(
    connect: Connect, timeout_s: float
) -> None:
    text = await error_text(
        connect, "wait_for_generation", {"provider": "skillsvideo", "task_id": "gen_1", "timeout_s": timeout_s}
    )
    assert "invalid_argument" in text and "1800" in text


async def test_a_wait_longer_than_the_server_allows_is_shortened_and_says_so(
    make_server: ServerFactory, sandbox: Sandbox
) -> None:
    sandbox["skillsvideo"].add_job("gen_slow", Timeline(queued_s=500, running_s=500))
    async with Client(make_server(max_wait_s=30)) as client:
        reply = await client.call_tool(
            "wait_for_generation", {"provider": "skillsvideo", "task_id": "gen_slow", "timeout_s": 5000}
        )
    result = GenerationResult.model_validate(reply.structured_content)
    assert result.timed_out is True and result.done is False
    assert result.elapsed_s is not None and result.elapsed_s <= 30
    assert result.note is not None and "30" in result.note


async def test_a_job_the_provider_does_not_know_is_task_not_found(connect: Connect) -> None:
    text = await error_text(connect, "get_generation_result", {"provider": "skillsvideo", "task_id": "gen_404"})
    assert "task_not_found" in text


async def test_a_failed_job_is_a_result_not_a_tool_error(connect: Connect, sandbox: Sandbox) -> None:
    sandbox["skillsvideo"].add_job("gen_bad", Timeline(queued_s=0, running_s=0, outcome="failed"))
    async with connect() as client:
        reply = await client.call_tool("get_generation_result", {"provider": "skillsvideo", "task_id": "gen_bad"})
    assert not reply.is_error
    result = GenerationResult.model_validate(reply.structured_content)
    assert result.status == "failed" and result.error is not None


async def test_a_task_id_sent_as_a_json_number_is_read_as_the_id_it_spells(connect: Connect, sandbox: Sandbox) -> None:
    sandbox["modelslab"].add_job("148", Timeline(queued_s=0, running_s=0))
    async with connect() as client:
        reply = await client.call_tool("get_generation_result", {"provider": "modelslab", "task_id": 148})
    assert not reply.is_error, reply.content
    assert GenerationResult.model_validate(reply.structured_content).task_id == "148"


async def test_a_key_that_no_header_can_carry_is_a_protocol_error_with_advice_not_a_bare_failure(
    connect: Connect, sandbox: Sandbox
) -> None:
    # Settings.from_env refuses such a key at start; a token the provider issues itself can still be one.
    env = {**sandbox.env(), "SKILLSVIDEO_API_KEY": "sk-cl\u00e9-0123456789"}
    text = await error_text(connect, "get_generation_result", {"provider": "skillsvideo", "task_id": "gen_1"}, env=env)
    assert text.startswith("provider_protocol_error: ") and "SKILLSVIDEO_API_KEY" in text
