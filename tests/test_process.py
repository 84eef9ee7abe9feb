"""The real thing, outside the fakes: the console script over stdio, over streamable HTTP, and the CLI.

These start processes and use real time, so they sit inside fail_after and keep short: the sandbox runs at
`PACE` (`GENRESULT_SANDBOX_PACE`), so a job takes `JOB_S` (a quarter queued, the rest running) instead of
8 s, less than the server's shortest pause between two checks: a job followed to its end is over by the
second check. The runs that follow jobs to their end follow them side by side; a wait that must run out of
time waits on a job held queued (an emulator served by the test) or on a sandbox run at `SLOW_PACE`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from itertools import pairwise
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

import anyio
import anyio.to_thread
import httpx
import pytest
from mcp import Client, StdioServerParameters

from sandbox import EMULATORS, IN_PROCESS_ROOT, Sandbox, Timeline
from tests.conftest import TOOL_NAMES
from tests.hardening.loopback import serving
from tests.providers.kit import kit
from tools.clock import SystemClock
from tools.providers import ADAPTERS
from tools.result import GenerationResult

ROOT = Path(__file__).resolve().parent.parent
# A job at every provider, in each provider's own id form.
SANDBOX_IDS = {provider: cls.sandbox_id(1) for provider, cls in EMULATORS.items()}
# Providers whose sandbox answers carry the job's cost, as their APIs do.
REPORTS_COST = {provider for provider in ADAPTERS if kit(provider).reports_cost}
# Sandbox jobs of 0.8 s: shorter than the server's shortest pause between checks (1 s, GENRESULT_POLL_FLOOR_S).
PACE = 0.1
JOB_S = 8 * PACE
# Sandbox jobs of 4 s: still running when a 2.5 s wait on one runs out of time.
SLOW_PACE = 0.5
TIMED_OUT_S = 2.5
# Long enough for a fresh sandbox job with room for a slow machine; waits that reach it fail.
JOB_TIMEOUT_S = 30


def console_script() -> str:
    """The installed `genresult-mcp`, next to this interpreter (the README installs it into the venv)."""
    found = shutil.which("genresult-mcp", path=str(Path(sys.executable).parent)) or shutil.which("genresult-mcp")
    assert found, "genresult-mcp is not installed: run `pip install -e .[test]` as the README says"
    return found


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without any provider settings, so nothing real is ever called, and the sandbox at `PACE`."""
    provider_vars = {name for adapter in ADAPTERS.values() for name in adapter.env_names()}
    keep = {k: v for k, v in os.environ.items() if k not in provider_vars}
    return {**keep, "GENRESULT_LOG_LEVEL": "WARNING", "GENRESULT_SANDBOX_PACE": str(PACE), **extra}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Waits:
    """Waits run side by side on one client, each keeping its own progress, for the real-time runs."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.results: dict[str, GenerationResult] = {}
        self.progress: dict[str, list[float]] = {}

    async def wait(self, provider: str, task_id: str, timeout_s: float) -> None:
        heard = self.progress.setdefault(task_id, [])
        last_heard = anyio.Event()

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            heard.append(progress)
            if progress == total:
                last_heard.set()

        reply = await self.client.call_tool(
            "wait_for_generation",
            {"provider": provider, "task_id": task_id, "timeout_s": timeout_s},
            progress_callback=on_progress,
        )
        assert not reply.is_error, reply.content
        self.results[task_id] = GenerationResult.model_validate(reply.structured_content)
        # The client runs each progress callback in a task of its own, so the reply can overtake the last ones.
        await last_heard.wait()


def assert_timed_out_in_time(result: GenerationResult, timeout_s: float, progress: list[float]) -> None:
    assert (result.timed_out, result.done) == (True, False) and result.elapsed_s is not None
    # The last check lands a second (the policy's landing) before the deadline, and never after it.
    assert timeout_s - 1.5 <= result.elapsed_s <= timeout_s
    assert len(progress) >= 2 and all(earlier < later for earlier, later in pairwise(progress))


def assert_succeeded(result: GenerationResult, progress: list[float]) -> None:
    assert (result.status, result.done, result.timed_out) == ("succeeded", True, False)
    # A provider CDN's https URL, or the sandbox's own file route (`Emulator.file_url`), where downloads reach.
    served = ("https://", f"{IN_PROCESS_ROOT}/{result.provider}/files/", "http://127.0.0.1:")
    assert result.outputs and all(output.url.startswith(served) for output in result.outputs)
    assert result.elapsed_s is not None and JOB_S - 0.5 <= result.elapsed_s < JOB_TIMEOUT_S
    # Over by the second check (the job is shorter than the pause before it): the sandbox ran at `PACE`.
    assert result.polls == 1 + kit(result.provider).finished_read_requests, result.polls
    assert result.provider in REPORTS_COST or result.cost is None
    if result.provider in REPORTS_COST:
        assert result.cost is not None and result.cost.amount > 0
    assert all(earlier < later for earlier, later in pairwise(progress)) and progress[-1] == JOB_TIMEOUT_S


async def test_the_console_script_serves_every_provider_over_real_stdio_in_sandbox_mode() -> None:
    # Jobs followed to their end over real stdio: the mcp.json run below, at every provider.
    params = StdioServerParameters(
        command=console_script(), args=["--sandbox"], env=clean_env(GENRESULT_SANDBOX_PACE=str(SLOW_PACE))
    )

    with anyio.fail_after(45):
        async with Client(params) as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            assert names == TOOL_NAMES
            for provider, task_id in SANDBOX_IDS.items():
                reply = await client.call_tool("get_generation_result", {"provider": provider, "task_id": task_id})
                assert not reply.is_error, reply.content
                result = GenerationResult.model_validate(reply.structured_content)
                assert (result.provider, result.task_id, result.done) == (provider, task_id, False)
            waits = Waits(client)
            await waits.wait("skillsvideo", "gen_stdio", TIMED_OUT_S)
    waited = waits.results["gen_stdio"]
    assert_timed_out_in_time(waited, TIMED_OUT_S, waits.progress["gen_stdio"])
    assert waits.progress["gen_stdio"][-1] == TIMED_OUT_S


async def test_mcp_json_launches_the_installed_server_as_a_client_would() -> None:
    config = json.loads((ROOT / "mcp.json").read_text())["mcpServers"]["genresult"]
    command = shutil.which(config["command"], path=str(Path(sys.executable).parent)) or config["command"]
    params = StdioServerParameters(command=command, args=config["args"], env=clean_env(**config["env"]))
    with anyio.fail_after(30):
        async with Client(params) as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            reply = await client.call_tool("get_generation_result", {"provider": "nope", "task_id": "1"})
    assert names == TOOL_NAMES
    assert reply.is_error and "unknown_provider" in reply.content[0].text  # type: ignore[union-attr]


async def test_mcp_json_in_sandbox_mode_follows_a_job_at_every_provider_to_its_result() -> None:
    config = json.loads((ROOT / "mcp.json").read_text())["mcpServers"]["genresult"]
    command = shutil.which(config["command"], path=str(Path(sys.executable).parent)) or config["command"]
    params = StdioServerParameters(command=command, args=[*config["args"], "--sandbox"], env=clean_env(**config["env"]))
    # Waits are told apart by task id, so each provider's job gets an id of its own.
    fresh = {provider: cls.sandbox_id(100 + n) for n, (provider, cls) in enumerate(EMULATORS.items())}
    with anyio.fail_after(45):
        async with Client(params) as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            waits = Waits(client)
            async with anyio.create_task_group() as group:
                for provider, task_id in fresh.items():
                    group.start_soon(waits.wait, provider, task_id, JOB_TIMEOUT_S)
    assert names == TOOL_NAMES
    for provider, task_id in fresh.items():
        result = waits.results[task_id]
        assert (result.provider, result.task_id) == (provider, task_id)
        assert_succeeded(result, waits.progress[task_id])


@asynccontextmanager
async def http_process(
    *extra: str, env: dict[str, str] | None = None
) -> AsyncIterator[tuple[str, subprocess.Popen[bytes]]]:
    """The console script serving MCP over HTTP on a free loopback port: in sandbox mode, unless `env` is given.
    Yields its URL and the process; ended at the close unless it ended before."""
    port = free_port()
    process = subprocess.Popen(
        [
            console_script(),
            "serve",
            "--transport",
            "http",
            "--port",
            str(port),
            *extra,
            *([] if env else ["--sandbox"]),
        ],
        env=env or clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        async with httpx.AsyncClient() as probe:
            while True:
                assert process.poll() is None, process.stderr.read() if process.stderr else b""
                try:
                    await probe.get(f"http://127.0.0.1:{port}/", timeout=0.5)
                    break
                except httpx.TransportError:
                    await anyio.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp", process
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(timeout=10)
        if process.stderr is not None:
            process.stderr.close()


@asynccontextmanager
async def http_server(*extra: str, env: dict[str, str] | None = None) -> AsyncIterator[str]:
    async with http_process(*extra, env=env) as (url, _process):
        yield url


async def test_the_server_answers_over_real_streamable_http_stateful_and_stateless() -> None:
    # The emulators serve on loopback in this process: the job the waits must time out on is held queued,
    # while a fresh id is a job at `PACE`.
    sandbox = Sandbox(SystemClock(), pace=PACE)
    followed = {"stateful": "31415", "stateless": "31416"}
    looked: dict[str, GenerationResult] = {}
    waited: dict[str, Waits] = {}

    async def exercise(env: dict[str, str], mode: str, *extra: str) -> None:
        held = f"gen_http_{mode}"
        sandbox["skillsvideo"].add_job(held, Timeline(queued_s=1000))
        async with http_server(*extra, env=env) as url, Client(url) as client:
            reply = await client.call_tool("get_generation_result", {"provider": "skillsvideo", "task_id": held})
            looked[mode] = GenerationResult.model_validate(reply.structured_content)
            waits = waited[mode] = Waits(client)
            async with anyio.create_task_group() as group:
                group.start_soon(waits.wait, "skillsvideo", held, TIMED_OUT_S)
                group.start_soon(waits.wait, "modelslab", followed[mode], JOB_TIMEOUT_S)

    # Both modes side by side: each follows a job to its end.
    with serving(sandbox.app) as emulators, anyio.fail_after(45):
        env = clean_env(**sandbox.env(emulators.root))
        async with anyio.create_task_group() as group:
            group.start_soon(exercise, env, "stateful")
            group.start_soon(exercise, env, "stateless", "--stateless")
    for mode, waits in waited.items():
        held = f"gen_http_{mode}"
        assert looked[mode].provider_status == "IN_QUEUE", mode
        assert_timed_out_in_time(waits.results[held], TIMED_OUT_S, waits.progress[held])
        assert_succeeded(waits.results[followed[mode]], waits.progress[followed[mode]])
    assert set(waited) == {"stateful", "stateless"}


# A client in a process of its own, so it can be killed mid-call as a crashed agent or a closed laptop would.
DOOMED_CLIENT = textwrap.dedent(
    """
    import sys

    import anyio
    from mcp import Client

    async def main() -> None:
        async def on_progress(value, total, message) -> None:
            pass

        async with Client(sys.argv[1], mode="legacy") as client:
            await client.call_tool(
                "wait_for_generation",
                {"provider": "skillsvideo", "task_id": "gen_gone", "timeout_s": 40, "poll_interval_s": 0.2},
                progress_callback=on_progress,
            )

    anyio.run(main)
    """
)


async def test_a_legacy_http_client_killed_mid_wait_stops_the_requests_to_the_provider() -> None:
    # The emulator serves on loopback in this process, so its request log shows what the server still sends.
    sandbox = Sandbox(SystemClock(), auto_create=False)
    sandbox["skillsvideo"].add_job("gen_gone", Timeline(queued_s=1000))
    requests = sandbox["skillsvideo"].requests
    with serving(sandbox.app) as emulators, anyio.fail_after(30):
        env = clean_env(**sandbox.env(emulators.root), GENRESULT_POLL_FLOOR_S="0.2")
        async with http_server(env=env) as url:
            client = subprocess.Popen([sys.executable, "-c", DOOMED_CLIENT, url], env=env)
            try:
                while len(requests) < 3:
                    assert client.poll() is None, "the client ended before it could be killed"
                    await anyio.sleep(0.05)
            finally:
                client.kill()
                client.wait(timeout=10)
            # A request in flight at the kill may still land, and the server needs a moment to hear the hang-up;
            # soon after, the wait (a check every 0.2 s for 40 s) must fall silent for five intervals in a row.
            quiet = False
            with anyio.move_on_after(5):
                while not quiet:
                    seen = len(requests)
                    await anyio.sleep(1.0)
                    quiet = len(requests) == seen
            assert quiet, "the server kept asking the provider after its client was gone"
    assert all(request.path.endswith("/generation/gen_gone") for request in requests)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_a_signal_answers_every_wait_in_flight_with_its_last_state_then_the_server_exits_0(
    stop: signal.Signals,
) -> None:
    # Sandbox jobs at 1/100 speed (800 s each): every wait is still waiting when the signal comes.
    env = clean_env(GENRESULT_SANDBOX_PACE="100")
    answers: dict[str, Any] = {}
    first_checks: list[anyio.Event] = []

    async def call(url: str, mode: str, name: str, tool: str, arguments: dict[str, Any]) -> None:
        checked = anyio.Event()
        first_checks.append(checked)

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            checked.set()

        async with Client(url, mode=mode) as client:  # type: ignore[arg-type]
            # Listed first, as clients do: the SDK's client reads the output schema before it accepts an answer.
            await client.list_tools()
            reply = await client.call_tool(tool, {**arguments, "timeout_s": 60}, progress_callback=on_progress)
            answers[name] = reply.structured_content

    def job(n: int) -> dict[str, str]:
        return {"provider": "skillsvideo", "task_id": EMULATORS["skillsvideo"].sandbox_id(n)}

    with anyio.fail_after(30):
        async with http_process("--sandbox", env=env) as (url, process), anyio.create_task_group() as group:
            group.start_soon(call, url, "legacy", "stateful session", "wait_for_generation", job(1))
            group.start_soon(call, url, "auto", "2026 era", "wait_for_generation", job(2))
            jobs = [job(3), {"provider": "modelslab", "task_id": "27182"}]
            group.start_soon(call, url, "legacy", "several jobs", "wait_for_generations", {"jobs": jobs})
            while len(first_checks) < 3:
                await anyio.sleep(0.01)
            for checked in first_checks:
                await checked.wait()
            process.send_signal(stop)
            exit_code = await anyio.to_thread.run_sync(process.wait, 20)
    assert exit_code == 0
    batch = answers.pop("several jobs")
    assert batch["timed_out"] is True and "server is stopping" in batch["note"]
    for answer in [*answers.values(), *batch["results"]]:
        assert (answer["done"], answer["timed_out"]) == (False, True), answer
        assert "server is stopping" in answer["note"] and "call again" in answer["note"].lower()
    assert set(answers) == {"stateful session", "2026 era"} and len(batch["results"]) == 2


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [console_script(), *args], env=clean_env(**env), capture_output=True, text=True, timeout=60, check=False
    )


async def test_over_real_stdio_every_providers_download_is_linked_by_a_file_uri_that_opens(tmp_path: Path) -> None:
    params = StdioServerParameters(
        command=console_script(), args=["--sandbox"], env=clean_env(GENRESULT_DOWNLOAD_DIR=str(tmp_path))
    )
    with anyio.fail_after(45):
        async with Client(params) as client:
            for provider, cls in EMULATORS.items():
                arguments = {"provider": provider, "task_id": cls.finished_id(1)}
                reply = await client.call_tool("download_generation_outputs", arguments)
                assert not reply.is_error, reply.content
                result = GenerationResult.model_validate(reply.structured_content)
                links = [block for block in reply.content if block.type == "resource_link"]
                assert links and len(links) == len(result.outputs)
                for output, link in zip(result.outputs, links, strict=True):
                    opened = Path(url2pathname(urlsplit(str(link.uri)).path)).read_bytes()
                    assert str(link.uri).startswith("file:///") and len(opened) == output.size_bytes == link.size
                    assert Path(str(output.path)).is_relative_to(tmp_path / provider)


def assert_playable(result: GenerationResult) -> None:
    assert result.outputs
    for output in result.outputs:
        assert output.path is not None
        head = Path(output.path).read_bytes()[:12]
        assert head[4:8] == b"ftyp" or head.startswith((b"GIF8", b"\x89PNG", b"RIFF", b"ID3")), (result.provider, head)


async def test_cli_download_exits_0_with_the_files_saved_2_for_a_job_not_done_and_1_for_a_failed_one(
    tmp_path: Path,
) -> None:
    # Every provider's download, in-process: tests/test_cli.py. Here the console script's, side by side.
    outcomes: dict[str, subprocess.CompletedProcess[bytes]] = {}

    async def download(task_id: str) -> None:
        command = [console_script(), "--sandbox", "download", "skillsvideo", task_id, "--dir", str(tmp_path / task_id)]
        outcomes[task_id] = await anyio.run_process(command, env=clean_env(), check=False)

    with anyio.fail_after(45):
        async with anyio.create_task_group() as group:
            for task_id in ("gen_done_cli", "gen_cli", "gen_done_fail"):
                group.start_soon(download, task_id)
    saved, running, failed = outcomes["gen_done_cli"], outcomes["gen_cli"], outcomes["gen_done_fail"]
    assert saved.returncode == 0, saved.stderr
    assert_playable(GenerationResult.model_validate_json(saved.stdout))
    assert b"KB" in saved.stderr
    assert running.returncode == 2, running.stderr
    assert "Nothing was downloaded" in (GenerationResult.model_validate_json(running.stdout).note or "")
    assert failed.returncode == 1, failed.stderr
    assert not (tmp_path / "gen_cli").exists() and not (tmp_path / "gen_done_fail").exists()


def test_cli_wait_with_download_saves_what_succeeded(tmp_path: Path) -> None:
    done = run_cli(
        "wait", "skillsvideo", "gen_done_wait", "--download", "--sandbox", GENRESULT_DOWNLOAD_DIR=str(tmp_path)
    )
    assert done.returncode == 0, done.stderr
    result = GenerationResult.model_validate_json(done.stdout)
    assert result.polls == 1 and result.outputs[0].path is not None
    assert Path(result.outputs[0].path).is_relative_to(tmp_path)


def test_cli_get_prints_one_line_of_json_and_exits_0() -> None:
    done = run_cli("get", "skillsvideo", "gen_cli", "--sandbox")
    assert done.returncode == 0, done.stderr
    assert GenerationResult.model_validate_json(done.stdout).status == "queued"
    assert done.stdout.count("\n") == 1


def test_cli_wait_that_runs_out_of_time_exits_2_with_progress_on_stderr() -> None:
    done = run_cli("wait", "skillsvideo", "gen_cli", "--timeout", "0.5", "--sandbox")
    assert done.returncode == 2, done.stderr
    assert GenerationResult.model_validate_json(done.stdout).timed_out is True
    assert "waited" in done.stderr


def test_cli_errors_exit_3_with_the_code_on_stderr_and_nothing_on_stdout() -> None:
    done = run_cli("get", "skillsvideo", "gen_missing", "--sandbox")
    assert done.returncode == 3
    assert done.stdout == ""
    assert "task_not_found" in done.stderr


async def test_cli_wait_in_sandbox_mode_exits_0_when_the_job_succeeds_and_1_when_it_fails() -> None:
    async def wait(task_id: str) -> Any:
        command = [console_script(), "wait", "skillsvideo", task_id, "--timeout", str(JOB_TIMEOUT_S), "--sandbox"]
        return await anyio.run_process(command, env=clean_env(), check=False)

    outcomes: dict[str, Any] = {}

    async def run(task_id: str) -> None:
        outcomes[task_id] = await wait(task_id)

    with anyio.fail_after(45):
        async with anyio.create_task_group() as group:
            for task_id in ("gen_cli_ok", "gen_cli_fail"):
                group.start_soon(run, task_id)
    succeeded, failed = outcomes["gen_cli_ok"], outcomes["gen_cli_fail"]
    assert succeeded.returncode == 0, succeeded.stderr
    good = GenerationResult.model_validate_json(succeeded.stdout)
    assert (good.status, good.done, good.timed_out) == ("succeeded", True, False) and good.outputs
    assert failed.returncode == 1, failed.stderr
    bad = GenerationResult.model_validate_json(failed.stdout)
    assert (bad.status, bad.done, bad.outputs) == ("failed", True, []) and bad.error is not None
    assert b"waited" in succeeded.stderr and b"waited" in failed.stderr


def test_the_demo_runs_end_to_end_and_prints_a_result_per_provider(tmp_path: Path) -> None:
    # The SDK hands a stdio server HOME (where the default registry lives) but not XDG_DATA_HOME.
    home = tmp_path / "home"
    home.mkdir()
    done = subprocess.run(
        [console_script(), "demo"],
        env=clean_env(HOME=str(home)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Tools: get_generation_result, wait_for_generation" in done.stdout
    results = [GenerationResult.model_validate_json(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert sorted(result.provider for result in results) == sorted(ADAPTERS)
    assert all(result.status == "succeeded" and result.outputs for result in results)
    # Each job over by the second check: the demo's server ran the sandbox at the demo's pace, `PACE`.
    assert all(result.polls == 1 + kit(result.provider).finished_read_requests for result in results), results
    assert "waited" in done.stdout
    assert list(home.iterdir()) == [], "the demo's sandbox jobs were written to a registry"


async def test_cli_sandbox_serves_the_emulators_on_loopback_at_the_settings_it_prints() -> None:
    port = free_port()
    process = subprocess.Popen(
        [console_script(), "sandbox", "--port", str(port)], env=clean_env(), stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        with anyio.fail_after(20):
            printed: dict[str, str] = {}
            # One export line per setting an emulator gives (its keys and base URL); the first line is a comment.
            while len(printed) < sum(len(cls().env("http://x")) for cls in EMULATORS.values()):
                line = await anyio.to_thread.run_sync(process.stdout.readline)
                assert line, "genresult-mcp sandbox ended before printing its settings"
                if line.startswith("export "):
                    name, _, value = line.removeprefix("export ").strip().partition("=")
                    printed[name] = value
            assert all(
                value.startswith(f"http://127.0.0.1:{port}/") for name, value in printed.items() if "URL" in name
            )
            async with httpx.AsyncClient() as probe:
                while True:
                    try:
                        await probe.get(f"http://127.0.0.1:{port}/", timeout=0.5)
                        break
                    except httpx.TransportError:
                        await anyio.sleep(0.05)
            # The CLI pointed at them by those settings alone, without --sandbox, gets the emulator's answer.
            done = await anyio.run_process(
                [console_script(), "get", "tensorpix", "0e9b8c7d-6a5f-4e3d-8c2b-1a0f9e8d7c6b"],
                env=clean_env(**printed),
                check=False,
            )
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
    assert done.returncode == 0, done.stderr
    looked = GenerationResult.model_validate_json(done.stdout)
    assert (looked.provider, looked.status) == ("tensorpix", "queued")


def test_cli_refuses_to_serve_http_off_loopback_without_a_token() -> None:
    done = run_cli("serve", "--transport", "http", "--host", "0.0.0.0", "--port", str(free_port()))
    assert done.returncode == 3
    assert "GENRESULT_HTTP_TOKEN" in done.stderr
