from __future__ import annotations

import json
from pathlib import Path

import pytest

from server.settings import Settings, SettingsError
from tools.providers import ADAPTERS, adapters_from_env
from tools.redact import Redactor


def test_defaults_when_nothing_is_set() -> None:
    settings = Settings.from_env({})
    assert settings.max_wait_s == 1800
    assert settings.http_token is None


def test_max_wait_and_token_are_read_from_the_environment() -> None:
    settings = Settings.from_env({"GENRESULT_MAX_WAIT_S": "120", "GENRESULT_HTTP_TOKEN": " s3cret-token "})
    assert settings.max_wait_s == 120
    assert settings.http_token == "s3cret-token"


@pytest.mark.parametrize("raw", ["0", "-5", "nan", "inf", "soon"])
def test_an_unusable_max_wait_names_the_variable_and_the_default(raw: str) -> None:
    with pytest.raises(SettingsError, match=r"GENRESULT_MAX_WAIT_S.*1800"):
        Settings.from_env({"GENRESULT_MAX_WAIT_S": raw})


def test_the_session_bounds_are_read_from_the_environment_and_nonsense_is_refused_naming_the_default() -> None:
    defaults = Settings.from_env({})
    settings = Settings.from_env({"GENRESULT_HTTP_SESSIONS_PER_CLIENT": "4", "GENRESULT_HTTP_SESSION_IDLE_S": "90"})
    assert (defaults.http_sessions_per_client, defaults.http_session_idle_s) == (32, 300)
    assert (settings.http_sessions_per_client, settings.http_session_idle_s) == (4, 90)
    with pytest.raises(SettingsError, match=r"GENRESULT_HTTP_SESSIONS_PER_CLIENT='2.5'.*32"):
        Settings.from_env({"GENRESULT_HTTP_SESSIONS_PER_CLIENT": "2.5"})
    with pytest.raises(SettingsError, match=r"GENRESULT_HTTP_SESSION_IDLE_S='0'.*300"):
        Settings.from_env({"GENRESULT_HTTP_SESSION_IDLE_S": "0"})


def test_an_unknown_log_level_lists_the_levels() -> None:
    with pytest.raises(SettingsError, match="DEBUG, INFO"):
        Settings.from_env({"GENRESULT_LOG_LEVEL": "chatty"})


def test_the_poll_floor_and_cap_are_settings_that_reach_the_policy() -> None:
    settings = Settings.from_env({"GENRESULT_POLL_FLOOR_S": "2", "GENRESULT_POLL_CAP_S": "10"})
    policy = settings.poll_policy()
    assert (policy.floor_s, policy.cap_s) == (2, 10)


def test_a_poll_floor_above_the_cap_is_refused_naming_both() -> None:
    with pytest.raises(SettingsError, match=r"GENRESULT_POLL_FLOOR_S.*GENRESULT_POLL_CAP_S"):
        Settings.from_env({"GENRESULT_POLL_FLOOR_S": "40", "GENRESULT_POLL_CAP_S": "10"})


@pytest.mark.parametrize(
    "raw", ["127.0.0.1:9000/api", "ftp://example.com/api", "https://", "http://host:abc/api", "http://host:99999/api"]
)
def test_a_base_url_that_is_not_an_http_url_stops_the_start_with_the_variable_named(raw: str) -> None:
    with pytest.raises(SettingsError, match=r"MODELSLAB_BASE_URL=.*https://modelslab.com/api"):
        Settings.from_env({"MODELSLAB_BASE_URL": raw})


def test_a_placeholder_left_from_the_example_config_counts_as_unset() -> None:
    # mcp.json ships "<your ... key>" for every provider; one the user did not fill in is not a key.
    env = {
        "TENSORPIX_API_KEY": "<your TensorPix API key>",
        "SKILLSVIDEO_API_KEY": "sv-real-key-123",
        "MODELSLAB_API_KEY": "<a-real-key-in-brackets>",
    }
    adapters = adapters_from_env(Settings.from_env(env).provider_env, Redactor())
    assert not adapters["tensorpix"].configured
    assert adapters["skillsvideo"].configured
    assert adapters["modelslab"].configured


@pytest.mark.parametrize(
    ("value", "position", "named"),
    [("r8_abcdef\u200b", 10, "ZERO WIDTH SPACE"), ("r8_cl\u00e9abcdef", 6, "E WITH ACUTE"), ("r8_ab cd", 6, "SPACE")],
)
def test_a_key_pasted_with_a_character_no_header_can_carry_stops_the_start_naming_the_variable_and_position(
    value: str, position: int, named: str
) -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({"REPLICATE_API_TOKEN": value})
    message = str(refused.value)
    assert "REPLICATE_API_TOKEN" in message and f"position {position}" in message and named in message
    assert value not in message


def test_a_password_may_hold_accented_letters_but_no_invisible_ones() -> None:
    Settings.from_env({"FLEXSTACK_USERNAME": "me", "FLEXSTACK_PASSWORD": "pässwörd!"})
    with pytest.raises(SettingsError, match="FLEXSTACK_PASSWORD"):
        Settings.from_env({"FLEXSTACK_USERNAME": "me", "FLEXSTACK_PASSWORD": "pass\u200bword"})


def test_the_example_mcp_json_offers_a_placeholder_for_every_providers_key_and_they_all_count_as_unset() -> None:
    env = json.loads((Path(__file__).resolve().parent.parent / "mcp.json").read_text())["mcpServers"]["genresult"][
        "env"
    ]
    for adapter in adapters_from_env(env, Redactor()).values():
        # Flexstack's key stands for its username and password too: one of a provider's variables is enough.
        assert set(adapter.credential_envs) & set(env), adapter.id
        assert not adapter.configured, adapter.id


class ReadsRecorded(dict[str, str]):
    """An empty environment that remembers every name looked up in it."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: set[str] = set()

    def get(self, name: str, default: object = None) -> object:  # type: ignore[override]
        self.asked.add(name)
        return super().get(name, default)

    def __getitem__(self, name: str) -> str:
        self.asked.add(name)
        return super().__getitem__(name)

    def __contains__(self, name: object) -> bool:
        self.asked.add(str(name))
        return super().__contains__(name)


@pytest.mark.parametrize("provider", sorted(ADAPTERS))
def test_every_variable_a_provider_reads_is_among_its_env_names(provider: str) -> None:
    # What clears a developer's settings from tests and benchmarks (`Adapter.env_names`) must know them all.
    env = ReadsRecorded()
    ADAPTERS[provider].from_env(env, Redactor())
    assert env.asked and env.asked <= set(ADAPTERS[provider].env_names())
