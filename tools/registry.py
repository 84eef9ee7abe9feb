"""The job registry: the last state of every job a check has read, and the poll memory of waits, kept in a store.

    Registry                 what the service talks to; never raises into a check or a wait
    └── JobStore (protocol)  record / list / recall and keep wait memory / purge
        ├── SqliteStore      one file, WAL; the embedded default (stdlib sqlite3 in a worker thread)
        └── PostgresStore    shared by replicas (asyncpg and its pool)

A store is opened by the registry's first use, not at start-up, and its driver imported only then: a session
that lists tools and checks no job opens no file, connects to no database and imports no driver.

A store raises only `StoreError` (its own driver's errors are converted at its boundary). The `Registry`
turns those into a log line at most once a minute and a reason `list_generations` can give; a check or a
wait never fails because of it. Times are wall-clock seconds since the epoch, given by the caller (the
service's clock), so replicas with different monotonic clocks agree and tests can play days in virtual time.
What is stored is what a result shows: already redacted, no credential.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from urllib.parse import urlsplit

import anyio
import anyio.to_thread

from tools.clock import Clock
from tools.errors import RegistryUnavailable
from tools.result import GenerationResult

if TYPE_CHECKING:
    import sqlite3

    import asyncpg

logger = logging.getLogger(__name__)

DEFAULT_RETENTION_DAYS = 30.0
LIST_LIMIT_MAX = 200
# One log line per this many seconds while the store keeps failing: enough to notice, not a flood.
LOG_EVERY_S = 60.0
# Forgotten jobs are looked for when the store is first used and then at most this often, by whichever check
# comes along.
PURGE_EVERY_S = 3600.0
# What a wait left for the next one is of no use after this long (as `WaitMemory.horizon_s`).
MEMORY_HORIZON_S = 600.0
# How long the writer waits for more checks to write together: short enough that another replica lists a job
# within a moment of its check, long enough that the checks of a busy server share a few writes a second. Each
# write costs more than its SQL: while the event loop is busy, it and the worker thread hand the GIL back and
# forth at every SQLite call (CPU per check with the registry on / off, `python -m bench.registry`: about
# 1.10-1.20x writing every 0.05 s, 1.03-1.07x every 0.25 s).
WRITE_LINGER_S = 0.25
# Fields that describe one wait, not the job: a listing shows the job's state only.
_WAIT_FIELDS = {"elapsed_s", "polls", "timed_out", "note"}

T = TypeVar("T")


class StoreError(Exception):
    """The store could not do what was asked (disk full, database down, permissions); the message says why."""


@dataclass(frozen=True)
class JobRow:
    """One job's state as a check read it: the result's JSON text, its saved outputs' (or None), and when."""

    provider: str
    task_id: str
    status: str
    result: str
    saved: str | None
    checked: float

    def values(self) -> tuple[str, str, str, str, str | None, float, float]:
        return (self.provider, self.task_id, self.status, self.result, self.saved, self.checked, self.checked)


@dataclass(frozen=True)
class StoredJob:
    """One row as `list` reads it: the result's JSON text and, when a download saved them, the saved outputs."""

    result: str
    saved: str | None


class JobStore(Protocol):
    """Where the registry keeps its rows. Every method may raise `StoreError` and nothing else."""

    describe: str
    """Where it is, for messages, without credentials: a file path or `postgresql://host:port/db`."""

    async def open(self) -> None:
        """Connect, and create or migrate the schema; safe when other processes do the same at once."""
        ...

    async def close(self) -> None: ...

    async def record(self, rows: Sequence[JobRow]) -> None:
        """Insert or update each job, in one transaction; `first_seen` stays, saved outputs stay when a row's
        `saved` is None."""
        ...

    async def list(self, provider: str | None, status: str | None, limit: int) -> tuple[list[StoredJob], int]:
        """The most recently checked jobs first, at most `limit`, and how many match in all."""
        ...

    async def recall(self, provider: str, task_id: str) -> str | None:
        """The wait memory kept for the job, if any."""
        ...

    async def keep(self, provider: str, task_id: str, memory: str | None, now: float) -> None:
        """Store the job's wait memory, or forget it (None)."""
        ...

    async def purge(self, checked_before: float, memory_before: float) -> int:
        """Forget jobs last checked before `checked_before` and wait memory older than `memory_before`."""
        ...


def default_db_path(env: dict[str, str], home: Path, platform: str) -> Path:
    """`jobs.sqlite3` in the user's data folder: XDG on Linux, the platform's own on macOS and Windows."""
    if platform == "darwin":
        base = home / "Library" / "Application Support"
    elif platform.startswith("win"):
        base = Path(env["LOCALAPPDATA"]) if env.get("LOCALAPPDATA") else home / "AppData" / "Local"
    else:
        base = Path(env["XDG_DATA_HOME"]) if env.get("XDG_DATA_HOME") else home / ".local" / "share"
    return base / "genresult-mcp" / "jobs.sqlite3"


def is_postgres(db: str) -> bool:
    return db.startswith(("postgresql://", "postgres://"))


def open_store(db: str) -> JobStore | None:
    """The store `GENRESULT_DB` names (`off`, a `postgresql://` URL, or a file path); nothing is opened yet."""
    if db == "off":
        return None
    if is_postgres(db):
        return PostgresStore(db)
    return SqliteStore(Path(db))


def _where(provider: str | None, status: str | None, mark: Callable[[int], str]) -> tuple[str, list[Any]]:
    clauses, values = [], []
    for column, value in (("provider", provider), ("status", status)):
        if value is not None:
            values.append(value)
            clauses.append(f"{column} = {mark(len(values))}")
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), values


_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS genresult_jobs ("
    " provider TEXT NOT NULL, task_id TEXT NOT NULL, status TEXT NOT NULL, result TEXT NOT NULL, saved TEXT,"
    " first_seen DOUBLE PRECISION NOT NULL, last_checked DOUBLE PRECISION NOT NULL,"
    " PRIMARY KEY (provider, task_id))",
    "CREATE INDEX IF NOT EXISTS genresult_jobs_checked ON genresult_jobs (last_checked)",
    "CREATE INDEX IF NOT EXISTS genresult_jobs_provider_checked ON genresult_jobs (provider, last_checked)",
    "CREATE TABLE IF NOT EXISTS genresult_wait_memory ("
    " provider TEXT NOT NULL, task_id TEXT NOT NULL, memory TEXT NOT NULL, updated DOUBLE PRECISION NOT NULL,"
    " PRIMARY KEY (provider, task_id))",
)

_UPSERT = (
    "INSERT INTO genresult_jobs (provider, task_id, status, result, saved, first_seen, last_checked)"
    " VALUES ({0}, {1}, {2}, {3}, {4}, {5}, {6})"
    " ON CONFLICT (provider, task_id) DO UPDATE SET status = excluded.status, result = excluded.result,"
    " saved = COALESCE(excluded.saved, genresult_jobs.saved), last_checked = excluded.last_checked"
)
_KEEP = (
    "INSERT INTO genresult_wait_memory (provider, task_id, memory, updated) VALUES ({0}, {1}, {2}, {3})"
    " ON CONFLICT (provider, task_id) DO UPDATE SET memory = excluded.memory, updated = excluded.updated"
)


class SqliteStore:
    """One SQLite file in WAL mode, shared safely by every server process on the machine.

    The stdlib driver blocks, so each call runs in a worker thread, one at a time on the one connection;
    several processes are serialized by SQLite's own locks, waited for up to `busy_timeout_s`. The file and
    its folder are created for the owner only: job ids and output URLs are the user's business.
    """

    def __init__(self, path: Path, busy_timeout_s: float = 5.0) -> None:
        self.path = path
        self.describe = str(path)
        self.busy_timeout_s = busy_timeout_s
        self._db: sqlite3.Connection | None = None
        self._turn = anyio.CapacityLimiter(1)

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        # Imported where used (here and in `open`), like asyncpg: ~1 ms a start that records nothing need not pay.
        import sqlite3

        def run() -> T:
            if self._db is None:
                raise StoreError(f"the registry {self.describe} is not open")
            try:
                return work(self._db)
            except sqlite3.Error as exc:
                raise StoreError(f"SQLite {self.describe}: {exc}") from None

        return await anyio.to_thread.run_sync(run, limiter=self._turn)

    async def open(self) -> None:
        import sqlite3

        def connect() -> sqlite3.Connection:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                # Created here, owner-only, before SQLite makes it with the umask's permissions; its -wal and
                # -shm files take the same permissions from it.
                os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
                db = sqlite3.connect(
                    self.path, timeout=self.busy_timeout_s, isolation_level=None, check_same_thread=False
                )
            except (OSError, sqlite3.Error) as exc:
                raise StoreError(f"cannot open the registry {self.describe}: {exc}") from None
            try:
                db.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
                db.execute("PRAGMA journal_mode = WAL")
                # In WAL mode NORMAL loses at most the last commits on a power cut, never the file's integrity.
                db.execute("PRAGMA synchronous = NORMAL")
                for statement in _SCHEMA:
                    db.execute(statement)
            except sqlite3.Error as exc:
                db.close()
                raise StoreError(f"cannot set up the registry {self.describe}: {exc}") from None
            return db

        self._db = await anyio.to_thread.run_sync(connect, limiter=self._turn)

    async def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            await anyio.to_thread.run_sync(db.close, limiter=self._turn)

    async def record(self, rows: Sequence[JobRow]) -> None:
        statement = _UPSERT.format(*"???????")

        def write(db: sqlite3.Connection) -> None:
            with db:
                db.execute("BEGIN IMMEDIATE")
                db.executemany(statement, [row.values() for row in rows])

        await self._run(write)

    async def list(self, provider: str | None, status: str | None, limit: int) -> tuple[list[StoredJob], int]:
        where, values = _where(provider, status, lambda _: "?")

        def read(db: sqlite3.Connection) -> tuple[list[StoredJob], int]:
            rows = db.execute(
                f"SELECT result, saved FROM genresult_jobs{where} ORDER BY last_checked DESC LIMIT ?",
                (*values, limit),
            ).fetchall()
            (total,) = db.execute(f"SELECT count(*) FROM genresult_jobs{where}", values).fetchone()
            return [StoredJob(result, saved) for result, saved in rows], int(total)

        return await self._run(read)

    async def recall(self, provider: str, task_id: str) -> str | None:
        def read(db: sqlite3.Connection) -> str | None:
            row = db.execute(
                "SELECT memory FROM genresult_wait_memory WHERE provider = ? AND task_id = ?", (provider, task_id)
            ).fetchone()
            return None if row is None else str(row[0])

        return await self._run(read)

    async def keep(self, provider: str, task_id: str, memory: str | None, now: float) -> None:
        if memory is None:
            statement, values = (
                "DELETE FROM genresult_wait_memory WHERE provider = ? AND task_id = ?",
                (
                    provider,
                    task_id,
                ),
            )
            await self._run(lambda db: db.execute(statement, values))
            return
        keep = _KEEP.format(*"????")
        await self._run(lambda db: db.execute(keep, (provider, task_id, memory, now)))

    async def purge(self, checked_before: float, memory_before: float) -> int:
        def purge(db: sqlite3.Connection) -> int:
            gone = db.execute("DELETE FROM genresult_jobs WHERE last_checked < ?", (checked_before,)).rowcount
            db.execute("DELETE FROM genresult_wait_memory WHERE updated < ?", (memory_before,))
            return int(gone)

        return await self._run(purge)


class PostgresStore:
    """A PostgreSQL database shared by every replica, through asyncpg's connection pool.

    The schema is created under a transaction-scoped advisory lock, so replicas starting together against
    an empty database take turns instead of colliding on `CREATE TABLE` (which is not safe concurrently even
    with IF NOT EXISTS).
    """

    # An arbitrary constant, the same in every replica: the key of the schema lock.
    SCHEMA_LOCK = 0x67656E726573
    SCHEMA_VERSION = 1

    def __init__(self, dsn: str, *, max_size: int = 8, command_timeout_s: float = 5.0) -> None:
        self.dsn = dsn
        parts = urlsplit(dsn)
        port = f":{parts.port}" if parts.port else ""
        self.describe = f"postgresql://{parts.hostname or 'localhost'}{port}{parts.path}"
        self.max_size = max_size
        self.command_timeout_s = command_timeout_s
        self._pool: asyncpg.Pool[Any] | None = None

    async def open(self) -> None:
        try:
            import asyncpg
        except ImportError:
            raise StoreError(
                "GENRESULT_DB is a postgresql:// URL but asyncpg is not installed: "
                "pip install 'genresult-mcp[postgres]'"
            ) from None
        async with self._errors("cannot open"):
            self._pool = await asyncpg.create_pool(
                self.dsn, min_size=1, max_size=self.max_size, command_timeout=self.command_timeout_s
            )
            async with self._pool.acquire() as db, db.transaction():
                await db.execute("SELECT pg_advisory_xact_lock($1)", self.SCHEMA_LOCK)
                for statement in _SCHEMA:
                    await db.execute(statement)
                await db.execute("CREATE TABLE IF NOT EXISTS genresult_schema (version INTEGER NOT NULL)")
                if await db.fetchval("SELECT max(version) FROM genresult_schema") is None:
                    await db.execute("INSERT INTO genresult_schema (version) VALUES ($1)", self.SCHEMA_VERSION)

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    def _errors(self, doing: str) -> _PostgresErrors:
        return _PostgresErrors(f"{doing} the registry {self.describe}")

    def _ready(self) -> asyncpg.Pool[Any]:
        if self._pool is None:
            raise StoreError(f"the registry {self.describe} is not open")
        return self._pool

    async def record(self, rows: Sequence[JobRow]) -> None:
        async with self._errors("cannot write to"):
            await self._ready().executemany(
                _UPSERT.format(*(f"${n}" for n in range(1, 8))), [row.values() for row in rows]
            )

    async def list(self, provider: str | None, status: str | None, limit: int) -> tuple[list[StoredJob], int]:
        where, values = _where(provider, status, lambda n: f"${n}")
        async with self._errors("cannot read"):
            pool = self._ready()
            rows = await pool.fetch(
                f"SELECT result, saved FROM genresult_jobs{where} ORDER BY last_checked DESC LIMIT ${len(values) + 1}",
                *values,
                limit,
            )
            total = await pool.fetchval(f"SELECT count(*) FROM genresult_jobs{where}", *values)
        return [StoredJob(row["result"], row["saved"]) for row in rows], int(total)

    async def recall(self, provider: str, task_id: str) -> str | None:
        async with self._errors("cannot read"):
            memory = await self._ready().fetchval(
                "SELECT memory FROM genresult_wait_memory WHERE provider = $1 AND task_id = $2", provider, task_id
            )
        return None if memory is None else str(memory)

    async def keep(self, provider: str, task_id: str, memory: str | None, now: float) -> None:
        async with self._errors("cannot write to"):
            if memory is None:
                await self._ready().execute(
                    "DELETE FROM genresult_wait_memory WHERE provider = $1 AND task_id = $2", provider, task_id
                )
            else:
                await self._ready().execute(_KEEP.format("$1", "$2", "$3", "$4"), provider, task_id, memory, now)

    async def purge(self, checked_before: float, memory_before: float) -> int:
        async with self._errors("cannot purge"):
            pool = self._ready()
            status = await pool.execute("DELETE FROM genresult_jobs WHERE last_checked < $1", checked_before)
            await pool.execute("DELETE FROM genresult_wait_memory WHERE updated < $1", memory_before)
        # asyncpg answers the command tag, "DELETE 12".
        return int(status.rsplit(" ", 1)[-1])


class _PostgresErrors:
    """Converts asyncpg's and the network's errors into `StoreError`, once, at the store's boundary."""

    def __init__(self, doing: str) -> None:
        self.doing = doing

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None, _tb: object) -> bool:
        if exc is None:
            return False
        import asyncpg

        if isinstance(exc, asyncpg.PostgresError | asyncpg.InterfaceError | OSError | TimeoutError):
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise StoreError(f"{self.doing}: {reason}") from None
        return False


class Registry:
    """The service's side of the store: records and wait memory that never fail a check, and the listing.

    Off (no store) it remembers nothing and `list` answers `registry_unavailable`. The store is opened by the
    first call that needs it (a write of checks, a wait's memory, a listing). A store that fails is logged at
    most once a minute; its reason is kept for `list`. Each call is bounded by `timeout_s`, and a store that
    could not be opened is tried again at most every `retry_s` by checks (every time by `list`), so a
    database that is down or hangs costs a check little time and no error.
    """

    def __init__(
        self,
        store: JobStore | None,
        clock: Clock,
        *,
        retention_days: float = DEFAULT_RETENTION_DAYS,
        timeout_s: float = 3.0,
        retry_s: float = 10.0,
    ) -> None:
        self.store = store
        self.clock = clock
        self.retention_s = retention_days * 86_400.0
        self.timeout_s = timeout_s
        self.retry_s = retry_s
        self.problem: str | None = None
        self._opened = False
        self._retry_at: float | None = None
        self._last_logged: float | None = None
        self._next_purge = 0.0
        self._pending: dict[tuple[str, str], tuple[GenerationResult, float]] = {}
        self._wake: anyio.Event | None = None

    @classmethod
    def off(cls, clock: Clock) -> Registry:
        return cls(None, clock)

    async def aclose(self) -> None:
        if self.store is not None and self._opened:
            self._opened = False
            with anyio.CancelScope(shield=True):
                try:
                    await self.store.close()
                except StoreError as exc:
                    self._failed(exc)

    async def _call(self, work: Callable[[JobStore], Awaitable[T]], *, eager: bool = False) -> T:
        """`work` on the open store, within `timeout_s`; raises `StoreError` (after noting it) when it fails."""
        store = self.store
        assert store is not None
        try:
            with anyio.fail_after(self.timeout_s):
                if not self._opened:
                    if not eager and self._retry_at is not None and self.clock.monotonic() < self._retry_at:
                        raise StoreError(self.problem or f"the registry {store.describe} is not open")
                    self._retry_at = self.clock.monotonic() + self.retry_s
                    await store.open()
                    self._opened = True
                    await self._purge(store)
                done = await work(store)
        except TimeoutError:
            exc = StoreError(f"the registry {store.describe} did not answer within {self.timeout_s:g}s")
            self._failed(exc)
            raise exc from None
        except StoreError as exc:
            self._failed(exc)
            raise
        self.problem = None
        return done

    async def _purge(self, store: JobStore) -> None:
        now = self.clock.now().timestamp()
        if now < self._next_purge:
            return
        self._next_purge = now + PURGE_EVERY_S
        gone = await store.purge(now - self.retention_s, now - MEMORY_HORIZON_S)
        if gone:
            logger.info("registry: forgot %d jobs not checked for %g days", gone, self.retention_s / 86_400)

    def _failed(self, exc: StoreError) -> None:
        self.problem = str(exc)
        now = self.clock.monotonic()
        if self._last_logged is None or now - self._last_logged >= LOG_EVERY_S:
            self._last_logged = now
            logger.warning("registry unavailable (checks and waits go on without it): %s", exc)

    async def record(self, result: GenerationResult) -> None:
        """Keep the job's state as the result shows it; a failing store is logged, never raised.

        While `running`, the result is handed to the writer, which writes what has come in together: one
        thread hop and one transaction for many checks, the latest state of each job (an upsert costs
        about as much CPU as the check itself). It is serialized only then, so a job checked again before
        the writer comes round costs no serialization for the state that was replaced. Otherwise it is
        written at once.
        """
        if self.store is None:
            return
        checked = self.clock.now().timestamp()
        if self._wake is not None:
            self._pending[(result.provider, result.task_id)] = (result, checked)
            self._wake.set()
            return
        with contextlib.suppress(StoreError):
            await self._write([_row(result, checked)])

    async def _write(self, rows: Sequence[JobRow]) -> None:
        async def write(store: JobStore) -> None:
            await store.record(rows)
            await self._purge(store)

        await self._call(write)

    async def flush(self) -> None:
        """Write what the writer holds now (a listing calls this first, so it sees every check)."""
        pending, self._pending = self._pending, {}
        if pending:
            with contextlib.suppress(StoreError):
                await self._write([_row(result, checked) for result, checked in pending.values()])

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Run the writer; on exit write what is left and close the store if it was opened (the server's
        lifespan). Nothing is opened here: the first write or listing does it."""
        try:
            if self.store is None:
                yield
                return
            async with anyio.create_task_group() as group:
                self._wake = anyio.Event()
                group.start_soon(self._writer)
                try:
                    yield
                finally:
                    group.cancel_scope.cancel()
        finally:
            self._wake = None
            with anyio.CancelScope(shield=True):
                await self.flush()
                await self.aclose()

    async def _writer(self) -> None:
        while True:
            assert self._wake is not None
            await self._wake.wait()
            self._wake = anyio.Event()
            # A moment for the checks that arrive together (a batch wait's, a burst of calls) to join in.
            await anyio.sleep(WRITE_LINGER_S)
            # Shielded: the rows it took are in no other hands, and a cancel at shutdown must not drop them.
            with anyio.CancelScope(shield=True):
                await self.flush()

    async def recall(self, provider: str, task_id: str) -> tuple[bool, str | None]:
        """(whether the store answered, the wait memory it holds for the job)."""
        if self.store is None:
            return False, None
        try:
            return True, await self._call(lambda store: store.recall(provider, task_id))
        except StoreError:
            return False, None

    async def keep(self, provider: str, task_id: str, memory: str | None) -> None:
        if self.store is None:
            return
        now = self.clock.now().timestamp()
        with contextlib.suppress(StoreError):
            await self._call(lambda store: store.keep(provider, task_id, memory, now))

    async def list(self, provider: str | None, status: str | None, limit: int) -> tuple[list[GenerationResult], int]:
        if self.store is None:
            raise RegistryUnavailable(
                "The job registry is off (GENRESULT_DB=off). Unset GENRESULT_DB for the default SQLite file, "
                "or set it to a file path or a postgresql:// URL, then restart the server."
            )
        await self.flush()
        try:
            rows, total = await self._call(lambda store: store.list(provider, status, limit), eager=True)
        except StoreError as exc:
            raise RegistryUnavailable(
                f"The job registry cannot be read: {exc}. Checks and waits still work; fix GENRESULT_DB's "
                "database (disk space, permissions, the server being up) and call again."
            ) from None
        return [_listed(row) for row in rows], total


def _row(result: GenerationResult, checked: float) -> JobRow:
    # Serialized by pydantic straight to JSON text: half the CPU of a dump to dicts and json.dumps, and this
    # runs for every job written.
    text = result.model_dump_json(exclude_none=True, exclude=_WAIT_FIELDS)
    saved = [output for output in result.outputs if getattr(output, "path", None) is not None]
    files = json.dumps([output.model_dump(mode="json", exclude_none=True) for output in saved]) if saved else None
    return JobRow(result.provider, result.task_id, result.status, text, files, checked)


def _listed(row: StoredJob) -> GenerationResult:
    shown: dict[str, Any] = json.loads(row.result)
    if row.saved is not None and not any("path" in output for output in shown.get("outputs", [])):
        # A later check brought fresh URLs but no files: the files saved before are still on disk.
        shown["outputs"] = json.loads(row.saved)
    return GenerationResult.model_validate(shown)
