"""skills.video: the parser against the documented payloads, then the whole path through the MCP client."""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import pytest
from mcp.types import CallToolResult

from sandbox import Fault, Sandbox, Timeline
from sandbox.skillsvideo import SkillsVideoEmulator
from tests.conftest import Connect
from tests.providers.kit import ProviderKit, one_segment, safe_id
from tools.clock import VirtualClock
from tools.errors import (
    AuthenticationFailed,
    GenResultError,
    ProviderProtocolError,
    ProviderRejected,
    ProviderUnavailable,
    TaskNotFound,
)
from tools.providers.base import Reply
from tools.providers.skillsvideo import SkillsVideo
from tools.redact import Redactor
from tools.result import Cost, GenerationResult, JobState
from tools.service import read_reply

KEY = "sk-live-skillsvideo-abcdef0123456789"

DOCUMENTED_QUEUED = {
    "id": "gen_123",
    "status": "IN_QUEUE",
    "input": {"prompt": "a cat walking through neon rain", "duration": 5, "aspect_ratio": "16:9", "n": 1},
    "usage": {"total": 20, "subscription": 20, "permanent": 0},
}
CAT = {
    "url": "https://cdn.example.com/output/cat.png",
    "file_name": "cat.png",
    "content_type": "image/png",
    "width": 1024,
    "height": 1024,
}
DOCUMENTED_IMAGE = {
    "id": "gen_123",
    "status": "COMPLETED",
    "input": {"prompt": "a cat", "aspect_ratio": "1:1", "resolution": "1024x1024", "n": 1},
    "data": {"type": "image", "n": 1, "actual_prompt": "a cat", "images": [CAT], "image": CAT},
    "usage": {"total": 20, "subscription": 20, "permanent": 0},
}


def adapter() -> SkillsVideo:
    return SkillsVideo.from_env({"SKILLSVIDEO_API_KEY": KEY}, Redactor())


def parse(body: Any, status_code: int = 200) -> JobState:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return adapter().parse(Reply(status_code, raw))


def generation(status: str, **fields: Any) -> dict[str, Any]:
    return {"id": "gen_123", "status": status, "data": None, **fields}


def media(name: str, content_type: str, **extra: Any) -> dict[str, Any]:
    return {"url": f"https://cdn.example.com/output/{name}", "file_name": name, "content_type": content_type, **extra}


# ---- status words ----


@pytest.mark.parametrize(
    ("word", "normalized"),
    [
        ("IN_QUEUE", "queued"),
        ("IN_PROGRESS", "running"),
        ("COMPLETED", "succeeded"),
        ("FAILED", "failed"),
        ("CANCELED", "canceled"),
        ("starting", "queued"),
        ("processing", "running"),
        ("succeeded", "succeeded"),
        ("failed", "failed"),
        ("canceled", "canceled"),
        ("CANCELLED", "canceled"),
        ("SUCCEEDED", "succeeded"),
    ],
)
def test_both_documented_vocabularies_and_the_double_l_spelling_normalize(word: str, normalized: str) -> None:
    state = parse(generation(word))

    assert (state.status, state.provider_status) == (normalized, word)


def test_an_unknown_status_word_reads_as_running_and_stays_visible() -> None:
    state = parse(generation("WARMING_UP", usage={"total": 20}))

    assert (state.status, state.provider_status) == ("running", "WARMING_UP")
    assert (state.outputs, state.error) == ((), None)


# ---- job states from the documented payloads ----


def test_the_documented_queued_answer_is_queued_with_its_credits_and_no_outputs() -> None:
    state = parse(DOCUMENTED_QUEUED)

    assert state == JobState(status="queued", provider_status="IN_QUEUE", cost=Cost(amount=20, unit="credits"))


def test_the_sse_running_answer_with_null_data_is_running() -> None:
    state = parse(generation("IN_PROGRESS", usage={"total": 0, "subscription": 0, "permanent": 0}))

    assert (state.status, state.outputs, state.progress) == ("running", (), None)
    assert state.cost == Cost(amount=0, unit="credits")


def test_a_prediction_status_answer_without_data_or_input_is_read() -> None:
    state = parse({"id": "gen_123", "status": "starting", "usage": {"total": 0, "subscription": 0, "permanent": 0}})

    assert (state.status, state.provider_status, state.outputs) == ("queued", "starting", ())


def test_the_documented_image_result_gives_one_image_not_two() -> None:
    state = parse(DOCUMENTED_IMAGE)

    # skills.video reports no percent: none is invented for a finished job either.
    assert (state.status, state.progress, state.cost) == ("succeeded", None, Cost(amount=20, unit="credits"))
    [image] = state.outputs
    assert (image.url, image.kind, image.mime_type, image.width, image.height) == (
        CAT["url"],
        "image",
        "image/png",
        1024,
        1024,
    )


def test_a_video_result_in_the_image_shape_gives_its_videos_with_metadata() -> None:
    first = media("a.mp4", "video/mp4", width=1280, height=720, duration=5, fps=24)
    second = media("b.mp4", "video/mp4", width=1280, height=720)
    data = {"type": "video", "n": 2, "videos": [first, second], "video": first}

    state = parse(generation("COMPLETED", data=data))

    assert [(o.url, o.kind, o.mime_type) for o in state.outputs] == [
        (first["url"], "video", "video/mp4"),
        (second["url"], "video", "video/mp4"),
    ]
    assert (state.outputs[0].width, state.outputs[0].duration_s, state.outputs[0].fps) == (1280, 5.0, 24.0)


def test_an_audio_result_gives_an_audio_output_whose_type_is_guessed_from_the_file_name() -> None:
    data = {
        "type": "audio",
        "audios": [{"url": "https://cdn.example.com/output/speech.mp3", "file_name": "speech.mp3"}],
    }

    [audio] = parse(generation("succeeded", data=data)).outputs

    assert (audio.kind, audio.mime_type) == ("audio", "audio/mpeg")


def test_a_singular_video_field_alone_is_read() -> None:
    data = {"type": "video", "video": media("only.mp4", "video/mp4")}

    [video] = parse(generation("COMPLETED", data=data)).outputs

    assert (video.url, video.kind) == ("https://cdn.example.com/output/only.mp4", "video")


@pytest.mark.parametrize(
    "data",
    [
        {"type": "video", "url": "https://cdn.example.com/output/x.mp4"},
        {"url": "https://cdn.example.com/output/x.mp4"},
        {"type": "video", "videos": ["https://cdn.example.com/output/x.mp4"]},
    ],
)
def test_undocumented_video_shapes_still_yield_the_file(data: dict[str, Any]) -> None:
    [video] = parse(generation("COMPLETED", data=data)).outputs

    assert (video.url, video.kind) == ("https://cdn.example.com/output/x.mp4", "video")


def test_guessed_metadata_that_cannot_be_read_is_dropped_instead_of_failing_the_answer() -> None:
    data = {"videos": [media("x.mp4", "video/mp4", duration="about 5s", fps="24", size=True)]}

    [video] = parse(generation("COMPLETED", data=data)).outputs

    assert (video.duration_s, video.fps, video.size_bytes) == (None, 24.0, None)


def test_outputs_are_not_read_before_the_job_succeeds() -> None:
    state = parse(generation("IN_PROGRESS", data=DOCUMENTED_IMAGE["data"]))

    assert state.outputs == ()


def test_a_failed_generation_carries_the_providers_code_and_sanitized_message() -> None:
    body = generation(
        "FAILED",
        usage={"total": 0, "subscription": 0, "permanent": 0},
        code="VIDEO_GENERATION_CONTENT_REJECTED",
        message="Content was rejected by moderation.",
    )

    state = parse(body)

    assert (state.status, state.outputs, state.progress) == ("failed", (), None)
    assert state.error is not None
    assert (state.error.code, state.error.message) == (
        "VIDEO_GENERATION_CONTENT_REJECTED",
        "Content was rejected by moderation.",
    )


@pytest.mark.parametrize(("word", "code"), [("FAILED", "FAILED"), ("CANCELED", "CANCELED"), ("canceled", "CANCELED")])
def test_a_job_that_ended_without_a_reason_has_no_invented_error(word: str, code: str) -> None:
    state = parse(generation(word))

    assert (state.provider_status, state.error) == (word, None)


def test_a_failure_code_without_a_message_reads_as_a_sentence() -> None:
    state = parse(generation("FAILED", code="VIDEO_GENERATION_TIMEOUT"))

    assert state.error is not None
    assert (state.error.code, state.error.message) == ("VIDEO_GENERATION_TIMEOUT", "Video generation timeout.")


@pytest.mark.parametrize(
    ("usage", "cost"),
    [
        ({"total": 35, "subscription": 20, "permanent": 15}, 35.0),
        ({"subscription": 20, "permanent": 15}, 35.0),
        ({"total": 0, "subscription": 0, "permanent": 0}, 0.0),
        ({}, None),
        (None, None),
    ],
)
def test_usage_becomes_the_cost_in_credits(usage: dict[str, int] | None, cost: float | None) -> None:
    state = parse(generation("COMPLETED", usage=usage))

    assert state.cost == (None if cost is None else Cost(amount=cost, unit="credits"))


def test_an_accepted_202_answer_is_read_like_a_200() -> None:
    assert parse(DOCUMENTED_QUEUED, 202).status == "queued"


def test_a_key_echoed_in_a_failure_message_or_url_is_redacted() -> None:
    # Read as the service reads every reply: the secrets are cleaned there, once, for every adapter.
    body = generation(
        "FAILED",
        code=f"X_{KEY}",
        message=f"upstream rejected Authorization: Bearer {KEY}",
    )
    failed = read(200, body)
    video = read(200, generation("COMPLETED", data={"video": {"url": f"https://cdn.example.com/x.mp4?token={KEY}"}}))

    assert KEY not in failed.model_dump_json() + video.model_dump_json()
    assert failed.error is not None and "[redacted]" in failed.error.message


# ---- answers that are not a job state ----


def test_a_200_body_without_a_status_is_a_protocol_error_that_quotes_the_provider() -> None:
    body = {"error": "VIDEO_GENERATION_FAILED", "code": "VIDEO_GENERATION_FAILED", "message": "Generation failed."}

    with pytest.raises(ProviderProtocolError, match=r"Generation failed\. \[VIDEO_GENERATION_FAILED\]"):
        parse(body)


@pytest.mark.parametrize("body", [b"<!DOCTYPE html><html>oops</html>", b"", b'{"status": "proc', b"[1, 2]"])
def test_a_body_that_is_not_the_documented_json_is_a_protocol_error(body: bytes) -> None:
    with pytest.raises(ProviderProtocolError):
        parse(body)


def error_body(code: str, message: str, legacy: str | None = None) -> dict[str, str]:
    return {"error": legacy or code, "code": code, "message": message}


@pytest.mark.parametrize(
    ("status_code", "body", "error", "words"),
    [
        (401, error_body("UNAUTHORIZED", "Invalid API key."), AuthenticationFailed, ["Invalid API key."]),
        (403, error_body("FORBIDDEN", "Access forbidden."), AuthenticationFailed, ["Access forbidden."]),
        (
            402,
            error_body("VIDEO_GENERATION_INSUFFICIENT_CREDITS", "Insufficient credits for this generation.", "X"),
            AuthenticationFailed,
            ["HTTP 402", "Insufficient credits for this generation.", "SKILLSVIDEO_API_KEY", "credits"],
        ),
        (404, error_body("NOT_FOUND", "Resource not found."), TaskNotFound, ["no task with this id"]),
        (
            400,
            error_body("VIDEO_GENERATION_INVALID_INPUT", "Invalid generation id."),
            ProviderProtocolError,
            ["HTTP 400", "Invalid generation id. [VIDEO_GENERATION_INVALID_INPUT]", "Check the task id"],
        ),
        (
            400,
            error_body("IMAGE_GENERATION_UNSUPPORTED_MODEL", "Model not supported."),
            ProviderProtocolError,
            ["HTTP 400", "Model not supported. [IMAGE_GENERATION_UNSUPPORTED_MODEL]", "Check the task id"],
        ),
        (
            422,
            error_body("VALIDATION_ERROR", "Validation error."),
            ProviderProtocolError,
            ["HTTP 422", "Validation error.", "Check the task id"],
        ),
        (418, error_body("TEAPOT", "Short and stout."), ProviderProtocolError, ["HTTP 418", "Short and stout."]),
    ],
)
def test_each_documented_refusal_maps_to_its_error_code_with_the_providers_words(
    status_code: int, body: dict[str, str], error: type[GenResultError], words: list[str]
) -> None:
    with pytest.raises(error) as caught:
        parse(body, status_code)

    assert type(caught.value) is error
    assert all(word in caught.value.message for word in words), caught.value.message


def test_a_refusal_with_the_providers_words_never_sends_the_agent_to_the_base_url_setting() -> None:
    for status_code, code in [(400, "VIDEO_GENERATION_INVALID_INPUT"), (400, "TTS_GENERATION_UNSUPPORTED_MODEL")]:
        with pytest.raises(ProviderProtocolError) as caught:
            parse(error_body(code, "Not usable."), status_code)
        assert "_BASE_URL" not in caught.value.message and "Check the task id" in caught.value.message


def read(status_code: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> JobState:
    """What the service does with a reply: the common HTTP answers first, then the parser."""
    provider = adapter()
    return read_reply(provider, Reply(status_code, json.dumps(body).encode(), headers or {}), provider.redact)


@pytest.mark.parametrize(
    ("status_code", "code", "message"),
    [
        (502, "VIDEO_GENERATION_FAILED", "Upstream generation failed."),
        (504, "VIDEO_GENERATION_TIMEOUT", "Generation timed out."),
        (422, "VIDEO_GENERATION_CONTENT_REJECTED", "Content was rejected by moderation."),
        (502, "IMAGE_GENERATION_FAILED", "Upstream generation failed."),
        (504, "TTS_GENERATION_TIMEOUT", "Generation timed out."),
    ],
)
def test_a_code_that_says_the_generation_ended_is_a_failed_job_whatever_the_http_status(
    status_code: int, code: str, message: str
) -> None:
    state = read(status_code, error_body(code, message), {"retry-after": "7"})

    assert (state.status, state.provider_status, state.outputs) == ("failed", code, ())
    assert state.error is not None and (state.error.code, state.error.message) == (code, message)


@pytest.mark.parametrize(
    ("status_code", "code"),
    [(429, "VIDEO_GENERATION_RATE_LIMITED"), (503, "VIDEO_GENERATION_PROVIDER_UNAVAILABLE"), (502, "BAD_GATEWAY")],
)
def test_rate_limited_provider_unavailable_and_uncoded_5xx_stay_retryable(status_code: int, code: str) -> None:
    with pytest.raises(ProviderUnavailable, match=r"(?i)try again"):
        read(status_code, error_body(code, "Busy."))


def test_insufficient_credits_is_the_account_refused_whatever_the_http_status() -> None:
    for status_code in (402, 502):
        with pytest.raises(AuthenticationFailed, match=r"refused the account.*credits"):
            read(status_code, error_body("VIDEO_GENERATION_INSUFFICIENT_CREDITS", "Insufficient credits."))


def test_an_older_error_body_with_only_error_and_message_is_still_quoted() -> None:
    body = {"error": "VIDEO_GENERATION_INSUFFICIENT_CREDITS", "message": "Insufficient credits for this generation."}

    with pytest.raises(AuthenticationFailed, match=r"\[VIDEO_GENERATION_INSUFFICIENT_CREDITS\]"):
        parse(body, 402)


@pytest.mark.parametrize(
    ("status_code", "message"),
    [
        (429, "Rate limit exceeded. Please retry later."),
        (500, "Server error."),
        (502, "Upstream generation failed."),
        (503, "Upstream provider unavailable."),
        (504, "Generation timed out."),
    ],
)
def test_rate_limits_and_server_errors_are_unavailable_with_the_providers_sanitized_message(
    status_code: int, message: str
) -> None:
    provider = adapter()
    body = json.dumps(error_body("VIDEO_GENERATION_X", f"{message} key={KEY}")).encode()
    reply = Reply(status_code, body, {"retry-after": "7"})

    with pytest.raises(ProviderUnavailable) as caught:
        provider.common_errors(reply, provider.error_message(reply))

    assert f"HTTP {status_code}" in caught.value.message
    assert f"The provider said: {message} key=[redacted]" in caught.value.message
    assert caught.value.retry_after == 7.0


def test_a_key_echoed_in_an_error_body_never_reaches_the_error_message() -> None:
    body = error_body(f"BAD_{KEY}", f"The key {KEY} is not valid.")

    for status_code in (400, 401, 402, 403, 418):
        with pytest.raises(GenResultError) as caught:
            parse(body, status_code)
        assert KEY not in str(caught.value)


# ---- the emulator speaks the documented wire shapes ----


async def raw_answer(provider: SkillsVideoEmulator, task_id: str, key: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key or provider.api_key}"}
    transport = httpx.ASGITransport(app=provider.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://emulator") as client:
        with anyio.fail_after(5):
            return await client.get(f"/api/v1/generation/{task_id}", headers=headers)


@pytest.mark.parametrize(
    ("vocabulary", "outcome", "at", "expected"),
    [
        ("queue", "succeeded", 0.0, {**DOCUMENTED_QUEUED, "data": None}),
        ("queue", "succeeded", 15.0, {**DOCUMENTED_QUEUED, "status": "IN_PROGRESS", "data": None}),
        (
            "queue",
            "failed",
            30.0,
            {
                **DOCUMENTED_QUEUED,
                "status": "FAILED",
                "data": None,
                "usage": {"total": 0, "subscription": 0, "permanent": 0},
                "code": "VIDEO_GENERATION_CONTENT_REJECTED",
                "message": "Content was rejected by moderation.",
            },
        ),
        (
            "queue",
            "canceled",
            30.0,
            {
                **DOCUMENTED_QUEUED,
                "status": "CANCELED",
                "data": None,
                "usage": {"total": 0, "subscription": 0, "permanent": 0},
            },
        ),
        (
            "prediction",
            "succeeded",
            0.0,
            {"id": "gen_123", "status": "starting", "usage": {"total": 0, "subscription": 0, "permanent": 0}},
        ),
    ],
)
async def test_the_emulator_answers_in_the_documented_shapes(
    clock: VirtualClock, vocabulary: str, outcome: str, at: float, expected: dict[str, Any]
) -> None:
    provider = SkillsVideoEmulator(clock, auto_create=False)
    timeline = Timeline(queued_s=10, running_s=10, outcome=outcome)  # type: ignore[arg-type]
    provider.add_job("gen_123", timeline, vocabulary=vocabulary)
    clock.advance(at)

    answer = await raw_answer(provider, "gen_123")

    assert (answer.status_code, answer.json()) == (200, expected)


async def test_the_emulators_completed_image_matches_the_documented_data_shape(clock: VirtualClock) -> None:
    provider = SkillsVideoEmulator(clock, auto_create=False)
    provider.add_job("cat", Timeline(queued_s=0, running_s=0), kind="image", prompt="a cat")

    data = (await raw_answer(provider, "cat")).json()["data"]

    assert set(data) == set(DOCUMENTED_IMAGE["data"])
    assert data["images"] == [data["image"]]
    assert set(data["image"]) == set(CAT)


@pytest.mark.parametrize(
    ("task_id", "key", "status_code"), [("gen_1", "sk-wrong-key-000", 401), ("gen_missing", None, 404)]
)
async def test_the_emulators_own_errors_carry_code_message_and_the_legacy_error_field(
    clock: VirtualClock, task_id: str, key: str | None, status_code: int
) -> None:
    provider = SkillsVideoEmulator(clock, auto_create=False)
    provider.add_job("gen_1")

    answer = await raw_answer(provider, task_id, key)

    assert answer.status_code == status_code
    assert set(answer.json()) == {"error", "code", "message"}


# ---- the whole path: MCP client -> server -> adapter -> emulator ----


def text_of(reply: CallToolResult) -> str:
    assert reply.content and reply.content[0].type == "text"
    return reply.content[0].text


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def has_null(value: Any) -> bool:
    if isinstance(value, dict):
        return any(v is None or has_null(v) for v in value.values())
    if isinstance(value, list):
        return any(v is None or has_null(v) for v in value)
    return value is None


def check_answer(reply: CallToolResult) -> GenerationResult:
    """A successful tool answer: its text is its structured content as compact JSON, with no nulls."""
    assert not reply.is_error, text_of(reply)
    assert text_of(reply) == compact(reply.structured_content)
    assert not has_null(reply.structured_content)
    return GenerationResult.model_validate(reply.structured_content)


async def get(connect: Connect, task_id: str, **settings: Any) -> CallToolResult:
    async with connect(**settings) as client:
        with anyio.fail_after(5):
            return await client.call_tool("get_generation_result", {"provider": "skillsvideo", "task_id": task_id})


def emulator(sandbox: Sandbox) -> SkillsVideoEmulator:
    found = sandbox["skillsvideo"]
    assert isinstance(found, SkillsVideoEmulator)
    return found


# (timeline outcome, seconds after creation) -> the phase the job is in then.
PHASES = {
    "queued": ("succeeded", 1.0),
    "running": ("succeeded", 15.0),
    "succeeded": ("succeeded", 30.0),
    "failed": ("failed", 30.0),
    "canceled": ("canceled", 30.0),
}


@pytest.mark.parametrize(
    ("vocabulary", "phase", "word"),
    [
        ("queue", "queued", "IN_QUEUE"),
        ("queue", "running", "IN_PROGRESS"),
        ("queue", "succeeded", "COMPLETED"),
        ("queue", "failed", "FAILED"),
        ("queue", "canceled", "CANCELED"),
        ("prediction", "queued", "starting"),
        ("prediction", "running", "processing"),
        ("prediction", "succeeded", "succeeded"),
        ("prediction", "failed", "failed"),
        ("prediction", "canceled", "canceled"),
    ],
)
async def test_each_state_of_both_vocabularies_arrives_normalized_through_the_client(
    connect: Connect, sandbox: Sandbox, clock: VirtualClock, vocabulary: str, phase: str, word: str
) -> None:
    outcome, at = PHASES[phase]
    timeline = Timeline(queued_s=10, running_s=10, outcome=outcome)  # type: ignore[arg-type]
    emulator(sandbox).add_job("gen_123", timeline, vocabulary=vocabulary)
    clock.advance(at)

    result = check_answer(await get(connect, "gen_123"))

    assert (result.status, result.provider_status, result.done) == (
        phase,
        word,
        phase in ("succeeded", "failed", "canceled"),
    )
    assert bool(result.outputs) == (phase == "succeeded")
    assert (result.error is not None) == (phase == "failed")  # the emulator's cancellations give no reason
    if phase == "succeeded":
        assert (result.outputs[0].kind, result.outputs[0].mime_type, result.progress) == ("video", "video/mp4", None)
    if phase == "failed":
        assert result.error is not None and result.error.code == "VIDEO_GENERATION_CONTENT_REJECTED"


@pytest.mark.parametrize(("kind", "mime"), [("video", "video/mp4"), ("image", "image/png"), ("audio", "audio/mpeg")])
async def test_each_output_kind_arrives_with_its_type_and_cost(
    connect: Connect, sandbox: Sandbox, kind: str, mime: str
) -> None:
    emulator(sandbox).add_job("gen_1", Timeline(queued_s=0, running_s=0), kind=kind)

    result = check_answer(await get(connect, "gen_1"))

    assert [(o.kind, o.mime_type) for o in result.outputs] == [(kind, mime)]
    assert result.cost == Cost(amount=20, unit="credits")


async def test_waiting_follows_a_job_to_completion_in_virtual_time(connect: Connect, sandbox: Sandbox) -> None:
    emulator(sandbox).add_job("gen_9", Timeline(queued_s=5, running_s=20))

    async with connect() as client:
        with anyio.fail_after(5):
            reply = await client.call_tool(
                "wait_for_generation", {"provider": "skillsvideo", "task_id": "gen_9", "timeout_s": 120}
            )

    result = check_answer(reply)
    assert (result.status, result.done, result.timed_out) == ("succeeded", True, False)
    assert result.polls is not None and result.polls >= 2
    assert result.elapsed_s is not None and 25 <= result.elapsed_s < 120


async def test_every_check_is_one_get_of_the_documented_path_with_the_bearer_key(
    connect: Connect, sandbox: Sandbox
) -> None:
    provider = emulator(sandbox)
    provider.add_job("gen_123", Timeline(queued_s=0, running_s=0))

    check_answer(await get(connect, "gen_123"))

    [request] = provider.requests
    assert (request.method, request.path, request.query, request.body) == (
        "GET",
        "/skillsvideo/api/v1/generation/gen_123",
        "",
        b"",
    )
    assert request.headers["authorization"] == f"Bearer {provider.sandbox_key}"
    assert request.headers["accept"] == "application/json"


async def test_a_wrong_key_is_authentication_failed_and_the_key_is_not_shown(
    connect: Connect, sandbox: Sandbox
) -> None:
    emulator(sandbox).add_job("gen_1")
    env = {**sandbox.env(), "SKILLSVIDEO_API_KEY": KEY}

    reply = await get(connect, "gen_1", env=env)

    assert reply.is_error and reply.structured_content is None
    assert "authentication_failed" in text_of(reply)
    assert "SKILLSVIDEO_API_KEY" in text_of(reply)
    assert KEY not in text_of(reply)
    assert emulator(sandbox).requests[0].headers["authorization"] == f"Bearer {KEY}"


async def test_an_unknown_id_is_task_not_found(connect: Connect, sandbox: Sandbox) -> None:
    reply = await get(connect, "gen_missing")

    assert reply.is_error and "task_not_found" in text_of(reply)
    assert [r.path for r in emulator(sandbox).requests] == ["/skillsvideo/api/v1/generation/gen_missing"]


async def test_without_a_key_the_provider_is_not_configured_and_nothing_is_sent(
    connect: Connect, sandbox: Sandbox
) -> None:
    reply = await get(connect, "gen_1", env={"SKILLSVIDEO_BASE_URL": sandbox.env()["SKILLSVIDEO_BASE_URL"]})

    assert reply.is_error
    assert "provider_not_configured" in text_of(reply) and "SKILLSVIDEO_API_KEY" in text_of(reply)
    assert emulator(sandbox).requests == []


@pytest.mark.parametrize(
    ("status_code", "code", "words"),
    [
        (402, "authentication_failed", "Insufficient credits for this generation."),
        (403, "authentication_failed", "Access forbidden."),
        (400, "provider_protocol_error", "Invalid request."),
        (429, "provider_unavailable", "Rate limit exceeded. Please retry later."),
        (500, "provider_unavailable", "Server error."),
        (502, "provider_unavailable", "Bad gateway."),
        (503, "provider_unavailable", "Upstream provider unavailable."),
        (504, "provider_unavailable", "Gateway timeout."),
    ],
)
async def test_the_emulators_documented_error_bodies_arrive_as_their_error_codes(
    connect: Connect, sandbox: Sandbox, status_code: int, code: str, words: str
) -> None:
    emulator(sandbox).add_job("gen_1", faults=[Fault("status", status_code)])

    reply = await get(connect, "gen_1")

    assert reply.is_error
    assert f"{code}: " in text_of(reply) and words in text_of(reply)


@pytest.mark.parametrize(
    ("status_code", "code", "message"),
    [
        (502, "VIDEO_GENERATION_FAILED", "Upstream generation failed."),
        (504, "VIDEO_GENERATION_TIMEOUT", "Generation timed out."),
        (422, "VIDEO_GENERATION_CONTENT_REJECTED", "Validation error."),
    ],
)
async def test_the_emulators_generation_end_codes_end_a_wait_at_once_as_a_failed_job(
    connect: Connect, sandbox: Sandbox, clock: VirtualClock, status_code: int, code: str, message: str
) -> None:
    emulator(sandbox).add_job(
        "gen_1",
        Timeline(queued_s=0, running_s=0),
        faults=[Fault("status", status_code)],
        **({} if status_code == 422 else {"error_code": code, "error_message": message}),
    )

    async with connect() as client:
        with anyio.fail_after(5):
            reply = await client.call_tool(
                "wait_for_generation", {"provider": "skillsvideo", "task_id": "gen_1", "timeout_s": 120}
            )

    result = check_answer(reply)
    assert (result.status, result.done, result.timed_out, result.polls) == ("failed", True, False, 1)
    assert result.error is not None and (result.error.code, result.error.message) == (code, message)
    assert clock.monotonic() == 0, "nothing was retried"


async def test_a_jobs_own_error_code_reaches_the_answer_through_the_emulator(
    connect: Connect, sandbox: Sandbox
) -> None:
    emulator(sandbox).add_job(
        "gen_1",
        faults=[Fault("status", 400)],
        error_code="VIDEO_GENERATION_UNSUPPORTED_MODEL",
        error_message="This model is not supported.",
    )

    reply = await get(connect, "gen_1")

    assert reply.is_error and "provider_protocol_error: " in text_of(reply)
    assert "This model is not supported. [VIDEO_GENERATION_UNSUPPORTED_MODEL]" in text_of(reply)
    assert "Check the task id" in text_of(reply) and "_BASE_URL" not in text_of(reply)


async def test_a_rate_limit_during_a_wait_is_retried_after_the_providers_delay(
    connect: Connect, sandbox: Sandbox, clock: VirtualClock
) -> None:
    emulator(sandbox).add_job("gen_1", Timeline(queued_s=0, running_s=0), faults=[Fault.rate_limited(retry_after=4)])

    async with connect() as client:
        with anyio.fail_after(5):
            reply = await client.call_tool(
                "wait_for_generation", {"provider": "skillsvideo", "task_id": "gen_1", "timeout_s": 30}
            )

    assert check_answer(reply).status == "succeeded"
    assert len(emulator(sandbox).requests) == 2
    assert clock.sleeps and clock.sleeps[0] >= 4


async def test_the_key_never_appears_in_any_output_even_when_the_provider_echoes_it(
    connect: Connect, sandbox: Sandbox
) -> None:
    key = emulator(sandbox).sandbox_key
    emulator(sandbox).add_job(
        "gen_echo",
        Timeline(queued_s=0, running_s=0, outcome="failed"),
        code="VIDEO_GENERATION_FAILED",
        message=f"Upstream refused token {key}.",
    )

    async with connect() as client:
        with anyio.fail_after(5):
            checked = await client.call_tool(
                "get_generation_result", {"provider": "skillsvideo", "task_id": "gen_echo"}
            )
            waited = await client.call_tool("wait_for_generation", {"provider": "skillsvideo", "task_id": "gen_echo"})

    for reply in (checked, waited):
        result = check_answer(reply)
        everything = text_of(reply) + compact(reply.structured_content)
        assert key not in everything
        assert result.error is not None and result.error.message == "Upstream refused token [redacted]."


# The documented payloads of PROVIDERS.md: the shared fuzz suite grows near misses from them.
FUZZ_SEEDS: list[Any] = [
    {
        "id": "gen_123",
        "status": "COMPLETED",
        "input": {"prompt": "a cat", "n": 1},
        "data": {
            "type": "image",
            "n": 1,
            "images": [{"url": "https://cdn.example.com/cat.png", "content_type": "image/png", "width": 1024}],
            "image": {"url": "https://cdn.example.com/cat.png", "content_type": "image/png", "width": 1024},
        },
        "usage": {"total": 20, "subscription": 20, "permanent": 0},
    },
    {"id": "gen_123", "status": "IN_QUEUE", "data": None, "usage": {"total": 20}},
    {"id": "gen_123", "status": "FAILED", "data": None, "code": "VIDEO_GENERATION_FAILED", "message": "no"},
    {"error": "INSUFFICIENT_CREDITS", "code": "VIDEO_GENERATION_INSUFFICIENT_CREDITS", "message": "credits"},
]


KIT = ProviderKit(
    seeds=FUZZ_SEEDS,
    reports_cost=True,
    issued=safe_id,
    paths=one_segment("/generation/{}"),
    # The error `code` says a generation ended (a failed job) or what the trouble is, whatever the status.
    body_decides=(range(400, 600), (ProviderRejected,)),
    failed_by_code=True,
    finished_with_key=lambda key: (
        "gen_1",
        [
            {
                "id": "gen_1",
                "status": "COMPLETED",
                "data": {"type": "video", "videos": [{"url": f"https://cdn.example.com/x.mp4#{key}"}]},
                "usage": {"total": 1, "subscription": 1, "permanent": 0},
            }
        ],
    ),
)
