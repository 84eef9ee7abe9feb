"""TensorPix: the parser on payloads of every state, pre-signed URL expiry, ids, and the whole path through
the in-memory MCP client against the emulator."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import strategies as st
from mcp.types import CallToolResult

from sandbox import IN_PROCESS_ROOT, Fault, Sandbox, Timeline
from sandbox.tensorpix import TensorPixEmulator
from tests.conftest import Connect
from tests.providers.kit import ProviderKit, one_segment
from tools.clock import VirtualClock
from tools.errors import AuthenticationFailed, InvalidTaskId, ProviderProtocolError, TaskNotFound
from tools.providers.base import Reply
from tools.providers.tensorpix import TensorPix
from tools.redact import Redactor
from tools.result import GenerationResult, JobState
from tools.service import read_reply

JOB_ID = "3c90c3cc-0d44-4b50-8888-8dd25736052a"
KEY = "0123456789abcdef0123456789abcdef01234567"
FILE_URL = (
    "https://bucket.s3.eu-central-1.amazonaws.com/video-gen/fox.mp4?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AKIAEXAMPLE%2F20261122%2Feu-central-1%2Fs3%2Faws4_request&X-Amz-Date=20261122T100000Z"
    "&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Signature=abc123"
)


def adapter(redactor: Redactor | None = None) -> TensorPix:
    return TensorPix.from_env({"TENSORPIX_API_KEY": KEY}, redactor or Redactor())


def job_body(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": JOB_ID,
        "prompt": "a fox in snow",
        "type": "t2v",
        "status": "IN_QUEUE",
        "cost": "12.00",
        "model": "some-model",
        "generated_video": None,
        "input_images": [],
        "progress": 0,
        "started_at": None,
        "options": {},
    }
    body.update(fields)
    return body


def generated_video(**fields: Any) -> dict[str, Any]:
    video: dict[str, Any] = {
        "id": "7d1e3c3a-1b2c-4d5e-8f90-123456789abc",
        "name": "fox.mp4",
        "created_at": "2026-11-22T10:02:00Z",
        "job": JOB_ID,
        "uploaded_video": None,
        "width": 1280,
        "height": 720,
        "n_frames": 121,
        "framerate": 24.0,
        "size": 5123456,
        "file": FILE_URL,
        "thumbnail": "https://bucket.s3.amazonaws.com/video-gen/fox.jpg?X-Amz-Date=20261122T100000Z",
    }
    video.update(fields)
    return video


def parse(body: Any, status_code: int = 200, redactor: Redactor | None = None) -> JobState:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return adapter(redactor).parse(Reply(status_code, raw, {"content-type": "application/json"}))


# ---- the parser, state by state ----


def test_a_queued_job_is_queued_with_its_cost_in_credits_and_no_outputs() -> None:
    state = parse(job_body())
    assert (state.status, state.provider_status, state.progress, state.outputs) == ("queued", "IN_QUEUE", 0, ())
    assert state.cost is not None and (state.cost.amount, state.cost.unit) == (12.0, "credits")


def test_a_processing_job_is_running_with_its_percent() -> None:
    state = parse(job_body(status="PROCESSING", progress=50, started_at="2026-11-22T10:00:05Z"))
    assert (state.status, state.progress, state.outputs, state.error) == ("running", 50, (), None)


def test_a_completed_job_gives_the_video_with_all_its_metadata() -> None:
    state = parse(job_body(status="COMPLETED", progress=100, generated_video=generated_video()))

    assert (state.status, state.progress, state.error) == ("succeeded", 100, None)
    (video,) = state.outputs
    assert video.model_dump(exclude_none=True) == {
        "url": FILE_URL,
        "kind": "video",
        "mime_type": "video/mp4",
        "width": 1280,
        "height": 720,
        "fps": 24.0,
        "frames": 121,
        "duration_s": 5.04,
        "size_bytes": 5123456,
        "thumbnail_url": "https://bucket.s3.amazonaws.com/video-gen/fox.jpg?X-Amz-Date=20261122T100000Z",
        "expires_at": "2026-11-22T11:00:00Z",
    }


def test_a_failed_job_without_a_reason_has_no_invented_error() -> None:
    state = parse(job_body(status="FAILED", progress=40))
    assert (state.status, state.provider_status, state.outputs, state.error) == ("failed", "FAILED", (), None)


def test_a_failure_reason_is_passed_on_without_secrets_when_the_api_sends_one() -> None:
    # Read as the service reads every reply: the secrets are cleaned there, once, for every adapter.
    provider = adapter(Redactor())
    body = json.dumps(job_body(status="error", error=f"GPU worker crashed (token {KEY})")).encode()
    state = read_reply(provider, Reply(200, body), provider.redact)
    assert state.error is not None
    assert (state.status, state.error.code) == ("failed", "ERROR")
    assert "GPU worker crashed" in state.error.message and KEY not in state.error.message


def test_a_reason_field_that_is_not_text_is_ignored_rather_than_rejected() -> None:
    state = parse(job_body(status="FAILED", error={"code": 7}))
    assert (state.status, state.error) == ("failed", None)


@pytest.mark.parametrize("word", ["CANCELED", "cancelled", "Canceled"])
def test_a_canceled_job_is_canceled_whatever_the_spelling(word: str) -> None:
    state = parse(job_body(status=word, detail="Canceled by the user."))
    assert state.status == "canceled"
    assert state.error is not None
    assert (state.error.code, state.error.message) == (word.upper(), "Canceled by the user.")


def test_status_words_are_read_case_insensitively() -> None:
    assert parse(job_body(status="completed", generated_video=generated_video())).status == "succeeded"
    assert parse(job_body(status="in_queue")).status == "queued"


def test_an_unknown_status_word_is_running_and_kept_as_said() -> None:
    state = parse(job_body(status="UPSCALING", progress=70))
    assert (state.status, state.provider_status, state.progress) == ("running", "UPSCALING", 70)


def test_an_unknown_status_word_next_to_a_ready_video_means_finished() -> None:
    state = parse(job_body(status="READY", generated_video=generated_video()))
    assert (state.status, state.provider_status, len(state.outputs)) == ("succeeded", "READY", 1)


def test_a_completed_job_whose_file_is_not_stored_yet_is_still_running() -> None:
    state = parse(job_body(status="COMPLETED", progress=100, generated_video=generated_video(file=None)))
    assert (state.status, state.outputs) == ("running", ())


def test_the_mime_type_comes_from_the_url_when_the_name_has_no_extension() -> None:
    state = parse(job_body(status="COMPLETED", generated_video=generated_video(name="My fox video")))
    assert state.outputs[0].mime_type == "video/mp4"


def test_a_video_without_frame_rate_has_no_duration() -> None:
    state = parse(job_body(status="COMPLETED", generated_video=generated_video(framerate=None, n_frames=None)))
    assert (state.outputs[0].duration_s, state.outputs[0].fps) == (None, None)


@pytest.mark.parametrize(
    ("cost", "amount"), [("12.00", 12.0), ("0.5", 0.5), (3, 3.0), (None, None), ("n/a", None), ("NaN", None)]
)
def test_cost_is_read_from_a_decimal_string_and_left_out_when_unreadable(cost: Any, amount: float | None) -> None:
    state = parse(job_body(cost=cost))
    assert (state.cost.amount if state.cost else None) == amount


def test_progress_outside_0_to_100_is_clamped() -> None:
    assert parse(job_body(status="PROCESSING", progress=140)).progress == 100


# ---- the parser, HTTP errors ----


def test_a_rejected_token_is_authentication_failed_with_the_providers_words() -> None:
    with pytest.raises(AuthenticationFailed, match=r"Invalid token\..*TENSORPIX_API_KEY"):
        parse({"detail": "Invalid token."}, 401)


@pytest.mark.parametrize(
    ("status_code", "body", "said"),
    [
        (403, {"detail": "Your subscription plan does not include API access."}, "does not include API access"),
        (400, {"detail": "You do not have enough Credits."}, "You do not have enough Credits."),
        (400, {"non_field_errors": ["Insufficient credit balance."]}, "Insufficient credit balance."),
        (402, {"detail": "Payment required."}, "Payment required."),
    ],
)
def test_running_out_of_credits_or_a_plan_without_api_access_is_the_account_refused(
    status_code: int, body: dict[str, Any], said: str
) -> None:
    with pytest.raises(AuthenticationFailed) as refused:
        parse(body, status_code)

    text = refused.value.message
    assert f"refused the account (HTTP {status_code})" in text and said in text
    assert "credits and plan" in text and "TENSORPIX_API_KEY" in text and "rejected the credentials" not in text


def test_a_404_is_task_not_found() -> None:
    with pytest.raises(TaskNotFound):
        parse({"detail": "Not found."}, 404)


@pytest.mark.parametrize(
    ("status_code", "body", "said"),
    [
        (400, {"detail": "Malformed request."}, "Malformed request."),
        (400, {"id": ["Must be a valid UUID."]}, "id: Must be a valid UUID."),
        (409, {"detail": "Conflict."}, "Conflict."),
    ],
)
def test_another_4xx_quotes_the_provider_and_says_to_check_the_id_not_the_base_url(
    status_code: int, body: dict[str, Any], said: str
) -> None:
    with pytest.raises(ProviderProtocolError) as refused:
        parse(body, status_code)

    text = refused.value.message
    assert f"(HTTP {status_code}): {said}" in text and "Check the task id" in text and "_BASE_URL" not in text


def test_a_4xx_without_any_words_keeps_the_base_url_advice() -> None:
    with pytest.raises(ProviderProtocolError, match="_BASE_URL"):
        parse(b"<html>Bad Request</html>", 400)


@pytest.mark.parametrize(
    "body", [b"<!DOCTYPE html><html><body>oops</body></html>", b"", b'{"status": "proc', b'{"progress": 5}', b"[]"]
)
def test_a_200_that_is_not_the_documented_job_is_a_protocol_error(body: bytes) -> None:
    with pytest.raises(ProviderProtocolError):
        parse(body)


# ---- ids ----


def test_a_uuid_is_accepted_in_either_case_and_sent_lowercase() -> None:
    assert adapter().validate_task_id(JOB_ID) == JOB_ID
    assert adapter().validate_task_id(JOB_ID.upper()) == JOB_ID


@pytest.mark.parametrize(
    "task_id",
    [
        "",
        "148",
        "gen_123",
        JOB_ID.replace("-", ""),
        "{" + JOB_ID + "}",
        "urn:uuid:" + JOB_ID,
        JOB_ID + "/",
        "../" + JOB_ID,
        JOB_ID + "?x=1",
        JOB_ID[:-1] + "g",
        " " + JOB_ID,
    ],
)
def test_anything_but_a_canonical_uuid_is_an_invalid_task_id(task_id: str) -> None:
    with pytest.raises(InvalidTaskId):
        adapter().validate_task_id(task_id)


async def test_the_request_keeps_the_trailing_slash_and_sends_the_token_scheme() -> None:
    async with httpx.AsyncClient() as client:
        request = adapter().build_request(client, JOB_ID)
    assert str(request.url) == f"https://backend.tensorpix.ai/api/video-gen/jobs/{JOB_ID}/"
    assert request.headers["authorization"] == f"Token {KEY}"


# ---- through the MCP client ----


def text_of(reply: CallToolResult) -> str:
    assert reply.content and reply.content[0].type == "text"
    return reply.content[0].text


def emulator(sandbox: Sandbox) -> TensorPixEmulator:
    found = sandbox["tensorpix"]
    assert isinstance(found, TensorPixEmulator)
    return found


async def get_result(connect: Connect, task_id: str = JOB_ID, **settings: Any) -> CallToolResult:
    async with connect(**settings) as client:
        return await client.call_tool("get_generation_result", {"provider": "tensorpix", "task_id": task_id})


async def test_a_job_is_seen_queued_then_running_then_succeeded_with_a_fresh_url(
    connect: Connect, sandbox: Sandbox, clock: VirtualClock
) -> None:
    tensorpix = emulator(sandbox)
    tensorpix.add_job(JOB_ID, Timeline(queued_s=2, running_s=6))
    seen: list[GenerationResult] = []
    async with connect() as client:
        for advance in (0, 5, 10):
            clock.advance(advance)
            reply = await client.call_tool("get_generation_result", {"provider": "tensorpix", "task_id": JOB_ID})
            assert not reply.is_error, text_of(reply)
            assert json.loads(text_of(reply)) == reply.structured_content
            seen.append(GenerationResult.model_validate(reply.structured_content))

    assert [(r.status, r.provider_status, r.progress) for r in seen] == [
        ("queued", "IN_QUEUE", 0),
        ("running", "PROCESSING", 50),
        ("succeeded", "COMPLETED", 100),
    ]
    done = seen[-1]
    assert done.done and done.cost is not None and done.cost.amount == 12.0
    (video,) = done.outputs
    assert (video.kind, video.mime_type, video.width, video.height, video.frames, video.fps) == (
        "video",
        "video/mp4",
        1280,
        720,
        121,
        24.0,
    )
    assert video.duration_s == 5.04
    assert done.checked_at == "2026-11-22T10:00:15Z"
    assert video.expires_at == "2026-11-22T11:00:15Z"
    assert video.thumbnail_url is not None and "X-Amz-Signature=" in video.thumbnail_url

    assert [logged.path for logged in tensorpix.requests] == [f"/tensorpix/api/video-gen/jobs/{JOB_ID}/"] * 3
    assert {logged.headers["authorization"] for logged in tensorpix.requests} == {f"Token {tensorpix.api_key}"}


@pytest.mark.parametrize(("outcome", "word"), [("failed", "FAILED"), ("canceled", "CANCELED")])
async def test_a_job_that_ends_badly_is_a_result_not_a_tool_error(
    connect: Connect, sandbox: Sandbox, outcome: Any, word: str
) -> None:
    emulator(sandbox).add_job(JOB_ID, Timeline(queued_s=0, running_s=0, outcome=outcome))
    reply = await get_result(connect)

    assert not reply.is_error
    result = GenerationResult.model_validate(reply.structured_content)
    assert (result.status, result.done, result.provider_status, result.outputs) == (outcome, True, word, [])
    assert result.error is None  # the emulator, like the documented API, gives no reason


async def test_waiting_polls_until_the_video_is_ready(connect: Connect, sandbox: Sandbox) -> None:
    tensorpix = emulator(sandbox)
    tensorpix.add_job(JOB_ID, Timeline(queued_s=3, running_s=20), faults=[Fault.server_error(503)])
    with anyio.fail_after(10):
        async with connect() as client:
            reply = await client.call_tool(
                "wait_for_generation", {"provider": "tensorpix", "task_id": JOB_ID, "timeout_s": 120}
            )

    result = GenerationResult.model_validate(reply.structured_content)
    assert (result.status, result.timed_out, len(result.outputs)) == ("succeeded", False, 1)
    assert result.polls == len(tensorpix.requests) and result.polls is not None and result.polls >= 3


async def test_an_uppercase_id_reaches_the_same_job(connect: Connect, sandbox: Sandbox) -> None:
    emulator(sandbox).add_job(JOB_ID, Timeline(queued_s=0, running_s=0))
    reply = await get_result(connect, JOB_ID.upper())
    assert GenerationResult.model_validate(reply.structured_content).status == "succeeded"


async def test_a_wrong_key_is_authentication_failed_and_the_key_is_not_repeated(
    connect: Connect, sandbox: Sandbox
) -> None:
    emulator(sandbox).add_job(JOB_ID)
    wrong = "ffffffffffffffffffffffffffffffffffffffff"
    reply = await get_result(connect, env={**sandbox.env(), "TENSORPIX_API_KEY": wrong})

    assert reply.is_error
    assert "authentication_failed" in text_of(reply) and "Invalid token." in text_of(reply)
    assert wrong not in text_of(reply)


async def test_running_out_of_credits_ends_a_wait_at_once_as_the_account_refused(
    connect: Connect, sandbox: Sandbox, clock: VirtualClock
) -> None:
    emulator(sandbox).add_job(JOB_ID, faults=[Fault("status", 400, message="You do not have enough Credits.")])

    async with connect() as client:
        with anyio.fail_after(5):
            reply = await client.call_tool(
                "wait_for_generation", {"provider": "tensorpix", "task_id": JOB_ID, "timeout_s": 60}
            )

    assert reply.is_error and "authentication_failed: TensorPix refused the account (HTTP 400)" in text_of(reply)
    assert "You do not have enough Credits." in text_of(reply) and "_BASE_URL" not in text_of(reply)
    assert clock.monotonic() == 0


async def test_an_unknown_id_is_task_not_found(connect: Connect, sandbox: Sandbox) -> None:
    reply = await get_result(connect)
    assert reply.is_error and "task_not_found" in text_of(reply)
    assert len(emulator(sandbox).requests) == 1


async def test_without_a_key_it_is_not_configured_and_nothing_is_sent(connect: Connect, sandbox: Sandbox) -> None:
    reply = await get_result(connect, env={"TENSORPIX_BASE_URL": sandbox.env()["TENSORPIX_BASE_URL"]})
    assert reply.is_error
    assert "provider_not_configured" in text_of(reply) and "TENSORPIX_API_KEY" in text_of(reply)
    assert emulator(sandbox).requests == []


async def test_an_id_that_is_not_a_uuid_is_refused_before_anything_is_sent(connect: Connect, sandbox: Sandbox) -> None:
    reply = await get_result(connect, "../jobs/x")
    assert reply.is_error and "invalid_task_id" in text_of(reply)
    assert emulator(sandbox).requests == []


async def test_the_key_appears_in_no_answer_of_any_kind(connect: Connect, sandbox: Sandbox) -> None:
    tensorpix = emulator(sandbox)
    tensorpix.add_job(JOB_ID, Timeline(queued_s=0, running_s=0))
    failed = "fa11c3cc-0d44-4b50-8888-8dd25736052a"
    tensorpix.add_job(failed, Timeline(queued_s=0, running_s=0, outcome="failed"))
    texts: list[str] = []
    async with connect() as client:
        for task_id in (JOB_ID, failed, "dead03cc-0d44-4b50-8888-8dd25736052a", "bad id"):
            for tool in ("get_generation_result", "wait_for_generation"):
                reply = await client.call_tool(tool, {"provider": "tensorpix", "task_id": task_id})
                texts.append(text_of(reply) + json.dumps(reply.structured_content))

    assert len(texts) == 8
    assert all(tensorpix.api_key not in text for text in texts)


# ---- the emulator's own API behaviour ----


async def raw_get(app_sandbox: Sandbox, path: str, key: str | None) -> httpx.Response:
    headers = {"Authorization": f"Token {key}"} if key else {}
    transport = httpx.ASGITransport(app=app_sandbox.app)
    async with httpx.AsyncClient(transport=transport, base_url=IN_PROCESS_ROOT) as client:
        return await client.get("/tensorpix/api" + path, headers=headers)


async def test_a_path_without_its_slash_gets_djangos_permanent_redirect_before_any_auth_check(
    sandbox: Sandbox,
) -> None:
    emulator(sandbox).add_job(JOB_ID)
    response = await raw_get(sandbox, f"/video-gen/jobs/{JOB_ID}", key=None)
    assert response.status_code == 301
    assert response.headers["location"] == f"/tensorpix/api/video-gen/jobs/{JOB_ID}/"


@pytest.mark.parametrize(
    ("header", "detail"),
    [
        (None, "Authentication credentials were not provided."),
        ("Bearer x", "Authentication credentials were not provided."),
        ("Token", "Invalid token header. No credentials provided."),
        ("Token a b", "Invalid token header. Token string should not contain spaces."),
        ("Token nope", "Invalid token."),
    ],
)
async def test_the_emulator_answers_drf_token_authentication_errors(
    sandbox: Sandbox, header: str | None, detail: str
) -> None:
    emulator(sandbox).add_job(JOB_ID)
    transport = httpx.ASGITransport(app=sandbox.app)
    async with httpx.AsyncClient(transport=transport, base_url=IN_PROCESS_ROOT) as client:
        response = await client.get(
            f"/tensorpix/api/video-gen/jobs/{JOB_ID}/", headers={"Authorization": header} if header else {}
        )
    assert (response.status_code, response.json(), response.headers["www-authenticate"]) == (
        401,
        {"detail": detail},
        "Token",
    )


async def test_the_generated_video_endpoint_serves_a_finished_jobs_video_only(
    sandbox: Sandbox, clock: VirtualClock
) -> None:
    tensorpix = emulator(sandbox)
    job = tensorpix.add_job(JOB_ID, Timeline(queued_s=1, running_s=1))
    video_path = f"/video-gen/videos/{tensorpix.video_id(job)}/"

    assert (await raw_get(sandbox, video_path, tensorpix.api_key)).status_code == 404
    clock.advance(3)
    response = await raw_get(sandbox, video_path, tensorpix.api_key)
    assert response.status_code == 200
    assert response.json()["job"] == JOB_ID and "X-Amz-Expires=3600" in response.json()["file"]


async def test_sandbox_ids_choose_their_outcome_and_only_uuids_exist(clock: VirtualClock) -> None:
    auto = Sandbox(clock)
    tensorpix = emulator(auto)
    outcomes = {}
    for prefix in ("3c90c3cc", "fa11c3cc", "cace13cc"):
        task_id = prefix + JOB_ID[8:]
        assert (await raw_get(auto, f"/video-gen/jobs/{task_id}/", tensorpix.api_key)).status_code == 200
        outcomes[prefix] = tensorpix.jobs[task_id].timeline.outcome
    assert outcomes == {"3c90c3cc": "succeeded", "fa11c3cc": "failed", "cace13cc": "canceled"}

    for missing in ("dead03cc" + JOB_ID[8:], "gen_123", "missing"):
        response = await raw_get(auto, f"/video-gen/jobs/{missing}/", tensorpix.api_key)
        assert (response.status_code, response.json()) == (404, {"detail": "Not found."})


# The documented payloads of PROVIDERS.md: the shared fuzz suite grows near misses from them.
FUZZ_SEEDS: list[Any] = [
    {
        "id": "3c90c3cc-0d44-4b50-8888-8dd25736052a",
        "prompt": "a fox in snow",
        "type": "t2v",
        "status": "COMPLETED",
        "cost": "12.00",
        "model": "m",
        "generated_video": {
            "id": "7d1e0000-0000-0000-0000-000000000000",
            "name": "fox.mp4",
            "created_at": "2025-01-01T10:02:00Z",
            "width": 1280,
            "height": 720,
            "n_frames": 121,
            "framerate": 24.0,
            "size": 5123456,
            "file": "https://b.example/fox.mp4?X-Amz-Date=20250101T100000Z&X-Amz-Expires=3600",
            "thumbnail": "https://b.example/fox.jpg",
        },
        "input_images": [],
        "progress": 100,
        "started_at": "2025-01-01T10:00:05Z",
        "options": {},
    },
    {"id": "3c90c3cc", "status": "IN_QUEUE", "cost": "12.00", "generated_video": None, "progress": 0},
    {"detail": "Not found."},
]


_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_UUID_FORMS: list[Callable[[uuid.UUID], str]] = [
    str,
    lambda u: str(u).upper(),
    lambda u: u.hex,
    lambda u: "{" + str(u) + "}",
    lambda u: u.urn,
]

KIT = ProviderKit(
    seeds=FUZZ_SEEDS,
    reports_cost=True,
    issued=lambda task_id: _UUID.fullmatch(task_id) is not None,
    paths=one_segment("/video-gen/jobs/{}/", travels_as=str.lower),
    plausible=st.builds(lambda u, form: form(u), st.uuids(), st.sampled_from(_UUID_FORMS)),
    finished_with_key=lambda key: (
        JOB_ID,
        [
            {
                "id": JOB_ID,
                "status": "COMPLETED",
                "cost": "2.00",
                "generated_video": {
                    "file": f"https://bucket.example.com/x.mp4?api_key={key}",
                    "thumbnail": f"https://bucket.example.com/x.jpg?api_key={key}",
                },
                "progress": 100,
            }
        ],
    ),
)
