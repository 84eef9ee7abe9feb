"""Time, injectable: the wait engine, the emulators and the tests all read it from one `Clock`.

`SystemClock` is the real one. `VirtualClock` never sleeps: `sleep` moves its time forward, so a test or a
benchmark can play a ten-minute job in microseconds and still see every timing decision.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol

import anyio
import anyio.lowlevel


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes back; only differences mean anything."""
        ...

    def now(self) -> datetime:
        """Wall-clock time, UTC."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def monotonic(self) -> float:
        return anyio.current_time()

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


class VirtualClock:
    """Time that moves only when somebody sleeps (or `advance` is called)."""

    def __init__(self, start: datetime | None = None) -> None:
        self._start = start or datetime(2026, 11, 22, 10, 0, 0, tzinfo=UTC)
        self._elapsed = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self._elapsed

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._elapsed)

    def advance(self, seconds: float) -> None:
        self._elapsed += max(0.0, seconds)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(seconds)
        # Still a checkpoint, so cancellation and other tasks get their turn as with a real sleep.
        await anyio.lowlevel.checkpoint()
