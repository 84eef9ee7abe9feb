"""Keeps credentials out of everything the server emits.

Every configured credential and every token obtained at run time is registered here; text from a
provider (error messages, URLs) passes through `Redactor.__call__` before it can reach a result, an error
message or a log line. `RedactingFilter` applies the same to log records.
"""

from __future__ import annotations

import logging
from urllib.parse import quote, quote_plus

REDACTED = "[redacted]"

# Shorter values are too likely to be ordinary words or digits, and redacting them would garble text.
_MIN_SECRET_LEN = 4


class Redactor:
    def __init__(self, secrets: list[str | None] | None = None) -> None:
        self._secrets: set[str] = set()
        for secret in secrets or []:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        if not secret or len(secret) < _MIN_SECRET_LEN:
            return
        # Providers echo keys back raw, percent-encoded (in URLs) or form-encoded.
        self._secrets.update({secret, quote(secret, safe=""), quote_plus(secret)})

    def __call__(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def __contains__(self, secret: str) -> bool:
        return secret in self._secrets


class RedactingFilter(logging.Filter):
    """Rewrites each record's final message through the redactor, whatever handler prints it."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redact = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = self._redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            # Tracebacks are formatted later from exc_info; fold them in now so they are cleaned too.
            record.msg = self._redact(f"{record.msg}\n{logging.Formatter().formatException(record.exc_info)}")
            record.exc_info = None
            record.exc_text = None
        return True
