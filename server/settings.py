"""Settings, read once from the environment into one typed object (DESIGN.md §3)."""

from __future__ import annotations

import math
import os
import sys
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from tools.downloads import DEFAULT_DOWNLOAD_DIR, DEFAULT_MAX_DOWNLOAD_MB
from tools.polling import PollPolicy
from tools.providers import adapters_from_env
from tools.providers.base import env_value
from tools.redact import Redactor
from tools.registry import DEFAULT_RETENTION_DAYS, default_db_path, is_postgres
from tools.service import DEFAULT_MAX_WAIT_S, DEFAULT_REQUEST_TIMEOUT_S, DEFAULT_WAIT_S

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# The HTTP transport's bounds (`server.connections`): open connections, and seconds to send a request head.
DEFAULT_MAX_CONNECTIONS = 256
DEFAULT_HEAD_TIMEOUT_S = 10.0
# The session table's bounds (`server.sessions`). One agent holds one session, kept busy by its event stream;
# every process on a machine shares one address.
DEFAULT_SESSIONS_PER_CLIENT = 32
# The SDK's 30 minutes keep a vanished client's session as long; an agent between two calls is rarely idle
# this long, and one that is opens a new session on its next call.
DEFAULT_SESSION_IDLE_S = 300.0


class SettingsError(ValueError):
    """A setting has a value we cannot use; the message names it and says what would work."""


@dataclass(frozen=True)
class Settings:
    provider_env: Mapping[str, str] = field(default_factory=dict)
    """The provider variables (keys, base URLs); each adapter reads its own."""
    max_wait_s: float = DEFAULT_MAX_WAIT_S
    default_wait_s: float = DEFAULT_WAIT_S
    """`timeout_s` of a wait whose caller gives none: lower it for clients whose tool calls time out sooner."""
    http_token: str | None = None
    http_max_connections: int = DEFAULT_MAX_CONNECTIONS
    """Open HTTP connections at once (`GENRESULT_HTTP_MAX_CONNECTIONS`); keep it well under the open-file limit."""
    http_head_timeout_s: float = DEFAULT_HEAD_TIMEOUT_S
    """Seconds a connection has to send a complete request head (`GENRESULT_HTTP_HEAD_TIMEOUT_S`)."""
    http_sessions_per_client: int = DEFAULT_SESSIONS_PER_CLIENT
    """Stateful sessions one client (one network address) holds at once (`GENRESULT_HTTP_SESSIONS_PER_CLIENT`)."""
    http_session_idle_s: float = DEFAULT_SESSION_IDLE_S
    """Seconds with no request in flight after which a stateful session ends (`GENRESULT_HTTP_SESSION_IDLE_S`)."""
    request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S
    log_level: str = "WARNING"
    sandbox_pace: float = 1.0
    """How fast sandbox jobs live (`GENRESULT_SANDBOX_PACE`): 1 is 8 s a job, 0.25 is 2 s."""
    poll_floor_s: float = PollPolicy.floor_s
    """The shortest pause between two checks of one job (a caller's poll_interval_s is raised to it)."""
    poll_cap_s: float = PollPolicy.cap_s
    """The longest pause the server chooses between two checks of one job."""
    download_dir: Path = field(default_factory=lambda: Path(DEFAULT_DOWNLOAD_DIR).expanduser())
    """Where download_generation_outputs saves files (GENRESULT_DOWNLOAD_DIR)."""
    max_download_mb: float = DEFAULT_MAX_DOWNLOAD_MB
    """The largest file it saves (GENRESULT_MAX_DOWNLOAD_MB)."""
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
        max_wait_s = _positive(env, "GENRESULT_MAX_WAIT_S", DEFAULT_MAX_WAIT_S)
        default_wait_s = _positive(env, "GENRESULT_DEFAULT_WAIT_S", DEFAULT_WAIT_S)
        if default_wait_s > max_wait_s:
            raise SettingsError(
                f"GENRESULT_DEFAULT_WAIT_S ({default_wait_s:g}) is above GENRESULT_MAX_WAIT_S ({max_wait_s:g}): the "
                "default wait must fit under the cap."
            )
        return cls(
            provider_env=env,
            max_wait_s=max_wait_s,
            default_wait_s=default_wait_s,
            http_token=env.get("GENRESULT_HTTP_TOKEN", "").strip() or None,
            http_max_connections=_count(env, "GENRESULT_HTTP_MAX_CONNECTIONS", DEFAULT_MAX_CONNECTIONS),
            http_head_timeout_s=_positive(env, "GENRESULT_HTTP_HEAD_TIMEOUT_S", DEFAULT_HEAD_TIMEOUT_S),
            http_sessions_per_client=_count(env, "GENRESULT_HTTP_SESSIONS_PER_CLIENT", DEFAULT_SESSIONS_PER_CLIENT),
            http_session_idle_s=_positive(env, "GENRESULT_HTTP_SESSION_IDLE_S", DEFAULT_SESSION_IDLE_S),
            request_timeout_s=_positive(env, "GENRESULT_REQUEST_TIMEOUT_S", DEFAULT_REQUEST_TIMEOUT_S),
            log_level=_log_level(env),
            sandbox_pace=_positive(env, "GENRESULT_SANDBOX_PACE", 1.0),
            poll_floor_s=floor,
            poll_cap_s=cap,
            download_dir=_download_dir(env),
            max_download_mb=_max_download_mb(env),
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
        for name in adapter.credential_envs:
            _check_credential(name, env_value(env, name) or "")
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


def _check_credential(name: str, value: str) -> None:
    """A key pasted with an invisible or accented character (a trailing zero-width space, a curly quote) can
    never be sent in an HTTP header: every call would fail. Say so at start, naming the variable and where the
    character is, never the value. A password goes in a Basic header's base64, so only invisible and control
    characters are wrong there."""
    password = name.endswith("PASSWORD")
    for position, char in enumerate(value, start=1):
        invisible = not char.isprintable() or (unicodedata.category(char) in ("Cf", "Zs", "Zl", "Zp") and char != " ")
        if invisible or (not password and (not char.isascii() or char == " ")):
            what = f"U+{ord(char):04X} ({unicodedata.name(char, 'unnamed')})"
            raise SettingsError(
                f"{name} has a character no HTTP header can carry at position {position} of {len(value)}: "
                f"{what}. It was likely pasted along with the key: set {name} again from the provider's page."
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


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) <= 0:
        raise SettingsError(f"{name}={raw!r} is not a positive whole number; unset it to use {default}.")
    return int(raw)


def _log_level(env: Mapping[str, str]) -> str:
    raw = env.get("GENRESULT_LOG_LEVEL", "").strip().upper() or "WARNING"
    if raw not in LOG_LEVELS:
        raise SettingsError(f"GENRESULT_LOG_LEVEL={raw!r}: use one of {', '.join(LOG_LEVELS)}.")
    return raw


def _download_dir(env: Mapping[str, str]) -> Path:
    raw = env.get("GENRESULT_DOWNLOAD_DIR", "").strip()
    # Absolute, so every path a download answers with can be opened from anywhere.
    return Path(raw or DEFAULT_DOWNLOAD_DIR).expanduser().absolute()


def _max_download_mb(env: Mapping[str, str]) -> float:
    raw = env.get("GENRESULT_MAX_DOWNLOAD_MB", "").strip()
    if not raw:
        return DEFAULT_MAX_DOWNLOAD_MB
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise SettingsError(
            f"GENRESULT_MAX_DOWNLOAD_MB={raw!r} is not a positive number of megabytes; unset it to use "
            f"{DEFAULT_MAX_DOWNLOAD_MB:g}."
        )
    return value
