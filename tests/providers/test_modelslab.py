"""ModelsLab: the parser against the documented payloads, id rules, settings, and the whole path through MCP."""

from __future__ import annotations

import json
import re
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import strategies as st
from mcp import Client
from mcp.types import CallToolResult, TextContent

from sandbox import Fault, Sandbox, Timeline
from sandbox.modelslab import ModelsLabEmulator
from server.app import build_server
from server.settings import Settings, SettingsError
from tests.conftest import Connect
from tests.providers.kit import Expected, ProviderKit, one_segment
from tools.clock import VirtualClock
from tools.errors import (
    AuthenticationFailed,
    InvalidTaskId,
    ProviderProtocolError,
    ProviderUnavailable,
    TaskNotFound,
)
from tools.providers.base import Reply
from tools.providers.modelslab import ModelsLab
from tools.redact import Redactor
from tools.result import GenerationResult, JobError

KEY = "ml-test-key-5f3a9c1e7b2d4068"
R2 = "https://pub-3626123a908346a7a8be8d9295f44e26.r2.dev/video_generations"

# The docs' own examples (docs.modelslab.com video-api/texttovideo and fetchvideo), trimmed of unused meta.
PROCESSING = {
    "status": "processing",
    "tip": "Your image is processing in background, you can get this image using fetch API",
    "eta": 960,
    "message": "Try to fetch request after seconds estimated",
    "fetch_result": "https://modelslab.com/api/v6/video/fetch/134799477",
    "id": 134799477,
    "output": [],
    "meta": {"fps": 7, "height": 320, "id": "134799477", "num_frames": 16, "output_type": "gif", "width": 512},
    "future_links": [f"{R2}/0de9b0ff.gif"],
}
LEGACY_PROCESSING = {
    "status": "processing",
    "message": "try again later.",
    "output": "",
    "tip": "Get 20x faster image generation using enterprise plan. Click here : https://modelslab.com/enterprise",
}
SUCCESS = {
    "status": "success",
    "generationTime": 4.49,
    "id": 147,
    "output": [f"{R2}/907c4d23.gif"],
    "proxy_links": [f"{R2}/907c4d23.gif"],
    "meta": {"fps": 7, "height": 512, "num_frames": 25, "output_type": "gif", "width": 512, "clip_skip": None},
    "future_links": [f"{R2}/907c4d23.gif"],
}


def adapter(env: dict[str, str] | None = None) -> ModelsLab:
    return ModelsLab.from_env({"MODELSLAB_API_KEY": KEY, **(env or {})}, Redactor())


def reply(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Reply(status, raw, headers or {})


# ---- the parser ----


def test_processing_reads_as_running_with_the_eta_and_no_outputs_yet() -> None:
    state = adapter().parse(reply(PROCESSING))
    assert (state.status, state.provider_status, state.eta_s) == ("running", "processing", 960)
    assert state.outputs == ()
    assert state.error is None


def test_the_legacy_processing_shape_with_an_empty_output_string_is_still_running() -> None:
    state = adapter().parse(reply(LEGACY_PROCESSING))
    assert (state.status, state.eta_s, state.outputs) == ("running", None, ())


def test_success_lists_each_file_once_with_the_echoed_size_frames_and_fps() -> None:
    state = adapter().parse(reply(SUCCESS))
    assert state.status == "succeeded"
    assert state.progress is None
    assert state.cost is None
    [output] = state.outputs
    assert output.url == f"{R2}/907c4d23.gif"
    assert (output.kind, output.mime_type) == ("video", "image/gif")
    assert (output.width, output.height, output.frames, output.fps) == (512, 512, 25, 7)
    assert output.duration_s == 3.57


def test_success_lists_output_and_not_its_cdn_mirror() -> None:
    body = {**SUCCESS, "output": [f"{R2}/a.mp4"], "proxy_links": ["https://cdn2.stablediffusionapi.com/a.mp4"]}
    state = adapter().parse(reply(body))
    assert [o.url for o in state.outputs] == [f"{R2}/a.mp4"]
    assert state.outputs[0].mime_type == "video/mp4"


def test_success_with_an_empty_output_falls_back_to_the_cdn_mirror() -> None:
    body = {"status": "success", "id": 147, "output": [], "proxy_links": ["https://cdn2.stablediffusionapi.com/a.mp4"]}
    [output] = adapter().parse(reply(body)).outputs
    assert output.url == "https://cdn2.stablediffusionapi.com/a.mp4"
    assert output.width is None


def test_meta_numbers_sent_as_strings_are_read_and_an_empty_php_meta_is_ignored() -> None:
    strings = {**SUCCESS, "meta": {"width": "768", "height": "432", "num_frames": "24", "fps": "8"}}
    [output] = adapter().parse(reply(strings)).outputs
    assert (output.width, output.height, output.frames, output.fps, output.duration_s) == (768, 432, 24, 8, 3)
    [bare] = adapter().parse(reply({**SUCCESS, "meta": []})).outputs
    assert (bare.width, bare.frames, bare.duration_s) == (None, None, None)


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        ({"status": "error", "message": "Failed to generate video"}, "error", "Failed to generate video"),
        ({"status": "failed", "message": "Generation failed"}, "failed", "Generation failed"),
        ({"status": "error", "messege": "Failed to generate video"}, "error", "Failed to generate video"),
        ({"status": "failed", "messege": "NSFW content detected"}, "failed", "NSFW content detected"),
    ],
)
def test_both_failure_words_and_the_messege_spelling_are_a_failed_job(body: Any, code: str, message: str) -> None:
    state = adapter().parse(reply(body))
    assert (state.status, state.provider_status) == ("failed", body["status"])
    assert state.error is not None
    assert (state.error.code, state.error.message) == (code, message)


@pytest.mark.parametrize(
    "message",
    [
        "Failed to interpolate key frames",
        "Invalid image key frame",
        "No video was generated: the prompt was filtered",
        "Model not found for this request",
        "Init video not found at the given URL, generation aborted",
        "The key frame is missing",
    ],
)
def test_a_failure_reason_other_than_the_documented_refusals_stays_a_failed_job(message: str) -> None:
    state = adapter().parse(reply({"status": "error", "message": message}))
    assert (state.status, state.error) == ("failed", JobError(code="error", message=message))


def test_a_long_message_is_cut_only_after_the_key_is_redacted() -> None:
    message = "x" * 290 + f" {KEY}"
    state = adapter().parse(reply({"status": "error", "message": message}))
    assert state.error is not None
    assert KEY[:6] not in state.error.message


@pytest.mark.parametrize("body", [{"status": "error"}, {"status": "failed", "message": ""}])
def test_a_failure_without_a_reason_is_failed_with_no_invented_error(body: dict[str, Any]) -> None:
    state = adapter().parse(reply(body))
    assert (state.status, state.provider_status, state.error) == ("failed", body["status"], None)


def test_a_validation_error_object_is_kept_as_compact_json() -> None:
    state = adapter().parse(reply({"status": "error", "message": {"prompt": ["prompt is required"]}}))
    assert state.error is not None
    assert state.error.message == '{"prompt":["prompt is required"]}'


@pytest.mark.parametrize("status", [200, 400, 401])
@pytest.mark.parametrize(
    "message", ["Invalid API key", "key is required", "Missing key parameter", "API key is revoked", "Unauthorized"]
)
def test_a_refused_key_is_authentication_failed_whatever_the_http_code(status: int, message: str) -> None:
    with pytest.raises(AuthenticationFailed, match="MODELSLAB_API_KEY"):
        adapter().parse(reply({"status": "error", "message": message}, status))


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (402, "Insufficient credits. Please add more credits to continue."),
        (403, "This feature requires a premium subscription"),
        (400, "Insufficient credits. Please add more credits to continue."),
    ],
)
def test_credit_and_plan_refusals_are_the_account_refused_with_the_reason_and_what_to_check(
    status: int, message: str
) -> None:
    with pytest.raises(AuthenticationFailed) as refused:
        adapter().parse(reply({"status": "error", "message": message}, status))
    text = refused.value.message
    assert f"refused the account (HTTP {status})" in text and message in text
    assert "credits and plan" in text and "MODELSLAB_API_KEY" in text and "rejected the credentials" not in text


@pytest.mark.parametrize("message", ["width must be between 256 and 1024", "Request failed, wrong parameters"])
def test_another_4xx_with_words_quotes_them_and_says_to_check_the_id_and_endpoint(message: str) -> None:
    with pytest.raises(ProviderProtocolError) as refused:
        adapter().parse(reply({"status": "error", "message": message}, 400))
    text = refused.value.message
    assert f"(HTTP 400): {message}" in text and "Check the task id" in text and "MODELSLAB_ENDPOINT" in text
    assert "_BASE_URL" not in text


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"status": "error", "message": "Video not found"}, 404),
        ({"status": "error", "message": "Video not found"}, 200),
        ({"status": "error", "messege": "Request not found"}, 200),
        ({"status": "error", "message": "Invalid id"}, 400),
        (b"", 404),
    ],
)
def test_a_not_found_answer_is_task_not_found(body: Any, status: int) -> None:
    with pytest.raises(TaskNotFound):
        adapter().parse(reply(body, status))


def test_an_echoed_key_is_redacted_from_every_message() -> None:
    with pytest.raises(AuthenticationFailed) as refused:
        adapter().parse(reply({"status": "error", "message": f"Invalid API key {KEY}"}, 401))
    assert KEY not in str(refused.value)
    state = adapter().parse(reply({"status": "error", "message": f"Failed to generate video for {KEY}"}))
    assert state.error is not None
    assert KEY not in state.error.message


@pytest.mark.parametrize(
    ("word", "status"), [("queued", "queued"), ("PROCESSING", "running"), ("rendering", "running")]
)
def test_other_status_words_go_through_the_shared_table_and_unknown_ones_read_running(word: str, status: str) -> None:
    assert adapter().parse(reply({"status": word})).status == status


@pytest.mark.parametrize(
    "raw",
    [
        reply(b"<!DOCTYPE html><html>nginx</html>"),
        reply({"output": []}),
        reply(["not", "an", "object"]),
        reply({"status": "error", "message": "width must be between 256 and 1024"}, 400),
    ],
)
def test_answers_outside_the_documented_shape_are_protocol_errors(raw: Reply) -> None:
    with pytest.raises(ProviderProtocolError):
        adapter().parse(raw)


def test_a_429_honours_the_retry_after_in_the_body_and_a_header_wins() -> None:
    body = {"status": "error", "message": "Rate limit exceeded. Maximum 5 queued requests allowed.", "retry_after": 30}
    with pytest.raises(ProviderUnavailable) as from_body:
        adapter().common_errors(reply(body, 429))
    assert from_body.value.retry_after == 30
    with pytest.raises(ProviderUnavailable) as from_header:
        adapter().common_errors(reply(body, 429, {"retry-after": "5"}))
    assert from_header.value.retry_after == 5


# ---- ids and settings ----


@pytest.mark.parametrize("task_id", ["147", "0", "134799477", "9223372036854775807"])
def test_ids_are_whole_numbers_up_to_int64(task_id: str) -> None:
    assert adapter().validate_task_id(task_id) == task_id


@pytest.mark.parametrize(
    "task_id", ["", " ", "abc", "14 7", "-1", "1.5", "147/../1", "gen_123", "9223372036854775808", "1" * 20]
)
def test_anything_but_an_int64_is_an_invalid_task_id(task_id: str) -> None:
    with pytest.raises(InvalidTaskId):
        adapter().validate_task_id(task_id)


def test_an_unknown_endpoint_setting_names_the_variable_and_both_values() -> None:
    with pytest.raises(ValueError, match="MODELSLAB_ENDPOINT") as raised:
        adapter({"MODELSLAB_ENDPOINT": "v7"})
    assert "'v6'" in str(raised.value)
    assert "'enterprise'" in str(raised.value)
    with pytest.raises(SettingsError, match="MODELSLAB_ENDPOINT='v7'"):
        Settings.from_env({"MODELSLAB_ENDPOINT": "v7"})


def test_the_endpoint_setting_ignores_case_and_defaults_to_v6() -> None:
    client = httpx.AsyncClient()
    assert adapter().build_request(client, "1").url.path == "/api/v6/video/fetch/1"
    enterprise = adapter({"MODELSLAB_ENDPOINT": " Enterprise "})
    assert enterprise.build_request(client, "1").url.path == "/api/v1/enterprise/video/fetch/1"


# ---- through MCP, against the emulator ----


def modelslab(sandbox: Sandbox) -> ModelsLabEmulator:
    emulator = sandbox["modelslab"]
    assert isinstance(emulator, ModelsLabEmulator)
    return emulator


async def call(client: Client, tool: str, **arguments: Any) -> CallToolResult:
    with anyio.fail_after(10):
        return await client.call_tool(tool, {"provider": "modelslab", **arguments})


def text(result: CallToolResult) -> str:
    [content] = result.content
    assert isinstance(content, TextContent)
    return content.text


def answer(result: CallToolResult) -> GenerationResult:
    assert not result.is_error, text(result)
    return GenerationResult.model_validate(result.structured_content)


def error_code(result: CallToolResult) -> str:
    assert result.is_error
    return text(result).split(":", 1)[0]


async def test_a_processing_job_is_fetched_by_post_with_the_key_in_the_json_body(
    connect: Connect, sandbox: Sandbox
) -> None:
    emulator = modelslab(sandbox)
    emulator.add_job("148", Timeline(queued_s=5, running_s=40))
    async with connect() as client:
        result = answer(await call(client, "get_generation_result", task_id="148"))
    assert (result.status, result.provider_status, result.done, result.eta_s) == ("running", "processing", False, 45)
    [sent] = emulator.requests
    assert (sent.method, sent.path) == ("POST", "/modelslab/api/v6/video/fetch/148")
    assert sent.headers["content-type"] == "application/json"
    assert json.loads(sent.body) == {"key": emulator.api_key}
    assert "authorization" not in sent.headers


async def test_the_enterprise_setting_fetches_from_the_enterprise_path(connect: Connect, sandbox: Sandbox) -> None:
    emulator = modelslab(sandbox)
    emulator.add_job("147", Timeline(queued_s=0, running_s=0))
    async with connect({**sandbox.env(), "MODELSLAB_ENDPOINT": "enterprise"}) as client:
        result = answer(await call(client, "get_generation_result", task_id="147"))
    assert result.status == "succeeded"
    [sent] = emulator.requests
    assert (sent.method, sent.path) == ("POST", "/modelslab/api/v1/enterprise/video/fetch/147")
    assert json.loads(sent.body) == {"key": emulator.api_key}


async def test_waiting_follows_the_eta_until_the_video_is_there(
    connect: Connect, sandbox: Sandbox, clock: VirtualClock
) -> None:
    modelslab(sandbox).add_job("149", Timeline(queued_s=2, running_s=15), output_type="gif", fps=8, num_frames=24)
    async with connect() as client:
        result = answer(await call(client, "wait_for_generation", task_id="149", timeout_s=120))
    assert (result.status, result.done, result.timed_out) == ("succeeded", True, False)
    assert clock.sleeps[0] >= 17
    assert result.polls == 2
    [output] = result.outputs
    assert output.url == "http://sandbox.genresult.invalid/modelslab/files/r2/video_generations/149.gif"
    assert (output.kind, output.mime_type, output.width, output.frames, output.fps, output.duration_s) == (
        "video",
        "image/gif",
        512,
        24,
        8,
        3,
    )


async def test_a_wait_that_runs_out_of_time_keeps_the_eta_and_says_so(connect: Connect, sandbox: Sandbox) -> None:
    modelslab(sandbox).add_job("150", Timeline(queued_s=0, running_s=600))
    async with connect() as client:
        result = answer(await call(client, "wait_for_generation", task_id="150", timeout_s=50))
    assert (result.status, result.done, result.timed_out) == ("running", False, True)
    assert result.eta_s is not None
    assert result.eta_s > 0


@pytest.mark.parametrize(
    ("detail", "word"),
    [
        ({}, "error"),
        ({"failure_word": "failed"}, "failed"),
        ({"message_key": "messege", "message": "NSFW content detected"}, "error"),
        ({"failure_word": "failed", "message_key": "messege"}, "failed"),
    ],
)
async def test_a_failed_generation_is_a_result_not_a_tool_error(
    connect: Connect, sandbox: Sandbox, detail: dict[str, Any], word: str
) -> None:
    modelslab(sandbox).add_job("151", Timeline(queued_s=0, running_s=0, outcome="failed"), **detail)
    async with connect() as client:
        result = answer(await call(client, "get_generation_result", task_id="151"))
    assert (result.status, result.done, result.provider_status) == ("failed", True, word)
    assert result.error is not None
    assert result.error.message == detail.get("message", "Failed to generate video")


async def test_a_wrong_key_is_authentication_failed(connect: Connect, sandbox: Sandbox) -> None:
    emulator = modelslab(sandbox)
    emulator.add_job("152")
    async with connect({**sandbox.env(), "MODELSLAB_API_KEY": KEY}) as client:
        result = await call(client, "get_generation_result", task_id="152")
    assert error_code(result) == "authentication_failed"
    assert "MODELSLAB_API_KEY" in text(result)
    assert KEY not in text(result)
    assert json.loads(emulator.requests[0].body) == {"key": KEY}


async def test_an_id_the_provider_does_not_know_is_task_not_found(connect: Connect) -> None:
    async with connect() as client:
        assert error_code(await call(client, "get_generation_result", task_id="153")) == "task_not_found"


async def test_without_a_key_the_provider_is_not_configured_and_nothing_is_sent(
    connect: Connect, sandbox: Sandbox
) -> None:
    env = {name: value for name, value in sandbox.env().items() if name != "MODELSLAB_API_KEY"}
    async with connect(env) as client:
        result = await call(client, "get_generation_result", task_id="147")
    assert error_code(result) == "provider_not_configured"
    assert "MODELSLAB_API_KEY" in text(result)
    assert modelslab(sandbox).requests == []


async def test_a_non_numeric_id_is_refused_before_anything_is_sent(connect: Connect, sandbox: Sandbox) -> None:
    async with connect() as client:
        assert error_code(await call(client, "get_generation_result", task_id="148/../1")) == "invalid_task_id"
    assert modelslab(sandbox).requests == []


async def test_a_rate_limit_and_a_server_error_do_not_end_a_wait(connect: Connect, sandbox: Sandbox) -> None:
    emulator = modelslab(sandbox)
    faults = [Fault.rate_limited(retry_after=3), Fault.server_error(503)]
    emulator.add_job("154", Timeline(queued_s=0, running_s=0), faults=faults)
    async with connect() as client:
        result = answer(await call(client, "wait_for_generation", task_id="154", timeout_s=60))
    assert result.status == "succeeded"
    assert len(emulator.requests) == 3


async def test_the_key_never_appears_in_any_answer(connect: Connect, sandbox: Sandbox) -> None:
    emulator = modelslab(sandbox)
    secret = emulator.api_key
    emulator.add_job("155", Timeline(queued_s=1, running_s=30))
    emulator.add_job("156", Timeline(queued_s=0, running_s=0))
    echoed = f"Failed to generate video: upstream refused the request signed {secret}"
    emulator.add_job("157", Timeline(queued_s=0, running_s=0, outcome="failed"), message_key="messege", message=echoed)
    emulator.add_job("158", faults=[Fault("malformed_json")])
    answers: list[str] = []
    async with connect() as client:
        for task_id in ("155", "156", "157", "158", "159", "x"):
            for result in (
                await call(client, "get_generation_result", task_id=task_id),
                await call(client, "wait_for_generation", task_id=task_id, timeout_s=5),
            ):
                answers.append(text(result))
                answers.append(json.dumps(result.structured_content))
    assert any("[redacted]" in line for line in answers)
    assert not [line for line in answers if secret in line]


async def test_the_sandbox_invents_jobs_by_the_last_digits(clock: VirtualClock) -> None:
    sandbox = Sandbox(clock)
    server = build_server(
        Settings(provider_env=sandbox.env()),
        redactor=Redactor(),
        transport=httpx.ASGITransport(app=sandbox.app),
        clock=clock,
    )
    async with Client(server) as client:
        done = answer(await call(client, "wait_for_generation", task_id="1235", timeout_s=60))
        failed = answer(await call(client, "wait_for_generation", task_id="1234", timeout_s=60))
        missing = await call(client, "get_generation_result", task_id="1404")
    assert (done.status, failed.status) == ("succeeded", "failed")
    assert error_code(missing) == "task_not_found"


# The documented payloads of PROVIDERS.md: the shared fuzz suite grows near misses from them.
FUZZ_SEEDS: list[Any] = [
    {
        "status": "success",
        "id": 147,
        "generationTime": 41.2,
        "output": ["https://pub-3626.r2.dev/generations/2be1702e.gif"],
        "proxy_links": ["https://cdn2.stablediffusionapi.com/generations/2be1702e.gif"],
        "meta": {"width": 512, "height": 512, "num_frames": 25, "fps": 10},
    },
    {
        "status": "processing",
        "id": 148,
        "eta": 45,
        "message": "Request processing in background",
        "tip": "Use fetch_result to check status",
        "fetch_result": "https://modelslab.com/api/v6/video/fetch/148",
        "future_links": ["https://pub-xxx.r2.dev/generations/abcd.mp4"],
        "output": [],
        "meta": {"prompt": "...", "num_frames": 25},
    },
    {"status": "error", "message": "Failed to generate video"},
    {"status": "error", "messege": "Invalid API key"},
    {"status": "error", "message": "Rate limit", "retry_after": 30},
]


KIT = ProviderKit(
    seeds=FUZZ_SEEDS,
    issued=lambda task_id: re.fullmatch(r"[0-9]{1,19}", task_id) is not None and int(task_id) <= 2**63 - 1,
    paths=one_segment("/v6/video/fetch/{}", "/v1/enterprise/video/fetch/{}"),
    plausible=st.one_of(
        st.integers(0, 10**20).map(str),
        st.just(str(2**63 - 1)),
        st.just(str(2**63)),
        st.text(alphabet=st.sampled_from("0123456789"), min_size=1, max_size=25),
    ),
    finished_with_key=lambda key: (
        "147",
        [{"status": "success", "id": 147, "output": [f"https://cdn.example.com/{key}/x.mp4"]}],
    ),
    fault_overrides={
        # ModelsLab documents `{"status": "error", "message": ...}` as a failed job, whatever the HTTP code.
        "an error inside a 200": Expected(None, "failed"),
    },
)
