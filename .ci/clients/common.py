"""What the client checks share. Standard library only: each check runs in its own client's venv.

A check drives `genresult-mcp serve --sandbox` through one third-party MCP client's own layers (its session,
its tool adapter: what an agent built on it would call), prints what that client shows the model and how it
surfaces our answers, and exits non-zero when one of our promises does not hold through it:

- the tool list loads, under 12 KB of compact JSON, with descriptions free of the source's indentation;
- a finished job's result arrives as structured content the client accepts;
- a tool error's text starts with its code (`unknown_provider: ...`), and `_meta` carries the code where the
  client lets its caller see `_meta`;
- `wait_for_generation(timeout_s=2)` on a running job takes its 2 s instead of answering at once;
- `null` for an optional argument is its default;
- a wait longer than the client's own tool-call limit fails in the client, and `GENRESULT_DEFAULT_WAIT_S` under
  that limit turns it into a normal `timed_out` answer.

How the client itself behaves (its timeouts, what it does with an error) is recorded, not judged: the checks pin
each client's version, and docs/CLIENTS.md says what each does.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any, NoReturn

ERROR_META = "genresult-mcp/error"
PROVIDER = "skillsvideo"
# The whole tools/list answer with every tool (DESIGN.md section 2), compact JSON.
TOOLS_LIST_LIMIT = 12_000
# A 2 s wait may answer a little early by the clock of a client that started timing before sending.
SHORT_WAIT_S = 2.0
SHORT_WAIT_FLOOR_S = 1.8
CORE_TOOLS = frozenset({"get_generation_result", "wait_for_generation"})

_scratch = tempfile.mkdtemp(prefix="genresult-clients-")
atexit.register(shutil.rmtree, _scratch, ignore_errors=True)


def finished_id(tag: str) -> str:
    """A sandbox job already succeeded when first seen (`done` in the id)."""
    return f"job-done-{tag}"


def running_id(tag: str) -> str:
    """A sandbox job new at first sight: queued 2 s, running 6 s, then succeeded."""
    return f"job-run-{tag}-{time.monotonic_ns()}"


def expected_tools() -> frozenset[str]:
    """Every tool the server lists, as clients.sh reads them from the tests; by hand, at least the two core."""
    names = os.environ.get("GENRESULT_EXPECTED_TOOLS", "")
    return frozenset(name for name in names.split(",") if name) or CORE_TOOLS


def server_command() -> list[str]:
    exe = os.environ.get("GENRESULT_MCP") or shutil.which("genresult-mcp")
    if not exe:
        sys.exit("genresult-mcp is not on PATH: run inside the project's venv, or set GENRESULT_MCP to its path")
    return [exe, "serve", "--sandbox"]


def server_env(**extra: str) -> dict[str, str]:
    """The server's environment as a client config would give it: errors-only logs, its own registry and
    download folder in this run's scratch folder, never the developer's."""
    env = dict(os.environ)
    env.update(
        GENRESULT_LOG_LEVEL="ERROR",
        GENRESULT_DB=os.path.join(_scratch, "jobs.sqlite3"),
        GENRESULT_DOWNLOAD_DIR=os.path.join(_scratch, "downloads"),
    )
    env.update(extra)
    return env


def compact_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def http_server(**extra_env: str) -> Iterator[str]:
    """The server over streamable HTTP on a free loopback port; yields its /mcp URL, stops it afterwards."""
    port = free_port()
    command = [*server_command(), "--transport", "http", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(command, env=server_env(**extra_env), stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                sys.exit(f"the HTTP server exited with {process.returncode} before listening")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    sys.exit(f"the HTTP server did not listen on port {port} within 30 s")
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Stopwatch:
    def __enter__(self) -> Stopwatch:
        self.start = time.monotonic()
        self.s = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.s = time.monotonic() - self.start


class Report:
    """Facts about the client and checks of our promises through it; `done()` exits 1 if any check failed."""

    def __init__(self, client: str, version: str) -> None:
        self.client = client
        self.failed: list[str] = []
        self.passed = 0
        print(f"== {client} {version}")

    def section(self, title: str) -> None:
        print(f"-- {title}")

    def fact(self, what: str, value: object) -> None:
        print(f"   {what}: {value}")

    def check(self, what: str, ok: bool, detail: object = "") -> bool:
        if ok:
            self.passed += 1
            print(f"   ok   {what}")
        else:
            self.failed.append(what)
            print(f"   FAIL {what}: {detail}")
        return ok

    # The checks every client makes in the same words.

    def tools_listed(self, names: set[str], total_bytes: int | None, descriptions: dict[str, str]) -> None:
        wanted = expected_tools()
        self.check(f"the tool list loads with {', '.join(sorted(wanted))}", wanted <= names, sorted(names))
        if total_bytes is not None:
            self.fact("tools/list as the client received it", f"{total_bytes} B compact JSON")
            self.check(f"tools/list is under {TOOLS_LIST_LIMIT} B", total_bytes < TOOLS_LIST_LIMIT, total_bytes)
        indented = sorted(name for name, text in descriptions.items() if "\n " in text or text != text.strip())
        self.check("descriptions reach the client without the source's indentation", not indented, indented)

    def tool_shown(self, name: str, description: str, schemas: dict[str, Any]) -> None:
        sizes = ", ".join(f"{what} {compact_size(schema)} B" for what, schema in schemas.items() if schema)
        self.fact(f"{name} as the model sees it", f"description {len(description.encode())} B, {sizes}")

    def error_text(self, text: str, code: str = "unknown_provider") -> None:
        self.fact("error text as surfaced", repr(text[:90] + ("..." if len(text) > 90 else "")))
        self.check(f"the error text starts with `{code}: `", text.startswith(f"{code}: "), text[:120])

    def error_meta(self, meta: Any, text: str | None = None, code: str = "unknown_provider") -> None:
        data = meta.get(ERROR_META) if isinstance(meta, dict) else None
        ok = isinstance(data, dict) and data.get("code") == code
        self.check(f'_meta["{ERROR_META}"] carries code {code}', ok, meta)
        if ok and text is not None:
            self.check("its message is the text after the code", f"{code}: {data.get('message')}" == text, data)

    def short_wait(self, wall_s: float, result: dict[str, Any] | None) -> None:
        self.fact(f"wait_for_generation(timeout_s={SHORT_WAIT_S:g}) on a running job answered after", f"{wall_s:.2f} s")
        self.check(f"a {SHORT_WAIT_S:g} s wait uses its time", wall_s >= SHORT_WAIT_FLOOR_S, f"{wall_s:.2f} s")
        if result is not None:
            ok = result.get("timed_out") is True and result.get("done") is False
            self.check("and answers timed_out, not done", ok, result)

    def finished(self, result: dict[str, Any] | None) -> None:
        ok = isinstance(result, dict) and result.get("status") == "succeeded" and bool(result.get("outputs"))
        self.check("a finished job's result arrives: succeeded, with outputs", ok, result)

    def done(self) -> NoReturn:
        if self.failed:
            print(f"== {self.client}: {len(self.failed)} check(s) failed: {'; '.join(self.failed)}")
            sys.exit(1)
        print(f"== {self.client}: all {self.passed} checks hold")
        sys.exit(0)
