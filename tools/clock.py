"""Time, injectable: the wait engine, the emulators and the tests all read it from one `Clock`.

`SystemClock` is the real one. `VirtualClock` never sleeps: `sleep` moves its time forward, so a test or a
benchmark can play a ten-minute job in microseconds and still see every timing decision.
"""

from __future__ import annotations

import asyncio
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
    """Time that moves only when somebody sleeps (or `advance` is called).

    By default each sleep moves time on at once, which is right for one waiting task. With `autojump`,
    concurrent sleepers share one timeline: a sleep waits until the event loop has nothing else to run, then
    time jumps to the earliest wake-up due and wakes whoever was due by then, as trio's MockClock does. So a
    wait on many jobs at once takes as long in virtual time as its slowest job, not the sum of all its pauses.
    Only on asyncio, and only for in-process work: a worker thread's work is not waited for.
    """

    def __init__(self, start: datetime | None = None, *, autojump: bool = False) -> None:
        self._start = start or datetime(2026, 11, 22, 10, 0, 0, tzinfo=UTC)
        self._elapsed = 0.0
        self.sleeps: list[float] = []
        self.autojump = autojump
        self._sleepers: list[tuple[float, anyio.Event]] = []
        self._ticking = False

    def monotonic(self) -> float:
        return self._elapsed

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._elapsed)

    def advance(self, seconds: float) -> None:
        self._elapsed += max(0.0, seconds)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if not self.autojump:
            self.advance(seconds)
            # Still a checkpoint, so cancellation and other tasks get their turn as with a real sleep.
            await anyio.lowlevel.checkpoint()
            return
        sleeper = (self._elapsed + max(0.0, seconds), anyio.Event())
        self._sleepers.append(sleeper)
        if not self._ticking:
            self._ticking = True
            asyncio.get_running_loop().call_soon(self._tick)
        try:
            await sleeper[1].wait()
        finally:
            # A cancelled sleeper must not pull time forward to a wake-up nobody waits for.
            if sleeper in self._sleepers:
                self._sleepers.remove(sleeper)

    def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        if not self._sleepers:
            self._ticking = False
            return
        # asyncio keeps its runnable callbacks in `_ready`: while any are waiting, somebody may still sleep.
        if getattr(loop, "_ready", ()):
            loop.call_soon(self._tick)
            return
        self._elapsed = max(self._elapsed, min(at for at, _ in self._sleepers))
        due = [sleeper for sleeper in self._sleepers if sleeper[0] <= self._elapsed]
        for sleeper in due:
            self._sleepers.remove(sleeper)
            sleeper[1].set()
        loop.call_soon(self._tick)
