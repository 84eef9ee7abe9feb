"""Cold start: from spawning the server over stdio to the answer to its first `tools/list`.

Ours (`python -m server serve`, what the `genresult-mcp` script runs) against the anchor, a bare
`MCPServer` with one trivial tool started the same way. The client is a few lines of raw JSON-RPC over the
pipes (initialize, initialized, tools/list), so no client library's own start-up is in the figure. Runs
alternate between the two, in alternating order, so drift on a busy machine hits both alike.
"""

from __future__ import annotations

import compileall
import json
import os
import selectors
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence

from bench.procs import PYTHON, REPO, child_env, stop
from bench.report import Row
from bench.stats import Spread, median, per_round

TARGET = 1.15
OURS = ("-m", "server", "serve")
BARE = ("-m", "bench.bare_server")

_INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "bench", "version": "0"},
    },
}
_INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
_TOOLS_LIST = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}


class _Lines:
    """Reads JSON-RPC lines from a child's stdout with a deadline (a hung server must not hang the bench)."""

    def __init__(self, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
        assert proc.stdout is not None
        self._fd = proc.stdout.fileno()
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._fd, selectors.EVENT_READ)
        self._buffer = b""
        self._deadline = time.monotonic() + timeout_s

    def until_id(self, wanted: int) -> dict[str, object]:
        while True:
            while b"\n" in self._buffer:
                line, self._buffer = self._buffer.split(b"\n", 1)
                message = json.loads(line)
                if message.get("id") == wanted:
                    return dict(message)
            left = self._deadline - time.monotonic()
            if left <= 0 or not self._selector.select(left):
                raise TimeoutError(f"no answer to request {wanted}")
            chunk = os.read(self._fd, 65536)
            if not chunk:
                raise EOFError(f"the server closed stdout before answering request {wanted}")
            self._buffer += chunk


def _send(proc: subprocess.Popen[bytes], *messages: Mapping[str, object]) -> None:
    assert proc.stdin is not None
    proc.stdin.write(b"".join(json.dumps(m).encode() + b"\n" for m in messages))
    proc.stdin.flush()


def time_to_tools_list(args: Sequence[str]) -> float:
    """Seconds from spawn to the `tools/list` answer."""
    env = child_env()
    started = time.perf_counter()
    proc = subprocess.Popen(
        [PYTHON, *args], cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    try:
        lines = _Lines(proc, timeout_s=30)
        _send(proc, _INITIALIZE)
        lines.until_id(1)
        _send(proc, _INITIALIZED, _TOOLS_LIST)
        answer = lines.until_id(2)
        elapsed = time.perf_counter() - started
        if "result" not in answer:
            raise RuntimeError(f"tools/list failed: {answer}")
        return elapsed
    finally:
        stop(proc)


def compile_sources() -> None:
    """Byte-compile this checkout, as pip does for every installed package (the SDK's modules included).

    An editable install leaves our modules to be compiled at first import, and where PYTHONDONTWRITEBYTECODE
    is set (as on some CI machines) they are compiled again at every start: ~10 ms a start that no installed
    server pays, and that the bare server, all of whose modules come from site-packages, never pays either.
    """
    for package in ("server", "tools", "sandbox", "bench"):
        compileall.compile_dir(REPO / package, quiet=1)


def measure(runs: int) -> tuple[list[float], list[float]]:
    ours: list[float] = []
    bare: list[float] = []
    compile_sources()
    time_to_tools_list(OURS)
    time_to_tools_list(BARE)  # warm the OS file cache for both before anything counts
    for i in range(runs):
        order = ((OURS, ours), (BARE, bare)) if i % 2 == 0 else ((BARE, bare), (OURS, ours))
        for args, into in order:
            into.append(time_to_tools_list(args))
    return ours, bare


def rows(runs: int, baselines: list[str]) -> Iterator[Row]:
    ours, bare = measure(runs)
    spread = Spread.of(per_round(ours, bare))
    baselines.append(f"bare MCPServer cold start {median(bare) * 1000:.0f} ms")
    yield Row.judged(
        "cold start (stdio spawn to tools/list)",
        f"{median(ours) * 1000:.0f} ms vs {median(bare) * 1000:.0f} ms bare MCPServer: {spread.text()}",
        TARGET,
        spread,
    )
