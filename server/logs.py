"""Log filters for a server anyone on its network can send traffic to: no session ids, no floods."""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable

# The SDK's session ids: uuid4().hex. Whoever holds one can act in that session, so a log shows a short hash.
SESSION_ID = re.compile(r"\b[0-9a-f]{32}\b")

# One line per cause per this many seconds, for warnings and worse.
FLOOD_INTERVAL_S = 10.0


def session_tag(session_id: str) -> str:
    """A short, stable stand-in for a session id: enough to follow one session through a log."""
    return "session#" + hashlib.sha256(session_id.encode()).hexdigest()[:8]


class SessionIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        hidden = SESSION_ID.sub(lambda match: session_tag(match.group()), message)
        if hidden != message:
            record.msg, record.args = hidden, None
        return True


class FloodFilter(logging.Filter):
    """Lets through one warning (or worse) per cause per `interval_s`; the next one let through says how many
    like it were held back. A cause is the logger and the message before its arguments: a client that makes
    the accept loop fail 6,000 times a second costs one line (and one traceback) per interval, not 6,000."""

    def __init__(self, interval_s: float = FLOOD_INTERVAL_S, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._clock = clock
        self._last: dict[tuple[str, str], float] = {}
        self._held: dict[tuple[str, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        cause = (record.name, str(record.msg))
        now = self._clock()
        last = self._last.get(cause)
        if last is not None and now - last < self.interval_s:
            self._held[cause] = self._held.get(cause, 0) + 1
            return False
        if len(self._last) > 1000:
            self._last.clear()
        self._last[cause] = now
        if held := self._held.pop(cause, 0):
            record.msg, record.args = f"{record.getMessage()} ({held} more like it held back)", None
        return True
