"""The command line in-process: what `genresult-mcp get` prints and returns, for the cases a user trips on."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox import EMULATORS
from server.cli import EXIT_ERROR, EXIT_FAILED, EXIT_SUCCEEDED, EXIT_TIMED_OUT, main
from tools.providers import ADAPTERS
from tools.result import GenerationResult


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
    for adapter in ADAPTERS.values():
        for name in adapter.env_names():
            monkeypatch.delenv(name, raising=False)


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


def test_wait_many_exits_1_when_a_job_failed_and_prints_every_result_in_order(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GENRESULT_SANDBOX_PACE", "0.02")
    jobs = [
        "skillsvideo:gen_ok",
        "replicate:fail00000000000000000000007",
        "fal:fal-ai/x/requests/5a4d0000-0000-0000-0000-000000000007",
    ]
    assert main(["wait-many", *jobs, "--timeout", "20", "--sandbox"]) == EXIT_FAILED
    answer = json.loads(capsys.readouterr().out)
    assert [r["status"] for r in answer["results"]] == ["succeeded", "failed", "succeeded"]


def test_wait_many_exits_2_when_time_runs_out_and_3_for_a_job_that_is_not_provider_colon_id(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GENRESULT_SANDBOX_PACE", "100")
    assert main(["wait-many", "skillsvideo:gen_slow", "--timeout", "0.3", "--sandbox"]) == EXIT_TIMED_OUT
    assert json.loads(capsys.readouterr().out)["timed_out"] is True
    assert main(["wait-many", "gen_slow", "--sandbox"]) == EXIT_ERROR


def test_download_saves_a_playable_file_for_a_job_at_every_provider(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for provider, cls in EMULATORS.items():
        assert main(["--sandbox", "download", provider, cls.finished_id(1), "--dir", str(tmp_path)]) == EXIT_SUCCEEDED
        captured = capsys.readouterr()
        result = GenerationResult.model_validate_json(captured.out)
        assert result.outputs, provider
        for output in result.outputs:
            assert output.path is not None and Path(output.path).is_relative_to(tmp_path / provider)
            head = Path(output.path).read_bytes()[:12]
            assert head[4:8] == b"ftyp" or head.startswith((b"GIF8", b"\x89PNG", b"RIFF", b"ID3")), (provider, head)
        assert "KB" in captured.err, provider
