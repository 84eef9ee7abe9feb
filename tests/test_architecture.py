"""The import direction of DESIGN.md §5 holds: server -> tools -> tools/providers; server -> sandbox."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


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
