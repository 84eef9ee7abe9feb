"""Replicate: the parser against the documented prediction payloads, then the whole path through the MCP client."""

from __future__ import annotations

import json
from typing import Any

import pytest
from mcp.types import CallToolResult

from sandbox import Fault, Sandbox, Timeline
from tests.conftest import Connect
from tests.providers.kit import ProviderKit, one_segment
from tools.clock import VirtualClock
from tools.errors import AuthenticationFailed, InvalidTaskId, ProviderProtocolError, TaskNotFound
from tools.providers.base import Reply
from tools.providers.replicate import TASK_ID, Replicate
from tools.redact import Redactor
from tools.result import Cost, GenerationResult, JobState

KEY = "r8_live_0123456789abcdefABCDEF"
ID = "q7b3ztk0ysrm80cs2j4bbq4m2w"

STARTING = {
    "id": ID,
    "model": "kwaivgi/kling-v2.1",
    "version": "hidden",
    "input": {"prompt": "a red fox in snow"},
    "logs": "",
    "output": None,
    "data_removed": False,
    "error": None,
    "status": "starting",
    "created_at": "2026-08-20T10:00:00.123456Z",
    "urls": {
        "cancel": f"https://api.replicate.com/v1/predictions/{ID}/cancel",
        "get": f"https://api.replicate.com/v1/predictions/{ID}",
    },
}
PROCESSING = {
    **STARTING,
    "status": "processing",
    "started_at": "2026-08-20T10:00:04.5Z",
    "logs": " 40%|████      | 20/50 [00:30<00:45]\n",
}
SUCCEEDED = {
    **STARTING,
    "status": "succeeded",
    "output": "https://replicate.delivery/xezq/abc123/tmp4k2k.mp4",
    "completed_at": "2026-08-20T10:01:41.9Z",
    "metrics": {"predict_time": 97.4, "total_time": 101.8},
}
FAILED = {
    **STARTING,
    "status": "failed",
    "error": "E005: The input or output was flagged as sensitive.",
    "metrics": {"predict_time": 3.1},
}
CANCELED = {**STARTING, "status": "canceled", "completed_at": "2026-08-20T10:00:30Z"}
REMOVED = {**SUCCEEDED, "output": None, "logs": "", "data_removed": True}


def adapter() -> Replicate:
    return Replicate.from_env({"REPLICATE_API_TOKEN": KEY}, Redactor())


def parse(body: Any, status_code: int = 200) -> JobState:
    state = adapter().parse(Reply(status_code, json.dumps(body).encode()))
    assert isinstance(state, JobState)
    return state


# ---- the parser ----


def test_a_booting_prediction_is_queued_with_no_outputs() -> None:
    state = parse(STARTING)
    assert (state.status, state.provider_status, state.outputs, state.progress) == ("queued", "starting", (), None)


def test_progress_is_read_from_the_last_tqdm_bar_in_the_logs() -> None:
    state = parse(
        {**PROCESSING, "logs": "loading\n 10%|█ | 5/50 [00:03<00:30]\n 40%|████      | 20/50 [00:30<00:45]\n"}
    )
    assert (state.status, state.progress) == ("running", 40)


def test_logs_without_a_bar_give_no_progress() -> None:
    assert parse({**PROCESSING, "logs": "Loading weights\n"}).progress is None


def test_a_succeeded_prediction_gives_its_url_with_the_hour_it_has_left_and_the_predict_time() -> None:
    state = parse(SUCCEEDED)
    assert (state.status, state.progress) == ("succeeded", None)
    [video] = state.outputs
    assert (video.url, video.kind, video.mime_type) == (SUCCEEDED["output"], "video", "video/mp4")
    # API predictions lose their files an hour after they finish.
    assert video.expires_at == "2026-08-20T11:01:41Z"
    assert state.cost == Cost(amount=97.4, unit="predict seconds")


@pytest.mark.parametrize(
    "output",
    [
        ["https://replicate.delivery/a/1.mp4", "https://replicate.delivery/a/2.png"],
        {"video": "https://replicate.delivery/a/1.mp4", "frames": ["https://replicate.delivery/a/2.png"]},
    ],
)
def test_an_output_list_or_object_gives_every_url_in_it(output: Any) -> None:
    state = parse({**SUCCEEDED, "output": output})
    assert [(o.url.rsplit("/", 1)[1], o.kind) for o in state.outputs] == [("1.mp4", "video"), ("2.png", "image")]


def test_non_url_values_in_an_output_object_are_not_outputs() -> None:
    state = parse({**SUCCEEDED, "output": {"seed": 42, "text": "a fox", "video": "https://replicate.delivery/a/1.mp4"}})
    assert [o.url for o in state.outputs] == ["https://replicate.delivery/a/1.mp4"]


def test_a_succeeded_prediction_whose_files_were_removed_says_so_instead_of_succeeding_with_nothing() -> None:
    state = parse(REMOVED)
    assert (state.status, state.outputs) == ("succeeded", ())
    assert state.note is not None and "one hour" in state.note and "again" in state.note


def test_a_failed_prediction_carries_its_error_code_and_words() -> None:
    state = parse(FAILED)
    assert state.status == "failed"
    assert state.error is not None
    assert (state.error.code, state.error.message) == ("E005", FAILED["error"])


def test_an_error_without_a_code_is_named_by_the_status() -> None:
    state = parse({**FAILED, "error": "CUDA out of memory"})
    assert state.error is not None and state.error.code == "FAILED"


@pytest.mark.parametrize("word", ["canceled", "aborted"])
def test_canceled_and_aborted_are_canceled_without_an_invented_reason(word: str) -> None:
    state = parse({**CANCELED, "status": word})
    assert (state.status, state.provider_status, state.error) == ("canceled", word, None)


def test_an_unknown_status_word_reads_as_running_and_stays_visible() -> None:
    assert (parse({**STARTING, "status": "warming"}).status, "warming") == ("running", "warming")


def test_problem_details_are_read_for_each_refusal() -> None:
    with pytest.raises(AuthenticationFailed, match="valid authentication token"):
        parse({"title": "Unauthenticated", "detail": "You did not pass a valid authentication token"}, 401)
    with pytest.raises(AuthenticationFailed, match="refused the account"):
        parse({"title": "Payment Required", "detail": "You have run out of credit"}, 402)
    with pytest.raises(TaskNotFound):
        parse({"title": "Not found", "detail": "The requested resource could not be found."}, 404)
    with pytest.raises(ProviderProtocolError, match="Invalid version"):
        parse({"title": "Bad request", "detail": "Invalid version or not permitted", "status": 422}, 422)


@pytest.mark.parametrize("task_id", ["a/b", "../x", "q7b3?x=1", "", "q" * 65])
def test_ids_replicate_never_issues_are_refused(task_id: str) -> None:
    with pytest.raises(InvalidTaskId):
        adapter().validate_task_id(task_id)


# ---- through the MCP client, against the emulator ----


def result_of(reply: CallToolResult) -> GenerationResult:
    assert not reply.is_error, reply.content
    return GenerationResult.model_validate(reply.structured_content)


def text_of(reply: CallToolResult) -> str:
    assert reply.content and reply.content[0].type == "text"
    return reply.content[0].text


async def test_a_prediction_is_followed_to_its_file_with_progress_through_the_mcp_client(
    connect: Connect, sandbox: Sandbox
) -> None:
    sandbox["replicate"].add_job(ID, Timeline(queued_s=2, running_s=10))
    heard: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        heard.append(message or "")

    async with connect() as client:
        reply = await client.call_tool(
            "wait_for_generation",
            {"provider": "replicate", "task_id": ID, "timeout_s": 60},
            progress_callback=on_progress,
        )
    result = result_of(reply)
    assert (result.status, result.done, result.provider_status) == ("succeeded", True, "succeeded")
    assert result.outputs[0].url.endswith(f"/replicate/files/{ID}/output.mp4")
    assert result.outputs[0].expires_at is not None
    assert any("running" in line and "%" in line for line in heard), heard
    assert all(
        r.headers["authorization"] == f"Bearer {sandbox['replicate'].api_key}" for r in sandbox["replicate"].requests
    )


async def test_an_hour_after_it_finished_the_emulator_removes_the_files_and_the_answer_says_so(
    connect: Connect, sandbox: Sandbox, clock: VirtualClock
) -> None:
    sandbox["replicate"].add_job(ID, Timeline(queued_s=0, running_s=0))
    clock.advance(3601)
    async with connect() as client:
        result = result_of(await client.call_tool("get_generation_result", {"provider": "replicate", "task_id": ID}))
    assert (result.status, result.outputs) == ("succeeded", [])
    assert result.note is not None and "removed" in result.note


@pytest.mark.parametrize(("outcome", "status"), [("failed", "failed"), ("canceled", "canceled")])
async def test_failed_and_canceled_predictions_end_a_wait(
    connect: Connect, sandbox: Sandbox, outcome: Any, status: str
) -> None:
    sandbox["replicate"].add_job(ID, Timeline(queued_s=0, running_s=1, outcome=outcome))
    async with connect() as client:
        reply = await client.call_tool("wait_for_generation", {"provider": "replicate", "task_id": ID})
    result = result_of(reply)
    assert (result.status, result.done) == (status, True)
    assert (result.error is not None) == (outcome == "failed")


async def test_an_aborted_prediction_is_canceled(connect: Connect, sandbox: Sandbox) -> None:
    sandbox["replicate"].add_job(ID, Timeline(queued_s=0, running_s=0, outcome="canceled"), aborted=True)
    async with connect() as client:
        result = result_of(await client.call_tool("get_generation_result", {"provider": "replicate", "task_id": ID}))
    assert (result.status, result.provider_status) == ("canceled", "aborted")


async def test_a_wrong_token_is_authentication_failed_and_an_unknown_id_task_not_found(
    connect: Connect, sandbox: Sandbox
) -> None:
    async with connect(env={**sandbox.env(), "REPLICATE_API_TOKEN": "r8_wrong_token_0000"}) as client:
        wrong = await client.call_tool("get_generation_result", {"provider": "replicate", "task_id": ID})
    async with connect() as client:
        unknown = await client.call_tool("get_generation_result", {"provider": "replicate", "task_id": ID})
    assert text_of(wrong).startswith("authentication_failed: ") and "r8_wrong_token_0000" not in text_of(wrong)
    assert text_of(unknown).startswith("task_not_found: ")


async def test_a_throttled_wait_rides_out_the_429_and_ends_with_the_result(connect: Connect, sandbox: Sandbox) -> None:
    sandbox["replicate"].add_job(
        ID, Timeline(queued_s=0, running_s=0), [Fault.rate_limited(5), Fault.server_error(503)]
    )
    async with connect() as client:
        result = result_of(await client.call_tool("wait_for_generation", {"provider": "replicate", "task_id": ID}))
    assert (result.status, result.polls) == ("succeeded", 3)


async def test_without_a_token_replicate_is_not_configured_and_nothing_is_sent(
    connect: Connect, sandbox: Sandbox
) -> None:
    async with connect(env={}) as client:
        reply = await client.call_tool("get_generation_result", {"provider": "replicate", "task_id": ID})
    assert text_of(reply).startswith("provider_not_configured: ") and "REPLICATE_API_TOKEN" in text_of(reply)
    assert sandbox["replicate"].requests == []


# ---- what the shared suites need ----

KIT = ProviderKit(
    seeds=[STARTING, PROCESSING, SUCCEEDED, FAILED, CANCELED, REMOVED, {"detail": "Request was throttled."}],
    issued=lambda task_id: TASK_ID.fullmatch(task_id) is not None,
    paths=one_segment("/predictions/{}"),
    finished_with_key=lambda key: (
        ID,
        [
            {
                **SUCCEEDED,
                "output": [f"https://replicate.delivery/{key}/x.mp4", {"still": f"https://x.example/a.png?k={key}"}],
                "logs": f"token {key}",
            }
        ],
    ),
    reports_cost=True,
)
