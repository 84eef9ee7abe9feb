"""MiniMax: the query parser and the file-lookup parser on payloads of every state and quirk (errors inside
200s, `file_id` as a string or a number, TitleCase words, both regions), ids, and the whole two-request read
through the in-memory MCP client against the emulator, faults at either request included."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import anyio
import httpx
import pytest
from hypothesis import strategies as st
from mcp.types import CallToolResult

from sandbox import Fault, Sandbox, Timeline
from sandbox.minimax import MiniMaxEmulator
from tests.conftest import Connect
from tests.providers.kit import Expected, ProviderKit
from tools.clock import VirtualClock
from tools.errors import (
    AuthenticationFailed,
    InvalidTaskId,
    ProviderProtocolError,
    ProviderUnavailable,
    TaskNotFound,
)
from tools.providers.base import Reply, Then
from tools.providers.minimax import MiniMax
from tools.redact import Redactor
from tools.result import GenerationResult, JobState
from tools.service import read_reply

TASK_ID = "176843862716480"
FILE_ID = "176844028768320"
KEY = "eyJhbGciOiJSUzI1NiJ9.test-key-0123456789"
OSS = "https://public-cdn-video-data-algeng.oss-cn-wulanchabu.aliyuncs.com/inference_output/video/output.mp4"
DATE = "Sun, 22 Nov 2026 10:00:00 GMT"
OK = {"status_code": 0, "status_msg": "success"}


def adapter(base_url: str | None = None) -> MiniMax:
    env = {"MINIMAX_API_KEY": KEY, **({"MINIMAX_BASE_URL": base_url} if base_url else {})}
    return MiniMax.from_env(env, Redactor())


def query(status: str = "Queueing", **fields: Any) -> dict[str, Any]:
    return {"task_id": TASK_ID, "status": status, "file_id": "", "base_resp": OK, **fields}


def success(**fields: Any) -> dict[str, Any]:
    return query("Success", **{"file_id": FILE_ID, "video_width": 1920, "video_height": 1080, **fields})


def file_reply(**fields: Any) -> dict[str, Any]:
    file = {
        "file_id": int(FILE_ID),
        "bytes": 5896337,
        "created_at": 1795341600,
        "filename": "output.mp4",
        "purpose": "video_generation",
        "download_url": f"{OSS}?Expires=1795359600&OSSAccessKeyId=LTAI&Signature=abc%3D",
    }
    file.update(fields)
    return {"file": file, "base_resp": OK}


def raw(body: Any) -> bytes:
    return body if isinstance(body, bytes) else json.dumps(body).encode()


def parse(body: Any, status_code: int = 200, provider: MiniMax | None = None) -> JobState | Then:
    return (provider or adapter()).parse(Reply(status_code, raw(body)))


def state_of(body: Any) -> JobState:
    outcome = parse(body)
    assert isinstance(outcome, JobState), outcome
    return outcome


def read_file(file_body: Any, status_code: int = 200, query_body: Any = None) -> JobState:
    provider = adapter()
    step = parse(query_body or success(), provider=provider)
    assert isinstance(step, Then)
    outcome = read_reply(provider, Reply(status_code, raw(file_body), {"date": DATE}), provider.redact, step.parse)
    assert isinstance(outcome, JobState)
    return outcome


# ---- the query, state by state ----


@pytest.mark.parametrize(
    ("word", "status"),
    [("Preparing", "queued"), ("Queueing", "queued"), ("Processing", "running"), ("Fail", "failed")],
)
def test_each_titlecase_status_reads_as_its_normalized_state(word: str, status: str) -> None:
    state = state_of(query(word))
    assert (state.status, state.provider_status, state.outputs, state.progress) == (status, word, (), None)


def test_failed_spelled_out_is_failed_too() -> None:
    assert state_of(query("Failed")).status == "failed"


def test_an_unknown_status_word_is_running_and_kept_as_said() -> None:
    state = state_of(query("Rendering"))
    assert (state.status, state.provider_status) == ("running", "Rendering")


def test_a_failed_task_carries_the_sensitive_content_code_and_words() -> None:
    state = state_of(query("Fail", base_resp={"status_code": 1027, "status_msg": "output video sensitive"}))
    assert state.error is not None
    assert (state.status, state.error.code, state.error.message) == ("failed", "1027", "output video sensitive")


def test_a_sensitive_input_code_without_a_status_is_a_failed_task() -> None:
    state = state_of({"base_resp": {"status_code": 1026, "status_msg": "input new_sensitive"}})
    assert (state.status, state.error.code if state.error else None) == ("failed", "1026")


def test_a_successful_task_leads_on_to_the_file_lookup_by_its_file_id() -> None:
    assert isinstance(parse(success()), Then)


@pytest.mark.parametrize("file_id", [FILE_ID, int(FILE_ID)])
async def test_the_file_lookup_sends_the_file_id_as_its_one_query_parameter(file_id: str | int) -> None:
    step = parse(success(file_id=file_id))
    assert isinstance(step, Then)
    async with httpx.AsyncClient() as client:
        request = step.build(client, TASK_ID)
    assert str(request.url) == f"https://api.minimax.io/v1/files/retrieve?file_id={FILE_ID}"
    assert request.headers["authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize("file_id", ["", None, "12&task_id=1", "../1", -5, 1.5, True, "\uff11\uff12"])
def test_a_success_without_a_file_id_of_digits_is_a_protocol_error_and_nothing_more_is_asked(file_id: Any) -> None:
    with pytest.raises(ProviderProtocolError, match="file id"):
        parse(success(file_id=file_id))


# ---- errors inside a 200 ----


@pytest.mark.parametrize("code", [1004, 2049])
def test_a_rejected_key_is_authentication_failed_and_names_the_other_regions_host(code: int) -> None:
    body = {"base_resp": {"status_code": code, "status_msg": "invalid api key"}}
    with pytest.raises(AuthenticationFailed) as caught:
        parse(body)
    assert "invalid api key" in caught.value.message and "MINIMAX_API_KEY" in caught.value.message
    assert "MINIMAX_BASE_URL=https://api.minimaxi.com/v1" in caught.value.message

    with pytest.raises(AuthenticationFailed) as mainland:
        parse(body, provider=adapter("https://api.minimaxi.com/v1"))
    assert "MINIMAX_BASE_URL=https://api.minimax.io/v1" in mainland.value.message


@pytest.mark.parametrize(("code", "said"), [(1008, "insufficient balance"), (2038, "real-name verification")])
def test_an_account_without_balance_or_verification_is_refused(code: int, said: str) -> None:
    with pytest.raises(AuthenticationFailed, match=f"refused the account.*{said}"):
        parse({"base_resp": {"status_code": code, "status_msg": said}})


@pytest.mark.parametrize("code", [1002, 1039, 1041, 1000, 1001, 1024, 1033])
def test_rate_limits_and_server_trouble_are_worth_retrying(code: int) -> None:
    with pytest.raises(ProviderUnavailable, match=rf"\({code}\)"):
        parse({"base_resp": {"status_code": code, "status_msg": "rate limit"}})


def test_invalid_params_for_the_one_id_of_a_query_is_task_not_found() -> None:
    with pytest.raises(TaskNotFound, match="invalid params"):
        parse({"base_resp": {"status_code": 2013, "status_msg": "invalid params, task_id is invalid"}})


def test_another_code_quotes_minimax() -> None:
    with pytest.raises(ProviderProtocolError, match=r"something new \(2999\)"):
        parse({"base_resp": {"status_code": 2999, "status_msg": "something new"}})


@pytest.mark.parametrize(
    ("code", "error"), [(401, AuthenticationFailed), (404, TaskNotFound), (400, ProviderProtocolError)]
)
def test_http_errors_outside_the_200_convention_are_read_by_their_status(code: int, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse({"base_resp": {"status_code": 1004, "status_msg": "nope"}}, code)


@pytest.mark.parametrize("body", [b"[]", b'{"base_resp": {"status_code": 0}}', b"<html></html>", b""])
def test_a_200_that_is_not_a_task_is_a_protocol_error(body: bytes) -> None:
    with pytest.raises(ProviderProtocolError):
        parse(body)


# ---- the file lookup ----


def test_the_file_gives_the_video_with_the_querys_size_and_its_signed_urls_expiry() -> None:
    state = read_file(file_reply())
    assert (state.status, state.provider_status, state.progress) == ("succeeded", "Success", None)
    (video,) = state.outputs
    assert video.model_dump(exclude_none=True) == {
        "url": f"{OSS}?Expires=1795359600&OSSAccessKeyId=LTAI&Signature=abc%3D",
        "kind": "video",
        "mime_type": "video/mp4",
        "width": 1920,
        "height": 1080,
        "size_bytes": 5896337,
        "expires_at": "2026-11-22T15:00:00Z",
    }


def test_a_url_that_does_not_say_when_it_expires_lasts_the_documented_nine_hours_from_the_reply() -> None:
    state = read_file(file_reply(download_url=f"{OSS}?sig=1"))
    assert state.outputs[0].expires_at == "2026-11-22T19:00:00Z"


def test_a_file_id_given_back_as_a_string_reads_the_same() -> None:
    assert read_file(file_reply(file_id=FILE_ID)).outputs[0].size_bytes == 5896337


def test_a_file_reply_without_a_download_url_is_a_protocol_error() -> None:
    with pytest.raises(ProviderProtocolError, match="download_url"):
        read_file(file_reply(download_url=None))


def test_an_unknown_file_id_says_the_file_is_gone() -> None:
    with pytest.raises(ProviderProtocolError, match="no file"):
        read_file({"base_resp": {"status_code": 2013, "status_msg": "invalid params"}})


def test_a_rate_limit_at_the_file_lookup_is_worth_retrying() -> None:
    with pytest.raises(ProviderUnavailable):
        read_file({"base_resp": {"status_code": 429}}, 429)


# ---- ids ----


@pytest.mark.parametrize(
    "task_id", ["abc", "1768-1", "\uff11\uff17\uff16\uff18", "\u00b2\u00b3", "12 3", "1" * 33, "12%26x=1", "-1"]
)
def test_anything_but_digits_is_an_invalid_task_id(task_id: str) -> None:
    with pytest.raises(InvalidTaskId):
        adapter().validate_task_id(task_id)


async def test_the_query_sends_the_task_id_as_its_one_query_parameter() -> None:
    async with httpx.AsyncClient() as client:
        request = adapter().build_request(client, TASK_ID)
    assert str(request.url) == f"https://api.minimax.io/v1/query/video_generation?task_id={TASK_ID}"
    assert request.headers["authorization"] == f"Bearer {KEY}"


# ---- through the MCP client ----


def text_of(reply: CallToolResult) -> str:
    assert reply.content and reply.content[0].type == "text"
    return reply.content[0].text


def emulator(sandbox: Sandbox) -> MiniMaxEmulator:
    found = sandbox["minimax"]
    assert isinstance(found, MiniMaxEmulator)
    return found


async def get_result(connect: Connect, task_id: str = TASK_ID, **settings: Any) -> CallToolResult:
    async with connect(**settings) as client:
        return await client.call_tool("get_generation_result", {"provider": "minimax", "task_id": task_id})


def paths(minimax: MiniMaxEmulator) -> list[str]:
    return [logged.path.removeprefix("/minimax/v1/") for logged in minimax.requests]


async def test_a_task_is_seen_preparing_queueing_processing_then_its_file(
    connect: Connect, sandbox: Sandbox, clock: VirtualClock
) -> None:
    minimax = emulator(sandbox)
    job = minimax.add_job(TASK_ID, Timeline(queued_s=4, running_s=6))
    seen: list[GenerationResult] = []
    async with connect() as client:
        for advance in (0, 3, 4, 10):
            clock.advance(advance)
            reply = await client.call_tool("get_generation_result", {"provider": "minimax", "task_id": TASK_ID})
            assert not reply.is_error, text_of(reply)
            seen.append(GenerationResult.model_validate(reply.structured_content))

    assert [(r.status, r.provider_status) for r in seen] == [
        ("queued", "Preparing"),
        ("queued", "Queueing"),
        ("running", "Processing"),
        ("succeeded", "Success"),
    ]
    (video,) = seen[-1].outputs
    assert (video.width, video.height, video.size_bytes, video.mime_type) == (1920, 1080, 5896337, "video/mp4")
    assert video.url.startswith(f"http://sandbox.genresult.invalid/minimax/files/{TASK_ID}/output.mp4?Expires=")
    assert video.expires_at == "2026-11-22T19:00:17Z"
    assert paths(minimax) == ["query/video_generation"] * 4 + ["files/retrieve"]
    assert [logged.query for logged in minimax.requests][-2:] == [
        f"task_id={TASK_ID}",
        f"file_id={minimax.file_id(job)}",
    ]
    assert {logged.headers["authorization"] for logged in minimax.requests} == {f"Bearer {minimax.api_key}"}


@pytest.mark.parametrize(
    ("detail", "word", "code"), [({}, "Fail", "1027"), ({"fail_word": "Failed"}, "Failed", "1027")]
)
async def test_a_failed_task_is_a_result_with_its_code(
    connect: Connect, sandbox: Sandbox, detail: dict[str, Any], word: str, code: str
) -> None:
    emulator(sandbox).add_job(TASK_ID, Timeline(queued_s=0, running_s=0, outcome="failed"), **detail)
    result = GenerationResult.model_validate((await get_result(connect)).structured_content)
    assert (result.status, result.provider_status, result.outputs) == ("failed", word, [])
    assert result.error is not None and (result.error.code, result.error.message) == (code, "output video sensitive")


@pytest.mark.parametrize("fault", [Fault.rate_limited(3), Fault.server_error(502), Fault.reset()])
async def test_a_wait_rides_out_trouble_at_the_file_lookup(connect: Connect, sandbox: Sandbox, fault: Fault) -> None:
    minimax = emulator(sandbox)
    minimax.add_job(TASK_ID, Timeline(queued_s=0, running_s=0), faults=[fault.aimed_at("file")])
    with anyio.fail_after(10):
        async with connect() as client:
            reply = await client.call_tool(
                "wait_for_generation", {"provider": "minimax", "task_id": TASK_ID, "timeout_s": 60}
            )
    result = GenerationResult.model_validate(reply.structured_content)
    assert (result.status, result.timed_out, len(result.outputs), result.polls) == ("succeeded", False, 1, 4)
    assert paths(minimax) == ["query/video_generation", "files/retrieve"] * 2


async def test_a_fault_aimed_at_the_file_lookup_leaves_the_query_alone(connect: Connect, sandbox: Sandbox) -> None:
    minimax = emulator(sandbox)
    minimax.add_job(TASK_ID, Timeline(queued_s=5, running_s=0), faults=[Fault.server_error(500).aimed_at("file")])
    first = await get_result(connect)
    assert GenerationResult.model_validate(first.structured_content).status == "queued"
    assert len(minimax.jobs[TASK_ID].faults) == 1


@pytest.mark.parametrize(
    ("error_code", "said", "tool_error"),
    [
        (1004, "login fail", "authentication_failed"),
        (1008, "insufficient balance", "authentication_failed"),
        (2038, "real-name verification", "authentication_failed"),
        (2013, "invalid params", "task_not_found"),
        (1002, "rate limit", "provider_unavailable"),
        (1039, "token limit", "provider_unavailable"),
        (1024, "internal error", "provider_unavailable"),
    ],
)
async def test_each_documented_code_inside_a_200_gives_its_tool_error(
    connect: Connect, sandbox: Sandbox, error_code: int, said: str, tool_error: str
) -> None:
    emulator(sandbox).add_job(TASK_ID, faults=[Fault.error_in_ok(said)], error_code=error_code)
    reply = await get_result(connect)
    assert reply.is_error and f"{tool_error}: " in text_of(reply) and said in text_of(reply)


async def test_a_key_from_the_other_region_is_authentication_failed_and_says_which_host(
    connect: Connect, sandbox: Sandbox
) -> None:
    emulator(sandbox).add_job(TASK_ID)
    mainland_key = "eyJhbGciOiJSUzI1NiJ9.mainland-key-9876543210"
    reply = await get_result(connect, env={**sandbox.env(), "MINIMAX_API_KEY": mainland_key})
    assert reply.is_error and "authentication_failed: " in text_of(reply)
    assert "invalid api key" in text_of(reply) and "own region's host" in text_of(reply)
    assert "https://api.minimaxi.com/v1" in text_of(reply) and mainland_key not in text_of(reply)


async def test_an_unknown_task_is_task_not_found(connect: Connect, sandbox: Sandbox) -> None:
    reply = await get_result(connect)
    assert reply.is_error and "task_not_found" in text_of(reply)
    assert paths(emulator(sandbox)) == ["query/video_generation"]


async def test_an_id_that_is_not_digits_is_refused_before_anything_is_sent(connect: Connect, sandbox: Sandbox) -> None:
    reply = await get_result(connect, "1768&file_id=1")
    assert reply.is_error and "invalid_task_id" in text_of(reply)
    assert emulator(sandbox).requests == []


async def test_without_a_key_it_is_not_configured_and_nothing_is_sent(connect: Connect, sandbox: Sandbox) -> None:
    reply = await get_result(connect, env={"MINIMAX_BASE_URL": sandbox.env()["MINIMAX_BASE_URL"]})
    assert reply.is_error and "provider_not_configured" in text_of(reply) and "MINIMAX_API_KEY" in text_of(reply)
    assert emulator(sandbox).requests == []


async def test_the_emulator_answers_a_missing_key_with_1004_inside_a_200(sandbox: Sandbox) -> None:
    transport = httpx.ASGITransport(app=sandbox.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox.genresult.invalid") as http:
        response = await http.get("/minimax/v1/query/video_generation", params={"task_id": TASK_ID})
    assert response.status_code == 200
    assert response.json()["base_resp"]["status_code"] == 1004


async def test_sandbox_ids_choose_their_outcome_and_only_digits_exist(clock: VirtualClock) -> None:
    auto = Sandbox(clock)
    minimax = emulator(auto)
    transport = httpx.ASGITransport(app=auto.app)
    headers = {"Authorization": f"Bearer {minimax.api_key}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox.genresult.invalid") as http:
        for task_id in (
            MiniMaxEmulator.sandbox_id(1),
            MiniMaxEmulator.sandbox_id(1, "failed"),
            MiniMax.example_task_id,
        ):
            response = await http.get(
                "/minimax/v1/query/video_generation", params={"task_id": task_id}, headers=headers
            )
            assert response.json()["base_resp"]["status_code"] == 0
        for missing in ("404123", "abc"):
            response = await http.get(
                "/minimax/v1/query/video_generation", params={"task_id": missing}, headers=headers
            )
            assert response.json()["base_resp"]["status_code"] == 2013
    assert [job.timeline.outcome for job in minimax.jobs.values()] == ["succeeded", "failed", "succeeded"]


# The documented payloads of PROVIDERS-MORE.md §6: the shared fuzz suite grows near misses from them.
FUZZ_SEEDS: list[Any] = [
    query("Queueing"),
    {"task_id": TASK_ID, "status": "Processing", "base_resp": OK},
    success(),
    {"task_id": TASK_ID, "status": "Fail", "base_resp": {"status_code": 1027, "status_msg": "output video sensitive"}},
    {"base_resp": {"status_code": 1004, "status_msg": "login fail: Please carry the API secret key"}},
]

FILE_SEEDS: list[Any] = [
    file_reply(),
    file_reply(file_id=FILE_ID, download_url=f"{OSS}?sig=1"),
    {"base_resp": {"status_code": 2013, "status_msg": "invalid params, file_id is invalid"}},
]

KIT = ProviderKit(
    seeds=FUZZ_SEEDS,
    follow_ups=[(success(), FILE_SEEDS), (success(file_id=int(FILE_ID)), FILE_SEEDS)],
    issued=lambda task_id: task_id.isascii() and task_id.isdigit() and len(task_id) <= 32,
    paths=lambda task_id: {"/query/video_generation", "/files/retrieve"},
    query=lambda task_id: "task_id=" + quote(task_id, safe=""),
    finished_read_requests=2,
    plausible=st.integers(0, 10**33).map(str),
    # The documented retryable codes (rate limit, server trouble) come inside HTTP 200.
    body_decides=(range(200, 201), (ProviderUnavailable,)),
    fault_overrides={
        # MiniMax's own error body inside a 200 is code 1024, "internal error": its docs say to retry.
        "an error inside a 200": Expected("provider_unavailable", transient=True),
    },
    finished_with_key=lambda key: (
        TASK_ID,
        [success(), file_reply(download_url=f"{OSS}?Expires=1795359600&Signature={key}")],
    ),
)
