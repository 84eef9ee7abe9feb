"""Declared providers: every error of the file format says where and what, the generic adapter puts the key
where the file says and reads the reply by its paths, and the README's worked example, pointed at an emulator
of the API it describes, works end to end through the in-memory MCP client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from sandbox import IN_PROCESS_ROOT, Fault, Job, JobView, Timeline
from sandbox.core import Emulator
from server.app import build_server
from server.settings import Settings, SettingsError
from tools.clock import VirtualClock
from tools.errors import TaskNotFound
from tools.providers import ADAPTERS, adapters_from_env
from tools.providers.base import Reply, Then
from tools.providers.declared import DeclaredSpecError
from tools.providers.declared_spec import compile_path
from tools.redact import Redactor
from tools.result import GenerationResult, JobState

EXAMPLE = (Path(__file__).parent / "declared_example.toml").read_text()
KEY = "acme-key-0123456789abcdef"


class AcmeEmulator(Emulator):
    """The API the README example declares: jobs with a fractional progress, results behind a second call."""

    id = "acme"
    api_prefix = "/v1"
    api_key_env = "ACME_API_KEY"
    base_url_env = "ACME_BASE_URL"
    sandbox_key = KEY

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/v1/jobs/{task_id}", self.get_job, methods=["GET"]),
            Route("/v1/results/{result_id}", self.get_result, methods=["GET"]),
        ]

    def error_body(self, status: int, message: str, job: Job | None = None) -> Any:
        return {"message": message}

    def _denied(self, request: Request) -> Response | None:
        if request.headers.get("x-api-key") != self.api_key:
            return JSONResponse({"message": "Unknown API key."}, 401)
        return None

    async def get_job(self, request: Request) -> Response:
        await self.record(request)
        if (denied := self._denied(request)) is not None:
            return denied
        job = self.find_job(request.path_params["task_id"])
        if job is None:
            return JSONResponse({"message": "No such job."}, 404)
        if (fault := await self.take_fault(job, "job")) is not None:
            return fault
        return JSONResponse({"job": self.render(job, job.view(self.clock.monotonic()))})

    def render(self, job: Job, view: JobView) -> dict[str, Any]:
        words = {"queued": "IN_QUEUE", "running": "WORKING", "succeeded": "DONE", "failed": "ERROR"}
        body: dict[str, Any] = {"id": job.task_id, "state": words.get(view.phase, "CANCELLED")}
        body["percent"] = view.progress / 100
        body["eta_seconds"] = round(view.remaining_s)
        if view.phase == "succeeded":
            body.update(result_id=f"res_{job.task_id}", credits_used=3)
        if view.phase == "failed":
            body["error"] = {"code": "NSFW", "detail": "The prompt was refused."}
        return body

    async def get_result(self, request: Request) -> Response:
        await self.record(request)
        if (denied := self._denied(request)) is not None:
            return denied
        result_id = request.path_params["result_id"]
        job = self.jobs.get(result_id.removeprefix("res_"))
        if job is None:
            return JSONResponse({"message": "No such result."}, 404)
        if (fault := await self.take_fault(job, "result")) is not None:
            return fault
        files = [
            {"url": self.file_url(request, f"{job.task_id}/clip.mp4"), "content_type": "video/mp4", "bytes": 1234,
             "width": 1280, "height": 720, "seconds": 5.5},
            {"url": self.file_url(request, f"{job.task_id}/poster.jpg"), "content_type": "image/jpeg", "bytes": 99,
             "width": 1280, "height": 720},
        ]  # fmt: skip
        return JSONResponse({"id": result_id, "files": files})


@pytest.fixture
def declared_file(tmp_path: Path) -> Path:
    path = tmp_path / "providers.toml"
    path.write_text(EXAMPLE)
    return path


@pytest.fixture
def acme(clock: VirtualClock) -> AcmeEmulator:
    return AcmeEmulator(clock, auto_create=False)


@asynccontextmanager
async def acme_client(acme: AcmeEmulator, clock: VirtualClock, env: dict[str, str]) -> AsyncIterator[Client]:
    app = Starlette(routes=[Mount("/acme", app=acme.app)])
    settings = Settings.from_env(env)
    server = build_server(settings, redactor=Redactor(), transport=httpx.ASGITransport(app=app), clock=clock)
    async with Client(server) as client:
        yield client


def user_env(declared_file: Path, **more: str) -> dict[str, str]:
    return {
        "GENRESULT_PROVIDERS_FILE": str(declared_file),
        "ACME_API_KEY": KEY,
        "ACME_BASE_URL": f"{IN_PROCESS_ROOT}/acme/v1",
        **more,
    }


# ---- the README example, end to end ----


async def test_the_readme_example_follows_a_job_to_its_files_through_the_mcp_client(
    acme: AcmeEmulator, clock: VirtualClock, declared_file: Path
) -> None:
    acme.add_job("job_7Hq2", Timeline(queued_s=2, running_s=8))
    seen = []
    async with acme_client(acme, clock, user_env(declared_file)) as client:
        for advance in (0, 6, 10):
            clock.advance(advance)
            reply = await client.call_tool("get_generation_result", {"provider": "acme", "task_id": "job_7Hq2"})
            assert not reply.is_error, reply.content
            seen.append(GenerationResult.model_validate(reply.structured_content))

    assert [(r.status, r.provider_status, r.progress, r.eta_s) for r in seen] == [
        ("queued", "IN_QUEUE", 0, 10),
        ("running", "WORKING", 50, 4),
        ("succeeded", "DONE", 100, 0),
    ]
    done = seen[-1]
    assert done.cost is not None and (done.cost.amount, done.cost.unit) == (3, "credits")
    assert [(o.kind, o.mime_type, o.size_bytes, o.width, o.height, o.duration_s) for o in done.outputs] == [
        ("video", "video/mp4", 1234, 1280, 720, 5.5),
        ("image", "image/jpeg", 99, 1280, 720, None),
    ]
    assert done.outputs[0].url == f"{IN_PROCESS_ROOT}/acme/files/job_7Hq2/clip.mp4"
    assert [r.path for r in acme.requests] == ["/acme/v1/jobs/job_7Hq2"] * 3 + ["/acme/v1/results/res_job_7Hq2"]
    assert {r.headers["x-api-key"] for r in acme.requests} == {KEY}


async def test_a_wait_on_a_declared_provider_retries_like_a_built_in_one_and_counts_both_requests(
    acme: AcmeEmulator, clock: VirtualClock, declared_file: Path
) -> None:
    acme.add_job("job_1", Timeline(queued_s=1, running_s=3), [Fault.server_error(503).aimed_at("result")])
    async with acme_client(acme, clock, user_env(declared_file)) as client:
        reply = await client.call_tool("wait_for_generation", {"provider": "acme", "task_id": "job_1", "timeout_s": 60})
    result = GenerationResult.model_validate(reply.structured_content)
    assert (result.status, result.timed_out, len(result.outputs)) == ("succeeded", False, 2)
    assert result.polls == len(acme.requests)


async def test_a_declared_provider_fails_in_its_own_words_refuses_bad_ids_and_keeps_its_key_secret(
    acme: AcmeEmulator, clock: VirtualClock, declared_file: Path
) -> None:
    acme.add_job("job_2", Timeline(0, 0, "failed"), [Fault.error_in_ok("oops", echo_credentials=True)])
    texts = []
    async with acme_client(acme, clock, user_env(declared_file)) as client:
        for task_id in ("job_2", "job_2", "job_404", "../x", "not-a-job"):
            reply = await client.call_tool("get_generation_result", {"provider": "acme", "task_id": task_id})
            texts.append(reply.content[0].text)  # type: ignore[union-attr]
    echoed, failed, missing, traversal, pattern = texts
    assert "provider_protocol_error" in echoed and KEY not in echoed
    assert json.loads(failed)["error"] == {"code": "NSFW", "message": "The prompt was refused."}
    assert "task_not_found" in missing
    assert "invalid_task_id" in traversal and "invalid_task_id" in pattern and "job_[A-Za-z0-9]+" in pattern
    assert len(acme.requests) == 3


async def test_a_wrong_key_and_a_missing_key_are_answered_like_a_built_in_providers(
    acme: AcmeEmulator, clock: VirtualClock, declared_file: Path
) -> None:
    acme.add_job("job_3")
    env = user_env(declared_file, ACME_API_KEY="acme-wrong-key-0000")
    async with acme_client(acme, clock, env) as client:
        wrong = await client.call_tool("get_generation_result", {"provider": "acme", "task_id": "job_3"})
    env.pop("ACME_API_KEY")
    async with acme_client(acme, clock, env) as client:
        unset = await client.call_tool("get_generation_result", {"provider": "acme", "task_id": "job_3"})
        unknown = await client.call_tool("get_generation_result", {"provider": "nope", "task_id": "job_3"})
    assert "authentication_failed" in wrong.content[0].text and "Unknown API key." in wrong.content[0].text  # type: ignore[union-attr]
    assert "provider_not_configured" in unset.content[0].text and "ACME_API_KEY" in unset.content[0].text  # type: ignore[union-attr]
    assert "acme" in unknown.content[0].text and "seedance" in unknown.content[0].text  # type: ignore[union-attr]
    assert len(acme.requests) == 1


# ---- the generic adapter's requests and reading ----


def adapter_from(tmp_path: Path, text: str, **env: str) -> Any:
    path = tmp_path / "p.toml"
    path.write_text(text)
    return adapters_from_env({"GENRESULT_PROVIDERS_FILE": str(path), **env}, Redactor())


QUERY_KEY = """
[q]
name = "Q"
base_url = "https://q.example/api/"
base_url_env = "Q_BASE_URL"
example_task_id = "42"
credentials = { env = "Q_KEY", in = "query", name = "api_key" }
read = { path = "/status/", query = { id = "{task_id}", v = "2" }, headers = { "Q-Version" = "7" } }
reply = { status = "data.status", outputs = [{ url = "data.videos[0].url", kind = "video" }] }
"""

BODY_KEY = """
[b]
name = "B"
base_url = "https://b.example"
base_url_env = "B_BASE_URL"
example_task_id = "42"
credentials = { env = "B_KEY", in = "body", name = "key" }
read = { method = "POST", path = "/fetch/{task_id}", body = { request_id = "{task_id}" } }
reply = { status = ["status", "state"], outputs = [{ url = "output[]" }] }
"""


async def test_a_key_declared_for_the_query_goes_there_with_the_ids_and_fixed_headers(tmp_path: Path) -> None:
    adapter = adapter_from(tmp_path, QUERY_KEY, Q_KEY="q-key-123456")["q"]
    async with httpx.AsyncClient() as client:
        request = adapter.build_request(client, "a/b")
    assert str(request.url) == "https://q.example/api/status/?id=a%2Fb&v=2&api_key=q-key-123456"
    assert request.headers["q-version"] == "7" and "authorization" not in request.headers


async def test_a_key_declared_for_the_body_goes_in_the_json_of_a_post(tmp_path: Path) -> None:
    adapter = adapter_from(tmp_path, BODY_KEY, B_KEY="b-key-123456")["b"]
    async with httpx.AsyncClient() as client:
        request = adapter.build_request(client, "7/..")
    assert (request.method, str(request.url)) == ("POST", "https://b.example/fetch/7%2F..")
    assert json.loads(request.content) == {"request_id": "7/..", "key": "b-key-123456"}


def test_alternative_paths_and_a_list_of_plain_urls_are_read(tmp_path: Path) -> None:
    adapter = adapter_from(tmp_path, BODY_KEY)["b"]
    body = {"state": "success", "output": ["https://cdn.example/a.mp4", "https://cdn.example/a.mp4", 7, ""]}
    state = adapter.parse(Reply(200, json.dumps(body).encode()))
    assert isinstance(state, JobState)
    assert (state.status, [(o.url, o.kind) for o in state.outputs]) == (
        "succeeded",
        [("https://cdn.example/a.mp4", "video")],
    )


def test_an_indexed_path_reads_only_that_item(tmp_path: Path) -> None:
    adapter = adapter_from(tmp_path, QUERY_KEY)["q"]
    body = {
        "data": {"status": "done", "videos": [{"url": "https://x.example/1.mp4"}, {"url": "https://x.example/2.mp4"}]}
    }
    state = adapter.parse(Reply(200, json.dumps(body).encode()))
    assert [o.url for o in state.outputs] == ["https://x.example/1.mp4"]


def test_a_first_reply_that_leads_on_is_a_then_and_a_purged_word_is_task_not_found(declared_file: Path) -> None:
    adapter = adapters_from_env(user_env(declared_file), Redactor())["acme"]
    step = adapter.parse(Reply(200, b'{"job": {"state": "done", "result_id": "res_1"}}'))
    assert isinstance(step, Then)
    with pytest.raises(TaskNotFound):
        adapter.parse(Reply(200, b'{"job": {"state": "PURGED"}}'))


@pytest.mark.parametrize(
    ("path", "document", "found"),
    [
        ("a.b", {"a": {"b": 1}}, [1]),
        ("a[].b", {"a": [{"b": 1}, {"c": 2}, {"b": 3}]}, [1, 3]),
        ("a[1]", {"a": [1, 2, 3]}, [2]),
        ("a[5]", {"a": [1]}, []),
        ("a[][]", {"a": [[1, 2], [3]]}, [1, 2, 3]),
        ("a.b", {"a": [{"b": 1}]}, []),
        ("$x.@y-z", {"$x": {"@y-z": "v"}}, ["v"]),
    ],
)
def test_json_paths_reach_keys_list_items_and_indexes(path: str, document: Any, found: list[Any]) -> None:
    assert list(compile_path(path).find(document)) == found


# ---- the file format: every error says where and what ----

MINIMAL = """
[mine]
name = "Mine"
base_url = "https://mine.example/v1"
base_url_env = "MINE_BASE_URL"
example_task_id = "t1"
credentials = { env = "MINE_API_KEY", scheme = "Bearer" }
read = { path = "/tasks/{task_id}" }
reply = { status = "status", outputs = [{ url = "url" }] }
"""


def test_the_minimal_file_is_accepted_with_its_defaults(tmp_path: Path) -> None:
    adapter = adapter_from(tmp_path, MINIMAL, MINE_API_KEY="mine-key-1234")["mine"]
    assert (adapter.base_url, adapter.credential_hint, adapter.spec.http.not_found) == (
        "https://mine.example/v1",
        "set MINE_API_KEY",
        [404],
    )


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        (('name = "Mine"', ""), "name", "is required"),
        (('name = "Mine"', 'name = "Mine"\nnmae = "typo"'), "nmae", "not a key of this format"),
        (('"MINE_API_KEY"', '"mine-key"'), "credentials.env", "not an environment variable name"),
        (('base_url = "https://mine.example/v1"', 'base_url = "ftp://mine.example"'), "base_url", "not an http(s)"),
        (('"/tasks/{task_id}"', '"tasks/{task_id}"'), "read", "must start with /"),
        (('"/tasks/{task_id}"', '"/tasks/{id}"'), "read", "placeholder we do not fill"),
        (('"/tasks/{task_id}"', '"/tasks/x{task_id}"'), "read", "exactly one placeholder"),
        (('"/tasks/{task_id}"', '"/tasks/{task_id}?x=1"'), "read", "query"),
        (('"/tasks/{task_id}"', '"/../{task_id}"'), "read", ". and .. segments"),
        (('status = "status"', 'status = "data..status"'), "reply.status", "not a JSON path"),
        (('status = "status"', "status = []"), "reply.status", "an empty list"),
        (
            ('status = "status"', 'status = "s", status_words = { DONE = "finished" }'),
            "reply.status_words.DONE",
            "'queued'",
        ),
        (('status = "status"', 'status = "s", progress_scale = 10'), "reply.progress_scale", "1 or 100"),
        (
            ('outputs = [{ url = "url" }]', 'outputs = [{ url = "url", kind = "movie" }]'),
            "reply.outputs.kind",
            "'video'",
        ),
        (('outputs = [{ url = "url" }]', "outputs = []"), None, "no outputs"),
        (("read = { path", "http = { not_found = [500] }\nread = { path"), "http.not_found", "only 4xx"),
        (("read = { path", "http = { auth_failed = [429] }\nread = { path"), "http.auth_failed", "only 4xx"),
        (
            ('read = { path = "/tasks/{task_id}" }', 'read = { path = "/t/{task_id}", task_id_pattern = "[" }'),
            "read",
            "not a regular expression",
        ),
        (
            ('read = { path = "/tasks/{task_id}" }', 'read = { path = "/t/{task_id}", task_id_pattern = "x[0-9]+" }'),
            None,
            "does not match read.task_id_pattern",
        ),
        (
            ('scheme = "Bearer"', 'in = "query", name = "k", scheme = "Bearer"'),
            "credentials",
            "only for a key sent in a header",
        ),
        (('scheme = "Bearer"', 'in = "body", name = "key"'), None, 'needs method = "POST"'),
        (('scheme = "Bearer"', 'in = "cookie"'), "credentials.in", "'header'"),
        (
            ('read = { path = "/tasks/{task_id}" }', 'read = { path = "/t/{task_id}", headers = { A = "{task_id}" } }'),
            "read.headers",
            "without placeholders",
        ),
        (
            ('read = { path = "/tasks/{task_id}" }', 'read = { path = "/t/{task_id}", method = "PUT" }'),
            "read.method",
            "'GET'",
        ),
        (
            ("reply = {", 'then = { from = "r", path = "/r/{task_id}", outputs = [{ url = "u" }] }\nreply = {'),
            "then",
            "{value}",
        ),
        (
            ("reply = {", 'then = { path = "/r/{value}", outputs = [{ url = "u" }] }\nreply = {'),
            "then.from",
            "is required",
        ),
        (("[mine]", "[Mine]"), None, "provider id"),
    ],
)
def test_each_mistake_in_a_table_names_the_file_the_table_the_key_and_the_problem(
    tmp_path: Path, change: tuple[str, str], key: str | None, words: str
) -> None:
    old, new = change
    assert old in MINIMAL
    with pytest.raises(DeclaredSpecError) as refused:
        adapter_from(tmp_path, MINIMAL.replace(old, new, 1))
    error = refused.value
    assert str(tmp_path / "p.toml") in str(error) and "GENRESULT_PROVIDERS_FILE" in str(error)
    assert error.table in ("mine", "Mine")
    assert (error.key, words in error.problem) == (key, True), str(error)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[mine\nname = 1", "is not valid TOML"),
        ("", "declares no provider"),
        ('mine = "x"', "each provider is a table, [mine]"),
        (b"\xff\xfe[x]", "is not UTF-8"),
    ],
)
def test_a_file_that_is_not_a_set_of_tables_says_so(tmp_path: Path, text: str | bytes, words: str) -> None:
    path = tmp_path / "p.toml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(DeclaredSpecError, match=words.replace("[", r"\[").replace("]", r"\]")):
        adapters_from_env({"GENRESULT_PROVIDERS_FILE": str(path)}, Redactor())


def test_a_missing_file_says_it_cannot_be_read(tmp_path: Path) -> None:
    with pytest.raises(DeclaredSpecError, match=r"providers\.toml: cannot be read"):
        adapters_from_env({"GENRESULT_PROVIDERS_FILE": str(tmp_path / "providers.toml")}, Redactor())


@pytest.mark.parametrize("taken", ["tensorpix", "seedance"])
def test_a_declared_id_that_is_already_a_provider_is_refused(tmp_path: Path, taken: str) -> None:
    assert taken in ADAPTERS
    with pytest.raises(DeclaredSpecError, match=rf"table \[{taken}\]: the id '{taken}' is already a provider"):
        adapter_from(tmp_path, MINIMAL.replace("[mine]", f"[{taken}]"))


def test_a_bad_file_stops_the_start_as_a_settings_error_naming_file_table_and_key(tmp_path: Path) -> None:
    path = tmp_path / "providers.toml"
    path.write_text(MINIMAL.replace('status = "status"', 'status = "s", progress_scale = 7'))
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({"GENRESULT_PROVIDERS_FILE": str(path)})
    assert str(refused.value).startswith(f"GENRESULT_PROVIDERS_FILE {path}, table [mine], key reply.progress_scale: ")


def test_a_declared_base_url_setting_that_is_not_a_url_stops_the_start(declared_file: Path) -> None:
    with pytest.raises(SettingsError, match="ACME_BASE_URL="):
        Settings.from_env({"GENRESULT_PROVIDERS_FILE": str(declared_file), "ACME_BASE_URL": "acme.example"})


def test_the_shipped_declarations_are_valid_and_the_readme_example_is_too(declared_file: Path) -> None:
    for provider in ("seedance", "wan"):
        assert ADAPTERS[provider].declaration.spec().name  # type: ignore[attr-defined]
    assert adapters_from_env(user_env(declared_file), Redactor())["acme"].configured
