"""The job registry, on SQLite and on PostgreSQL alike (`db` runs each test on both): what a check records,
what list_generations shows, what survives a restart, and what a failing or absent store does to checks."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import stat
from datetime import timedelta
from pathlib import Path

import anyio
import pytest
from mcp.types import CallToolResult

from sandbox import Sandbox, Timeline
from tests.conftest import Connect, ServerFactory
from tools.clock import VirtualClock
from tools.registry import JobRow, PostgresStore, Registry, SqliteStore, open_store
from tools.result import GenerationResult, JobList

TENSORPIX_ID = "3c90c3cc-0d44-4b50-8888-8dd25736052a"


def listed(reply: CallToolResult) -> JobList:
    assert not reply.is_error, reply.content
    return JobList.model_validate(reply.structured_content)


def error_text(reply: CallToolResult) -> str:
    """The error's text from its stable code on (the SDK may put its own words before it)."""
    assert reply.is_error and reply.content and reply.content[0].type == "text"
    text = reply.content[0].text
    return text[text.find(": ") + 2 :] if text.startswith("Error executing tool") else text


async def call(client: object, tool: str, **arguments: object) -> CallToolResult:
    with anyio.fail_after(10):
        return await client.call_tool(tool, arguments)  # type: ignore[attr-defined, no-any-return]


async def test_a_checked_job_is_listed_by_a_server_started_after_a_restart(
    connect: Connect, sandbox: Sandbox, clock: VirtualClock, db: str
) -> None:
    sandbox["tensorpix"].add_job(TENSORPIX_ID, Timeline(queued_s=0, running_s=0))
    async with connect(db=db) as client:
        checked = GenerationResult.model_validate(
            (await call(client, "get_generation_result", provider="tensorpix", task_id=TENSORPIX_ID)).structured_content
        )
    clock.advance(3600)
    async with connect(db=db) as client:
        jobs = listed(await call(client, "list_generations"))
    assert jobs.total == 1
    assert jobs.jobs == [checked]
    assert jobs.jobs[0].outputs and jobs.jobs[0].checked_at == "2026-11-22T10:00:00Z"


async def test_jobs_are_listed_most_recently_checked_first_and_filtered_by_provider_status_and_limit(
    connect: Connect, sandbox: Sandbox, clock: VirtualClock, db: str
) -> None:
    sandbox["skillsvideo"].add_job("gen_done", Timeline(queued_s=0, running_s=0))
    sandbox["skillsvideo"].add_job("gen_wait", Timeline(queued_s=100))
    sandbox["modelslab"].add_job("148", Timeline(queued_s=100))
    async with connect(db=db) as client:
        for provider, task_id in (("skillsvideo", "gen_done"), ("modelslab", "148"), ("skillsvideo", "gen_wait")):
            await call(client, "get_generation_result", provider=provider, task_id=task_id)
            clock.advance(5)
        # Checked again: its state is updated in place, and it moves to the front.
        await call(client, "get_generation_result", provider="modelslab", task_id="148")
        everything = listed(await call(client, "list_generations"))
        skills = listed(await call(client, "list_generations", provider="SkillsVideo"))
        queued = listed(await call(client, "list_generations", status="queued", limit=1))
    assert [job.task_id for job in everything.jobs] == ["148", "gen_wait", "gen_done"]
    assert everything.total == 3 and everything.jobs[0].checked_at == "2026-11-22T10:00:15Z"
    assert [job.task_id for job in skills.jobs] == ["gen_wait", "gen_done"]
    waiting = [job.task_id for job in everything.jobs if job.status == "queued"]
    assert len(waiting) >= 1 and ([job.task_id for job in queued.jobs], queued.total) == (waiting[:1], len(waiting))


async def test_list_arguments_out_of_range_are_invalid_arguments_that_say_what_fits(connect: Connect) -> None:
    async with connect() as client:
        too_many = error_text(await call(client, "list_generations", limit=201))
        none = error_text(await call(client, "list_generations", limit=0))
        status = error_text(await call(client, "list_generations", status="done"))
        provider = error_text(await call(client, "list_generations", provider="nope"))
    assert too_many.startswith("invalid_argument") and "1 to 200" in too_many
    assert none.startswith("invalid_argument")
    assert status.startswith("invalid_argument") and "succeeded" in status
    assert provider.startswith("unknown_provider")


async def test_with_the_registry_off_checks_work_and_list_generations_says_it_is_off(
    connect: Connect, sandbox: Sandbox
) -> None:
    sandbox["skillsvideo"].add_job("gen_1")
    async with connect(db="off") as client:
        checked = await call(client, "get_generation_result", provider="skillsvideo", task_id="gen_1")
        reply = await call(client, "list_generations")
    assert not checked.is_error
    assert error_text(reply).startswith("registry_unavailable") and "GENRESULT_DB=off" in error_text(reply)
    assert reply.structured_content is None


async def test_a_registry_that_cannot_be_opened_fails_no_check_and_is_logged_once_a_minute(
    connect: Connect, sandbox: Sandbox, clock: VirtualClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    sandbox["skillsvideo"].add_job("gen_1", Timeline(queued_s=0, running_s=0))
    with caplog.at_level(logging.WARNING, logger="tools.registry"):
        async with connect(db=str(blocker / "jobs.sqlite3")) as client:
            checks = []
            for _ in range(5):
                checks.append(await call(client, "get_generation_result", provider="skillsvideo", task_id="gen_1"))
                clock.advance(11)
            waited = await call(client, "wait_for_generation", provider="skillsvideo", task_id="gen_1")
            reply = await call(client, "list_generations")
    assert not any(check.is_error for check in checks) and not waited.is_error
    assert error_text(reply).startswith("registry_unavailable") and "a-file" in error_text(reply)
    warnings = [record for record in caplog.records if "registry unavailable" in record.getMessage()]
    # The first write, then 55 s of checks (tried again every 10 s), then the listing: one line in the first minute.
    assert 1 <= len(warnings) <= 2


async def test_the_sqlite_file_is_the_owners_alone_and_in_wal_mode(connect: Connect, tmp_path: Path) -> None:
    path = tmp_path / "fresh" / "jobs.sqlite3"
    async with connect(db=str(path)) as client:
        await call(client, "list_generations")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_a_session_that_checks_no_job_creates_no_registry_file(connect: Connect, tmp_path: Path) -> None:
    path = tmp_path / "fresh" / "jobs.sqlite3"
    async with connect(db=str(path)) as client:
        with anyio.fail_after(10):
            tools = await client.list_tools()
    assert tools.tools
    assert not path.parent.exists()


async def test_what_is_stored_carries_no_credential(connect: Connect, sandbox: Sandbox, tmp_path: Path) -> None:
    key = sandbox["skillsvideo"].api_key
    # The provider echoes the key in its error message: the result shows it redacted, and so does the store.
    sandbox["skillsvideo"].add_job("gen_1", Timeline(queued_s=0, running_s=0, outcome="failed"), message=key)
    path = tmp_path / "jobs.sqlite3"
    async with connect(db=str(path)) as client:
        await call(client, "get_generation_result", provider="skillsvideo", task_id="gen_1")
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("jobs.sqlite3*"))
    assert b"gen_1" in stored
    assert key.encode() not in stored


async def test_jobs_not_checked_within_the_retention_period_are_forgotten(
    make_server: ServerFactory, sandbox: Sandbox, clock: VirtualClock, db: str
) -> None:
    from mcp import Client

    sandbox["skillsvideo"].add_job("gen_old")
    sandbox["skillsvideo"].add_job("gen_new")
    async with Client(make_server(db=db, db_retention_days=2)) as client:  # type: ignore[arg-type]
        await call(client, "get_generation_result", provider="skillsvideo", task_id="gen_old")
        clock.advance(timedelta(days=1.5).total_seconds())
        await call(client, "get_generation_result", provider="skillsvideo", task_id="gen_new")
    clock.advance(timedelta(days=1).total_seconds())
    async with Client(make_server(db=db, db_retention_days=2)) as client:  # type: ignore[arg-type]
        jobs = listed(await call(client, "list_generations"))
    assert [job.task_id for job in jobs.jobs] == ["gen_new"]


async def test_a_wait_resumed_on_another_server_keeps_the_first_ones_pace(
    make_server: ServerFactory, sandbox: Sandbox, db: str
) -> None:
    from mcp import Client

    sandbox["skillsvideo"].add_job("gen_1", Timeline(queued_s=20, running_s=40))
    async with Client(make_server(db=db)) as client:  # type: ignore[arg-type]
        first = GenerationResult.model_validate(
            (
                await call(client, "wait_for_generation", provider="skillsvideo", task_id="gen_1", timeout_s=30)
            ).structured_content
        )
    async with Client(make_server(db=db)) as client:  # type: ignore[arg-type]
        second = GenerationResult.model_validate(
            (
                await call(client, "wait_for_generation", provider="skillsvideo", task_id="gen_1", timeout_s=50)
            ).structured_content
        )
    times = [request.at for request in sandbox["skillsvideo"].requests]
    resumed = times[first.polls or 0 :]
    assert (first.timed_out, second.status) == (True, "succeeded")
    # Checked at once, then the pace the first server had reached, not the backoff from its start (2 s).
    assert resumed[1] - resumed[0] > 10


async def test_without_a_shared_registry_a_resumed_wait_on_another_server_starts_its_pace_over(
    make_server: ServerFactory, sandbox: Sandbox
) -> None:
    from mcp import Client

    sandbox["skillsvideo"].add_job("gen_1", Timeline(queued_s=20, running_s=40))
    polls = []
    for timeout_s in (30, 50):
        async with Client(make_server(db="off")) as client:  # type: ignore[arg-type]
            reply = await call(
                client, "wait_for_generation", provider="skillsvideo", task_id="gen_1", timeout_s=timeout_s
            )
            polls.append(GenerationResult.model_validate(reply.structured_content).polls or 0)
    times = [request.at for request in sandbox["skillsvideo"].requests]
    resumed = times[polls[0] :]
    assert resumed[1] - resumed[0] < 3


async def test_saved_files_stay_listed_when_a_later_check_brings_none(db: str) -> None:
    store = open_store(db)
    assert store is not None
    await store.open()
    try:
        saved = json.dumps([{"url": "https://x/a.mp4", "kind": "video", "path": "/d/a.mp4"}])
        await store.record([JobRow("p", "t", "succeeded", '{"outputs":[]}', saved, 1.0)])
        await store.record([JobRow("p", "t", "succeeded", '{"outputs":[{"url":"https://x/b.mp4"}]}', None, 2.0)])
        rows, total = await store.list(None, None, 5)
    finally:
        await store.close()
    assert total == 1 and rows[0].saved == saved and "b.mp4" in rows[0].result


async def test_wait_memory_is_kept_recalled_and_forgotten(db: str) -> None:
    store = open_store(db)
    assert store is not None
    await store.open()
    try:
        await store.keep("p", "t", '{"samples":[]}', 1.0)
        kept = await store.recall("p", "t")
        await store.keep("p", "t", None, 2.0)
        forgotten = await store.recall("p", "t")
        await store.keep("p", "old", "{}", 1.0)
        await store.purge(checked_before=0.0, memory_before=1.5)
        purged = await store.recall("p", "old")
    finally:
        await store.close()
    assert (kept, forgotten, purged) == ('{"samples":[]}', None, None)


async def test_many_stores_opening_one_empty_registry_at_once_all_succeed_and_share_it(db: str) -> None:
    stores = [open_store(db) for _ in range(6)]
    async with anyio.create_task_group() as group:
        for store in stores:
            assert store is not None
            group.start_soon(store.open)
    try:
        async with anyio.create_task_group() as group:
            for n, store in enumerate(stores):
                assert store is not None
                group.start_soon(store.record, [JobRow("p", f"t{n}", "queued", "{}", None, float(n))])
        assert stores[0] is not None
        _rows, total = await stores[0].list(None, None, 200)
    finally:
        for store in stores:
            assert store is not None
            await store.close()
    assert total == len(stores)


async def test_a_database_that_is_down_fails_no_check_and_list_generations_says_why(
    connect: Connect, sandbox: Sandbox
) -> None:
    sandbox["skillsvideo"].add_job("gen_1")
    # A loopback port nothing listens on: the connection is refused at once.
    down = "postgresql://someone:hunter2-secret@127.0.0.1:9/registry"
    async with connect(db=down) as client:
        checked = await call(client, "get_generation_result", provider="skillsvideo", task_id="gen_1")
        reply = await call(client, "list_generations")
    assert not checked.is_error
    assert error_text(reply).startswith("registry_unavailable")
    assert "127.0.0.1:9/registry" in error_text(reply) and "hunter2-secret" not in error_text(reply)


def test_the_store_is_chosen_by_the_setting_and_shows_no_password() -> None:
    assert open_store("off") is None
    assert isinstance(open_store("/tmp/x.sqlite3"), SqliteStore)
    pg = open_store("postgresql://u:pw-secret@db.internal:5433/jobs")
    assert isinstance(pg, PostgresStore) and pg.describe == "postgresql://db.internal:5433/jobs"
    assert Registry.off(VirtualClock()).store is None


def test_the_default_registry_file_is_in_the_users_data_folder() -> None:
    from tools.registry import default_db_path

    home = Path("/home/u")
    assert default_db_path({}, home, "linux") == home / ".local/share/genresult-mcp/jobs.sqlite3"
    assert default_db_path({"XDG_DATA_HOME": "/x"}, home, "linux") == Path("/x/genresult-mcp/jobs.sqlite3")
    assert default_db_path({}, home, "darwin") == home / "Library/Application Support/genresult-mcp/jobs.sqlite3"
    assert default_db_path({"LOCALAPPDATA": "C:/L"}, home, "win32") == Path("C:/L/genresult-mcp/jobs.sqlite3")
    assert os.environ.get("GENRESULT_DB") is None


async def test_a_download_is_recorded_so_the_listing_shows_the_saved_files(
    connect: Connect, sandbox: Sandbox, tmp_path: Path
) -> None:
    task_id = sandbox["skillsvideo"].sandbox_id(1)
    sandbox["skillsvideo"].add_job(task_id, Timeline(queued_s=0, running_s=0))
    async with connect(download_dir=tmp_path / "files") as client:
        await client.call_tool("download_generation_outputs", {"provider": "skillsvideo", "task_id": task_id})
        listed = await client.call_tool("list_generations", {})
    assert listed.structured_content is not None
    [job] = [j for j in listed.structured_content["jobs"] if j["task_id"] == task_id]
    assert job["outputs"][0]["path"].startswith(str(tmp_path / "files"))
