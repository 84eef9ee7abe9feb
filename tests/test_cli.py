"""The command line in-process: what `genresult-mcp get` prints and returns, for the cases a user trips on."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from server.cli import EXIT_ERROR, EXIT_SUCCEEDED, main


@pytest.fixture(autouse=True)
def own_logging() -> Iterator[None]:
    """`main` installs the server's log handler on the root logger; pytest's are put back after."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(autouse=True)
def no_provider_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    # The CLI reads the process environment; a developer's own keys must not change what these tests see.
    for name in ("FLEXSTACK", "MODELSLAB", "TENSORPIX", "SKILLSVIDEO"):
        for suffix in ("API_KEY", "BASE_URL", "USERNAME", "PASSWORD", "ENDPOINT"):
            monkeypatch.delenv(f"{name}_{suffix}", raising=False)


@pytest.mark.parametrize(
    "argv", [["--sandbox", "get", "skillsvideo", "gen_1"], ["get", "skillsvideo", "gen_1", "--sandbox"]]
)
def test_sandbox_works_before_or_after_the_command(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == EXIT_SUCCEEDED
    result = json.loads(capsys.readouterr().out)
    assert (result["provider"], result["task_id"], result["status"]) == ("skillsvideo", "gen_1", "queued")


def test_a_placeholder_key_from_the_example_config_is_not_configured(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SKILLSVIDEO_API_KEY", "<your skills.video API key>")
    assert main(["get", "skillsvideo", "gen_1"]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "provider_not_configured" in err and "SKILLSVIDEO_API_KEY" in err


def test_a_key_pasted_as_the_task_id_is_not_printed_back(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    key = "sv-live-0123456789abcdef"
    monkeypatch.setenv("SKILLSVIDEO_API_KEY", key)
    assert main(["get", "skillsvideo", f"{key}/x"]) == EXIT_ERROR
    captured = capsys.readouterr()
    assert "invalid_task_id" in captured.err
    assert key not in captured.err + captured.out
