"""Settings, read once from the environment into one typed object (DESIGN.md §3)."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from tools.polling import PollPolicy
from tools.providers import adapters_from_env
from tools.redact import Redactor
from tools.registry import DEFAULT_RETENTION_DAYS, default_db_path, is_postgres
from tools.service import DEFAULT_MAX_WAIT_S, DEFAULT_REQUEST_TIMEOUT_S

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class SettingsError(ValueError):
    """A setting has a value we cannot use; the message names it and says what would work."""


@dataclass(frozen=True)
class Settings:
    provider_env: Mapping[str, str] = field(default_factory=dict)
    """The provider variables (keys, base URLs); each adapter reads its own."""
    max_wait_s: float = DEFAULT_MAX_WAIT_S
    http_token: str | None = None
    request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S
    log_level: str = "WARNING"
    poll_floor_s: float = PollPolicy.floor_s
    """The shortest pause between two checks of one job (a caller's poll_interval_s is raised to it)."""
    poll_cap_s: float = PollPolicy.cap_s
    """The longest pause the server chooses between two checks of one job."""
    db: str = "off"
    """The job registry: `off`, an SQLite file path, or a `postgresql://` URL. Off unless set: settings built in
    code (tests, embedding) never touch the user's data folder; `from_env` gives the default file."""
    db_retention_days: float = DEFAULT_RETENTION_DAYS

    def poll_policy(self) -> PollPolicy:
        return PollPolicy(floor_s=self.poll_floor_s, cap_s=self.poll_cap_s)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        _check_provider_settings(env)
        floor = _positive(env, "GENRESULT_POLL_FLOOR_S", PollPolicy.floor_s)
        cap = _positive(env, "GENRESULT_POLL_CAP_S", PollPolicy.cap_s)
        if floor > cap:
            raise SettingsError(
                f"GENRESULT_POLL_FLOOR_S ({floor:g}) is above GENRESULT_POLL_CAP_S ({cap:g}): the floor must not "
                "exceed the cap."
            )
        return cls(
            provider_env=env,
            max_wait_s=_positive(env, "GENRESULT_MAX_WAIT_S", DEFAULT_MAX_WAIT_S),
            http_token=env.get("GENRESULT_HTTP_TOKEN", "").strip() or None,
            request_timeout_s=_positive(env, "GENRESULT_REQUEST_TIMEOUT_S", DEFAULT_REQUEST_TIMEOUT_S),
            log_level=_log_level(env),
            poll_floor_s=floor,
            poll_cap_s=cap,
            db=_db(env),
            db_retention_days=_positive(env, "GENRESULT_DB_RETENTION_DAYS", DEFAULT_RETENTION_DAYS, "days"),
        )

    def db_password(self) -> str | None:
        """The password inside a postgresql:// URL, which must never be shown."""
        return urlsplit(self.db).password if is_postgres(self.db) else None


def _check_provider_settings(env: Mapping[str, str]) -> None:
    # Adapters read their own variables when the server starts serving; reading them once here too makes a
    # bad value (say MODELSLAB_ENDPOINT=v7) stop the process with its own sentence instead of a traceback.
    try:
        adapters = adapters_from_env(env, Redactor())
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    for adapter in adapters.values():
        # Caught here rather than at the first request, where a wait would retry it until its deadline.
        try:
            parts = urlsplit(adapter.base_url)
            port_ok = parts.port is None or 0 < parts.port < 65536
        except ValueError:
            port_ok = False
        if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
            raise SettingsError(
                f"{adapter.base_url_env}={adapter.base_url[:80]!r} is not an http(s) URL; write it in full, "
                f"such as {adapter.default_base_url}, or unset it to use that."
            )


def _db(env: Mapping[str, str]) -> str:
    raw = env.get("GENRESULT_DB", "").strip()
    if raw.lower() == "off":
        return "off"
    if is_postgres(raw):
        try:
            parts = urlsplit(raw)
            port_ok = parts.port is None or 0 < parts.port < 65536
        except ValueError:
            port_ok = False
        if not port_ok:
            raise SettingsError("GENRESULT_DB has a bad port: write it as postgresql://user:password@host:5432/db.")
        return raw
    if "://" in raw:
        raise SettingsError(
            "GENRESULT_DB must be off, a file path (SQLite) or a postgresql:// URL; "
            f"{urlsplit(raw).scheme}:// is not supported."
        )
    if raw:
        return str(Path(raw).expanduser())
    return str(default_db_path(dict(env), Path.home(), sys.platform))


def _positive(env: Mapping[str, str], name: str, default: float, unit: str = "seconds") -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise SettingsError(f"{name}={raw!r} is not a positive number of {unit}; unset it to use {default:g}.")
    return value


def _log_level(env: Mapping[str, str]) -> str:
    raw = env.get("GENRESULT_LOG_LEVEL", "").strip().upper() or "WARNING"
    if raw not in LOG_LEVELS:
        raise SettingsError(f"GENRESULT_LOG_LEVEL={raw!r}: use one of {', '.join(LOG_LEVELS)}.")
    return raw
