"""Google Veo (Gemini API): the parser on operations of every state and quirk, operation names part by part,
the key settings, and the whole path through the in-memory MCP client against the emulator."""

from __future__ import annotations

import json
import re
import string
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import httpx
import pytest
from hypothesis import strategies as st
from mcp.types import CallToolResult

from sandbox import IN_PROCESS_ROOT, Fault, Sandbox, Timeline
from sandbox.veo import VeoEmulator
from tests.conftest import Connect
from tests.providers.kit import ProviderKit
from tools.clock import VirtualClock
from tools.errors import (
    AuthenticationFailed,
    InvalidTaskId,
    ProviderProtocolError,
    ProviderUnavailable,
    TaskNotFound,
)
from tools.providers import adapters_from_env
from tools.providers.base import Reply
from tools.providers.veo import Veo
from tools.redact import REDACTED, Redactor
from tools.result import GenerationResult, JobState
from tools.service import read_reply

NAME = "models/veo-3.1-generate-preview/operations/vz341u0pmdlc"
KEY = "AIzaSyB-test_key_for_the_parser_0123456"
URI = "https://generativelanguage.googleapis.com/v1beta/files/acwe2jipjo5j:download?alt=media"
RESPONSE_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse"
FILTERED_REASON = (
    "We encountered an issue with the audio for your prompt, which means we could not create your video. "
    "You have not been charged for this attempt."
)


def adapter(redactor: Redactor | None = None, **env: str) -> Veo:
    return Veo.from_env(env or {"GEMINI_API_KEY": KEY}, redactor or Redactor())


def done(**video_response: Any) -> dict[str, Any]:
    return {
        "name": NAME,
        "done": True,
        "response": {"@type": RESPONSE_TYPE, "generateVideoResponse": video_response},
    }


def parse(body: Any, status_code: int = 200, redactor: Redactor | None = None) -> JobState:
    veo = adapter(redactor)
    outcome = read_reply(veo, Reply(status_code, json.dumps(body).encode()), veo.redact)
    assert isinstance(outcome, JobState)
    return outcome


def refused(body: Any, status_code: int) -> Exception:
    veo = adapter()
    with pytest.raises((AuthenticationFailed, TaskNotFound, ProviderProtocolError, ProviderUnavailable)) as caught:
        read_reply(veo, Reply(status_code, json.dumps(body).encode()), veo.redact)
    return caught.value


# ---- the parser ----


@pytest.mark.parametrize("body", [{"name": NAME}, {"name": NAME, "done": False}, {"name": NAME, "metadata": {}}])
def test_an_operation_without_done_true_is_running_with_no_progress(body: dict[str, Any]) -> None:
    state = parse(body)
    assert (state.status, state.provider_status, state.progress, state.outputs) == ("running", "running", None, ())


def test_a_finished_operation_gives_each_sample_as_a_video_that_needs_the_key() -> None:
    second = URI.replace("acwe2jipjo5j", "bcwe2jipjo5k")
    state = parse(
        done(generatedSamples=[{"video": {"uri": URI}}, {"video": {"uri": second, "encoding": "video/webm"}}])
    )

    assert (state.status, state.provider_status, state.progress, state.error) == ("succeeded", "done", None, None)
    assert [(o.url, o.kind, o.mime_type, o.requires_auth) for o in state.outputs] == [
        (URI, "video", "video/mp4", True),
        (second, "video", "video/webm", True),
    ]


def test_a_sample_without_a_uri_is_left_out_and_the_rest_are_kept() -> None:
    state = parse(
        done(generatedSamples=[{"video": {"encodedVideo": "AAAA"}}, {"video": {"uri": URI}}], raiMediaFilteredCount=1)
    )
    assert state.status == "succeeded" and [o.url for o in state.outputs] == [URI]


def test_a_finished_operation_with_only_the_filter_fields_is_failed_with_the_filters_reasons() -> None:
    state = parse(done(raiMediaFilteredCount=1, raiMediaFilteredReasons=[FILTERED_REASON]))
    assert (state.status, state.provider_status, state.outputs) == ("failed", "done", ())
    assert state.error is not None
    assert (state.error.code, state.error.message) == ("RAI_MEDIA_FILTERED", FILTERED_REASON)


def test_a_filter_count_without_reasons_still_says_the_filters_removed_the_video() -> None:
    state = parse(done(raiMediaFilteredCount=2))
    assert state.status == "failed" and state.error is not None
    assert state.error.code == "RAI_MEDIA_FILTERED" and "removed 2 video(s)" in state.error.message


@pytest.mark.parametrize("body", [done(), done(generatedSamples=[]), {"name": NAME, "done": True}])
def test_a_finished_operation_with_no_video_and_no_reason_is_failed_and_says_so(body: dict[str, Any]) -> None:
    state = parse(body)
    assert state.status == "failed" and state.error is not None and state.error.code == "NO_VIDEO"


@pytest.mark.parametrize(
    ("error", "code"),
    [
        ({"code": 13, "message": "Internal error encountered."}, "INTERNAL"),
        ({"code": 3, "message": "Bad prompt.", "status": "INVALID_ARGUMENT"}, "INVALID_ARGUMENT"),
        ({"code": 99, "message": "Something new."}, "99"),
    ],
)
def test_an_operation_error_is_a_failed_job_in_googles_words(error: dict[str, Any], code: str) -> None:
    # `done` is left out: an operation with an error is over whatever `done` says.
    state = parse({"name": NAME, "error": error})
    assert (state.status, state.provider_status) == ("failed", "done")
    assert state.error is not None and (state.error.code, state.error.message) == (code, error["message"])


def test_an_operation_error_with_google_rpcs_cancelled_code_is_a_canceled_job() -> None:
    state = parse({"name": NAME, "done": True, "error": {"code": 1, "message": "The operation was cancelled."}})
    assert state.status == "canceled" and state.error is not None and state.error.code == "CANCELLED"


def test_an_error_envelope_in_a_200_is_not_read_as_an_operation() -> None:
    envelope = {"error": {"code": 500, "message": "Internal error", "status": "INTERNAL"}}
    assert isinstance(refused(envelope, 200), ProviderProtocolError)


def key_invalid(echoed: str) -> dict[str, Any]:
    message = "API key not valid. Please pass a valid API key."
    return {
        "error": {
            "code": 400,
            "message": message,
            "status": "INVALID_ARGUMENT",
            "details": [
                {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"},
                {"@type": "type.googleapis.com/google.rpc.DebugInfo", "detail": f"Invalid API key: {echoed}"},
            ],
        }
    }


def test_a_400_whose_reason_is_the_key_is_authentication_failed_without_repeating_the_key() -> None:
    error = refused(key_invalid(KEY), 400)
    assert isinstance(error, AuthenticationFailed)
    assert "API key not valid" in str(error) and "GEMINI_API_KEY" in str(error) and KEY not in str(error)


def test_another_400_quotes_google_and_names_the_operation_form() -> None:
    body = {"error": {"code": 400, "message": "Invalid operation name.", "status": "INVALID_ARGUMENT"}}
    error = refused(body, 400)
    assert isinstance(error, ProviderProtocolError)
    assert "Invalid operation name" in str(error) and "models/{model}/operations/{operation_id}" in str(error)


def test_a_403_is_the_account_refused() -> None:
    body = {"error": {"code": 403, "message": "The caller does not have permission", "status": "PERMISSION_DENIED"}}
    error = refused(body, 403)
    assert isinstance(error, AuthenticationFailed) and "The caller does not have permission" in str(error)


def test_a_404_of_a_shut_down_models_operation_is_not_found_in_googles_words() -> None:
    body = {
        "error": {
            "code": 404,
            "message": "Model veo-3.1-generate-preview is no longer available.",
            "status": "NOT_FOUND",
        }
    }
    error = refused(body, 404)
    assert isinstance(error, TaskNotFound) and "is no longer available" in str(error)


@pytest.mark.parametrize("status_code", [429, 503])
def test_rate_limits_and_server_errors_are_retryable_and_quote_googles_message(status_code: int) -> None:
    body = {"error": {"code": status_code, "message": "Resource has been exhausted (e.g. check quota)."}}
    error = refused(body, status_code)
    assert isinstance(error, ProviderUnavailable) and "Resource has been exhausted" in str(error)


# ---- settings, ids and the request ----


def test_gemini_api_key_is_read_first_google_api_key_second_and_both_are_redacted() -> None:
    redactor = Redactor()
    both = adapter(
        redactor,
        GEMINI_API_KEY="AIzaSyGemini-key-0000000000000000000000",
        GOOGLE_API_KEY="AIzaSyGoogle-key-0000000000000000000000",
    )
    assert both.api_key == "AIzaSyGemini-key-0000000000000000000000"
    assert redactor("AIzaSyGoogle-key-0000000000000000000000") == REDACTED
    assert adapter(GOOGLE_API_KEY=KEY).api_key == KEY
    assert not adapters_from_env({}, Redactor())["veo"].configured


@pytest.mark.parametrize(
    "task_id",
    [
        NAME,
        "models/veo-3.0-fast-generate-001/operations/abc123def456",
        "models/gemini-omni-1.1-flash/operations/Op_1-x",
    ],
)
def test_an_operation_name_of_any_model_is_accepted_as_is(task_id: str) -> None:
    assert adapter().validate_task_id(task_id) == task_id


@pytest.mark.parametrize(
    "task_id",
    [
        "vz341u0pmdlc",
        "operations/vz341u0pmdlc",
        "models/veo-3.1-generate-preview/operations/",
        "models//operations/vz341u0pmdlc",
        "models/../operations/vz341u0pmdlc",
        "models/.veo/operations/vz341u0pmdlc",
        "models/veo/operations/..",
        "models/veo/operations/-x",
        "models/veo:predictLongRunning/operations/x",
        "models/veo/operations/x:cancel",
        "models/veo/operations/x/y",
        "Models/veo/operations/x",
        "models/veo/Operations/x",
        "models/veo%2F..%2F/operations/x",
        "models/veo/operations/x?key=abc",
        "/models/veo/operations/x",
        NAME + "\n",
        "https://generativelanguage.googleapis.com/v1beta/" + NAME,
    ],
)
def test_anything_but_the_operation_name_form_is_an_invalid_task_id(task_id: str) -> None:
    with pytest.raises(InvalidTaskId):
        adapter().validate_task_id(task_id)


def test_a_bare_operation_id_is_refused_with_the_whole_form_to_pass() -> None:
    with pytest.raises(InvalidTaskId, match="not a Gemini API operation name") as caught:
        adapter().validate_task_id("vz341u0pmdlc")
    assert "models/{model}/operations/{operation_id}" in str(caught.value) and Veo.example_task_id in str(caught.value)


def test_a_key_pasted_as_a_task_id_is_not_quoted_back() -> None:
    with pytest.raises(InvalidTaskId) as caught:
        adapter().validate_task_id(KEY)
    assert KEY not in str(caught.value)


def test_a_vertex_operation_name_is_refused_with_a_word_on_why() -> None:
    with pytest.raises(InvalidTaskId, match="Vertex AI"):
        adapter().validate_task_id("projects/p/locations/us-central1/publishers/google/models/veo/operations/x")


async def test_the_request_is_the_operation_path_with_the_key_in_its_header_only() -> None:
    async with httpx.AsyncClient() as client:
        request = adapter().build_request(client, NAME)
    assert str(request.url) == f"https://generativelanguage.googleapis.com/v1beta/{NAME}"
    assert request.method == "GET" and request.headers["x-goog-api-key"] == KEY
    assert KEY not in str(request.url) and "authorization" not in request.headers


# ---- through the MCP client ----


def text_of(reply: CallToolResult) -> str:
    assert reply.content and reply.content[0].type == "text"
    return reply.content[0].text


def emulator(sandbox: Sandbox) -> VeoEmulator:
    found = sandbox["veo"]
    assert isinstance(found, VeoEmulator)
    return found


async def get_result(connect: Connect, task_id: str = NAME, **settings: Any) -> CallToolResult:
    async with connect(**settings) as client:
        return await client.call_tool("get_generation_result", {"provider": "veo", "task_id": task_id})


def result_of(reply: CallToolResult) -> GenerationResult:
    assert not reply.is_error, text_of(reply)
    return GenerationResult.model_validate(reply.structured_content)


async def test_a_job_is_seen_running_then_succeeded_with_a_video_uri_that_needs_the_key(
    connect: Connect, sandbox: Sandbox, clock: VirtualClock
) -> None:
    veo = emulator(sandbox)
    veo.add_job(NAME, Timeline(queued_s=2, running_s=6))
    seen: list[GenerationResult] = []
    async with connect() as client:
        for advance in (0, 5, 10):
            clock.advance(advance)
            reply = await client.call_tool("get_generation_result", {"provider": "veo", "task_id": NAME})
            assert json.loads(text_of(reply)) == reply.structured_content
            seen.append(result_of(reply))

    assert [(r.status, r.provider_status, r.progress) for r in seen] == [
        ("running", "running", None),
        ("running", "running", None),
        ("succeeded", "done", None),
    ]
    (video,) = seen[-1].outputs
    assert (video.kind, video.mime_type, video.requires_auth) == ("video", "video/mp4", True)
    assert video.url.startswith(f"{IN_PROCESS_ROOT}/veo/files/") and video.url.endswith("download?alt=media")
    assert veo.api_key not in video.url and "key=" not in video.url
    assert '"requires_auth":true' in json.dumps(seen[-1].structured(), separators=(",", ":"))

    assert [logged.path for logged in veo.requests] == [f"/veo/v1beta/{NAME}"] * 3
    assert {logged.headers["x-goog-api-key"] for logged in veo.requests} == {veo.api_key}
    assert {logged.query for logged in veo.requests} == {""}


@pytest.mark.parametrize(
    ("outcome", "detail", "code", "words"),
    [
        ("failed", {}, "RAI_MEDIA_FILTERED", "could not create your video"),
        ("failed", {"reasons": ["Celebrity likeness.", "Unsafe content."]}, "RAI_MEDIA_FILTERED", "Unsafe content."),
        ("failed", {"failure": "error"}, "INTERNAL", "Internal error encountered."),
        ("canceled", {}, "CANCELLED", "The operation was cancelled."),
    ],
)
async def test_a_job_that_ends_badly_is_a_result_with_googles_reason_not_a_tool_error(
    connect: Connect, sandbox: Sandbox, outcome: Any, detail: dict[str, Any], code: str, words: str
) -> None:
    emulator(sandbox).add_job(NAME, Timeline(queued_s=0, running_s=0, outcome=outcome), **detail)
    result = result_of(await get_result(connect))
    assert (result.status, result.done, result.provider_status, result.outputs) == (outcome, True, "done", [])
    assert result.error is not None and result.error.code == code and words in result.error.message


async def test_waiting_rides_out_rate_limits_and_server_errors_until_the_video_is_ready(
    connect: Connect, sandbox: Sandbox
) -> None:
    veo = emulator(sandbox)
    veo.add_job(NAME, Timeline(queued_s=3, running_s=20), faults=[Fault.rate_limited(4), Fault.server_error(503)])
    with anyio.fail_after(10):
        async with connect() as client:
            reply = await client.call_tool(
                "wait_for_generation", {"provider": "veo", "task_id": NAME, "timeout_s": 120}
            )

    result = result_of(reply)
    assert (result.status, result.timed_out, len(result.outputs)) == ("succeeded", False, 1)
    assert result.polls == len(veo.requests) and result.polls is not None and result.polls >= 4


async def test_a_wrong_key_is_authentication_failed_and_the_key_google_echoes_is_not_repeated(
    connect: Connect, sandbox: Sandbox
) -> None:
    emulator(sandbox).add_job(NAME)
    wrong = "AIzaSyWRONG-wrong_wrong_wrong_01234567"
    reply = await get_result(connect, env={**sandbox.env(), "GEMINI_API_KEY": wrong})

    assert reply.is_error
    assert "authentication_failed" in text_of(reply) and "API key not valid" in text_of(reply)
    assert wrong not in text_of(reply)


async def test_google_api_key_alone_is_enough(connect: Connect, sandbox: Sandbox) -> None:
    veo = emulator(sandbox)
    veo.add_job(NAME, Timeline(queued_s=0, running_s=0))
    env = {"GOOGLE_API_KEY": veo.api_key, "VEO_BASE_URL": sandbox.env()["VEO_BASE_URL"]}
    assert result_of(await get_result(connect, env=env)).status == "succeeded"


async def test_a_403_from_google_is_the_account_refused_and_ends_a_wait_at_once(
    connect: Connect, sandbox: Sandbox, clock: VirtualClock
) -> None:
    denied = Fault("status", 403, message="The caller does not have permission")
    emulator(sandbox).add_job(NAME, faults=[denied])
    async with connect() as client:
        with anyio.fail_after(5):
            reply = await client.call_tool("wait_for_generation", {"provider": "veo", "task_id": NAME, "timeout_s": 60})

    assert reply.is_error and "authentication_failed" in text_of(reply)
    assert "The caller does not have permission" in text_of(reply) and clock.monotonic() == 0


async def test_an_unknown_operation_is_task_not_found(connect: Connect, sandbox: Sandbox) -> None:
    reply = await get_result(connect)
    assert reply.is_error and "task_not_found" in text_of(reply) and "Requested entity was not found" in text_of(reply)
    assert len(emulator(sandbox).requests) == 1


async def test_without_a_key_it_is_not_configured_and_nothing_is_sent(connect: Connect, sandbox: Sandbox) -> None:
    reply = await get_result(connect, env={"VEO_BASE_URL": sandbox.env()["VEO_BASE_URL"]})
    assert reply.is_error
    assert "provider_not_configured" in text_of(reply) and "GEMINI_API_KEY" in text_of(reply)
    assert emulator(sandbox).requests == []


@pytest.mark.parametrize("task_id", ["vz341u0pmdlc", "models/../operations/x", "models/veo/operations/x/../../files"])
async def test_a_name_not_of_the_operation_form_is_refused_before_anything_is_sent(
    connect: Connect, sandbox: Sandbox, task_id: str
) -> None:
    reply = await get_result(connect, task_id)
    assert reply.is_error and "invalid_task_id" in text_of(reply)
    assert emulator(sandbox).requests == []


# ---- the emulator's own API behaviour ----


async def raw_get(app_sandbox: Sandbox, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    transport = httpx.ASGITransport(app=app_sandbox.app)
    async with httpx.AsyncClient(transport=transport, base_url=IN_PROCESS_ROOT) as client:
        return await client.get("/veo/v1beta/" + path, headers=headers or {})


async def test_the_emulator_refuses_a_read_without_a_key_as_google_does(sandbox: Sandbox) -> None:
    emulator(sandbox).add_job(NAME)
    response = await raw_get(sandbox, NAME)
    assert response.status_code == 403
    assert response.json()["error"]["status"] == "PERMISSION_DENIED"
    assert "unregistered callers" in response.json()["error"]["message"]


async def test_the_emulator_takes_the_key_as_a_query_parameter_too(sandbox: Sandbox) -> None:
    veo = emulator(sandbox)
    veo.add_job(NAME, Timeline(queued_s=0, running_s=0))
    response = await raw_get(sandbox, f"{NAME}?key={quote(veo.api_key)}")
    assert response.status_code == 200 and response.json()["done"] is True


async def test_the_emulator_answers_a_wrong_key_with_googles_key_invalid_error(sandbox: Sandbox) -> None:
    emulator(sandbox).add_job(NAME)
    response = await raw_get(sandbox, NAME, {"x-goog-api-key": "AIzaNope"})
    error = response.json()["error"]
    assert (response.status_code, error["code"], error["status"]) == (400, 400, "INVALID_ARGUMENT")
    assert error["details"][0]["reason"] == "API_KEY_INVALID"


async def test_sandbox_ids_choose_their_outcome_and_missing_ones_do_not_exist(clock: VirtualClock) -> None:
    auto = Sandbox(clock)
    veo = emulator(auto)
    key = {"x-goog-api-key": veo.api_key}
    for outcome in ("succeeded", "failed", "canceled"):
        task_id = VeoEmulator.sandbox_id(7, outcome)
        assert re.fullmatch(r"models/[a-z0-9.-]+/operations/[a-z0-9]{12}", task_id), task_id
        assert (await raw_get(auto, task_id, key)).status_code == 200
        assert veo.jobs[task_id].timeline.outcome == outcome
    assert Veo.example_task_id not in veo.jobs
    assert (await raw_get(auto, Veo.example_task_id, key)).status_code == 200
    assert veo.jobs[Veo.example_task_id].timeline.outcome == "succeeded"

    missing = await raw_get(auto, "models/veo-3.1-generate-preview/operations/missing00001", key)
    assert (missing.status_code, missing.json()["error"]["status"]) == (404, "NOT_FOUND")


# The documented payloads of PROVIDERS-MORE.md §8: the shared fuzz suite grows near misses from them.
FUZZ_SEEDS: list[Any] = [
    {"name": NAME},
    done(generatedSamples=[{"video": {"uri": URI}}]),
    done(raiMediaFilteredCount=1, raiMediaFilteredReasons=[FILTERED_REASON]),
    {"name": NAME, "done": True, "error": {"code": 13, "message": "Internal error encountered."}},
    {"error": {"code": 403, "message": "The caller does not have permission", "status": "PERMISSION_DENIED"}},
    key_invalid("AIzaSyEchoed"),
]

# The form DESIGN.md §1 gives, written here on its own rather than taken from the adapter.
_ISSUED = re.compile(r"models/[A-Za-z0-9][A-Za-z0-9._-]*/operations/[A-Za-z0-9][A-Za-z0-9_-]*")


def _issued(task_id: str) -> bool:
    return len(task_id) <= 256 and _ISSUED.fullmatch(task_id) is not None


def _paths(task_id: str) -> set[str]:
    _, model, _, operation = task_id.split("/")
    return {f"/models/{quote(model, safe='')}/operations/{quote(operation, safe='')}"}


_MODELS = st.one_of(
    st.sampled_from(
        [
            "veo-3.1-generate-preview",
            "veo-3.1-fast-generate-preview",
            "veo-3.0-generate-001",
            "veo-2.0-generate-001",
            "gemini-omni-1.1-flash",
            "Veo_3",
            "veo..x",
            ".veo",
            "-veo",
            "_veo",
            "veo:predictLongRunning",
            "",
        ]
    ),
    st.text(alphabet=string.ascii_letters + string.digits + "._-", min_size=1, max_size=30),
)
_OPERATIONS = st.one_of(
    st.text(alphabet=string.ascii_lowercase + string.digits, min_size=0, max_size=14),
    st.sampled_from([".", "..", "_x", "-x", "x-y_Z", "x.y", "x~y"]),
)
_LITERALS = st.sampled_from(
    [("models", "operations")] * 4 + [("Models", "operations"), ("models", "operation"), ("projects", "operations")]
)
_PLAUSIBLE = st.one_of(
    st.builds(lambda literals, model, op: f"{literals[0]}/{model}/{literals[1]}/{op}", _LITERALS, _MODELS, _OPERATIONS),
    st.builds(lambda op: f"operations/{op}", _OPERATIONS),
    # Around the length limit.
    st.builds(lambda size: f"models/{'v' * (size - 30)}/operations/vz341u0pmdlc", st.integers(250, 262)),
)

KIT = ProviderKit(
    seeds=FUZZ_SEEDS,
    issued=_issued,
    paths=_paths,
    plausible=_PLAUSIBLE,
    finished_with_key=lambda key: (
        NAME,
        [done(generatedSamples=[{"video": {"uri": f"{URI}&key={key}"}}])],
    ),
)


async def test_a_download_of_a_video_sends_the_key_to_googles_own_host_and_the_file_route_demands_it(
    connect: Connect, sandbox: Sandbox, tmp_path: Path
) -> None:
    emulator = sandbox["veo"]
    name = emulator.sandbox_id(1)
    emulator.add_job(name, Timeline(queued_s=0, running_s=0))
    async with connect(download_dir=tmp_path) as client:
        reply = await client.call_tool("download_generation_outputs", {"provider": "veo", "task_id": name})
    assert not reply.is_error, reply.content
    files = [seen for seen in emulator.requests if "/files/" in seen.path]
    assert files and all(seen.headers.get("x-goog-api-key") == emulator.api_key for seen in files)
    assert all(emulator.api_key not in seen.path + seen.query for seen in files)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sandbox.app)) as bare:
        refused = await bare.get(f"http://sandbox.genresult.invalid{files[0].path}?{files[0].query}")
    assert refused.status_code == 403
