"""Luma Dream Machine: the parser on payloads of every state, ids, and the whole path through the in-memory MCP
client against the emulator."""

from __future__ import annotations

import json
import re
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import strategies as st
from mcp.types import CallToolResult

from sandbox import IN_PROCESS_ROOT, Fault, Sandbox, Timeline
from sandbox.luma import LumaEmulator
from tests.conftest import Connect
from tests.providers.kit import ProviderKit, one_segment
from tools.clock import VirtualClock
from tools.errors import AuthenticationFailed, InvalidTaskId, ProviderProtocolError, TaskNotFound
from tools.providers.base import Reply
from tools.providers.luma import Luma
from tools.redact import Redactor
from tools.result import GenerationResult, JobState

GEN_ID = "d1f2a3b4-5c6d-4e7f-8a9b-0c1d2e3f4a5b"
KEY = "luma-0123456789abcdef0123456789abcdef"
CDN = "https://storage.cdn-luma.com/dream_machine/7e4fe07f-1dfd-4921-bc97-4bcf5adea39a"


def adapter() -> Luma:
    return Luma.from_env({"LUMAAI_API_KEY": KEY}, Redactor())


def generation(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": GEN_ID,
        "generation_type": "video",
        "state": "queued",
        "failure_reason": None,
        "created_at": "2026-08-20T10:00:00.000Z",
        "assets": None,
        "model": "ray-2",
        "request": {"generation_type": "video", "prompt": "a red fox in snow", "model": "ray-2"},
    }
    body.update(fields)
    return body


def parse(body: Any, status_code: int = 200) -> JobState:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return adapter().parse(Reply(status_code, raw))


# ---- the parser, state by state ----


def test_a_queued_generation_is_queued_with_no_outputs() -> None:
    state = parse(generation())
    assert (state.status, state.provider_status, state.progress, state.outputs) == ("queued", "queued", None, ())


def test_a_dreaming_generation_is_running_and_its_progress_video_is_not_an_output() -> None:
    state = parse(generation(state="dreaming", assets={"progress_video": f"{CDN}/progress.mp4"}))
    assert (state.status, state.provider_status, state.outputs, state.progress) == ("running", "dreaming", (), None)


def test_a_completed_generation_gives_the_video_with_its_image_as_thumbnail() -> None:
    assets = {"video": f"{CDN}/video_0.mp4", "image": f"{CDN}/video_0_thumb.jpg", "progress_video": f"{CDN}/p.mp4"}
    state = parse(generation(state="completed", assets=assets))
    assert (state.status, state.progress, state.error) == ("succeeded", None, None)
    (video,) = state.outputs
    assert video.model_dump(exclude_none=True) == {
        "url": f"{CDN}/video_0.mp4",
        "kind": "video",
        "mime_type": "video/mp4",
        "thumbnail_url": f"{CDN}/video_0_thumb.jpg",
    }


def test_a_completed_image_generation_gives_the_image() -> None:
    state = parse(generation(generation_type="image", state="completed", assets={"image": f"{CDN}/img.jpg"}))
    assert [(o.kind, o.url, o.mime_type) for o in state.outputs] == [("image", f"{CDN}/img.jpg", "image/jpeg")]


def test_a_completed_video_generation_with_only_an_image_is_not_done_yet() -> None:
    state = parse(generation(state="completed", assets={"image": f"{CDN}/video_0_thumb.jpg"}))
    assert (state.status, state.outputs) == ("running", ())


@pytest.mark.parametrize(
    "reason",
    ["Advanced prompt moderation failed", "Contains blacklisted words", "Failed to read user input frames"],
)
def test_a_failed_generation_carries_its_failure_reason(reason: str) -> None:
    state = parse(generation(state="failed", failure_reason=reason))
    assert state.error is not None
    assert (state.status, state.error.code, state.error.message, state.outputs) == ("failed", "failed", reason, ())


def test_a_failed_generation_without_a_reason_still_says_it_failed() -> None:
    state = parse(generation(state="failed", failure_reason=None))
    assert state.error is not None and state.error.message == "The generation failed."


def test_an_unknown_state_is_running_and_kept_as_said() -> None:
    state = parse(generation(state="upscaling"))
    assert (state.status, state.provider_status) == ("running", "upscaling")


def test_asset_urls_that_are_not_text_are_dropped_rather_than_rejected() -> None:
    state = parse(generation(state="completed", assets={"video": 7, "image": f"{CDN}/i.jpg"}))
    assert (state.status, state.outputs) == ("running", ())


# ---- the parser, HTTP errors ----


@pytest.mark.parametrize("status_code", [401, 403])
def test_a_rejected_key_is_authentication_failed_with_lumas_words(status_code: int) -> None:
    with pytest.raises(AuthenticationFailed, match=r"Invalid API key is provided.*LUMAAI_API_KEY"):
        parse({"detail": "Invalid API key is provided"}, status_code)


def test_a_404_is_task_not_found() -> None:
    with pytest.raises(TaskNotFound):
        parse({"detail": "Generation not found"}, 404)


@pytest.mark.parametrize(("code", "said"), [(402, "Payment required"), (400, "Insufficient credits")])
def test_running_out_of_credits_is_the_account_refused(code: int, said: str) -> None:
    with pytest.raises(AuthenticationFailed, match=rf"refused the account \(HTTP {code}\).*{said}"):
        parse({"detail": said}, code)


def test_another_4xx_quotes_luma_and_says_to_check_the_id() -> None:
    with pytest.raises(ProviderProtocolError, match=r"HTTP 422.*badly formed.*Check the task id"):
        parse({"detail": "id is badly formed"}, 422)


@pytest.mark.parametrize("body", [b"[]", b'{"id": "x"}', b'{"state": 3}', b"<html></html>"])
def test_a_200_that_is_not_a_generation_is_a_protocol_error(body: bytes) -> None:
    with pytest.raises(ProviderProtocolError):
        parse(body)


# ---- ids and the request ----


def test_a_uuid_is_accepted_in_either_case_and_sent_lowercase() -> None:
    assert adapter().validate_task_id(GEN_ID.upper()) == GEN_ID


@pytest.mark.parametrize("task_id", ["gen_1", GEN_ID + "0", GEN_ID.replace("-", ""), f"../{GEN_ID}", f"{GEN_ID}?x=1"])
def test_anything_but_a_uuid_is_an_invalid_task_id(task_id: str) -> None:
    with pytest.raises(InvalidTaskId):
        adapter().validate_task_id(task_id)


async def test_the_request_is_a_bearer_get_of_the_generation() -> None:
    async with httpx.AsyncClient() as client:
        request = adapter().build_request(client, GEN_ID)
    assert (request.method, str(request.url)) == (
        "GET",
        f"https://api.lumalabs.ai/dream-machine/v1/generations/{GEN_ID}",
    )
    assert request.headers["authorization"] == f"Bearer {KEY}"


# ---- through the MCP client ----


def text_of(reply: CallToolResult) -> str:
    assert reply.content and reply.content[0].type == "text"
    return reply.content[0].text


def emulator(sandbox: Sandbox) -> LumaEmulator:
    found = sandbox["luma"]
    assert isinstance(found, LumaEmulator)
    return found


async def get_result(connect: Connect, task_id: str = GEN_ID, **settings: Any) -> CallToolResult:
    async with connect(**settings) as client:
        return await client.call_tool("get_generation_result", {"provider": "luma", "task_id": task_id})


async def test_a_generation_is_seen_queued_then_dreaming_then_completed_with_its_files(
    connect: Connect, sandbox: Sandbox, clock: VirtualClock
) -> None:
    luma = emulator(sandbox)
    luma.add_job(GEN_ID, Timeline(queued_s=2, running_s=6))
    seen: list[GenerationResult] = []
    async with connect() as client:
        for advance in (0, 5, 10):
            clock.advance(advance)
            reply = await client.call_tool("get_generation_result", {"provider": "luma", "task_id": GEN_ID})
            assert not reply.is_error, text_of(reply)
            assert json.loads(text_of(reply)) == reply.structured_content
            seen.append(GenerationResult.model_validate(reply.structured_content))

    assert [(r.status, r.provider_status, len(r.outputs)) for r in seen] == [
        ("queued", "queued", 0),
        ("running", "dreaming", 0),
        ("succeeded", "completed", 1),
    ]
    (video,) = seen[-1].outputs
    root = f"{IN_PROCESS_ROOT}/luma/files/{GEN_ID}"
    assert (video.url, video.kind, video.mime_type, video.thumbnail_url) == (
        f"{root}/video_0.mp4",
        "video",
        "video/mp4",
        f"{root}/video_0_thumb.jpg",
    )
    assert [logged.path for logged in luma.requests] == [f"/luma/dream-machine/v1/generations/{GEN_ID}"] * 3
    assert {logged.headers["authorization"] for logged in luma.requests} == {f"Bearer {luma.api_key}"}


async def test_a_failed_generation_is_a_result_with_the_reason(connect: Connect, sandbox: Sandbox) -> None:
    emulator(sandbox).add_job(
        GEN_ID, Timeline(queued_s=0, running_s=0, outcome="failed"), failure_reason="Frame moderation failed"
    )
    reply = await get_result(connect)
    result = GenerationResult.model_validate(reply.structured_content)
    assert (result.status, result.done, result.provider_status, result.outputs) == ("failed", True, "failed", [])
    assert result.error is not None and result.error.message == "Frame moderation failed"


async def test_an_image_generation_gives_an_image(connect: Connect, sandbox: Sandbox) -> None:
    emulator(sandbox).add_job(GEN_ID, Timeline(queued_s=0, running_s=0), generation_type="image")
    result = GenerationResult.model_validate((await get_result(connect)).structured_content)
    assert [(o.kind, o.mime_type) for o in result.outputs] == [("image", "image/jpeg")]


async def test_waiting_rides_out_a_server_error_until_the_video_is_ready(connect: Connect, sandbox: Sandbox) -> None:
    luma = emulator(sandbox)
    luma.add_job(GEN_ID, Timeline(queued_s=3, running_s=20), faults=[Fault.server_error(503)])
    with anyio.fail_after(10):
        async with connect() as client:
            reply = await client.call_tool(
                "wait_for_generation", {"provider": "luma", "task_id": GEN_ID, "timeout_s": 120}
            )
    result = GenerationResult.model_validate(reply.structured_content)
    assert (result.status, result.timed_out, len(result.outputs)) == ("succeeded", False, 1)
    assert result.polls == len(luma.requests) and result.polls is not None and result.polls >= 3


async def test_a_wrong_key_is_authentication_failed_and_the_key_is_not_repeated(
    connect: Connect, sandbox: Sandbox
) -> None:
    emulator(sandbox).add_job(GEN_ID)
    wrong = "luma-ffffffffffffffffffffffffffffffff"
    reply = await get_result(connect, env={**sandbox.env(), "LUMAAI_API_KEY": wrong})
    assert reply.is_error
    assert "authentication_failed" in text_of(reply) and "Invalid API key is provided" in text_of(reply)
    assert wrong not in text_of(reply)


async def test_an_unknown_or_deleted_generation_is_task_not_found(connect: Connect, sandbox: Sandbox) -> None:
    luma = emulator(sandbox)
    luma.add_job(GEN_ID)
    transport = httpx.ASGITransport(app=sandbox.app)
    async with httpx.AsyncClient(transport=transport, base_url=IN_PROCESS_ROOT) as http:
        deleted = await http.delete(
            f"/luma/dream-machine/v1/generations/{GEN_ID}", headers={"Authorization": f"Bearer {luma.api_key}"}
        )
    assert deleted.status_code == 204
    reply = await get_result(connect)
    assert reply.is_error and "task_not_found" in text_of(reply)


async def test_without_a_key_it_is_not_configured_and_nothing_is_sent(connect: Connect, sandbox: Sandbox) -> None:
    reply = await get_result(connect, env={"LUMA_BASE_URL": sandbox.env()["LUMA_BASE_URL"]})
    assert reply.is_error and "provider_not_configured" in text_of(reply) and "LUMAAI_API_KEY" in text_of(reply)
    assert emulator(sandbox).requests == []


async def test_sandbox_ids_choose_their_outcome_and_only_uuids_exist(clock: VirtualClock) -> None:
    auto = Sandbox(clock)
    luma = emulator(auto)
    transport = httpx.ASGITransport(app=auto.app)
    headers = {"Authorization": f"Bearer {luma.api_key}"}
    async with httpx.AsyncClient(transport=transport, base_url=IN_PROCESS_ROOT) as http:
        for task_id in (LumaEmulator.sandbox_id(1), LumaEmulator.sandbox_id(1, "failed"), Luma.example_task_id):
            assert (await http.get(f"/luma/dream-machine/v1/generations/{task_id}", headers=headers)).is_success
        for missing in ("dead" + GEN_ID[4:], "gen_123"):
            response = await http.get(f"/luma/dream-machine/v1/generations/{missing}", headers=headers)
            assert (response.status_code, response.json()) == (404, {"detail": "Generation not found"})
    assert [job.timeline.outcome for job in luma.jobs.values()] == ["succeeded", "failed", "succeeded"]
    with pytest.raises(ValueError, match="cannot end canceled"):
        LumaEmulator.sandbox_id(1, "canceled")


# The documented payloads of PROVIDERS-MORE.md §4: the shared fuzz suite grows near misses from them.
FUZZ_SEEDS: list[Any] = [
    generation(),
    {"id": GEN_ID, "state": "dreaming", "failure_reason": None, "assets": {"progress_video": f"{CDN}/p.mp4"}},
    {
        "id": GEN_ID,
        "state": "completed",
        "failure_reason": None,
        "assets": {"video": f"{CDN}/video_0.mp4", "image": f"{CDN}/video_0_thumb.jpg"},
    },
    {"id": GEN_ID, "state": "failed", "failure_reason": "Advanced prompt moderation failed", "assets": None},
    {"detail": "Invalid API key is provided"},
]

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")

KIT = ProviderKit(
    seeds=FUZZ_SEEDS,
    issued=lambda task_id: _UUID.fullmatch(task_id) is not None,
    paths=one_segment("/generations/{}", travels_as=str.lower),
    plausible=st.builds(lambda u, upper: str(u).upper() if upper else str(u), st.uuids(), st.booleans()),
    finished_with_key=lambda key: (
        GEN_ID,
        [
            {
                "id": GEN_ID,
                "state": "completed",
                "assets": {"video": f"{CDN}/v.mp4?token={key}", "image": f"{CDN}/t.jpg?token={key}"},
            }
        ],
    ),
)
