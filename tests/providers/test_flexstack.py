"""Flexstack AI: the envelope parser on bytes, then the whole path through the MCP client, login included."""

from __future__ import annotations

import copy
import json
import logging
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client
from mcp.types import CallToolResult

from sandbox import IN_PROCESS_ROOT, Fault, Sandbox, Timeline
from sandbox.flexstack import FlexstackEmulator
from tests.conftest import Connect
from tests.providers.kit import Expected, ProviderKit, one_segment, safe_id
from tools.clock import VirtualClock
from tools.errors import (
    AuthenticationFailed,
    GenResultError,
    ProviderProtocolError,
    ProviderUnavailable,
    TaskNotFound,
)
from tools.providers import adapters_from_env
from tools.providers.base import Reply
from tools.providers.flexstack import Flexstack, Session, basic_credentials
from tools.redact import Redactor
from tools.result import GenerationResult, JobState
from tools.service import GenerationService

KEY = "fs-live-access-token-abcdef0123456789"


def adapter() -> Flexstack:
    return Flexstack.from_env({"FLEXSTACK_API_KEY": KEY}, Redactor())


def envelope(data: Any, errors: list[Any] | None = None, description: str = "", status: str = "success") -> bytes:
    body = {
        "data": data,
        "errors": errors or [],
        "error_description": description,
        "start_time": "2024-05-01 10:00:00",
        "end_time": "2024-05-01 10:00:01",
        "host_of_client_call_request": "203.0.113.5",
        "total_time_by_second": 0.12,
        "status": status,
    }
    return json.dumps(body).encode()


def task(status: str, percent: float | None = 0, url: str | None = "") -> dict[str, Any]:
    return {"task_id": "9f1c2e7a", "total_tasks": 1, "percent": percent, "status": status, "url_download": url}


def parse(body: bytes, status_code: int = 200) -> JobState:
    return adapter().parse(Reply(status_code, body))


# ---- the parser: bytes -> JobState ----

DOCUMENTED_COMPLETED = envelope(
    {"is_success": True, "data": task("COMPLETED", 100, "https://media.joinparrot.ai/videos/9f1c2e7a.mp4")}
)


def test_the_documented_completed_answer_is_a_succeeded_video() -> None:
    state = parse(DOCUMENTED_COMPLETED)

    assert (state.status, state.provider_status, state.progress) == ("succeeded", "COMPLETED", 100)
    assert [(o.url, o.kind, o.mime_type) for o in state.outputs] == [
        ("https://media.joinparrot.ai/videos/9f1c2e7a.mp4", "video", "video/mp4")
    ]
    assert state.error is None


@pytest.mark.parametrize(
    ("word", "percent", "status"),
    [("PENDING", 0, "queued"), ("PROCESSING", 45, "running"), ("processing", 99.5, "running")],
)
def test_a_job_on_its_way_has_its_word_its_percent_and_no_outputs(word: str, percent: float, status: str) -> None:
    state = parse(envelope({"is_success": True, "data": task(word, percent)}))

    assert (state.status, state.provider_status, state.progress, state.outputs) == (status, word, percent, ())


def test_a_word_nobody_documented_is_running_and_kept_as_said() -> None:
    state = parse(envelope({"is_success": True, "data": task("RENDERING_FRAMES", 30)}))

    assert (state.status, state.provider_status, state.error) == ("running", "RENDERING_FRAMES", None)


def test_a_failed_job_carries_the_error_description_as_its_reason() -> None:
    body = envelope(
        {"is_success": False, "data": task("FAILED")}, ["task failed"], "task failed: out of memory", "failed"
    )

    state = parse(body)

    assert (state.status, state.provider_status, state.outputs) == ("failed", "FAILED", ())
    assert state.error is not None
    assert (state.error.code, state.error.message) == ("FAILED", "task failed: out of memory")


def test_without_a_description_the_errors_list_is_the_reason_and_an_error_code_is_kept() -> None:
    errors: list[Any] = ["worker lost", {"code": "E_GPU", "message": "GPU out of memory"}]

    state = parse(envelope({"is_success": False, "data": task("FAILED")}, errors, "", "failed"))

    assert state.error is not None
    assert (state.error.code, state.error.message) == ("E_GPU", "worker lost; GPU out of memory")


def test_an_error_reported_while_the_word_still_says_processing_is_a_failure() -> None:
    state = parse(envelope({"is_success": False, "data": task("PROCESSING", 60)}, ["node crashed"], "", "failed"))

    assert (state.status, state.provider_status) == ("failed", "PROCESSING")
    assert state.error is not None and (state.error.code, state.error.message) == ("FAILED", "node crashed")


def test_is_success_false_without_any_error_is_not_taken_for_a_failure() -> None:
    state = parse(envelope({"is_success": False, "data": task("PENDING")}))

    assert (state.status, state.error) == ("queued", None)


@pytest.mark.parametrize("word", ["CANCELLED", "canceled"])
def test_a_canceled_word_is_canceled_and_without_the_providers_words_has_no_error(word: str) -> None:
    state = parse(envelope({"is_success": False, "data": task(word)}))

    assert (state.status, state.provider_status, state.error) == ("canceled", word, None)


def test_a_canceled_job_with_the_providers_words_carries_them() -> None:
    state = parse(envelope({"is_success": False, "data": task("CANCELED")}, errors=["Canceled by the user."]))

    assert state.status == "canceled"
    assert state.error is not None
    assert (state.error.code, state.error.message) == ("CANCELED", "Canceled by the user.")


def test_a_completed_job_without_a_percent_gets_none_invented_and_without_a_url_has_no_outputs() -> None:
    state = parse(envelope({"is_success": True, "data": task("COMPLETED", None, None)}))

    assert (state.status, state.progress, state.outputs) == ("succeeded", None, ())


def test_a_secret_echoed_in_a_failure_reason_is_redacted() -> None:
    state = parse(envelope({"is_success": False, "data": task("FAILED")}, [], f"bad header Bearer {KEY}", "failed"))

    assert state.error is not None
    assert KEY not in state.error.message and "[redacted]" in state.error.message


@pytest.mark.parametrize(
    "body",
    [
        envelope({"is_success": False, "data": None}, ["Task not found"], "Task not found", "failed"),
        envelope(None, ["no such task"], "", "failed"),
        envelope(None, [{"code": 404, "message": "task_id not found"}], "", "failed"),
        envelope(None, [], "The task does not exist.", "failed"),
        envelope(None, ["Not found"], "", "failed"),
    ],
)
def test_an_error_envelope_without_any_task_whose_words_say_so_means_there_is_no_such_task(body: bytes) -> None:
    with pytest.raises(TaskNotFound):
        parse(body)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (envelope({"is_success": False, "data": None}, ["Internal error, try later"], "", "failed"), "try later"),
        (envelope(None, [], "Model not found for this node, retrying", "failed"), "retrying"),
        (envelope({"is_success": False}, [], "", "failed"), ""),
    ],
)
def test_any_other_error_envelope_without_a_task_is_retryable_in_the_providers_words(body: bytes, words: str) -> None:
    with pytest.raises(ProviderUnavailable) as caught:
        parse(body)

    assert "try again" in caught.value.message.lower() and words in caught.value.message


def test_the_words_of_a_retryable_error_envelope_are_cleaned_of_secrets() -> None:
    body = envelope(None, [f"Internal error for token {KEY}"], "", "failed")

    with pytest.raises(ProviderUnavailable) as caught:
        parse(body)

    assert KEY not in caught.value.message and "[redacted]" in caught.value.message


@pytest.mark.parametrize(("status_code", "said"), [(400, "task_id is invalid"), (422, "task_id must be a string")])
def test_another_4xx_quotes_the_provider_and_says_to_check_the_id_not_the_base_url(status_code: int, said: str) -> None:
    with pytest.raises(ProviderProtocolError) as caught:
        parse(envelope(None, [said], "", "failed"), status_code)

    assert said in caught.value.message and f"HTTP {status_code}" in caught.value.message
    assert "Check the task id" in caught.value.message and "_BASE_URL" not in caught.value.message


@pytest.mark.parametrize("status_code", [402, 403])
def test_a_payment_or_plan_refusal_is_the_account_refused_in_the_providers_words(status_code: int) -> None:
    with pytest.raises(AuthenticationFailed) as caught:
        parse(envelope(None, ["Your plan has run out of credits."], "", "failed"), status_code)

    assert "refused the account" in caught.value.message and "run out of credits" in caught.value.message
    assert "credits and plan" in caught.value.message and "FLEXSTACK_API_KEY" in caught.value.message


def test_a_404_is_task_not_found_in_the_providers_words() -> None:
    body = envelope({"is_success": False, "data": None}, ["Task not found."], "Task not found.", "failed")

    with pytest.raises(TaskNotFound, match=r"the provider said: Task not found\."):
        parse(body, 404)


@pytest.mark.parametrize("status_code", [401, 403])
def test_a_refusal_of_the_token_is_authentication_failed_without_the_echoed_token(status_code: int) -> None:
    body = envelope({"is_success": False, "data": None}, [f"token {KEY} expired"], "", "failed")

    with pytest.raises(AuthenticationFailed) as caught:
        parse(body, status_code)

    assert KEY not in str(caught.value) and "[redacted]" in str(caught.value)
    assert "FLEXSTACK_API_KEY" in str(caught.value)


@pytest.mark.parametrize(
    "body",
    [
        b"<!DOCTYPE html><html>502</html>",
        b'{"data": {"is_success": true, "data": {"task_id": "x"}}}',
        envelope(None),
        envelope({"is_success": True, "data": None}),
    ],
)
def test_an_answer_that_is_not_the_documented_envelope_is_a_protocol_error(body: bytes) -> None:
    with pytest.raises(ProviderProtocolError):
        parse(body)


# ---- the parser: login and refresh answers ----


def test_a_login_answer_gives_the_access_and_refresh_tokens_and_a_refresh_answer_too() -> None:
    body = envelope({"access_token": "at-1", "refresh_token": "rt-1", "token_type": "bearer"})

    assert adapter().read_login(Reply(200, body)) == Session("at-1", "rt-1")
    assert adapter().read_refresh(Reply(200, body)) == Session("at-1", "rt-1")
    assert adapter().read_login(Reply(200, envelope({"access_token": "at-2"}))) == Session("at-2", None)


@pytest.mark.parametrize(
    "reply",
    [
        Reply(401, envelope(None, ["Incorrect username or password."], "", "failed")),
        Reply(200, envelope(None, ["Incorrect username or password."], "", "failed")),
    ],
)
def test_a_refused_login_is_authentication_failed_in_the_providers_words(reply: Reply) -> None:
    with pytest.raises(AuthenticationFailed, match="Incorrect username or password"):
        adapter().read_login(reply)


def test_a_login_that_meets_a_server_error_is_unavailable_not_a_credentials_problem() -> None:
    with pytest.raises(ProviderUnavailable):
        adapter().read_login(Reply(503, envelope(None, ["Internal error"], "", "failed")))


def test_a_refused_refresh_is_no_session_so_the_caller_logs_in_again() -> None:
    refused = Reply(401, envelope(None, ["Invalid or expired refresh token."], "", "failed"))

    assert adapter().read_refresh(refused) is None
    assert adapter().read_refresh(Reply(200, envelope({"token_type": "bearer"}))) is None


# ---- the whole path: MCP client -> server -> adapter (auth flow) -> emulator ----


def emulator(sandbox: Sandbox) -> FlexstackEmulator:
    found = sandbox["flexstack"]
    assert isinstance(found, FlexstackEmulator)
    return found


def login_env(sandbox: Sandbox) -> dict[str, str]:
    return emulator(sandbox).login_env(f"{IN_PROCESS_ROOT}/flexstack")


def text_of(reply: CallToolResult) -> str:
    assert reply.content and reply.content[0].type == "text"
    return reply.content[0].text


def answer(reply: CallToolResult) -> GenerationResult:
    assert not reply.is_error, text_of(reply)
    return GenerationResult.model_validate(reply.structured_content)


async def get(client: Client, task_id: str) -> CallToolResult:
    with anyio.fail_after(5):
        return await client.call_tool("get_generation_result", {"provider": "flexstack", "task_id": task_id})


def hits(sandbox: Sandbox, endpoint: str) -> list[str]:
    """The Authorization header of each request the emulator received at `endpoint`."""
    return [r.headers.get("authorization", "") for r in emulator(sandbox).requests if r.path.endswith(endpoint)]


@pytest.mark.parametrize(
    ("outcome", "after_s", "status", "word", "progress"),
    [
        ("succeeded", 1.0, "queued", "PENDING", 0),
        ("succeeded", 5.0, "running", "PROCESSING", 50),
        ("succeeded", 9.0, "succeeded", "COMPLETED", 100),
        ("failed", 9.0, "failed", "FAILED", 40),
        ("canceled", 9.0, "failed", "FAILED", 40),
    ],
)
async def test_each_state_arrives_normalized_through_the_client(
    connect: Connect,
    sandbox: Sandbox,
    clock: VirtualClock,
    outcome: Any,
    after_s: float,
    status: str,
    word: str,
    progress: int,
) -> None:
    emulator(sandbox).add_job("vid-42", Timeline(queued_s=2, running_s=6, outcome=outcome))
    clock.advance(after_s)

    async with connect() as client:
        result = answer(await get(client, "vid-42"))

    assert (result.status, result.provider_status, result.progress) == (status, word, progress)
    assert result.done == (status in ("succeeded", "failed"))
    if status == "succeeded":
        assert [(o.url, o.mime_type) for o in result.outputs] == [
            ("http://sandbox.genresult.invalid/flexstack/files/videos/vid-42.mp4", "video/mp4")
        ]
    if outcome == "canceled":
        assert result.error is not None and "canceled" in result.error.message
    if outcome == "failed":
        assert result.error is not None and "no frames" in result.error.message


async def test_both_the_sdks_get_and_the_documented_post_read_the_result(sandbox: Sandbox) -> None:
    emulator(sandbox).add_job("vid-1", Timeline(queued_s=0, running_s=0))
    headers = {"Authorization": f"Bearer {FlexstackEmulator.sandbox_key}"}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sandbox.app), base_url=IN_PROCESS_ROOT) as http:
        with anyio.fail_after(5):
            answers = [
                await http.request(method, "/flexstack/v1/ai/video_generation/vid-1", headers=headers)
                for method in ("GET", "POST")
            ]

    assert [a.status_code for a in answers] == [200, 200]
    assert all(a.json()["data"]["data"]["status"] == "COMPLETED" for a in answers)


async def test_username_and_password_log_in_once_and_then_use_the_bearer_token(
    connect: Connect, sandbox: Sandbox
) -> None:
    emu = emulator(sandbox)
    emu.add_job("vid-1", Timeline(queued_s=0, running_s=0))

    async with connect(login_env(sandbox)) as client:
        first = answer(await get(client, "vid-1"))
        second = answer(await get(client, "vid-1"))

    assert first.status == second.status == "succeeded"
    basic = basic_credentials(emu.sandbox_username, emu.sandbox_password)
    assert hits(sandbox, "/user/login") == [f"Basic {basic}"]
    assert hits(sandbox, "/video_generation/vid-1") == [f"Bearer {emu.issued[0]}"] * 2


async def test_an_expired_token_is_refreshed_once_and_the_call_retried(connect: Connect, sandbox: Sandbox) -> None:
    emu = emulator(sandbox)
    emu.add_job("vid-1", Timeline(queued_s=0, running_s=0))

    async with connect(login_env(sandbox)) as client:
        answer(await get(client, "vid-1"))
        first_refresh_token = emu.issued[1]
        emu.expire_tokens()
        result = answer(await get(client, "vid-1"))

    assert result.status == "succeeded"
    assert len(hits(sandbox, "/user/login")) == 1
    refreshes = [r for r in emu.requests if r.path.endswith("/user/refresh_token")]
    assert [r.body.decode() for r in refreshes] == [f"refresh_token={first_refresh_token}"]
    assert hits(sandbox, "/video_generation/vid-1")[-2:] == [f"Bearer {emu.issued[0]}", f"Bearer {emu.issued[2]}"]


async def test_a_refused_refresh_falls_back_to_logging_in_again(connect: Connect, sandbox: Sandbox) -> None:
    emu = emulator(sandbox)
    emu.add_job("vid-1", Timeline(queued_s=0, running_s=0))

    async with connect(login_env(sandbox)) as client:
        answer(await get(client, "vid-1"))
        emu.expire_tokens(refresh_tokens=True)
        result = answer(await get(client, "vid-1"))

    assert result.status == "succeeded"
    assert (len(hits(sandbox, "/user/login")), len(hits(sandbox, "/user/refresh_token"))) == (2, 1)


async def test_tokens_that_expire_on_the_clock_are_renewed_during_a_long_wait(
    connect: Connect, sandbox: Sandbox
) -> None:
    emu = emulator(sandbox)
    emu.token_lifetime_s = 60
    emu.add_job("vid-long", Timeline(queued_s=30, running_s=270))

    async with connect(login_env(sandbox)) as client:
        with anyio.fail_after(5):
            reply = await client.call_tool(
                "wait_for_generation", {"provider": "flexstack", "task_id": "vid-long", "timeout_s": 900}
            )

    result = answer(reply)
    assert (result.status, result.timed_out) == ("succeeded", False)
    assert len(hits(sandbox, "/user/login")) == 1
    assert len(hits(sandbox, "/user/refresh_token")) >= 3


async def test_many_concurrent_first_calls_cause_exactly_one_login(connect: Connect, sandbox: Sandbox) -> None:
    emu = emulator(sandbox)
    ids = [f"vid-{n}" for n in range(12)]
    for task_id in ids:
        emu.add_job(task_id, Timeline(queued_s=0, running_s=0))
    results: list[GenerationResult] = []

    async def check(client: Client, task_id: str) -> None:
        results.append(answer(await get(client, task_id)))

    async with connect(login_env(sandbox)) as client, anyio.create_task_group() as group:
        for task_id in ids:
            group.start_soon(check, client, task_id)

    assert sorted(r.task_id for r in results) == sorted(ids)
    assert len(hits(sandbox, "/user/login")) == 1


async def test_many_concurrent_401s_cause_exactly_one_refresh(connect: Connect, sandbox: Sandbox) -> None:
    emu = emulator(sandbox)
    ids = [f"vid-{n}" for n in range(12)]
    for task_id in ids:
        emu.add_job(task_id, Timeline(queued_s=0, running_s=0))
    results: list[GenerationResult] = []

    async def check(client: Client, task_id: str) -> None:
        results.append(answer(await get(client, task_id)))

    async with connect(login_env(sandbox)) as client:
        await check(client, ids[0])
        emu.expire_tokens()
        async with anyio.create_task_group() as group:
            for task_id in ids:
                group.start_soon(check, client, task_id)

    stale = [r for r in emu.requests if r.headers.get("authorization") == f"Bearer {emu.issued[0]}"]
    assert len(results) == len(ids) + 1 and {r.status for r in results} == {"succeeded"}
    # More than one call met the expired token, so the single refresh below is the lock's doing.
    assert len(stale) > 2
    assert (len(hits(sandbox, "/user/login")), len(hits(sandbox, "/user/refresh_token"))) == (1, 1)


def test_a_copy_of_each_tool_error_is_the_same_error() -> None:
    # Waiters on a failed login raise copies of its error; each must read exactly as the original.
    errors: list[GenResultError] = [
        AuthenticationFailed("Flexstack AI rejected the credentials. Check FLEXSTACK_PASSWORD."),
        ProviderUnavailable("Flexstack AI had a server error (HTTP 503). Try again shortly.", retry_after=7),
        ProviderProtocolError("Flexstack AI answered the login without data.access_token."),
        TaskNotFound("No task."),
    ]
    for error in errors:
        copied = copy.copy(error)
        assert copied is not error and type(copied) is type(error)
        assert (str(copied), copied.message, vars(copied)) == (str(error), error.message, vars(error))


def error_code(reply: CallToolResult) -> str | None:
    """The stable code a tool error starts with; None for a result."""
    if not reply.is_error:
        return None
    return text_of(reply).split(":", 1)[0]


async def concurrent_checks(client: Client, ids: list[str]) -> list[CallToolResult]:
    replies: list[CallToolResult] = []

    async def check(task_id: str) -> None:
        replies.append(await get(client, task_id))

    async with anyio.create_task_group() as group:
        for task_id in ids:
            group.start_soon(check, task_id)
    return replies


# More calls than the provider's connections (16), so most of them start while the login is in flight and
# reach the lock only after it has failed.
MANY = 50


@pytest.mark.parametrize(
    ("login_status", "password", "code", "words"),
    [
        (503, None, "provider_unavailable", "HTTP 503"),
        (None, "not-the-password", "authentication_failed", "Incorrect username or password"),
    ],
)
async def test_many_concurrent_first_calls_with_a_failing_login_log_in_once_and_all_get_its_error(
    connect: Connect, sandbox: Sandbox, login_status: int | None, password: str | None, code: str, words: str
) -> None:
    emu = emulator(sandbox)
    emu.login_status = login_status
    ids = [f"vid-{n}" for n in range(MANY)]
    for task_id in ids:
        emu.add_job(task_id, Timeline(queued_s=0, running_s=0))
    env = {**login_env(sandbox), **({"FLEXSTACK_PASSWORD": password} if password else {})}

    async with connect(env) as client:
        replies = await concurrent_checks(client, ids)
        emu.login_status = None
        emu.password = password or emu.password
        after = await get(client, "vid-0")

    assert len(replies) == MANY
    assert [text_of(r) for r in replies if error_code(r) != code] == []
    assert all(words in text_of(reply) for reply in replies)
    assert answer(after).status == "succeeded", "a call after the failed login settled tries again"
    assert len(hits(sandbox, "/user/login")) == 2
    assert hits(sandbox, "/video_generation/vid-1") == []


@pytest.mark.parametrize("refresh_status", [503, 401])
async def test_many_concurrent_401s_with_a_failing_renewal_renew_once_and_all_get_its_error(
    connect: Connect, sandbox: Sandbox, refresh_status: int
) -> None:
    emu = emulator(sandbox)
    ids = [f"vid-{n}" for n in range(MANY)]
    for task_id in ids:
        emu.add_job(task_id, Timeline(queued_s=0, running_s=0))

    async with connect(login_env(sandbox)) as client:
        answer(await get(client, ids[0]))
        emu.expire_tokens()
        # A refused refresh falls back to logging in, which now fails too: the password was changed.
        emu.refresh_status = refresh_status
        emu.password = "changed-elsewhere"
        replies = await concurrent_checks(client, ids)

    code = "provider_unavailable" if refresh_status == 503 else "authentication_failed"
    assert [text_of(r) for r in replies if error_code(r) != code] == []
    renewals = (len(hits(sandbox, "/user/login")), len(hits(sandbox, "/user/refresh_token")))
    assert renewals == ((1, 1) if refresh_status == 503 else (2, 1))
    # More than one call met the expired token, so the single renewal is the lock's doing.
    assert len([r for r in emu.requests if "/video_generation/" in r.path]) > 2 + 1


@pytest.mark.parametrize("how", ["transport error", "canceled"])
async def test_a_login_that_got_no_answer_is_not_shared_and_the_next_call_in_line_logs_in(how: str) -> None:
    gate = anyio.Event()
    logins = 0

    async def answer_login(request: httpx.Request) -> httpx.Response:
        nonlocal logins
        if request.url.path.endswith("/user/login"):
            logins += 1
            if logins == 1:
                await gate.wait()
                raise httpx.ConnectError("connection reset by peer")
            return httpx.Response(200, content=envelope({"access_token": "fs-at-2"}))
        return httpx.Response(200, content=DOCUMENTED_COMPLETED)

    redactor = Redactor()
    adapters = adapters_from_env({"FLEXSTACK_USERNAME": "me@example.com", "FLEXSTACK_PASSWORD": "pw-01234"}, redactor)
    outcomes: dict[str, object] = {}
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer_login)) as http:
        service = GenerationService(adapters, http, redactor=redactor)

        async def first(scope: anyio.CancelScope) -> None:
            with scope:
                try:
                    outcomes["first"] = await service.check("flexstack", "t-1")
                except ProviderUnavailable as error:
                    outcomes["first"] = error

        async def second() -> None:
            outcomes["second"] = await service.check("flexstack", "t-2")

        with anyio.fail_after(5):
            async with anyio.create_task_group() as group:
                scope = anyio.CancelScope()
                group.start_soon(first, scope)
                await anyio.wait_all_tasks_blocked()
                group.start_soon(second)
                await anyio.wait_all_tasks_blocked()
                if how == "canceled":
                    scope.cancel()
                else:
                    gate.set()

    assert logins == 2
    assert isinstance(outcomes["second"], GenerationResult) and outcomes["second"].status == "succeeded"
    if how == "canceled":
        assert "first" not in outcomes
    else:
        assert isinstance(outcomes["first"], ProviderUnavailable)


async def test_a_token_still_refused_after_renewal_is_authentication_failed(connect: Connect, sandbox: Sandbox) -> None:
    emu = emulator(sandbox)
    emu.token_lifetime_s = 0
    emu.add_job("vid-1")

    async with connect(login_env(sandbox)) as client:
        reply = await get(client, "vid-1")

    assert reply.is_error and "authentication_failed" in text_of(reply)
    assert len(hits(sandbox, "/video_generation/vid-1")) == 2
    assert (len(hits(sandbox, "/user/login")), len(hits(sandbox, "/user/refresh_token"))) == (1, 1)


async def test_a_wrong_password_is_authentication_failed_naming_the_settings(
    connect: Connect, sandbox: Sandbox
) -> None:
    emulator(sandbox).add_job("vid-1")
    env = {**login_env(sandbox), "FLEXSTACK_PASSWORD": "not-the-password"}

    async with connect(env) as client:
        reply = await get(client, "vid-1")

    assert reply.is_error
    assert "authentication_failed" in text_of(reply) and "Incorrect username or password" in text_of(reply)
    assert "FLEXSTACK_USERNAME" in text_of(reply) and "not-the-password" not in text_of(reply)
    assert hits(sandbox, "/video_generation/vid-1") == []


async def test_a_rejected_static_key_is_authentication_failed_at_once(connect: Connect, sandbox: Sandbox) -> None:
    emu = emulator(sandbox)
    emu.echo_credentials = True
    emu.add_job("vid-1")
    env = {**sandbox.env(), "FLEXSTACK_API_KEY": KEY}

    async with connect(env) as client:
        reply = await get(client, "vid-1")

    assert reply.is_error and "authentication_failed" in text_of(reply)
    assert KEY not in text_of(reply) and "[redacted]" in text_of(reply)
    assert len(hits(sandbox, "/video_generation/vid-1")) == 1
    assert hits(sandbox, "/user/login") == [] and hits(sandbox, "/user/refresh_token") == []


@pytest.mark.parametrize("status_code", [404, 200])
async def test_an_unknown_task_is_task_not_found(connect: Connect, sandbox: Sandbox, status_code: int) -> None:
    emulator(sandbox).missing_task_status = status_code

    async with connect() as client:
        reply = await get(client, "vid-missing")

    assert reply.is_error and "task_not_found" in text_of(reply) and "Task not found." in text_of(reply)


async def test_without_credentials_the_provider_is_not_configured_and_says_which_variables_to_set(
    connect: Connect, sandbox: Sandbox
) -> None:
    env = {"FLEXSTACK_USERNAME": "someone", "FLEXSTACK_BASE_URL": f"{IN_PROCESS_ROOT}/flexstack/v1"}

    async with connect(env) as client:
        reply = await get(client, "vid-1")

    assert reply.is_error and "provider_not_configured" in text_of(reply)
    assert all(name in text_of(reply) for name in ("FLEXSTACK_API_KEY", "FLEXSTACK_USERNAME", "FLEXSTACK_PASSWORD"))
    assert emulator(sandbox).requests == []


async def test_a_wait_rides_out_a_rate_limit_and_a_server_error(connect: Connect, sandbox: Sandbox) -> None:
    emulator(sandbox).add_job(
        "vid-1", Timeline(queued_s=2, running_s=6), faults=[Fault.rate_limited(3), Fault.server_error(503)]
    )

    async with connect() as client:
        with anyio.fail_after(5):
            reply = await client.call_tool(
                "wait_for_generation", {"provider": "flexstack", "task_id": "vid-1", "timeout_s": 60}
            )

    result = answer(reply)
    assert (result.status, result.outputs[0].url) == (
        "succeeded",
        "http://sandbox.genresult.invalid/flexstack/files/videos/vid-1.mp4",
    )
    assert result.polls is not None and result.polls >= 3


async def test_no_token_password_or_key_appears_in_any_answer_or_log_line(
    connect: Connect, sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    emu = emulator(sandbox)
    emu.echo_credentials = True
    emu.add_job("vid-ok", Timeline(queued_s=0, running_s=0))
    emu.add_job("vid-bad", Timeline(queued_s=0, running_s=0, outcome="failed"))
    texts: list[str] = []

    async def record(client: Client, task_id: str) -> None:
        reply = await get(client, task_id)
        texts.append(text_of(reply) + json.dumps(reply.structured_content))

    async with connect(login_env(sandbox)) as client:
        await record(client, "vid-ok")
        emu.expire_tokens()
        await record(client, "vid-bad")
        emu.token_lifetime_s = 0
        emu.expire_tokens()
        await record(client, "vid-ok")

    secrets = [*emu.issued, emu.password, basic_credentials(emu.username, emu.password)]
    everything = "\n".join(texts) + caplog.text
    assert len(emu.issued) >= 6
    assert "[redacted]" in texts[-1], "the emulator echoed the refused token; the answer must hide it"
    assert [s for s in secrets if s in everything] == []


# The documented payloads of PROVIDERS.md: the shared fuzz suite grows near misses from them.
FUZZ_SEEDS: list[Any] = [
    {
        "data": {
            "is_success": True,
            "data": {
                "task_id": "9f1c2e7a",
                "total_tasks": 1,
                "percent": 100,
                "status": "COMPLETED",
                "url_download": "https://media.joinparrot.ai/videos/9f1c2e7a.mp4",
            },
        },
        "errors": [],
        "error_description": "",
        "start_time": "2024-05-01 10:00:00",
        "end_time": "2024-05-01 10:00:01",
        "host_of_client_call_request": "203.0.113.5",
        "total_time_by_second": 0.12,
        "status": "success",
    },
    {
        "data": {
            "is_success": False,
            "data": {"task_id": "9f1c2e7a", "total_tasks": 1, "percent": 0, "status": "FAILED", "url_download": ""},
        },
        "errors": ["task failed"],
        "error_description": "task failed",
        "status": "failed",
    },
    {"data": {"access_token": "at", "refresh_token": "rt"}, "errors": [], "status": "success"},
]


KIT = ProviderKit(
    seeds=FUZZ_SEEDS,
    issued=safe_id,
    paths=one_segment("/ai/video_generation/{}"),
    side_paths=frozenset({"/user/login", "/user/refresh_token"}),
    # An error envelope with no task may be a passing fault (retryable), whatever the HTTP code.
    body_decides=(range(200, 300), (ProviderUnavailable,)),
    finished_with_key=lambda key: (
        "job-1",
        [
            {
                "data": {
                    "is_success": True,
                    "data": {
                        "task_id": "job-1",
                        "percent": 100,
                        "status": "COMPLETED",
                        "url_download": f"https://media.joinparrot.ai/videos/x.mp4?token={key}",
                    },
                },
                "errors": [],
                "error_description": "",
                "status": "success",
            }
        ],
    ),
    fault_overrides={
        # An error envelope with no task whose words do not say the task is unknown: it may clear, so a
        # wait keeps trying.
        "an error inside a 200": Expected("provider_unavailable", transient=True),
    },
)
