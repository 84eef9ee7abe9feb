"""fal.ai queue: the status parser, the result parser, the id forms, then the two-request read through the MCP
client against the emulator, faults at its second request included."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest
from hypothesis import strategies as st
from mcp.types import CallToolResult

from sandbox import Fault, Sandbox, Timeline
from tests.conftest import Connect
from tests.providers.kit import ProviderKit
from tools.clock import VirtualClock
from tools.errors import AuthenticationFailed, InvalidTaskId, ProviderUnavailable, TaskNotFound
from tools.providers.base import Reply, Then
from tools.providers.fal import Fal
from tools.redact import Redactor
from tools.result import GenerationResult, JobState

KEY = "9a8b7c6d-0000-4000-8000-000000000000:0123456789abcdef0123456789abcdef"
REQUEST = "764cabcf-b745-4b3e-ae38-1200304cf45b"
MODEL = "fal-ai/kling-video/v2/master/text-to-video"
TASK = f"{MODEL}/requests/{REQUEST}"
RESPONSE_URL = f"https://queue.fal.run/fal-ai/kling-video/requests/{REQUEST}"

QUEUED = {"status": "IN_QUEUE", "queue_position": 3, "response_url": RESPONSE_URL}
RUNNING = {"status": "IN_PROGRESS", "logs": [{"message": "Generating video", "level": "INFO"}]}
COMPLETED = {"status": "COMPLETED", "logs": None, "metrics": {"inference_time": 84.2}, "response_url": RESPONSE_URL}
RUNNER_FAILED = {
    "status": "COMPLETED",
    "metrics": {},
    "error": "Runner disconnected",
    "error_type": "runner_disconnected",
}
VIDEO = {
    "video": {
        "url": "https://v3.fal.media/files/rabbit/Xq2d9_output.mp4",
        "content_type": "video/mp4",
        "file_name": "output.mp4",
        "file_size": 4817203,
    }
}
RELAYED = {"x-fal-request-id": REQUEST}


def adapter(base: str = "https://queue.fal.run") -> Fal:
    return Fal.from_env({"FAL_KEY": KEY, "FAL_BASE_URL": base}, Redactor())


def status(body: Any, code: int = 200) -> JobState | Then:
    return adapter().parse(Reply(code, json.dumps(body).encode()))


def result(body: Any, code: int = 200, headers: dict[str, str] | None = None) -> JobState:
    step = status(COMPLETED)
    assert isinstance(step, Then) and step.own_errors
    state = step.parse(Reply(code, json.dumps(body).encode(), RELAYED if headers is None else headers))
    assert isinstance(state, JobState)
    return state


# ---- the status ----


def test_a_202_in_the_queue_is_queued_with_its_position() -> None:
    state = status(QUEUED, 202)
    assert isinstance(state, JobState)
    assert (state.status, state.provider_status) == ("queued", "IN_QUEUE")
    assert state.note is not None and "3 requests ahead" in state.note


def test_a_202_in_progress_is_running() -> None:
    state = status(RUNNING, 202)
    assert isinstance(state, JobState) and state.status == "running"


def test_completed_without_an_error_asks_for_the_result() -> None:
    step = status(COMPLETED)
    assert isinstance(step, Then)
    request = step.build(httpx.AsyncClient(), adapter().validate_task_id(TASK))
    assert str(request.url) == RESPONSE_URL and request.headers["authorization"] == f"Key {KEY}"


def test_completed_with_an_error_is_a_failed_job_without_a_result_call() -> None:
    state = status(RUNNER_FAILED)
    assert isinstance(state, JobState) and state.error is not None
    assert (state.status, state.error.code, state.error.message) == (
        "failed",
        "runner_disconnected",
        "Runner disconnected",
    )


def test_the_status_call_goes_to_owner_and_app_only() -> None:
    request = adapter().build_request(httpx.AsyncClient(), adapter().validate_task_id(TASK))
    assert request.url.path == f"/fal-ai/kling-video/requests/{REQUEST}/status"


# ---- the result ----


def test_a_result_gives_every_file_object_wherever_the_model_put_it() -> None:
    body = {
        "video": VIDEO["video"],
        "images": [
            {"url": "https://v3.fal.media/files/a.png", "content_type": "image/png", "width": 1024, "height": 768}
        ],
        "audio": {"url": "https://v3.fal.media/files/a.wav"},
        "seed": 42,
    }
    state = result(body)
    assert state.status == "succeeded"
    assert [(o.kind, o.mime_type) for o in state.outputs] == [
        ("video", "video/mp4"),
        ("audio", "audio/x-wav"),
        ("image", "image/png"),
    ]
    assert state.outputs[0].size_bytes == 4817203
    assert (state.outputs[2].width, state.outputs[2].height) == (1024, 768)


def test_a_model_failure_relayed_by_the_result_call_is_a_failed_job_with_its_detail() -> None:
    state = result({"detail": "Request timed out", "error_type": "request_timeout"}, 504)
    assert state.error is not None and (state.status, state.error.code) == ("failed", "request_timeout")
    listed = result({"detail": [{"loc": ["body", "prompt"], "msg": "field required", "type": "missing"}]}, 422)
    assert listed.error is not None and listed.error.message == "body.prompt: field required"


@pytest.mark.parametrize("code", [429, 502, 503])
def test_a_429_or_an_ingress_5xx_at_the_result_is_passing_trouble(code: int) -> None:
    with pytest.raises(ProviderUnavailable):
        result({"detail": "Bad Gateway"}, code, headers={})


def test_a_result_gone_after_completion_is_a_finished_job_that_says_so_not_an_unknown_id() -> None:
    state = result({"detail": "Request not found"}, 404, headers={})
    assert (state.status, state.outputs) == ("succeeded", ())
    assert state.note is not None and "6 minutes" in state.note


def test_refusals_of_the_key_are_authentication_failed() -> None:
    with pytest.raises(AuthenticationFailed):
        status({"detail": "No user found for Key ID and Secret"}, 401)
    with pytest.raises(TaskNotFound):
        status({"detail": "Request not found"}, 404)


# ---- the id forms ----


@pytest.mark.parametrize(
    ("given", "wire"),
    [
        (TASK, f"fal-ai/kling-video/requests/{REQUEST}"),
        (f"{RESPONSE_URL}/status", f"fal-ai/kling-video/requests/{REQUEST}"),
        (RESPONSE_URL, f"fal-ai/kling-video/requests/{REQUEST}"),
        (f"workflows/me/flow/requests/{REQUEST}", f"workflows/me/flow/requests/{REQUEST}"),
        (f"123-myapp/requests/{REQUEST}", f"123/myapp/requests/{REQUEST}"),
    ],
)
def test_each_accepted_id_form_is_read_as_owner_app_and_request(given: str, wire: str) -> None:
    assert adapter().validate_task_id(given) == wire


@pytest.mark.parametrize(
    "given",
    [
        f"https://evil.example/fal-ai/kling-video/requests/{REQUEST}",
        f"http://queue.fal.run/fal-ai/kling-video/requests/{REQUEST}",
        f"fal-ai/../requests/{REQUEST}",
        f"fal-ai/.x/requests/{REQUEST}",
        f"fal-ai/kling-video/requests/{REQUEST[:-1]}",
        f"kling-video/requests/{REQUEST}",
        f"workflows/me/requests/{REQUEST}",
        f"fal-ai/kling%2Fvideo/requests/{REQUEST}",
        REQUEST,
    ],
)
def test_ids_off_the_queue_host_or_with_a_bad_part_are_refused(given: str) -> None:
    with pytest.raises(InvalidTaskId):
        adapter().validate_task_id(given)


# ---- through the MCP client, against the emulator ----


def result_of(reply: CallToolResult) -> GenerationResult:
    assert not reply.is_error, reply.content
    return GenerationResult.model_validate(reply.structured_content)


def text_of(reply: CallToolResult) -> str:
    assert reply.content and reply.content[0].type == "text"
    return reply.content[0].text


def paths(sandbox: Sandbox) -> list[str]:
    return [r.path for r in sandbox["fal"].requests]


async def test_a_request_is_followed_from_the_queue_to_its_video_in_two_calls(
    connect: Connect, sandbox: Sandbox
) -> None:
    sandbox["fal"].add_job(TASK, Timeline(queued_s=3, running_s=6))
    async with connect() as client:
        done = result_of(await client.call_tool("wait_for_generation", {"provider": "fal", "task_id": TASK}))
    assert (done.status, done.provider_status, done.outputs[0].mime_type) == ("succeeded", "COMPLETED", "video/mp4")
    assert done.polls == len(paths(sandbox))
    assert paths(sandbox)[-2:] == [
        f"/fal/fal-ai/kling-video/requests/{REQUEST}/status",
        f"/fal/fal-ai/kling-video/requests/{REQUEST}",
    ]


@pytest.mark.parametrize("second", [Fault.rate_limited(4), Fault.server_error(500), Fault.server_error(503)])
async def test_a_wait_rides_out_trouble_at_the_result_call_after_completed(
    connect: Connect, sandbox: Sandbox, second: Fault
) -> None:
    sandbox["fal"].add_job(TASK, Timeline(queued_s=0, running_s=0), [second.aimed_at("result")])
    async with connect() as client:
        got = await client.call_tool("get_generation_result", {"provider": "fal", "task_id": TASK})
        sandbox["fal"].jobs[REQUEST].faults.append(second.aimed_at("result"))
        waited = result_of(await client.call_tool("wait_for_generation", {"provider": "fal", "task_id": TASK}))
    assert text_of(got).startswith("provider_unavailable: ")
    # status, result (faulted), then status and result again.
    assert (waited.status, waited.polls) == ("succeeded", 4)


async def test_a_runner_failure_and_a_model_failure_both_end_the_wait_as_failed(
    connect: Connect, sandbox: Sandbox
) -> None:
    model = f"{MODEL}/requests/fa110000-0000-4000-8000-000000000002"
    sandbox["fal"].add_job(TASK, Timeline(queued_s=0, running_s=0, outcome="failed"))
    sandbox["fal"].add_job(model, Timeline(queued_s=0, running_s=0, outcome="failed"), failure="model")
    async with connect() as client:
        runner = result_of(await client.call_tool("get_generation_result", {"provider": "fal", "task_id": TASK}))
        flagged = result_of(await client.call_tool("get_generation_result", {"provider": "fal", "task_id": model}))
    assert runner.error is not None and (runner.status, runner.error.code) == ("failed", "runner_disconnected")
    assert flagged.error is not None and flagged.status == "failed" and "safety checker" in flagged.error.message


async def test_a_result_read_after_its_lifetime_says_it_is_gone(
    connect: Connect, sandbox: Sandbox, clock: VirtualClock
) -> None:
    sandbox["fal"].add_job(TASK, Timeline(queued_s=0, running_s=0), result_ttl_s=360)
    clock.advance(400)
    async with connect() as client:
        gone = result_of(await client.call_tool("get_generation_result", {"provider": "fal", "task_id": TASK}))
    assert (gone.status, gone.outputs) == ("succeeded", []) and gone.note is not None


async def test_a_url_on_another_host_is_refused_with_nothing_sent(connect: Connect, sandbox: Sandbox) -> None:
    async with connect() as client:
        reply = await client.call_tool(
            "get_generation_result", {"provider": "fal", "task_id": f"https://evil.example/a/b/requests/{REQUEST}"}
        )
    assert text_of(reply).startswith("invalid_task_id: ") and sandbox["fal"].requests == []


async def test_a_wrong_key_is_authentication_failed_and_no_key_is_not_configured(
    connect: Connect, sandbox: Sandbox
) -> None:
    async with connect(env={**sandbox.env(), "FAL_KEY": "wrong-key-0123456789"}) as client:
        wrong = await client.call_tool("get_generation_result", {"provider": "fal", "task_id": TASK})
    async with connect(env={}) as client:
        unset = await client.call_tool("get_generation_result", {"provider": "fal", "task_id": TASK})
    assert text_of(wrong).startswith("authentication_failed: ") and "wrong-key" not in text_of(wrong)
    assert text_of(unset).startswith("provider_not_configured: ") and "FAL_KEY" in text_of(unset)


# ---- what the shared suites need: the id rule of DESIGN.md §1, written here on its own ----

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~-]{0,99}")


def _parts(task_id: str) -> list[str] | None:
    """owner/app (or ns/owner/app) and the request id, for an id fal could have issued; else None."""
    path = task_id
    if "://" in task_id:
        # The shared suite's base URL; a URL elsewhere was never fal's.
        parts = urlsplit(task_id)
        if f"{parts.scheme}://{parts.netloc}" != "https://fal.example.test" or parts.query or parts.fragment:
            return None
        path = parts.path.removeprefix("/some/base").strip("/")
    segments = path.split("/")
    if segments and segments[-1] == "status":
        segments = segments[:-1]
    if len(segments) < 3 or segments[-2] != "requests" or not _UUID.fullmatch(segments[-1]):
        return None
    model = segments[:-2]
    if len(model) == 1 and re.fullmatch(r"\d+-.+", model[0]):
        model = model[0].split("-", 1)
    width = 3 if model[0] in ("workflows", "comfy") else 2
    if len(model) < width or len(model) > 12 or not all(_PART.fullmatch(s) for s in model):
        return None
    return [*model[:width], segments[-1].lower()]


def _paths(task_id: str) -> set[str]:
    parts = _parts(task_id)
    assert parts is not None
    head = "/" + "/".join(quote(part, safe="") for part in parts[:-1]) + f"/requests/{parts[-1]}"
    return {head, head + "/status"}


_uuids = st.uuids().map(str)
_words = st.sampled_from(["fal-ai", "kling-video", "v2", "master", "text-to-video", "workflows", "comfy", "v1.6", "me"])

KIT = ProviderKit(
    seeds=[QUEUED, RUNNING, COMPLETED, RUNNER_FAILED, {"detail": "Request not found"}],
    issued=lambda task_id: _parts(task_id) is not None,
    paths=_paths,
    plausible=st.one_of(
        st.builds(lambda m, u: "/".join([*m, "requests", u]), st.lists(_words, min_size=1, max_size=6), _uuids),
        st.builds(
            lambda m, u: f"https://fal.example.test/some/base/{'/'.join(m)}/requests/{u}/status",
            st.lists(_words, min_size=2, max_size=4),
            _uuids,
        ),
        st.builds(lambda u: f"https://queue.fal.run/fal-ai/x/requests/{u}", _uuids),
    ),
    finished_read_requests=2,
    follow_ups=[(COMPLETED, [VIDEO, {"images": [{"url": "https://v3.fal.media/a.png"}]}, {"detail": "x"}])],
    finished_with_key=lambda key: (
        TASK,
        [COMPLETED, {"video": {"url": f"https://v3.fal.media/files/{key}/out.mp4", "file_name": f"{key}.mp4"}}],
    ),
)
