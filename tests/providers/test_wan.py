"""Wan (Alibaba DashScope / Model Studio), a declared provider: the shipped declaration on documented
payloads, and the whole path through the in-memory MCP client against its emulator."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest
from hypothesis import strategies as st
from mcp.types import CallToolResult

from sandbox import IN_PROCESS_ROOT, Sandbox, Timeline
from tests.conftest import Connect
from tests.providers.kit import ProviderKit, one_segment
from tools.clock import VirtualClock
from tools.errors import AuthenticationFailed, InvalidTaskId, ProviderProtocolError, TaskNotFound
from tools.providers import ADAPTERS, adapters_from_env
from tools.providers.base import Adapter, Reply
from tools.redact import Redactor
from tools.result import GenerationResult, JobState

TASK = "0385dc79-5ff8-4d82-bcb6-9f1e2a3b4c5d"
KEY = "sk-0123456789abcdef0123456789"
VIDEO = "https://dashscope-result-sh.oss-cn-shanghai.aliyuncs.com/xxx.mp4?Expires=1795428000&Signature=x"
RUNNING = {
    "request_id": "5a1b",
    "output": {
        "task_id": TASK,
        "task_status": "RUNNING",
        "submit_time": "2026-08-20 10:00:00.123",
        "scheduled_time": "2026-08-20 10:00:07.456",
    },
}
SUCCEEDED = {
    "request_id": "2ca1c497-f9e0-449d-9a3f-0",
    "output": {
        "task_id": TASK,
        "task_status": "SUCCEEDED",
        "submit_time": "2025-09-25 11:07:28.590",
        "scheduled_time": "2025-09-25 11:07:35.349",
        "end_time": "2025-09-25 11:17:11.650",
        "orig_prompt": "...",
        "video_url": VIDEO,
    },
    "usage": {"duration": 15, "input_video_duration": 0, "output_video_duration": 15, "video_count": 1, "SR": 720},
}
FAILED = {
    "request_id": "e5d70b02-ebd3-98ce-9fe8-759d7d7b107d",
    "output": {
        "task_id": TASK,
        "task_status": "FAILED",
        "code": "InvalidParameter",
        "message": "The size is not match xxxxxx",
    },
}
UNKNOWN = {"request_id": "a4de7c32", "output": {"task_id": TASK, "task_status": "UNKNOWN"}}
INVALID_KEY = {"code": "InvalidApiKey", "message": "Invalid API-key provided.", "request_id": "7438d53d"}


def adapter() -> Adapter:
    return adapters_from_env({"DASHSCOPE_API_KEY": KEY}, Redactor())["wan"]


def parse(body: Any, status_code: int = 200) -> JobState:
    state = adapter().parse(Reply(status_code, json.dumps(body).encode()))
    assert isinstance(state, JobState)
    return state


# ---- the declaration on documented payloads ----


def test_wan_is_a_known_provider_enabled_by_dashscope_api_key() -> None:
    assert ADAPTERS["wan"].credential_envs == ("DASHSCOPE_API_KEY",)
    assert adapter().configured


def test_a_running_task_is_running_without_outputs() -> None:
    state = parse(RUNNING)
    assert (state.status, state.provider_status, state.outputs) == ("running", "RUNNING", ())


def test_a_succeeded_task_gives_its_video_its_expiry_and_the_billed_seconds() -> None:
    state = parse(SUCCEEDED)
    (video,) = state.outputs
    assert video.model_dump(exclude_none=True) == {
        "url": VIDEO,
        "kind": "video",
        "mime_type": "video/mp4",
        "duration_s": 15.0,
        "expires_at": "2026-11-23T10:00:00Z",
    }
    assert state.cost is not None and (state.cost.amount, state.cost.unit) == (15, "seconds")


def test_the_older_usage_field_names_of_wan_2_1_are_read_too() -> None:
    body = {**SUCCEEDED, "usage": {"video_duration": 5, "video_count": 1, "video_ratio": "1280*720"}}
    state = parse(body)
    assert state.outputs[0].duration_s == 5 and state.cost is not None and state.cost.amount == 5


def test_a_failed_task_inside_a_200_carries_the_output_code_and_message() -> None:
    state = parse(FAILED)
    assert state.status == "failed" and state.error is not None
    assert (state.error.code, state.error.message) == ("InvalidParameter", "The size is not match xxxxxx")


def test_canceled_with_one_l_is_canceled() -> None:
    assert parse({**RUNNING, "output": {"task_id": TASK, "task_status": "CANCELED"}}).status == "canceled"


def test_unknown_inside_a_200_is_task_not_found_saying_the_id_may_have_expired() -> None:
    with pytest.raises(TaskNotFound, match=r"UNKNOWN.*retention"):
        parse(UNKNOWN)


def test_a_rejected_key_is_authentication_failed_with_the_providers_words() -> None:
    with pytest.raises(AuthenticationFailed, match=r"Invalid API-key provided.*DASHSCOPE_API_KEY"):
        parse(INVALID_KEY, 401)


def test_a_request_error_in_a_200_is_a_protocol_error() -> None:
    with pytest.raises(ProviderProtocolError, match="WAN_BASE_URL"):
        parse(INVALID_KEY, 200)


def test_another_4xx_quotes_the_top_level_message() -> None:
    with pytest.raises(ProviderProtocolError, match="your account is overdue"):
        parse({"code": "Arrearage", "message": "Access denied, your account is overdue.", "request_id": "r"}, 400)


@pytest.mark.parametrize("task_id", ["148", "gen_1", TASK.replace("-", ""), TASK + "x", "../" + TASK])
def test_anything_but_a_uuid_is_an_invalid_task_id(task_id: str) -> None:
    with pytest.raises(InvalidTaskId):
        adapter().validate_task_id(task_id)


async def test_the_request_is_the_documented_get_with_the_bearer_key() -> None:
    async with httpx.AsyncClient() as client:
        request = adapter().build_request(client, TASK)
    assert str(request.url) == f"https://dashscope-intl.aliyuncs.com/api/v1/tasks/{TASK}"
    assert request.headers["authorization"] == f"Bearer {KEY}"


# ---- through the MCP client ----


def text_of(reply: CallToolResult) -> str:
    assert reply.content and reply.content[0].type == "text"
    return reply.content[0].text


async def test_a_task_is_seen_pending_then_running_then_succeeded(
    connect: Connect, sandbox: Sandbox, clock: VirtualClock
) -> None:
    wan = sandbox["wan"]
    wan.add_job(TASK, Timeline(queued_s=2, running_s=6))
    seen = []
    async with connect() as client:
        for advance in (0, 5, 10):
            clock.advance(advance)
            reply = await client.call_tool("get_generation_result", {"provider": "wan", "task_id": TASK})
            assert not reply.is_error, text_of(reply)
            seen.append(GenerationResult.model_validate(reply.structured_content))
    assert [(r.status, r.provider_status) for r in seen] == [
        ("queued", "PENDING"),
        ("running", "RUNNING"),
        ("succeeded", "SUCCEEDED"),
    ]
    (video,) = seen[-1].outputs
    assert video.url.startswith(f"{IN_PROCESS_ROOT}/wan/files/{TASK}.mp4?Expires=")
    assert video.expires_at == "2026-11-23T10:00:15Z"
    assert {r.path for r in wan.requests} == {f"/wan/api/v1/tasks/{TASK}"}


async def test_a_failed_task_is_a_result_in_the_providers_words(connect: Connect, sandbox: Sandbox) -> None:
    sandbox["wan"].add_job(TASK, Timeline(0, 0, "failed"), code="DataInspectionFailed", message="Blocked.")
    async with connect() as client:
        reply = await client.call_tool("wait_for_generation", {"provider": "wan", "task_id": TASK})
    result = GenerationResult.model_validate(reply.structured_content)
    assert result.error is not None and (result.status, result.error.code) == ("failed", "DataInspectionFailed")


async def test_an_id_the_service_does_not_know_ends_a_wait_at_once_as_task_not_found(
    connect: Connect, sandbox: Sandbox, clock: VirtualClock
) -> None:
    async with connect() as client:
        reply = await client.call_tool("wait_for_generation", {"provider": "wan", "task_id": TASK, "timeout_s": 60})
    assert reply.is_error and "task_not_found" in text_of(reply)
    assert len(sandbox["wan"].requests) == 1 and clock.monotonic() == 0


async def test_a_wrong_key_is_authentication_failed_and_not_repeated(connect: Connect, sandbox: Sandbox) -> None:
    sandbox["wan"].add_job(TASK)
    wrong = "sk-wrong0123456789abcdef"
    async with connect(env={**sandbox.env(), "DASHSCOPE_API_KEY": wrong}) as client:
        reply = await client.call_tool("get_generation_result", {"provider": "wan", "task_id": TASK})
    assert reply.is_error and "authentication_failed" in text_of(reply) and wrong not in text_of(reply)


_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")

KIT = ProviderKit(
    seeds=[RUNNING, SUCCEEDED, FAILED, UNKNOWN, INVALID_KEY],
    reports_cost=True,
    issued=lambda task_id: _UUID.fullmatch(task_id) is not None,
    paths=one_segment("/tasks/{}"),
    plausible=st.one_of(st.uuids().map(str), st.uuids().map(lambda u: u.hex), st.uuids().map(lambda u: str(u) + "0")),
    finished_with_key=lambda key: (
        TASK,
        [{**SUCCEEDED, "output": {**SUCCEEDED["output"], "video_url": f"{VIDEO}&token={key}"}}],  # type: ignore[dict-item]
    ),
)
