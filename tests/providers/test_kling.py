"""Kling: the JWT made per request, the parser on payloads of every state and error code, the family ids
and the bare-id fallback, and the whole path through the in-memory MCP client against the emulator."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import strategies as st
from mcp.types import CallToolResult

from sandbox import IN_PROCESS_ROOT, Fault, Sandbox, Timeline
from sandbox.kling import KlingEmulator
from tests.conftest import Connect
from tests.providers.kit import Expected, ProviderKit, one_segment, safe_id
from tools.clock import VirtualClock
from tools.errors import (
    AuthenticationFailed,
    GenResultError,
    InvalidTaskId,
    ProviderNotConfigured,
    ProviderProtocolError,
    ProviderUnavailable,
    TaskNotFound,
)
from tools.providers.base import Reply, Then
from tools.providers.kling import FAMILIES, TOKEN_LIFETIME_S, Kling, sign_jwt
from tools.redact import REDACTED, TRANSIENT_SECRETS, Redactor
from tools.result import GenerationResult, JobState
from tools.service import read_reply

TASK_ID = "867283741759111202"
ACCESS = "AKtest0123456789abcdef"
SECRET = "SKtest-secret-0123456789"
NOW = 1_774_805_076.0
VIDEO_URL = "https://v15-kling.klingai.com/bs2/upload-ylab-stunt/fox.mp4"


def adapter(redactor: Redactor | None = None, now: float = NOW) -> Kling:
    return Kling(Kling.default_base_url, redactor or Redactor(), ACCESS, SECRET, now=lambda: now)


def envelope(data: Any, code: int = 0, message: str = "SUCCEED") -> dict[str, Any]:
    return {"code": code, "message": message, "request_id": "c0656403-1e6e-4b7e-b8f8-2cdd2595f2b9", "data": data}


def task(status: str, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "task_id": TASK_ID,
        "task_status": status,
        "task_info": {"external_task_id": "t2v-1774805076"},
        "created_at": 1774805076166,
        "updated_at": 1774805101002,
    }
    return body | fields


SUBMITTED = envelope(task("submitted"))
PROCESSING = envelope(task("processing", task_status_msg="", task_result={"videos": []}))
SUCCEED = envelope(
    task(
        "succeed",
        task_status_msg="",
        watermark_info={"enabled": False},
        task_result={
            "videos": [{"id": "867284012345678901", "url": VIDEO_URL, "watermark_url": "", "duration": "5.042"}]
        },
        updated_at=1774805190301,
    )
)
FAILED = envelope(task("failed", task_status_msg="Failure to pass the risk control system", task_result={}))


def reply(body: Any, status_code: int = 200) -> Reply:
    return Reply(status_code, json.dumps(body).encode())


def read(body: Any, status_code: int = 200, redactor: Redactor | None = None) -> JobState | Then:
    """What the service makes of a first reply to a family-qualified id."""
    kling = adapter(redactor)
    return read_reply(kling, reply(body, status_code), kling.redact)


def state(body: Any, status_code: int = 200) -> JobState:
    outcome = read(body, status_code)
    assert isinstance(outcome, JobState)
    return outcome


def error_of(body: Any, status_code: int = 200) -> GenResultError:
    with pytest.raises(GenResultError) as raised:
        read(body, status_code)
    return raised.value


def decoded(part: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


# ---- the token ----


def test_the_token_is_the_documented_hs256_jwt_over_iss_exp_and_nbf() -> None:
    token = sign_jwt(ACCESS, SECRET, NOW)
    header, claims, signature = token.split(".")
    assert decoded(header) == {"alg": "HS256", "typ": "JWT"}
    assert decoded(claims) == {"iss": ACCESS, "exp": int(NOW) + 1800, "nbf": int(NOW) - 5}
    expected = hmac.new(SECRET.encode(), f"{header}.{claims}".encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)) == expected
    assert "=" not in token


async def test_each_request_carries_a_token_made_from_the_injected_clock_and_kept_from_the_output() -> None:
    redactor = Redactor()
    times = iter([NOW, NOW + 60])
    kling = Kling(Kling.default_base_url, redactor, ACCESS, SECRET, now=lambda: next(times))
    async with httpx.AsyncClient() as client:
        first = kling.build_request(client, kling.validate_task_id(f"image2video/{TASK_ID}"))
        second = kling.build_request(client, kling.validate_task_id(TASK_ID))
    assert str(first.url) == f"https://api-singapore.klingai.com/v1/videos/image2video/{TASK_ID}"
    assert str(second.url) == f"https://api-singapore.klingai.com/v1/videos/text2video/{TASK_ID}"
    tokens = [request.headers["authorization"].removeprefix("Bearer ") for request in (first, second)]
    assert [decoded(token.split(".")[1])["exp"] for token in tokens] == [int(NOW) + 1800, int(NOW) + 60 + 1800]
    assert all(token in redactor for token in tokens)
    assert redactor(f"echo {tokens[1]}") == f"echo {REDACTED}"


async def test_tokens_made_per_request_do_not_grow_the_redactor_without_bound() -> None:
    redactor = Redactor()
    clock = iter(range(10_000))
    kling = Kling(Kling.default_base_url, redactor, ACCESS, SECRET, now=lambda: float(next(clock)))
    async with httpx.AsyncClient() as client:
        sent = [kling.build_request(client, TASK_ID) for _ in range(3 * TRANSIENT_SECRETS)]
    tokens = [request.headers["authorization"].removeprefix("Bearer ") for request in sent]
    assert len(set(tokens)) == len(tokens)
    assert all(token in redactor for token in tokens[-TRANSIENT_SECRETS:])
    assert not any(token in redactor for token in tokens[:TRANSIENT_SECRETS])


def test_both_keys_are_needed_and_the_message_names_the_missing_one() -> None:
    for env, missing in [
        ({"KLING_ACCESS_KEY": ACCESS}, "KLING_SECRET_KEY is not set"),
        ({"KLING_SECRET_KEY": SECRET}, "KLING_ACCESS_KEY is not set"),
        ({}, "KLING_ACCESS_KEY and KLING_SECRET_KEY are not set"),
    ]:
        kling = Kling.from_env(env, Redactor())
        assert not kling.configured
        with pytest.raises(ProviderNotConfigured, match=missing):
            kling.require_configured()
    assert Kling.from_env({"KLING_ACCESS_KEY": ACCESS, "KLING_SECRET_KEY": SECRET}, Redactor()).configured


def test_both_keys_are_registered_with_the_redactor() -> None:
    redactor = Redactor()
    Kling.from_env({"KLING_ACCESS_KEY": ACCESS, "KLING_SECRET_KEY": SECRET}, redactor)
    assert redactor(f"{ACCESS} {SECRET}") == f"{REDACTED} {REDACTED}"


# ---- states ----


def test_a_submitted_task_is_queued_with_no_outputs() -> None:
    result = state(SUBMITTED)
    assert (result.status, result.provider_status, result.outputs, result.progress) == (
        "queued",
        "submitted",
        (),
        None,
    )


def test_a_processing_task_is_running_without_any_invented_progress() -> None:
    result = state(PROCESSING)
    assert (result.status, result.provider_status, result.progress, result.eta_s) == (
        "running",
        "processing",
        None,
        None,
    )


def test_a_succeed_task_gives_its_video_with_the_duration_read_from_a_string_and_the_30_day_expiry() -> None:
    result = state(SUCCEED)
    assert (result.status, result.provider_status, result.progress) == ("succeeded", "succeed", None)
    (video,) = result.outputs
    assert (video.url, video.kind, video.mime_type, video.duration_s) == (VIDEO_URL, "video", "video/mp4", 5.042)
    # created_at 1774805076166 ms is 2026-03-29T17:24:36Z; Kling clears videos 30 days on.
    assert video.expires_at == "2026-04-28T17:24:36Z"


def test_a_failed_task_inside_a_200_is_a_failed_result_with_the_reason() -> None:
    result = state(FAILED)
    assert (result.status, result.provider_status, result.outputs) == ("failed", "failed", ())
    assert result.error is not None and result.error.message == "Failure to pass the risk control system"


def test_a_failed_task_without_a_reason_has_no_invented_error() -> None:
    assert state(envelope(task("failed", task_status_msg=""))).error is None


def test_a_succeed_task_with_no_video_listed_yet_is_still_running() -> None:
    assert state(envelope(task("succeed", task_result={"videos": []}))).status == "running"


def test_an_unknown_status_word_is_running_and_kept_as_said() -> None:
    result = state(envelope(task("rendering")))
    assert (result.status, result.provider_status) == ("running", "rendering")


def test_ids_in_the_answer_of_any_type_do_not_matter_to_the_state() -> None:
    # Relays send ids as JSON numbers too; an 18-digit one is past what a float holds, so none is read.
    videos = [{"id": 867284012345678901, "url": VIDEO_URL}]
    body = envelope(task("succeed", task_id=867283741759111203, task_result={"videos": videos}))
    assert state(body).status == "succeeded"


def test_fields_that_cannot_be_read_are_dropped_not_the_answer() -> None:
    body = envelope(
        task(
            "succeed",
            created_at="soon",
            task_status_msg=["x"],
            task_result={"videos": [{"url": VIDEO_URL, "duration": "NaN"}, {"id": 1}]},
        )
    )
    (video,) = state(body).outputs
    assert (video.url, video.duration_s, video.expires_at) == (VIDEO_URL, None, None)


@pytest.mark.parametrize(
    "body", [b"", b"<!DOCTYPE html><html></html>", b"[]", b'{"code": 0, "message": "SUCCEED"}', b'{"data": {}}']
)
def test_a_200_that_is_not_the_envelope_with_a_task_is_a_protocol_error(body: bytes) -> None:
    kling = adapter()
    with pytest.raises(ProviderProtocolError):
        read_reply(kling, Reply(200, body), kling.redact)


# ---- error codes, inside a 200 or with their documented HTTP status ----


@pytest.mark.parametrize("code", [1000, 1001, 1002])
@pytest.mark.parametrize("status", [401, 200])
def test_a_token_refused_is_authentication_failed_naming_both_keys(code: int, status: int) -> None:
    error = error_of({"code": code, "message": "Authorization is invalid", "request_id": "r"}, status)
    assert isinstance(error, AuthenticationFailed)
    assert "Authorization is invalid" in error.message and "KLING_ACCESS_KEY and KLING_SECRET_KEY" in error.message


@pytest.mark.parametrize(("code", "words"), [(1003, "is not valid yet"), (1004, "has expired")])
def test_a_token_not_yet_valid_or_expired_says_the_clock_is_off(code: int, words: str) -> None:
    error = error_of({"code": code, "message": "Authorization has expired", "request_id": "r"}, 401)
    assert isinstance(error, AuthenticationFailed)
    assert words in error.message and "clock" in error.message


@pytest.mark.parametrize("code", [1100, 1101, 1102, 1103, 1304])
def test_account_codes_are_the_account_refused_even_under_a_429(code: int) -> None:
    status = 403 if code == 1103 else 429
    error = error_of({"code": code, "message": "Account in arrears", "request_id": "r"}, status)
    assert isinstance(error, AuthenticationFailed) and f"refused the account (HTTP {status})" in error.message
    assert "resource packs" in error.message


@pytest.mark.parametrize(("code", "status"), [(1302, 429), (1303, 429), (5000, 500), (5001, 503), (5002, 504)])
@pytest.mark.parametrize("inside_ok", [False, True])
def test_limits_and_server_trouble_are_unavailable_to_try_again_even_inside_a_200(
    code: int, status: int, inside_ok: bool
) -> None:
    error = error_of({"code": code, "message": "busy", "request_id": "r"}, 200 if inside_ok else status)
    assert isinstance(error, ProviderUnavailable) and "try again" in error.message.lower()


@pytest.mark.parametrize(("code", "status"), [(1200, 400), (1201, 400), (1300, 400), (1301, 400), (1202, 404)])
def test_request_and_policy_codes_quote_the_provider_as_a_protocol_error(code: int, status: int) -> None:
    error = error_of({"code": code, "message": "Invalid parameters", "request_id": "r"}, status)
    assert isinstance(error, ProviderProtocolError)
    assert f"code {code}" in error.message and "KLING_BASE_URL" in error.message


@pytest.mark.parametrize(
    ("body", "status"),
    [({"code": 1203, "message": "task not found"}, 404), ({"code": 1203, "message": "task not found"}, 200), ({}, 404)],
)
def test_a_task_the_family_does_not_have_is_task_not_found(body: dict[str, Any], status: int) -> None:
    assert isinstance(error_of(body, status), TaskNotFound)


def test_an_error_message_echoing_a_key_is_cleaned() -> None:
    redactor = Redactor([SECRET])
    with pytest.raises(AuthenticationFailed) as raised:
        read({"code": 1000, "message": f"bad signature for {SECRET}"}, 401, redactor)
    assert SECRET not in raised.value.message and REDACTED in raised.value.message


# ---- ids and the bare-id fallback ----


@pytest.mark.parametrize("family", FAMILIES)
async def test_each_documented_family_is_its_own_path_segment(family: str) -> None:
    kling = adapter()
    assert kling.validate_task_id(f"{family}/{TASK_ID}") == f"{family}/{TASK_ID}"
    async with httpx.AsyncClient() as client:
        request = kling.build_request(client, f"{family}/{TASK_ID}")
    assert request.url.raw_path.decode() == f"/v1/videos/{family}/{TASK_ID}"


@pytest.mark.parametrize(
    "task_id",
    [
        "image2video/",
        "/867",
        "images/867",
        "Text2Video/867",
        "text2video/867/x",
        "text2video/../x",
        "text2video/.x",
        "a b",
    ],
)
def test_an_id_with_an_unknown_family_or_a_bad_part_is_refused(task_id: str) -> None:
    with pytest.raises(InvalidTaskId):
        adapter().validate_task_id(task_id)


def test_the_refusal_of_an_unknown_family_lists_the_families() -> None:
    with pytest.raises(InvalidTaskId, match="omni-video"):
        adapter().validate_task_id("images/867283741759111202")


def test_the_base64_like_ids_of_2024_are_accepted() -> None:
    assert adapter().validate_task_id("CjNQtmctxFMAAAAAAGZ1Vw") == "CjNQtmctxFMAAAAAAGZ1Vw"


async def test_a_bare_id_not_found_as_text2video_is_read_again_as_image2video() -> None:
    kling = adapter()
    first = kling.parser_for(TASK_ID)
    step = read_reply(kling, reply({"code": 1203, "message": "task not found"}, 404), kling.redact, first)
    assert isinstance(step, Then)
    async with httpx.AsyncClient() as client:
        request = step.build(client, TASK_ID)
    assert request.url.raw_path.decode() == f"/v1/videos/image2video/{TASK_ID}"
    assert request.headers["authorization"].startswith("Bearer ")
    assert read_reply(kling, reply(SUCCEED), kling.redact, step.parse).status == "succeeded"  # type: ignore[union-attr]
    with pytest.raises(TaskNotFound, match="text2video or image2video"):
        read_reply(kling, reply({"code": 1203, "message": "task not found"}, 404), kling.redact, step.parse)


def test_a_family_qualified_id_is_not_tried_elsewhere() -> None:
    kling = adapter()
    with pytest.raises(TaskNotFound):
        read_reply(kling, reply({}, 404), kling.redact, kling.parser_for(f"text2video/{TASK_ID}"))


def test_a_bare_ids_found_answer_and_its_errors_are_read_as_usual() -> None:
    kling = adapter()
    first = kling.parser_for(TASK_ID)
    assert read_reply(kling, reply(PROCESSING), kling.redact, first).status == "running"  # type: ignore[union-attr]
    for status in (401, 404):
        with pytest.raises(AuthenticationFailed):
            read_reply(kling, reply({"code": 1004, "message": "expired"}, status), kling.redact, first)
    # A 404 that says the path itself is wrong is no reason to try another family.
    with pytest.raises(ProviderProtocolError):
        read_reply(kling, reply({"code": 1202, "message": "bad method"}, 404), kling.redact, first)


# ---- end to end, through the in-memory MCP client against the emulator ----


def text_of(result: CallToolResult) -> str:
    return "\n".join(part.text for part in result.content if part.type == "text")


def emulator(sandbox: Sandbox) -> KlingEmulator:
    found = sandbox["kling"]
    assert isinstance(found, KlingEmulator)
    return found


async def get_result(connect: Connect, task_id: str = TASK_ID, **settings: Any) -> CallToolResult:
    async with connect(**settings) as client:
        return await client.call_tool("get_generation_result", {"provider": "kling", "task_id": task_id})


def result_of(reply: CallToolResult) -> GenerationResult:
    assert not reply.is_error, text_of(reply)
    return GenerationResult.model_validate(reply.structured_content)


async def test_a_task_is_seen_submitted_then_processing_then_succeed_with_its_video(
    connect: Connect, sandbox: Sandbox, clock: VirtualClock
) -> None:
    kling = emulator(sandbox)
    kling.add_job(TASK_ID, Timeline(queued_s=2, running_s=6))
    seen = []
    async with connect() as client:
        for advance in (0, 3, 10):
            clock.advance(advance)
            reply = await client.call_tool("get_generation_result", {"provider": "kling", "task_id": TASK_ID})
            assert json.loads(text_of(reply)) == reply.structured_content
            seen.append(result_of(reply))
    assert [(r.status, r.provider_status) for r in seen] == [
        ("queued", "submitted"),
        ("running", "processing"),
        ("succeeded", "succeed"),
    ]
    (video,) = seen[-1].outputs
    assert video.url.startswith(f"{IN_PROCESS_ROOT}/kling/files/text2video/{TASK_ID}/") and video.url.endswith(".mp4")
    assert (video.duration_s, video.mime_type) == (5.042, "video/mp4")
    assert video.expires_at == "2026-12-22T10:00:00Z"  # created at 10:00 on the virtual clock, plus 30 days
    assert [logged.path for logged in kling.requests] == [f"/kling/v1/videos/text2video/{TASK_ID}"] * 3
    tokens = {logged.headers["authorization"] for logged in kling.requests}
    assert all(token.startswith("Bearer ey") for token in tokens)


async def test_a_bare_id_of_an_image2video_task_is_found_in_one_read_of_two_requests(
    connect: Connect, sandbox: Sandbox
) -> None:
    kling = emulator(sandbox)
    kling.add_job(f"image2video/{TASK_ID}", Timeline(queued_s=0, running_s=0))
    async with connect() as client:
        reply = await client.call_tool(
            "wait_for_generation", {"provider": "kling", "task_id": TASK_ID, "timeout_s": 30}
        )
    result = result_of(reply)
    assert (result.status, result.polls, result.task_id) == ("succeeded", 2, TASK_ID)
    assert [logged.path.rsplit("/", 2)[1] for logged in kling.requests] == ["text2video", "image2video"]
    # Each request carries its own signed token (in the same second, the same claims sign the same token).
    assert all(logged.headers["authorization"].startswith("Bearer ey") for logged in kling.requests)


async def test_a_wait_rides_out_a_fault_at_the_fallback_request(
    connect: Connect, sandbox: Sandbox, clock: VirtualClock
) -> None:
    kling = emulator(sandbox)
    kling.add_job(
        f"image2video/{TASK_ID}",
        Timeline(queued_s=0, running_s=0),
        faults=[Fault.rate_limited(3).aimed_at("image2video"), Fault.server_error(503).aimed_at("image2video")],
    )
    with anyio.fail_after(10):
        async with connect() as client:
            reply = await client.call_tool(
                "wait_for_generation", {"provider": "kling", "task_id": TASK_ID, "timeout_s": 60}
            )
    result = result_of(reply)
    assert (result.status, result.polls) == ("succeeded", 6)
    assert clock.sleeps[0] == pytest.approx(3, abs=1)


async def test_a_bare_id_in_neither_family_is_task_not_found_after_both(connect: Connect, sandbox: Sandbox) -> None:
    reply = await get_result(connect)
    assert reply.is_error and "task_not_found" in text_of(reply) and "image2video" in text_of(reply)
    assert [logged.path.rsplit("/", 2)[1] for logged in emulator(sandbox).requests] == ["text2video", "image2video"]


async def test_a_family_qualified_id_asks_that_family_only(connect: Connect, sandbox: Sandbox) -> None:
    kling = emulator(sandbox)
    kling.add_job(f"effects/{TASK_ID}", Timeline(queued_s=0, running_s=0, outcome="failed"), reason="Image invalid")
    result = result_of(await get_result(connect, f"effects/{TASK_ID}"))
    assert (result.status, result.task_id) == ("failed", f"effects/{TASK_ID}")
    assert result.error is not None and result.error.message == "Image invalid"
    missing = await get_result(connect, f"lip-sync/{TASK_ID}")
    assert "task_not_found" in text_of(missing)
    assert [logged.path for logged in kling.requests] == [
        f"/kling/v1/videos/effects/{TASK_ID}",
        f"/kling/v1/videos/lip-sync/{TASK_ID}",
    ]


@pytest.mark.parametrize(("offset_s", "code", "words"), [(3600, 1004, "has expired"), (-600, 1003, "not valid yet")])
async def test_a_token_the_emulator_finds_expired_or_early_is_authentication_failed_about_the_clock(
    connect: Connect, sandbox: Sandbox, offset_s: float, code: int, words: str
) -> None:
    kling = emulator(sandbox)
    kling.add_job(TASK_ID)
    kling.wall = lambda: time.time() + offset_s
    reply = await get_result(connect)
    assert reply.is_error and "authentication_failed" in text_of(reply)
    assert f"code {code}" in text_of(reply) and words in text_of(reply) and "clock" in text_of(reply)
    assert len(kling.requests) == 1, "a rejected token is not a not-found: no second family is tried"


@pytest.mark.parametrize("wrong", ["access", "secret"])
async def test_a_wrong_key_is_authentication_failed_and_no_key_or_token_is_repeated(
    connect: Connect, sandbox: Sandbox, wrong: str
) -> None:
    kling = emulator(sandbox)
    kling.add_job(TASK_ID)
    bad = "WRONG-key-0123456789"
    name = "KLING_ACCESS_KEY" if wrong == "access" else "KLING_SECRET_KEY"
    reply = await get_result(connect, env={**sandbox.env(), name: bad})
    assert reply.is_error and "authentication_failed" in text_of(reply) and "code 1000" in text_of(reply)
    sent = kling.requests[0].headers["authorization"].removeprefix("Bearer ")
    assert bad not in text_of(reply) and sent not in text_of(reply)


async def test_an_error_echoing_the_token_does_not_repeat_it(connect: Connect, sandbox: Sandbox) -> None:
    kling = emulator(sandbox)
    kling.add_job(TASK_ID, faults=[Fault("status", 400, message="Invalid parameters", echo_credentials=True)])
    reply = await get_result(connect)
    sent = kling.requests[0].headers["authorization"].removeprefix("Bearer ")
    assert reply.is_error and "Invalid parameters" in text_of(reply)
    assert sent not in text_of(reply) and REDACTED in text_of(reply)


async def test_a_depleted_resource_pack_ends_a_wait_at_once_though_it_comes_as_a_429(
    connect: Connect, sandbox: Sandbox, clock: VirtualClock
) -> None:
    kling = emulator(sandbox)
    kling.add_job(TASK_ID, faults=[Fault("status", 429, message="resource pack exhausted")], error_code=1102)
    async with connect() as client:
        args = {"provider": "kling", "task_id": TASK_ID, "timeout_s": 60}
        reply = await client.call_tool("wait_for_generation", args)
    assert reply.is_error and "authentication_failed" in text_of(reply) and "resource pack exhausted" in text_of(reply)
    assert clock.monotonic() == 0


async def test_an_id_sent_as_a_json_number_past_two_to_the_53_keeps_every_digit(
    connect: Connect, sandbox: Sandbox
) -> None:
    kling = emulator(sandbox)
    kling.add_job(TASK_ID, Timeline(queued_s=0, running_s=0))
    async with connect() as client:
        reply = await client.call_tool("get_generation_result", {"provider": "kling", "task_id": int(TASK_ID)})
    assert result_of(reply).task_id == TASK_ID
    assert [logged.path for logged in kling.requests] == [f"/kling/v1/videos/text2video/{TASK_ID}"]


async def test_without_both_keys_it_is_not_configured_and_nothing_is_sent(connect: Connect, sandbox: Sandbox) -> None:
    env = {k: v for k, v in sandbox.env().items() if k != "KLING_SECRET_KEY"}
    reply = await get_result(connect, env=env)
    assert reply.is_error and "provider_not_configured" in text_of(reply) and "KLING_SECRET_KEY" in text_of(reply)
    assert emulator(sandbox).requests == []


# ---- the emulator's own API behaviour ----


async def raw_get(sandbox: Sandbox, path: str, authorization: str | None) -> httpx.Response:
    headers = {"Authorization": authorization} if authorization is not None else {}
    transport = httpx.ASGITransport(app=sandbox.app)
    async with httpx.AsyncClient(transport=transport, base_url=IN_PROCESS_ROOT) as client:
        return await client.get("/kling/v1" + path, headers=headers)


def bearer(kling: KlingEmulator, now: float | None = None, **changes: str) -> str:
    access, secret = changes.get("access", kling.api_key), changes.get("secret", kling.secret_key)
    return "Bearer " + sign_jwt(access, secret, time.time() if now is None else now)


def forged(claims: dict[str, Any], header: dict[str, Any] | None = None, secret: str = "") -> str:
    def part(value: Any) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    head = part(header or {"alg": "HS256", "typ": "JWT"}) + "." + part(claims)
    signature = hmac.new(secret.encode(), head.encode(), hashlib.sha256).digest()
    return f"Bearer {head}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


async def test_the_emulator_checks_the_token_and_answers_the_documented_codes(sandbox: Sandbox) -> None:
    kling = emulator(sandbox)
    kling.add_job(TASK_ID)
    path = f"/videos/text2video/{TASK_ID}"
    now = time.time()
    claims = {"iss": kling.api_key, "exp": int(now) + 60, "nbf": int(now) - 5}
    cases = {
        None: 1001,
        "Bearer": 1002,
        "Basic abc": 1002,
        "Bearer not.a.jwt": 1002,
        forged(claims, {"alg": "none"}, kling.secret_key): 1002,
        forged({**claims, "exp": "later"}, secret=kling.secret_key): 1002,
        bearer(kling, access="AKsomebodyElse0123"): 1000,
        bearer(kling, secret="not-the-secret"): 1000,
        bearer(kling, now=now - TOKEN_LIFETIME_S - 1): 1004,
        bearer(kling, now=now + 60): 1003,
    }
    for authorization, code in cases.items():
        response = await raw_get(sandbox, path, authorization)
        assert (response.status_code, response.json()["code"]) == (401, code), authorization
        assert response.json()["message"] and response.json()["request_id"]
    ok = await raw_get(sandbox, path, bearer(kling))
    assert (ok.status_code, ok.json()["code"], ok.json()["message"]) == (200, 0, "SUCCEED")


async def test_the_emulator_renders_ids_as_strings_times_in_milliseconds_and_a_failed_task_in_a_200(
    sandbox: Sandbox, clock: VirtualClock
) -> None:
    kling = emulator(sandbox)
    kling.add_job(f"image2video/{TASK_ID}", Timeline(queued_s=1, running_s=1, outcome="failed"))
    clock.advance(5)
    response = await raw_get(sandbox, f"/videos/image2video/{TASK_ID}", bearer(kling))
    data = response.json()["data"]
    assert (response.status_code, response.json()["code"]) == (200, 0)
    assert (data["task_id"], data["task_status"], data["task_result"]) == (TASK_ID, "failed", {})
    assert data["task_status_msg"] and data["updated_at"] - data["created_at"] == 2000
    assert data["created_at"] == int(clock.now().timestamp() * 1000) - 5000
    elsewhere = await raw_get(sandbox, f"/videos/text2video/{TASK_ID}", bearer(kling))
    assert (elsewhere.status_code, elsewhere.json()["code"]) == (404, 1203)
    unknown = await raw_get(sandbox, f"/videos/images/{TASK_ID}", bearer(kling))
    assert (unknown.status_code, unknown.json()["code"]) == (404, 1202)


async def test_sandbox_ids_choose_their_outcome_and_missing_ones_do_not_exist(clock: VirtualClock) -> None:
    auto = Sandbox(clock)
    kling = emulator(auto)
    for outcome in KlingEmulator.outcomes:
        task_id = KlingEmulator.sandbox_id(7, outcome)
        assert (await raw_get(auto, f"/videos/text2video/{task_id}", bearer(kling))).status_code == 200
        assert kling.jobs[f"text2video/{task_id}"].timeline.outcome == outcome
    assert KlingEmulator.sandbox_id(7) == "867283741759111209"
    with pytest.raises(ValueError):
        KlingEmulator.sandbox_id(1, "canceled")
    missing = await raw_get(auto, "/videos/text2video/missing-1", bearer(kling))
    assert (missing.status_code, missing.json()["code"]) == (404, 1203)


async def test_the_example_id_is_a_succeeding_job_in_the_sandbox(clock: VirtualClock) -> None:
    auto = Sandbox(clock)
    kling = emulator(auto)
    await raw_get(auto, f"/videos/text2video/{Kling.example_task_id}", bearer(kling))
    assert kling.jobs[f"text2video/{Kling.example_task_id}"].timeline.outcome == "succeeded"


# ---- what the shared suites need ----

NOT_FOUND_LEAD = {"code": 1203, "message": "task not found", "request_id": "9984d27b-a408-4073-ae28-17ca6a13622d"}

EXPIRED = {"code": 1004, "message": "Authorization has expired", "request_id": "r"}
FUZZ_SEEDS: list[Any] = [SUBMITTED, PROCESSING, SUCCEED, FAILED, EXPIRED]


def _issued(task_id: str) -> bool:
    family, slash, bare = task_id.partition("/")
    if not slash:
        return safe_id(task_id)
    return family in FAMILIES and len(task_id) <= 256 and safe_id(bare)


def _paths(task_id: str) -> set[str]:
    family, slash, bare = task_id.partition("/")
    if slash:
        return one_segment(f"/videos/{family}/{{}}")(bare)
    return one_segment("/videos/text2video/{}", "/videos/image2video/{}")(task_id)


def _finished_with_key(key: str) -> tuple[str, list[Any]]:
    videos = [{"id": "1", "url": f"https://v15-kling.klingai.com/x.mp4?sig={key}", "duration": "5"}]
    return f"text2video/{TASK_ID}", [envelope(task("succeed", task_result={"videos": videos}))]


KIT = ProviderKit(
    seeds=FUZZ_SEEDS,
    issued=_issued,
    paths=_paths,
    plausible=st.one_of(
        st.integers(10**17, 10**19).map(str),
        st.builds("{}/{}".format, st.sampled_from([*FAMILIES, "Text2Video", "images"]), st.integers(0)),
        st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=30),
    ),
    finished_with_key=_finished_with_key,
    follow_ups=[(NOT_FOUND_LEAD, [SUCCEED, PROCESSING, FAILED, NOT_FOUND_LEAD])],
    body_decides=(range(200, 600), (AuthenticationFailed, TaskNotFound, ProviderProtocolError, ProviderUnavailable)),
    fault_overrides={
        # Kling's error envelope inside a 200 carries a code; the emulator's default, 5000, is a server error.
        "an error inside a 200": Expected("provider_unavailable", transient=True),
    },
)
