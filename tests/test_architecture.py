"""The import direction of DESIGN.md §5 holds: server -> tools -> tools/providers; server -> sandbox. And a start
that only lists the tools loads only what it uses."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import anyio
import pytest

from tests.test_process import clean_env

ROOT = Path(__file__).resolve().parent.parent

# What a session that only lists the tools never uses, so start-up must not load it (the cold-start benchmark
# watches the time): the registry's database drivers (the store is opened by its first use), the HTTP
# connection machinery (loaded by the first provider request or download), the HTTP transport's modules, and
# the declared-provider format's models (loaded by a declared provider's first use).
NOT_LOADED_BY_A_TOOL_LIST = {
    "sqlite3",
    "asyncpg",
    "httpcore",
    "h11",
    "uvicorn.protocols.http.h11_impl",
    "tools.connect_guard",
    "tools.providers.declared_spec",
    "server.connections",
    "server.http",
}


def imported_packages(package: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [("tools", {"server", "sandbox"}), ("sandbox", {"server"})],
)
def test_lower_layers_never_import_higher_ones(package: str, forbidden: set[str]) -> None:
    offenders = {path: names & forbidden for path, names in imported_packages(package).items() if names & forbidden}
    assert offenders == {}


def test_every_registered_provider_has_an_emulator_and_a_module_of_its_own() -> None:
    from sandbox import EMULATORS
    from tools.providers import ADAPTERS
    from tools.providers.declared import DeclaredAdapter

    assert set(ADAPTERS) == set(EMULATORS)
    # A declared provider's module is its declaration file.
    modules = {
        cls.declaration.source if issubclass(cls, DeclaredAdapter) else cls.__module__ for cls in ADAPTERS.values()
    }
    assert len(modules) == len(ADAPTERS)


def test_no_print_calls_in_the_server_code() -> None:
    for package in ("server", "tools", "sandbox"):
        for path in (ROOT / package).rglob("*.py"):
            tree = ast.parse(path.read_text())
            calls = [
                node.lineno
                for node in ast.walk(tree)
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"
            ]
            assert calls == [], f"print() in {path}"


async def test_a_stdio_session_that_only_lists_tools_loads_no_driver_or_connection_code_and_creates_no_registry(
    tmp_path: Path,
) -> None:
    registry = tmp_path / "data" / "jobs.sqlite3"
    hello = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "test", "version": "0"}}
    messages = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": hello},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}},
    ]
    log = tmp_path / "stderr.txt"
    with log.open("wb") as stderr:
        # -X importtime: every module the process imports, named on stderr (a file: the list outgrows a pipe).
        async with await anyio.open_process(
            [sys.executable, "-X", "importtime", "-m", "server", "serve"],
            cwd=ROOT,
            env=clean_env(GENRESULT_DB=str(registry)),
            stderr=stderr,
        ) as server:
            assert server.stdin is not None and server.stdout is not None
            await server.stdin.send("".join(json.dumps(message) + "\n" for message in messages).encode())
            answered = b""
            with anyio.fail_after(30):
                while answered.count(b"\n") < 2:
                    answered += await server.stdout.receive()
                await server.stdin.aclose()
                await server.wait()
    answers = [json.loads(line) for line in answered.splitlines()]
    assert [answer.get("id") for answer in answers] == [1, 2]
    assert len(answers[1]["result"]["tools"]) == 5
    lines = log.read_text().splitlines()
    imported = {line.rsplit("|", 1)[1].strip() for line in lines if line.startswith("import time:")}
    assert "tools.providers" in imported
    assert sorted(imported & NOT_LOADED_BY_A_TOOL_LIST) == []
    assert not registry.parent.exists()
