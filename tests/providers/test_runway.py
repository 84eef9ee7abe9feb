"""Runway: the parser against the documented task payloads, then the whole path through the MCP client."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
from mcp.types import CallToolResult

from sandbox import Fault, Sandbox, Timeline
from tests.conftest import Connect
from tests.providers.kit import ProviderKit, one_segment
from tools.errors import AuthenticationFailed, InvalidTaskId, ProviderProtocolError, TaskNotFound
from tools.providers.base import Reply
from tools.providers.runway import Runway, jwt_expiry
from tools.providers.tensorpix import UUID_TASK_ID
from tools.redact import Redactor
from tools.result import GenerationResult, JobState

KEY = "key_" + "a1" * 64
ID = "182bd5e5-6e1a-4fe4-a799-aa6d9a6ab26e"
BASE = {"id": ID, "createdAt": "2026-08-20T10:00:00.000Z"}
PENDING = {**BASE, "status": "PENDING"}
THROTTLED = {**BASE, "status": "THROTTLED"}
RUNNING = {**BASE, "status": "RUNNING", "progress": 0.42}


def signed(url: str, exp: int = 1_787_220_000) -> str:
    claims = base64.urlsafe_b64encode(json.dumps({"exp": exp}).encode()).rstrip(b"=").decode()
    return f"{url}?_jwt=eyJhbGciOiJIUzI1NiJ9.{claims}.c2lnbmF0dXJl"


VIDEO = signed("https://dnznrvs05pmza.cloudfront.net/5c713f75-eceb-4ea4-87e6-93a0acb8dc4d.mp4")
SUCCEEDED = {**BASE, "status": "SUCCEEDED", "output": [VIDEO], "previewUrls": ["https://cdn.example/p.jpg"]}
FAILED = {
    **BASE,
    "status": "FAILED",
    "failure": "Your input was flagged by our content moderation system.",
    "failureCode": "SAFETY.INPUT.TEXT",
}
CANCELLED = {**BASE, "status": "CANCELLED"}


def adapter() -> Runway:
    return Runway.from_env({"RUNWAYML_API_SECRET": KEY}, Redactor())


def parse(body: Any, status_code: int = 200) -> JobState:
    state = adapter().parse(Reply(status_code, json.dumps(body).encode()))
    assert isinstance(state, JobState)
    return state


# ---- the parser ----


@pytest.mark.parametrize("body", [PENDING, THROTTLED])
def test_pending_and_throttled_are_queued_not_failed(body: dict[str, Any]) -> None:
    state = parse(body)
    assert (state.status, state.provider_status) == ("queued", body["status"])


def test_running_progress_on_the_zero_to_one_scale_is_a_percent() -> None:
    state = parse(RUNNING)
    assert (state.status, state.progress) == ("running", 42)


def test_a_progress_already_in_percent_is_kept_and_a_negative_one_dropped() -> None:
    assert parse({**RUNNING, "progress": 55}).progress == 55
    assert parse({**RUNNING, "progress": -1}).progress is None


def test_a_succeeded_task_gives_its_urls_with_the_expiry_their_token_says_and_the_preview() -> None:
    state = parse(SUCCEEDED)
    [video] = state.outputs
    assert (state.status, video.url, video.kind, video.mime_type) == ("succeeded", VIDEO, "video", "video/mp4")
    assert video.expires_at == "2026-08-20T10:00:00Z"
    assert video.thumbnail_url == "https://cdn.example/p.jpg"


def test_a_url_without_a_readable_token_has_no_expiry() -> None:
    assert jwt_expiry("https://cdn.example/x.mp4") is None
    assert jwt_expiry("https://cdn.example/x.mp4?_jwt=a.%%%.c") is None
    assert jwt_expiry("https://cdn.example/x.mp4?_jwt=a.bm90LWpzb24.c") is None


def test_a_failed_task_carries_its_failure_code_and_words() -> None:
    state = parse(FAILED)
    assert state.error is not None
    assert (state.status, state.error.code, state.error.message) == ("failed", "SAFETY.INPUT.TEXT", FAILED["failure"])


def test_cancelled_with_two_ls_is_canceled() -> None:
    state = parse(CANCELLED)
    assert (state.status, state.provider_status, state.error) == ("canceled", "CANCELLED", None)


def test_refusals_are_read_from_the_error_member() -> None:
    with pytest.raises(AuthenticationFailed, match="Invalid API key"):
        parse({"error": "Invalid API key"}, 401)
    with pytest.raises(TaskNotFound, match="deleted"):
        parse({"error": "Task not found."}, 404)
    with pytest.raises(ProviderProtocolError, match="promptImage"):
        parse({"error": "promptImage: Failed to fetch asset."}, 400)


def test_the_request_carries_the_version_header_and_a_lowercase_uuid() -> None:
    request = adapter().build_request(httpx.AsyncClient(), adapter().validate_task_id(ID.upper()))
    assert request.headers["x-runway-version"] == "2024-11-06"
    assert request.url.path == f"/v1/tasks/{ID}"


@pytest.mark.parametrize("task_id", ["182bd5e5", ID + "/x", "../" + ID, ""])
def test_ids_that_are_not_uuids_are_refused(task_id: str) -> None:
    with pytest.raises(InvalidTaskId):
        adapter().validate_task_id(task_id)


# ---- through the MCP client, against the emulator ----


def result_of(reply: CallToolResult) -> GenerationResult:
    assert not reply.is_error, reply.content
    return GenerationResult.model_validate(reply.structured_content)


def text_of(reply: CallToolResult) -> str:
    assert reply.content and reply.content[0].type == "text"
    return reply.content[0].text


async def test_a_task_is_followed_through_throttling_to_its_signed_urls(connect: Connect, sandbox: Sandbox) -> None:
    sandbox["runway"].add_job(ID, Timeline(queued_s=3, running_s=10), throttled=True)
    async with connect() as client:
        first = result_of(await client.call_tool("get_generation_result", {"provider": "runway", "task_id": ID}))
        done = result_of(await client.call_tool("wait_for_generation", {"provider": "runway", "task_id": ID}))
    assert (first.status, first.provider_status) == ("queued", "THROTTLED")
    assert (done.status, done.provider_status) == ("succeeded", "SUCCEEDED")
    [video] = done.outputs
    assert "/runway/files/" in video.url and video.expires_at is not None and video.thumbnail_url
    assert all(r.headers["x-runway-version"] == "2024-11-06" for r in sandbox["runway"].requests)


async def test_a_moderated_task_fails_with_its_code_and_a_cancelled_one_is_canceled(
    connect: Connect, sandbox: Sandbox
) -> None:
    failed, cancelled = "fa110000-0000-4000-8000-000000000001", "cace1000-0000-4000-8000-000000000001"
    sandbox["runway"].add_job(failed, Timeline(queued_s=0, running_s=0, outcome="failed"))
    sandbox["runway"].add_job(cancelled, Timeline(queued_s=0, running_s=0, outcome="canceled"))
    async with connect() as client:
        one = result_of(await client.call_tool("get_generation_result", {"provider": "runway", "task_id": failed}))
        two = result_of(await client.call_tool("get_generation_result", {"provider": "runway", "task_id": cancelled}))
    assert one.error is not None and (one.status, one.error.code) == ("failed", "SAFETY.INPUT.TEXT")
    assert (two.status, two.provider_status) == ("canceled", "CANCELLED")


async def test_a_deleted_task_is_task_not_found(connect: Connect, sandbox: Sandbox) -> None:
    sandbox["runway"].add_job(ID, Timeline(), deleted=True)
    async with connect() as client:
        reply = await client.call_tool("get_generation_result", {"provider": "runway", "task_id": ID})
    assert text_of(reply).startswith("task_not_found: ")


async def test_a_wrong_secret_is_authentication_failed_without_the_secret(connect: Connect, sandbox: Sandbox) -> None:
    wrong = "key_" + "f" * 128
    async with connect(env={**sandbox.env(), "RUNWAYML_API_SECRET": wrong}) as client:
        reply = await client.call_tool("get_generation_result", {"provider": "runway", "task_id": ID})
    assert text_of(reply).startswith("authentication_failed: ") and wrong not in text_of(reply)


async def test_load_shedding_during_a_wait_is_ridden_out(connect: Connect, sandbox: Sandbox) -> None:
    faults = [Fault.server_error(502), Fault.rate_limited(3), Fault.server_error(504)]
    sandbox["runway"].add_job(ID, Timeline(queued_s=0, running_s=0), faults)
    async with connect() as client:
        result = result_of(await client.call_tool("wait_for_generation", {"provider": "runway", "task_id": ID}))
    assert (result.status, result.polls) == ("succeeded", 4)


async def test_without_a_secret_runway_is_not_configured_and_nothing_is_sent(
    connect: Connect, sandbox: Sandbox
) -> None:
    async with connect(env={}) as client:
        reply = await client.call_tool("get_generation_result", {"provider": "runway", "task_id": ID})
    assert text_of(reply).startswith("provider_not_configured: ") and "RUNWAYML_API_SECRET" in text_of(reply)
    assert sandbox["runway"].requests == []


# ---- what the shared suites need ----

KIT = ProviderKit(
    seeds=[PENDING, THROTTLED, RUNNING, SUCCEEDED, FAILED, CANCELLED, {"error": "Invalid API key"}],
    issued=lambda task_id: UUID_TASK_ID.fullmatch(task_id) is not None,
    paths=one_segment("/tasks/{}", travels_as=str.lower),
    finished_with_key=lambda key: (
        ID,
        [{**BASE, "status": "SUCCEEDED", "output": [f"https://cdn.example/{key}.mp4"], "previewUrls": [f"?k={key}"]}],
    ),
)
