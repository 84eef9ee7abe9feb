"""Keeps credentials out of everything the server emits.

Every configured credential and every token obtained at run time is registered here; text from a
provider (error messages, URLs) passes through `Redactor.__call__` before it can reach a result, an error
message or a log line. `RedactingFilter` applies the same to log records.
"""

from __future__ import annotations

import functools
import logging
import re
from collections import deque

REDACTED = "[redacted]"

logger = logging.getLogger(__name__)

# Shorter values are too likely to be ordinary words or digits, and redacting them would garble text.
_MIN_SECRET_LEN = 4

# Credentials made per request (Kling's JWT, signed anew for every request) are remembered this many at a
# time: a request's token is only ever echoed in that request's answer, and an unbounded set would grow the
# redactor with every request the server sends.
TRANSIENT_SECRETS = 64

# Characters that no URL or JSON writer escapes: a token made only of these is found by plain search.
_PLAIN = re.compile(r"[A-Za-z0-9._~-]+")


class Redactor:
    r"""Replaces every registered secret with `[redacted]`, however it is spelled.

    Providers echo keys back raw, URLs carry them percent-encoded by whichever rule the sender used (`/`
    kept or not, `+` or `%20` for a space, hex digits in either case), and JSON text carries them escaped
    (`\u00e9`, `\"`, `\/`, as a serializer that keeps to ASCII writes them). So each character of a secret
    matches itself, any percent-encoding of its UTF-8 bytes, or its JSON escapes, and one pattern finds
    every mix.
    """

    def __init__(self, secrets: list[str | None] | None = None) -> None:
        self._secrets: set[str] = set()
        # Compiled at the first redaction, not at each `add`: a server registers every provider's keys at
        # start-up, and compiling the growing pattern once per key cost ~8 ms a start.
        self._pattern: re.Pattern[str] | None = None
        self._transient: deque[str] = deque(maxlen=TRANSIENT_SECRETS)
        for secret in secrets or []:
            self.add(secret)

    def add_transient(self, token: str) -> None:
        """A credential made for one request (a signed JWT): kept among the last `TRANSIENT_SECRETS` only.

        Such a token is made of URL- and JSON-safe characters, so it is found by plain search and needs no
        pattern (compiling one per request would cost more than the request). Anything else is a lasting
        secret's job (`add`).
        """
        if not _PLAIN.fullmatch(token) or len(token) < _MIN_SECRET_LEN:
            raise ValueError("a transient credential must be at least 4 URL-safe characters")
        if token not in self._transient:
            self._transient.append(token)

    def add(self, secret: str | None) -> None:
        if not secret or secret in self._secrets:
            return
        if len(secret) < _MIN_SECRET_LEN:
            logger.warning(
                "A credential of %d characters cannot be kept out of the output: it would garble ordinary "
                "text. Use one of at least %d characters.",
                len(secret),
                _MIN_SECRET_LEN,
            )
            return
        self._secrets.add(secret)
        self._pattern = None

    def __call__(self, text: str) -> str:
        for token in self._transient:
            if token in text:
                text = text.replace(token, REDACTED)
        if not self._secrets:
            return text
        if self._pattern is None:
            # Longest first, so a secret that contains another is removed whole, not leaving its tail behind.
            alternatives = sorted(self._secrets, key=len, reverse=True)
            self._pattern = re.compile("|".join(_spelled_any_way(secret) for secret in alternatives))
        return self._pattern.sub(REDACTED, text)

    def __contains__(self, secret: str) -> bool:
        return secret in self._secrets or secret in self._transient


# A process that builds many servers (tests, an embedding app) registers the same keys again each time.
@functools.lru_cache(maxsize=256)
def _spelled_any_way(secret: str) -> str:
    return "".join(_char_any_way(char) for char in secret)


def _char_any_way(char: str) -> str:
    encoded = "".join(f"%{byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))
    forms = [re.escape(char), _any_case(encoded)]
    if char == " ":
        forms.append(r"\+")
    escapes: list[str] = []
    if char in _JSON_SHORT_ESCAPES:
        escapes.append(_JSON_SHORT_ESCAPES[char])
    if char in _JSON_SHORT_ESCAPES or not " " <= char <= "~" or char in "<>&'":
        # `\uXXXX`, as UTF-16 code units: what JSON writers emit for non-ASCII and control characters, and
        # some (Go's, PHP's with flags) for the HTML-sensitive ones.
        units = char.encode("utf-16-be", "surrogatepass")
        escapes.append("".join(f"\\u{units[i]:02x}{units[i + 1]:02x}" for i in range(0, len(units), 2)))
    if not char.isprintable() and ord(char) < 0x100:
        # Python's repr of a control character, as a log line of a request's headers gives it.
        escapes.append(f"\\x{ord(char):02x}")
    for escape in escapes:
        # Each escape also escaped once more: a repr of JSON text, or JSON of a repr (a DEBUG log line).
        forms.extend([_any_case(escape), _any_case(escape.replace("\\", "\\\\"))])
    return "(?:" + "|".join(forms) + ")"


_JSON_SHORT_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "/": "\\/",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}


def _any_case(text: str) -> str:
    """A pattern for `text` with its letters in either case (hex digits in escapes come both ways)."""
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else re.escape(c) for c in text)


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
