"""The stdio server as a client's process sees it: raw JSON-RPC lines on real pipes, and real signals.

Each test starts the console script, so each sits inside fail_after; a server that does not stop on a signal
or never answers a line fails there instead of hanging the run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

from tests.test_process import clean_env, console_script

# Long enough for a process to stop once it has decided to, on a busy machine; a server that waits for its
# next line on stdin never gets there.
STOP_S = 10

# Sandbox jobs that run for minutes, so a wait is surely still polling when the signal lands.
SLOW_PACE = "20"


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": "init",
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
}


class RawStdio:
    """The console script over stdio, spoken to line by line as an MCP client's transport would."""

    def __init__(self, process: Process) -> None:
        assert process.stdin is not None
        self.process = process
        self._stdin = process.stdin
        self._stdout = BufferedByteReceiveStream(process.stdout) if process.stdout is not None else None

    async def send_line(self, line: bytes) -> None:
        await self._stdin.send(line + b"\n")

    async def send(self, message: dict[str, Any]) -> None:
        await self.send_line(json.dumps(message).encode())

    async def receive(self) -> dict[str, Any]:
        assert self._stdout is not None
        answer: dict[str, Any] = json.loads(await self._stdout.receive_until(b"\n", 1024 * 1024))
        return answer

    async def answer_to(self, request_id: object) -> dict[str, Any]:
        """The answer with this id, past the notifications (progress) that come before it."""
        while True:
            message = await self.receive()
            if "method" not in message and message.get("id") == request_id:
                return message

    async def initialize(self) -> None:
        await self.send(INITIALIZE)
        assert "result" in await self.answer_to("init")
        await self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    async def ping(self, request_id: int) -> dict[str, Any]:
        await self.send({"jsonrpc": "2.0", "id": request_id, "method": "ping"})
        return await self.answer_to(request_id)

    async def stderr(self) -> str:
        assert self.process.stderr is not None
        chunks = [chunk async for chunk in self.process.stderr]
        return b"".join(chunks).decode(errors="replace")


@asynccontextmanager
async def stdio_server(*args: str, **env: str) -> AsyncIterator[RawStdio]:
    """The console script serving stdio, initialized (2025-11-25 handshake); killed if a test leaves it running."""
    process = await anyio.open_process(
        [console_script(), *args],
        env=clean_env(**env),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    async with process:
        try:
            server = RawStdio(process)
            await server.initialize()
            yield server
        finally:
            if process.returncode is None:
                process.kill()


async def assert_stops_cleanly(server: RawStdio, signum: signal.Signals) -> None:
    server.process.send_signal(signum)
    with anyio.fail_after(STOP_S):
        code = await server.process.wait()
        stderr = await server.stderr()
    # A signal is how clients stop a stdio server (the spec: close stdin, then SIGTERM): stopping as asked is 0.
    assert code == 0, stderr
    assert "Traceback" not in stderr


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_a_signal_stops_an_idle_stdio_server_at_once_with_exit_0_and_no_traceback(signum: signal.Signals) -> None:
    with anyio.fail_after(30):
        async with stdio_server() as server:
            assert (await server.ping(1))["result"] == {}
            await assert_stops_cleanly(server, signum)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_a_signal_stops_a_stdio_server_in_the_middle_of_a_wait(signum: signal.Signals) -> None:
    with anyio.fail_after(30):
        async with stdio_server("--sandbox", GENRESULT_SANDBOX_PACE=SLOW_PACE) as server:
            arguments = {"provider": "skillsvideo", "task_id": "gen_signal", "timeout_s": 600}
            await server.send(
                {
                    "jsonrpc": "2.0",
                    "id": 2,
                    "method": "tools/call",
                    "params": {"name": "wait_for_generation", "arguments": arguments, "_meta": {"progressToken": 2}},
                }
            )
            # The first progress notification: the wait has checked once and is polling on.
            heard = await server.receive()
            assert heard["method"] == "notifications/progress", heard
            await assert_stops_cleanly(server, signum)


async def test_a_stdio_server_whose_stdout_was_closed_stops_quietly_at_its_next_answer() -> None:
    # A client that died with the read end of the server's stdout closed, or one that closed it on purpose.
    read_end, write_end = os.pipe()
    with anyio.fail_after(30):
        async with await anyio.open_process(
            [console_script()], env=clean_env(), stdin=subprocess.PIPE, stdout=write_end, stderr=subprocess.PIPE
        ) as process:
            os.close(write_end)
            os.close(read_end)
            server = RawStdio(process)
            await server.send(INITIALIZE)
            with anyio.fail_after(STOP_S):
                code = await process.wait()
                stderr = await server.stderr()
    assert code == 0, stderr
    assert "Traceback" not in stderr


REQUEST_HEAD = b'{"jsonrpc": "2.0", "id": %d, "method": "tools/call", "params": {"name": "get_generation_result", '

# Lines a client might send that cannot be read, each with its request id at %d, and the code that answers each.
UNREADABLE = {
    "a lone surrogate in a string": (REQUEST_HEAD + b'"arguments": {"provider": "\\ud800", "task_id": "x"}}}', -32700),
    "5,000 levels of nesting": (REQUEST_HEAD + b'"arguments": {"x": ' + b"[" * 5000 + b"]" * 5000 + b"}}}", -32700),
    "JSON cut short": (REQUEST_HEAD + b'"arguments": {"provider": "skillsvideo", "task_id": ', -32700),
    "bytes that are not UTF-8": (REQUEST_HEAD + b'"arguments": {"provider": "\xff\xfe", "task_id": "x"}}}', -32700),
    "a 5,000-digit number": (REQUEST_HEAD + b'"arguments": {"x": ' + b"9" * 5000 + b"}}}", -32700),
    "JSON that is not JSON-RPC": (b'{"jsonrpc": "1.0", "id": %d, "method": "ping"}', -32600),
    "a line over 64 KiB": (REQUEST_HEAD + b'"arguments": {"pad": "' + b"x" * 70_000 + b'"}}}', -32600),
}


async def test_over_stdio_every_line_that_cannot_be_read_is_answered_and_the_next_request_too() -> None:
    with anyio.fail_after(30):
        async with stdio_server() as server:
            for n, (kind, (line, code)) in enumerate(UNREADABLE.items(), start=10):
                await server.send_line(line.replace(b"%d", str(n).encode()))
                answer = await server.receive()
                assert answer["id"] == n and answer["error"]["code"] == code, (kind, answer)
                assert (await server.ping(1000 + n))["result"] == {}, kind
            # No id to be read: not JSON at all, or a message whose id comes after what cannot be parsed.
            for line in (b"hello", b'{"jsonrpc": "2.0", "method": "ping", "params": {,}, "id": 5}'):
                await server.send_line(line)
                answer = await server.receive()
                assert answer["id"] is None and answer["error"]["code"] == -32700, (line, answer)
            # Blank lines are no messages: nothing answers them, and the next request is answered first.
            await server.send_line(b"  \r")
            await server.send({"jsonrpc": "2.0", "id": 2000, "method": "ping"})
            assert await server.receive() == {"jsonrpc": "2.0", "id": 2000, "result": {}}
