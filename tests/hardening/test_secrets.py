"""No credential leaves the server: not in results, tool errors, log lines or CLI output.

The providers here echo what they were sent (the Authorization header and the body, raw and in a
percent-encoded link) in every error they can, the keys contain characters that URL encoding changes, and
Flexstack starts from a stale key, logs in with a password and has its tokens expire along the way, so
tokens obtained at run time are in play too. Then every byte the server emitted is searched for every
secret in every spelling.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

import anyio
import anyio.to_thread
import pytest
from mcp import Client
from mcp.types import CallToolResult

from sandbox import Fault, Sandbox, Timeline
from sandbox.flexstack import FlexstackEmulator
from server.app import configure_logging
from server.cli import main
from tests.hardening.faults import CASES, PROVIDERS, REQUEST_TIMEOUT_S, leaks, mcp_client, new_task_id
from tests.hardening.loopback import LoopbackServer, Switch
from tools.clock import VirtualClock
from tools.providers import ADAPTERS
from tools.providers.flexstack import basic_credentials
from tools.redact import Redactor

DONE_AT_ONCE = Timeline(queued_s=0, running_s=0, outcome="succeeded")
ODD = "/+=&%41~"
"""Characters that each URL-encoding rule treats differently: a secret holding them has many spellings."""


def echoing(fault: Fault) -> Fault:
    if fault.kind in ("status", "error_in_ok"):
        return dataclasses.replace(fault, echo_credentials=True, message="Request refused")
    return fault


class Secrets:
    """The sandbox with odd keys everywhere, the settings that use them, and every secret in play."""

    def __init__(self, clock: VirtualClock, root: str) -> None:
        self.sandbox = Sandbox(clock, auto_create=False)
        self.env: dict[str, str] = {}
        for provider in PROVIDERS:
            emulator = self.sandbox[provider]
            emulator.api_key = f"{provider}-KEY{ODD}{provider[::-1]}"
            self.env.update(emulator.env(f"{root}/{provider}"))
        flexstack = self.flexstack
        flexstack.password = f"pass word{ODD}9"
        flexstack.echo_credentials = True
        self.env.update(flexstack.login_env(f"{root}/flexstack"))
        # A key the provider no longer takes: its 401 echoes it, then the server logs in.
        self.env["FLEXSTACK_API_KEY"] = f"fs-STALE{ODD}key"

    @property
    def flexstack(self) -> FlexstackEmulator:
        emulator = self.sandbox["flexstack"]
        assert isinstance(emulator, FlexstackEmulator)
        return emulator

    def all(self) -> list[str]:
        configured = [self.sandbox[provider].api_key for provider in PROVIDERS]
        flexstack = self.flexstack
        runtime = list(flexstack.issued)
        assert runtime, "the server never logged in, so no run-time token was tested"
        return [
            *configured,
            self.env["FLEXSTACK_API_KEY"],
            flexstack.password,
            basic_credentials(flexstack.username, flexstack.password),
            *runtime,
        ]


def emitted(reply: CallToolResult) -> str:
    """The reply as it goes on the wire."""
    return reply.model_dump_json(by_alias=True)


async def run_matrix(client: Client, secrets: Secrets, provider: str, out: list[str]) -> None:
    """The whole fault matrix for one provider, each fault echoing, each once by get and once by wait."""
    for number, case in enumerate(CASES):
        if provider == "flexstack" and number % 4 == 0:
            secrets.flexstack.expire_tokens(refresh_tokens=number % 8 == 0)
        task_id = new_task_id(provider)
        faults = [echoing(fault) for fault in case.faults]
        job = secrets.sandbox[provider].add_job(task_id, DONE_AT_ONCE, faults)
        args: dict[str, Any] = {"provider": provider, "task_id": task_id}
        out.append(emitted(await client.call_tool("get_generation_result", args)))
        job.faults.extend(faults)
        out.append(emitted(await client.call_tool("wait_for_generation", {**args, "timeout_s": 60})))


async def test_no_secret_leaves_in_any_result_error_or_log_line_across_the_whole_fault_matrix(
    loopback: LoopbackServer, root_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = VirtualClock()
    secrets = Secrets(clock, loopback.root)
    assert isinstance(loopback.app, Switch)
    loopback.app.target = secrets.sandbox.app
    redactor = Redactor()
    configure_logging("DEBUG", redactor)
    out: list[str] = []
    async with mcp_client(secrets.env, clock, redactor=redactor, log_level="DEBUG") as client:
        logging.getLogger("genresult.test").debug("the server's log handler is in place")
        with anyio.fail_after(30):
            async with anyio.create_task_group() as group:
                for provider in PROVIDERS:
                    group.start_soon(run_matrix, client, secrets, provider, out)
    captured = capsys.readouterr()
    assert "the server's log handler is in place" in captured.err
    assert "HTTP Request: POST" in captured.err, "httpx's request lines reached the log"
    blob = "\n".join([*out, captured.out, captured.err])
    assert len(out) == 2 * len(CASES) * len(PROVIDERS)
    assert any("Request refused" in reply for reply in out), "the echoing errors reached the results"
    assert leaks(blob, secrets.all()) == []


async def test_rejected_credentials_echoed_back_are_not_repeated_in_the_tool_error(loopback: LoopbackServer) -> None:
    clock = VirtualClock()
    secrets = Secrets(clock, loopback.root)
    assert isinstance(loopback.app, Switch)
    loopback.app.target = secrets.sandbox.app
    wrong = {secrets.sandbox[provider].api_key_env: f"WRONG-{provider}{ODD}" for provider in PROVIDERS}
    env = {**secrets.env, **wrong}
    env.pop("FLEXSTACK_USERNAME")
    out = []
    async with mcp_client(env, clock) as client:
        for provider in PROVIDERS:
            task_id = new_task_id(provider)
            secrets.sandbox[provider].add_job(task_id, DONE_AT_ONCE)
            reply = await client.call_tool("get_generation_result", {"provider": provider, "task_id": task_id})
            assert reply.is_error
            out.append(emitted(reply))
    assert all("authentication_failed" in reply for reply in out), out
    assert leaks("\n".join(out), list(wrong.values())) == []


def run_cli(argv: list[str]) -> int:
    return main(argv)


async def test_cli_output_carries_no_secret_when_the_provider_echoes_them(
    loopback: LoopbackServer,
    root_logging: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = VirtualClock()
    secrets = Secrets(clock, loopback.root)
    assert isinstance(loopback.app, Switch)
    loopback.app.target = secrets.sandbox.app
    ours = (*(provider.upper() for provider in ADAPTERS), "GENRESULT_")
    for name in list(os.environ):
        if name.startswith(ours):
            monkeypatch.delenv(name)
    for name, value in secrets.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("GENRESULT_REQUEST_TIMEOUT_S", str(REQUEST_TIMEOUT_S))
    monkeypatch.setenv("GENRESULT_LOG_LEVEL", "DEBUG")
    codes = []
    for provider in PROVIDERS:
        for fault in (Fault.server_error(503), Fault.error_in_ok(), Fault.rate_limited(1)):
            task_id = new_task_id(provider)
            secrets.sandbox[provider].add_job(task_id, DONE_AT_ONCE, [echoing(fault)] * 2)
            with anyio.fail_after(10):
                codes.append(await anyio.to_thread.run_sync(run_cli, ["get", provider, task_id]))
                # A wait too short for a second check prints what a longer one would (its first check's report and
                # answer), but answers at its deadline: a short one keeps 39 of them quick.
                codes.append(await anyio.to_thread.run_sync(run_cli, ["wait", provider, task_id, "--timeout", "0.05"]))
    captured = capsys.readouterr()
    assert 3 in codes, "some calls ended in a tool error, whose text went to stderr"
    assert "Request refused" in captured.err
    assert leaks(captured.out + captured.err, secrets.all()) == []
