"""MCP over stdin and stdout: stopped by SIGINT or SIGTERM at any moment, answering every line it cannot read.

Why not the SDK's `mcp.run("stdio")`: it reads stdin in an anyio worker thread, and cancelling waits for
that read, so a signal took effect only when the next line arrived; and it dropped a line it could not
parse (logged at DEBUG), leaving its sender waiting for an answer that never came.

Here a daemon thread reads stdin and hands the bytes over a socket pair to the event loop, where reading
them is an ordinary cancellable await; a stop leaves the thread blocked in its read, and the process, not
waiting for a daemon thread, exits. Each line is one JSON-RPC message (the MCP stdio framing):
- a line that is not JSON (invalid UTF-8 included) is answered `-32700 Parse error`, JSON that is not a
  JSON-RPC message `-32600 Invalid Request`, and a line over `MAX_LINE_BYTES` `-32600` without being read
  further; each answer carries the request's id when its start can be read (`server.jsonrpc`), else `null`;
- blank lines are skipped.
The server stops, exiting 0, when stdin ends, on SIGINT or SIGTERM (cancelling the calls in flight), and when
stdout is closed (nobody reads the answers). While serving, fd 0 reads the null device and fd 1 writes to
stderr, so a stray read or print (a library's) cannot take or break protocol bytes; both get the wire back
on exit.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import pydantic_core
from anyio.abc import ObjectReceiveStream, ObjectSendStream, SocketStream
from mcp.server.mcpserver import MCPServer
from mcp.shared.message import SessionMessage
from mcp.types import INVALID_REQUEST, PARSE_ERROR, ErrorData, JSONRPCError, jsonrpc_message_adapter
from pydantic import ValidationError

from server.jsonrpc import ID_SCAN_BYTES, MAX_MESSAGE_BYTES, request_id

logger = logging.getLogger("genresult.stdio")

# One line must not make the server hold whatever a client sends before its newline.
MAX_LINE_BYTES = MAX_MESSAGE_BYTES

READ_BYTES = 64 * 1024


async def serve_stdio(mcp: MCPServer[Any]) -> None:
    """Serves one client on stdin/stdout until stdin ends or SIGINT/SIGTERM arrives."""
    # The SDK's own run_stdio_async does the same: the low-level server is what runs on a pair of streams.
    server = mcp._lowlevel_server
    with _wire(0, os.open(os.devnull, os.O_RDONLY)) as stdin, _wire(1, os.dup(2)) as stdout:
        to_server, from_client = anyio.create_memory_object_stream[SessionMessage]()
        to_client, from_server = anyio.create_memory_object_stream[SessionMessage]()
        with _stop_signals() as signals:
            async with anyio.create_task_group() as group:
                if signals is not None:
                    group.start_soon(_stop_on_first, signals, group.cancel_scope)
                group.start_soon(_read, _received(stdin), to_server, to_client.clone())
                group.start_soon(_write, stdout, from_server, group.cancel_scope)
                await server.run(from_client, to_client, server.create_initialization_options())
                # The input ended and every answer is out: only the signal watcher is left to stop.
                group.cancel_scope.cancel()


@contextmanager
def _stop_signals() -> Iterator[AsyncIterator[int] | None]:
    """SIGINT and SIGTERM as a stream, held for the whole serve so that a second one during the stop is
    ignored too; None on Windows, where an event loop cannot handle signals: there asyncio's own Ctrl-C
    handler cancels the run, which the cancellable stdin read no longer holds up."""
    if sys.platform == "win32":
        yield None
        return
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        yield signals


async def _stop_on_first(signals: AsyncIterator[int], scope: anyio.CancelScope) -> None:
    async for signum in signals:
        logger.info("stopping on %s", signal.Signals(signum).name)
        scope.cancel()
        return


@contextmanager
def _wire(fd: int, substitute: int) -> Iterator[int]:
    """A private duplicate of `fd`, the protocol's wire, while `fd` itself points where `substitute` does;
    `fd` gets the wire back on exit. The duplicate is never closed: the reading thread may still be blocked
    on it."""
    wire = os.dup(fd)
    os.dup2(substitute, fd)
    os.close(substitute)
    try:
        yield wire
    finally:
        # A stray print buffered in sys.stdout belongs on stderr, where fd 1 points until the line below.
        sys.stdout.flush()
        os.dup2(wire, fd)


async def _received(wire: int) -> AsyncIterator[bytes]:
    """What arrives on `wire`, in pieces of at most `READ_BYTES`, until it ends."""
    inside, outside = socket.socketpair()
    threading.Thread(target=_pump, args=(wire, inside), name="stdin reader", daemon=True).start()
    async with await SocketStream.from_socket(outside) as stream:
        try:
            while True:
                yield await stream.receive(READ_BYTES)
        except anyio.EndOfStream:
            return


def _pump(wire: int, sink: socket.socket) -> None:
    """Copies `wire` into `sink` until the wire ends (then `sink` closes: end of input) or the loop's end of
    the pair has closed (the server stopped)."""
    with sink:
        try:
            while chunk := os.read(wire, READ_BYTES):
                sink.sendall(chunk)
        except OSError as exc:
            logger.debug("stdin reader stopped: %s", exc)


async def _read(
    received: AsyncIterable[bytes],
    to_server: ObjectSendStream[SessionMessage],
    to_client: ObjectSendStream[SessionMessage],
) -> None:
    async with to_server, to_client:
        async for line, whole in _lines(received):
            read = _parse(line, whole)
            if isinstance(read, SessionMessage):
                await to_server.send(read)
            else:
                logger.warning("answered %s to a line on stdin: %s", read.error.code, read.error.message)
                await to_client.send(SessionMessage(read))


def _parse(line: bytes, whole: bool) -> SessionMessage | JSONRPCError:
    """The message on `line`, or the error that answers it. Parsed as the SDK's HTTP transport parses a
    body, so a message gets the same answer on both; its error texts give positions, never the input."""
    if not whole:
        return _refusal(
            INVALID_REQUEST, f"Invalid Request: a message is at most {MAX_LINE_BYTES // 1024} KiB on one line", line
        )
    try:
        raw = pydantic_core.from_json(line)
    except ValueError as exc:
        return _refusal(PARSE_ERROR, f"Parse error: {exc}", line)
    try:
        return SessionMessage(jsonrpc_message_adapter.validate_python(raw, by_name=False))
    except ValidationError:
        return _refusal(INVALID_REQUEST, "Invalid Request: not a JSON-RPC 2.0 request, notification or response", line)


def _refusal(code: int, message: str, line: bytes) -> JSONRPCError:
    return JSONRPCError(jsonrpc="2.0", id=request_id(line[:ID_SCAN_BYTES]), error=ErrorData(code=code, message=message))


async def _lines(received: AsyncIterable[bytes]) -> AsyncIterator[tuple[bytes, bool]]:
    """Each non-blank line of `received`, without its line break, and whether it is whole: of a line over
    `MAX_LINE_BYTES` only the first `ID_SCAN_BYTES` are kept, the rest is let go unread."""
    line = bytearray()
    over = False
    async for chunk in received:
        *ended, rest = chunk.split(b"\n")
        for piece in ended:
            over = _extend(line, piece, over)
            if over or line.strip():
                yield bytes(line), not over
            line.clear()
            over = False
        over = _extend(line, rest, over)
    if over or line.strip():
        yield bytes(line), not over


def _extend(line: bytearray, piece: bytes, over: bool) -> bool:
    if not over:
        line += piece
        if len(line) <= MAX_LINE_BYTES:
            return False
        del line[ID_SCAN_BYTES:]
    return True


async def _write(wire: int, from_server: ObjectReceiveStream[SessionMessage], serving: anyio.CancelScope) -> None:
    async with from_server:
        try:
            async for message in from_server:
                line = message.message.model_dump_json(by_alias=True, exclude_unset=True).encode() + b"\n"
                await anyio.to_thread.run_sync(_write_all, wire, line)
        except BrokenPipeError:
            # Nobody reads the answers any more: the client is gone, and with it the reason to serve.
            logger.info("stopping: stdout was closed")
            serving.cancel()


def _write_all(wire: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(wire, view) :]
