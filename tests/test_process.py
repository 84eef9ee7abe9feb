"""The real thing, outside the fakes: the console script over stdio, over streamable HTTP, and the CLI.

These start processes and use real time, so they keep to a few seconds each and sit inside fail_after.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx
import pytest
from mcp import Client, StdioServerParameters

from tools.providers import ADAPTERS
from tools.result import GenerationResult

ROOT = Path(__file__).resolve().parent.parent
SANDBOX_IDS = {
    "flexstack": "demo-video-1",
    "modelslab": "148",
    "tensorpix": "3c90c3cc-0d44-4b50-8888-8dd25736052a",
    "skillsvideo": "gen_123",
}


def console_script() -> str:
    """The installed `genresult-mcp`, next to this interpreter (the README installs it into the venv)."""
    found = shutil.which("genresult-mcp", path=str(Path(sys.executable).parent)) or shutil.which("genresult-mcp")
    assert found, "genresult-mcp is not installed: run `pip install -e .[test]` as the README says"
    return found


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without any provider credentials, so nothing real is ever called."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(tuple(p.upper() for p in ADAPTERS))}
    return {**keep, "GENRESULT_LOG_LEVEL": "WARNING", **extra}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_the_console_script_serves_every_provider_over_real_stdio_in_sandbox_mode() -> None:
    params = StdioServerParameters(command=console_script(), args=["--sandbox"], env=clean_env())
    progress: list[tuple[float, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, message))

    with anyio.fail_after(30):
        async with Client(params) as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            assert names == {"get_generation_result", "wait_for_generation"}
            for provider, task_id in SANDBOX_IDS.items():
                reply = await client.call_tool("get_generation_result", {"provider": provider, "task_id": task_id})
                assert not reply.is_error, reply.content
                result = GenerationResult.model_validate(reply.structured_content)
                assert (result.provider, result.task_id, result.done) == (provider, task_id, False)
            reply = await client.call_tool(
                "wait_for_generation",
                {"provider": "skillsvideo", "task_id": "gen_stdio", "timeout_s": 2.5},
                progress_callback=on_progress,
            )
    waited = GenerationResult.model_validate(reply.structured_content)
    assert waited.timed_out is True and waited.done is False and waited.elapsed_s is not None
    assert 1.0 <= waited.elapsed_s <= 2.5
    assert len(progress) >= 2
    assert [value for value, _ in progress] == sorted({value for value, _ in progress})


async def test_mcp_json_launches_the_installed_server_as_a_client_would() -> None:
    config = json.loads((ROOT / "mcp.json").read_text())["mcpServers"]["genresult"]
    command = shutil.which(config["command"], path=str(Path(sys.executable).parent)) or config["command"]
    params = StdioServerParameters(command=command, args=config["args"], env=clean_env(**config["env"]))
    with anyio.fail_after(30):
        async with Client(params) as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            reply = await client.call_tool("get_generation_result", {"provider": "nope", "task_id": "1"})
    assert names == {"get_generation_result", "wait_for_generation"}
    assert reply.is_error and "unknown_provider" in reply.content[0].text  # type: ignore[union-attr]


@asynccontextmanager
async def http_server(*extra: str) -> AsyncIterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [console_script(), "serve", "--transport", "http", "--port", str(port), "--sandbox", *extra],
        env=clean_env(),
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
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stderr is not None:
            process.stderr.close()


@pytest.mark.parametrize("extra", [(), ("--stateless",)], ids=["stateful", "stateless"])
async def test_the_server_answers_over_real_streamable_http(extra: tuple[str, ...]) -> None:
    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    with anyio.fail_after(30):
        async with http_server(*extra) as url, Client(url) as client:
            reply = await client.call_tool("get_generation_result", {"provider": "skillsvideo", "task_id": "gen_http"})
            waited = await client.call_tool(
                "wait_for_generation",
                {"provider": "skillsvideo", "task_id": "gen_http", "timeout_s": 1.5},
                progress_callback=on_progress,
            )
    assert GenerationResult.model_validate(reply.structured_content).provider_status == "IN_QUEUE"
    assert GenerationResult.model_validate(waited.structured_content).timed_out is True
    assert progress


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [console_script(), *args], env=clean_env(), capture_output=True, text=True, timeout=60, check=False
    )


def test_cli_get_prints_one_line_of_json_and_exits_0() -> None:
    done = run_cli("get", "skillsvideo", "gen_cli", "--sandbox")
    assert done.returncode == 0, done.stderr
    assert GenerationResult.model_validate_json(done.stdout).status == "queued"
    assert done.stdout.count("\n") == 1


def test_cli_wait_that_runs_out_of_time_exits_2_with_progress_on_stderr() -> None:
    done = run_cli("wait", "skillsvideo", "gen_cli", "--timeout", "1.2", "--sandbox")
    assert done.returncode == 2, done.stderr
    assert GenerationResult.model_validate_json(done.stdout).timed_out is True
    assert "waited" in done.stderr


def test_cli_errors_exit_3_with_the_code_on_stderr_and_nothing_on_stdout() -> None:
    done = run_cli("get", "skillsvideo", "gen_missing", "--sandbox")
    assert done.returncode == 3
    assert done.stdout == ""
    assert "task_not_found" in done.stderr


def test_cli_refuses_to_serve_http_off_loopback_without_a_token() -> None:
    done = run_cli("serve", "--transport", "http", "--host", "0.0.0.0", "--port", str(free_port()))
    assert done.returncode == 3
    assert "GENRESULT_HTTP_TOKEN" in done.stderr
