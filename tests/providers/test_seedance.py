"""Seedance (BytePlus ModelArk), a declared provider: the shipped declaration on documented payloads, and the
whole path through the in-memory MCP client against its emulator."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from mcp.types import CallToolResult

from sandbox import IN_PROCESS_ROOT, Fault, Sandbox, Timeline
from tests.conftest import Connect
from tests.providers.kit import ProviderKit, one_segment, safe_id
from tools.clock import VirtualClock
from tools.errors import AuthenticationFailed, ProviderProtocolError, TaskNotFound
from tools.providers import ADAPTERS, adapters_from_env
from tools.providers.base import Adapter, Reply
from tools.redact import Redactor
from tools.result import GenerationResult, JobState

TASK = "cgt-20260820100000-ab12c"
KEY = "ark-0123456789abcdef0123"
VIDEO = (
    "https://ark-content-generation-ap-southeast-1.tos-ap-southeast-1.bytepluses.com/seedance-1-5-pro/v.mp4"
    "?X-Tos-Algorithm=TOS4-HMAC-SHA256&X-Tos-Expires=86400&X-Tos-Signature=abc"
)
QUEUED = {
    "id": TASK,
    "model": "seedance-1-5-pro-251215",
    "status": "queued",
    "created_at": 1787220000,
    "updated_at": 1787220000,
    "service_tier": "default",
    "execution_expires_after": 172800,
    "priority": 0,
}
SUCCEEDED = {
    "id": TASK,
    "model": "seedance-1-5-pro-251215",
    "status": "succeeded",
    "content": {"video_url": VIDEO},
    "seed": 10,
    "resolution": "720p",
    "ratio": "16:9",
    "duration": 5,
    "framespersecond": 24,
    "generate_audio": True,
    "draft": False,
    "service_tier": "default",
    "execution_expires_after": 172800,
    "usage": {"completion_tokens": 108900, "total_tokens": 108900},
    "created_at": 1787220000,
    "updated_at": 1787220054,
}
FAILED = {
    "id": TASK,
    "model": "seedance-1-5-pro-251215",
    "status": "failed",
    "error": {
        "code": "OutputVideoSensitiveContentDetected",
        "message": "The request failed because the output video may contain sensitive information. Request ID: 0217f3",
    },
    "created_at": 1787220000,
    "updated_at": 1787220031,
}
UNAUTHORIZED = {
    "error": {
        "code": "AuthenticationError",
        "message": "The API key or AK/SK in the request is missing or invalid. Request ID: 0217",
        "param": "",
        "type": "Unauthorized",
    }
}


def adapter() -> Adapter:
    return adapters_from_env({"ARK_API_KEY": KEY}, Redactor())["seedance"]


def parse(body: Any, status_code: int = 200) -> JobState:
    state = adapter().parse(Reply(status_code, json.dumps(body).encode()))
    assert isinstance(state, JobState)
    return state


# ---- the declaration on documented payloads ----


def test_seedance_is_a_known_provider_enabled_by_ark_api_key() -> None:
    assert ADAPTERS["seedance"].credential_envs == ("ARK_API_KEY",)
    assert adapter().configured and not adapters_from_env({}, Redactor())["seedance"].configured


def test_a_queued_task_is_queued_without_outputs_or_cost() -> None:
    state = parse(QUEUED)
    assert (state.status, state.provider_status, state.outputs, state.cost, state.progress) == (
        "queued",
        "queued",
        (),
        None,
        None,
    )


def test_a_succeeded_task_gives_its_video_duration_and_tokens() -> None:
    state = parse(SUCCEEDED)
    assert (state.status, state.progress) == ("succeeded", None)
    (video,) = state.outputs
    assert video.model_dump(exclude_none=True) == {
        "url": VIDEO,
        "kind": "video",
        "mime_type": "video/mp4",
        "duration_s": 5.0,
    }
    assert state.cost is not None and (state.cost.amount, state.cost.unit) == (108900, "tokens")


def test_a_last_frame_asked_for_at_creation_is_a_second_output_an_image() -> None:
    body = {
        **SUCCEEDED,
        "content": {"video_url": VIDEO, "last_frame_url": "https://tos.example/last.png?X-Tos-Expires=1"},
    }
    assert [(o.kind, o.mime_type) for o in parse(body).outputs] == [("video", "video/mp4"), ("image", "image/png")]


def test_a_frame_count_instead_of_a_duration_gives_no_invented_duration() -> None:
    body = {key: value for key, value in SUCCEEDED.items() if key != "duration"} | {"frames": 121}
    assert parse(body).outputs[0].duration_s is None


def test_a_failed_task_carries_the_providers_code_and_message() -> None:
    state = parse(FAILED)
    assert state.status == "failed" and state.error is not None
    assert state.error.code == "OutputVideoSensitiveContentDetected"
    assert "sensitive information" in state.error.message


@pytest.mark.parametrize(("word", "status"), [("cancelled", "canceled"), ("expired", "failed"), ("running", "running")])
def test_cancelled_with_two_ls_and_expired_are_ends_of_the_job(word: str, status: str) -> None:
    state = parse({**QUEUED, "status": word})
    assert (state.status, state.provider_status) == (status, word)


def test_an_undocumented_word_is_running_and_kept() -> None:
    assert (parse({**QUEUED, "status": "paused"}).status, parse({**QUEUED, "status": "paused"}).provider_status) == (
        "running",
        "paused",
    )


def test_a_401_is_authentication_failed_with_the_providers_words_and_the_variable() -> None:
    with pytest.raises(AuthenticationFailed, match=r"missing or invalid.*ARK_API_KEY"):
        parse(UNAUTHORIZED, 401)


@pytest.mark.parametrize("code", ["AccountOverdueError", "AccessDenied"])
def test_a_403_is_the_account_refused(code: str) -> None:
    with pytest.raises(AuthenticationFailed, match=r"refused the account \(HTTP 403\)"):
        parse({"error": {"code": code, "message": "Overdue.", "type": "Forbidden"}}, 403)


def test_a_404_is_task_not_found() -> None:
    with pytest.raises(TaskNotFound):
        parse({"error": {"code": "NotFound", "message": "The specified task is not found.", "type": "NotFound"}}, 404)


def test_an_error_body_in_a_200_is_a_protocol_error_naming_the_base_url_setting() -> None:
    with pytest.raises(ProviderProtocolError, match="SEEDANCE_BASE_URL"):
        parse(UNAUTHORIZED, 200)


async def test_the_request_is_the_documented_get_with_the_bearer_key() -> None:
    async with httpx.AsyncClient() as client:
        request = adapter().build_request(client, TASK)
    assert (request.method, str(request.url)) == (
        "GET",
        f"https://ark.ap-southeast.bytepluses.com/api/v3/contents/generations/tasks/{TASK}",
    )
    assert request.headers["authorization"] == f"Bearer {KEY}"


# ---- through the MCP client ----


def text_of(reply: CallToolResult) -> str:
    assert reply.content and reply.content[0].type == "text"
    return reply.content[0].text


async def test_a_task_is_seen_queued_then_succeeded_with_its_video(
    connect: Connect, sandbox: Sandbox, clock: VirtualClock
) -> None:
    seedance = sandbox["seedance"]
    seedance.add_job(TASK, Timeline(queued_s=2, running_s=6))
    seen = []
    async with connect() as client:
        for advance in (0, 5, 10):
            clock.advance(advance)
            reply = await client.call_tool("get_generation_result", {"provider": "seedance", "task_id": TASK})
            assert not reply.is_error, text_of(reply)
            seen.append(GenerationResult.model_validate(reply.structured_content))
    assert [(r.status, r.provider_status) for r in seen] == [
        ("queued", "queued"),
        ("running", "running"),
        ("succeeded", "succeeded"),
    ]
    (video,) = seen[-1].outputs
    assert (
        video.url.startswith(f"{IN_PROCESS_ROOT}/seedance/files/{TASK}/video.mp4?")
        and "X-Tos-Expires=86400" in video.url
    )
    assert video.expires_at == "2026-11-23T10:00:15Z"  # signed when read, at 15 s, for 24 hours
    assert seen[-1].cost is not None and seen[-1].cost.unit == "tokens"
    assert {r.path for r in seedance.requests} == {f"/seedance/api/v3/contents/generations/tasks/{TASK}"}
    assert {r.headers["authorization"] for r in seedance.requests} == {f"Bearer {seedance.api_key}"}


async def test_a_wait_rides_out_a_rate_limit_and_ends_failed_in_the_providers_words(
    connect: Connect, sandbox: Sandbox
) -> None:
    sandbox["seedance"].add_job(TASK, Timeline(queued_s=1, running_s=3, outcome="failed"), [Fault.rate_limited(2)])
    async with connect() as client:
        reply = await client.call_tool(
            "wait_for_generation", {"provider": "seedance", "task_id": TASK, "timeout_s": 60}
        )
    result = GenerationResult.model_validate(reply.structured_content)
    assert (result.status, result.timed_out) == ("failed", False)
    assert result.error is not None and result.error.code == "OutputVideoSensitiveContentDetected"


async def test_an_expired_task_is_a_failed_job(connect: Connect, sandbox: Sandbox) -> None:
    sandbox["seedance"].add_job(TASK, Timeline(0, 0, "failed"), expired=True)
    async with connect() as client:
        reply = await client.call_tool("get_generation_result", {"provider": "seedance", "task_id": TASK})
    result = GenerationResult.model_validate(reply.structured_content)
    assert (result.status, result.provider_status, result.error) == ("failed", "expired", None)


async def test_a_wrong_key_is_authentication_failed_and_not_repeated(connect: Connect, sandbox: Sandbox) -> None:
    sandbox["seedance"].add_job(TASK)
    wrong = "ark-wrong-key-0123456789"
    async with connect(env={**sandbox.env(), "ARK_API_KEY": wrong}) as client:
        reply = await client.call_tool("get_generation_result", {"provider": "seedance", "task_id": TASK})
    assert reply.is_error and "authentication_failed" in text_of(reply) and "AK/SK" in text_of(reply)
    assert wrong not in text_of(reply)


async def test_an_unknown_task_is_task_not_found(connect: Connect) -> None:
    async with connect() as client:
        reply = await client.call_tool("get_generation_result", {"provider": "seedance", "task_id": TASK})
    assert reply.is_error and "task_not_found" in text_of(reply)


async def test_without_ark_api_key_it_is_not_configured_and_nothing_is_sent(connect: Connect, sandbox: Sandbox) -> None:
    async with connect(env={"SEEDANCE_BASE_URL": sandbox.env()["SEEDANCE_BASE_URL"]}) as client:
        reply = await client.call_tool("get_generation_result", {"provider": "seedance", "task_id": TASK})
    assert reply.is_error and "provider_not_configured" in text_of(reply) and "ARK_API_KEY" in text_of(reply)
    assert sandbox["seedance"].requests == []


async def test_the_emulator_answers_ark_error_bodies(sandbox: Sandbox) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sandbox.app), base_url=IN_PROCESS_ROOT) as client:
        denied = await client.get(f"/seedance/api/v3/contents/generations/tasks/{TASK}")
        missing = await client.get(
            f"/seedance/api/v3/contents/generations/tasks/{TASK}",
            headers={"Authorization": f"Bearer {sandbox['seedance'].api_key}"},
        )
    assert denied.status_code == 401 and denied.json()["error"]["code"] == "AuthenticationError"
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "NotFound"
    assert "Request ID: " in missing.json()["error"]["message"]


KIT = ProviderKit(
    seeds=[QUEUED, SUCCEEDED, FAILED, UNAUTHORIZED],
    reports_cost=True,
    issued=safe_id,
    paths=one_segment("/contents/generations/tasks/{}"),
    finished_with_key=lambda key: (TASK, [{**SUCCEEDED, "content": {"video_url": f"{VIDEO}&k={key}"}}]),
)
