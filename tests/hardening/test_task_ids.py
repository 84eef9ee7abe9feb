"""Task ids cannot steer requests.

Forty thousand generated ids, shared by the providers (arbitrary text, near misses of real ids, path tricks,
encodings, look-alike digits) go through the service to a transport that records every request. For each:
no exception but the documented tool errors; an id the provider could never have issued is
`invalid_task_id` and sends nothing; any other id travels as exactly one escaped path segment of the
documented path (or as the one documented query parameter, where the provider's API takes it there), on the
configured host, with no other query. The documented shapes below are the test's own, taken from DESIGN.md
and PROVIDERS.md, not from the adapters.
"""

from __future__ import annotations

import string
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client

from sandbox import EMULATORS
from server.app import build_server
from server.settings import Settings
from tests.providers.kit import kit
from tools.clock import VirtualClock
from tools.errors import GenResultError, InvalidTaskId
from tools.providers import ADAPTERS, adapters_from_env
from tools.redact import Redactor
from tools.service import GenerationService

PROVIDERS = sorted(ADAPTERS)

BASE_PATH = "/some/base"
# The ids generated in all, shared by the providers (each gets at least the floor), so the suite's time does not
# grow with every provider added.
IDS_IN_ALL = 40_000
BATCH = 100
# Whole batches: hypothesis draws one batch per example.
IDS_PER_PROVIDER = max(2_000, IDS_IN_ALL // len(PROVIDERS)) // BATCH * BATCH
# Samples of the same ids through the layers above, each shared the same way: what they add is the service's
# and the MCP client's own handling of an id, which a few hundred per provider show.
SERVICE_BATCHES = max(5, 10_000 // len(PROVIDERS) // BATCH)
MCP_BATCH = 20
MCP_BATCHES = max(5, 1_300 // len(PROVIDERS) // MCP_BATCH)


def provider_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for provider, cls in EMULATORS.items():
        env.update(dict.fromkeys(cls().credentials(), f"key-{provider}-0123456789"))
        env[ADAPTERS[provider].base_url_env] = f"https://{provider}.example.test{BASE_PATH}"
    return env


class Recorder:
    """A transport that notes every request and answers as if no such task existed."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.transport = httpx.MockTransport(self.answer)

    def answer(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(404, json={"detail": "Not found.", "message": "Not found.", "status": "error"})


def check_requests(provider: str, task_id: str, outcome: object, sent: list[httpx.Request]) -> None:
    """The property, for one id: the right outcome, and nothing sent off the documented paths."""
    documented = kit(provider)
    assert not isinstance(outcome, Exception) or isinstance(outcome, GenResultError), repr(outcome)
    if not documented.issued(task_id):
        assert isinstance(outcome, InvalidTaskId), (task_id, outcome)
        assert sent == [], (task_id, [str(r.url) for r in sent])
        return
    assert not isinstance(outcome, InvalidTaskId), (task_id, outcome)
    result_paths = {BASE_PATH + path for path in documented.paths(task_id)}
    side_paths = {BASE_PATH + path for path in documented.side_paths}
    paths = []
    for request in sent:
        assert (request.url.scheme, request.url.host) == ("https", f"{provider}.example.test"), str(request.url)
        raw_path, _, query = request.url.raw_path.decode("ascii").partition("?")
        wanted = documented.query(task_id) if documented.query is not None and raw_path in result_paths else ""
        assert raw_path in result_paths | side_paths and query == wanted, (task_id, raw_path, query)
        paths.append(raw_path)
    assert result_paths & set(paths), (task_id, paths)


# ---- the ids ----

TRICKS = [
    "/",
    "..",
    ".",
    "%2F",
    "%2f",
    "%2e%2e",
    "?",
    "#",
    "&",
    "=",
    "@",
    "\\",
    " ",
    "\t",
    "\n",
    "\r\n",
    "\x00",
    "%00",
    "%0d%0a",
    ";",
    "+",
    "//evil.example",
    "http://evil.example/",
    "../",
    "..%2F",
    "~",
    ":",
    "-",
    "_",
    "\u0661\u0662",
    "\uff11\uff12",
    "\u00b2",
    "\u2024",
    "\uff0f",
    "\u2215",
    "\u0130",
    "\u212a",
    "\ufeff",
]
DIGITS_LIKE = st.sampled_from(["0123456789", "\u0660\u0661\u0662\u0663", "\uff10\uff11\uff12", "\u00b2\u00b3"])


def plausible(provider: str) -> st.SearchStrategy[str]:
    """Ids shaped like the provider's real ones, valid or just over the edge."""
    if (shaped := kit(provider).plausible) is not None:
        return shaped
    safe = st.sampled_from(string.ascii_letters + string.digits + "._~:-")
    # Ids around the length limit, built by repetition: drawing 250 characters one by one is slow.
    long = st.builds(
        lambda head, size: (head * 260)[:size], st.text(alphabet=safe, min_size=1, max_size=4), st.integers(250, 260)
    )
    return st.one_of(st.text(alphabet=safe, min_size=1, max_size=24), long)


def spliced(base: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """A plausible id with a trick put in somewhere."""

    def put(task_id: str, trick: str, at: int) -> str:
        at = at % (len(task_id) + 1)
        return task_id[:at] + trick + task_id[at:]

    return st.builds(put, base, st.sampled_from(TRICKS), st.integers(0, 400))


def task_ids(provider: str) -> st.SearchStrategy[str]:
    return st.one_of(
        plausible(provider),
        spliced(plausible(provider)),
        st.text(max_size=40),
        st.text(st.characters(codec="utf-8"), max_size=20),
        st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=3),
        DIGITS_LIKE,
        st.sampled_from(TRICKS),
        st.lists(st.sampled_from(TRICKS), min_size=2, max_size=6).map("".join),
    )


# ---- the bulk, at the adapters: the part that turns an id into a request ----


@pytest.mark.parametrize("provider", PROVIDERS)
def test_thousands_of_generated_ids_never_steer_a_request_off_the_documented_path(provider: str) -> None:
    adapter = adapters_from_env(provider_env(), Redactor())[provider]
    client = httpx.AsyncClient(transport=Recorder().transport)
    seen: list[int] = []

    @settings(
        max_examples=IDS_PER_PROVIDER // BATCH,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(batch=st.lists(task_ids(provider), min_size=BATCH, max_size=BATCH))
    def run(batch: list[str]) -> None:
        for task_id in batch:
            try:
                travelling = adapter.validate_task_id(task_id)
            except GenResultError as exc:
                check_requests(provider, task_id, exc, [])
            else:
                check_requests(provider, task_id, None, [adapter.build_request(client, travelling)])
        seen.append(len(batch))

    run()
    anyio.run(client.aclose)
    assert sum(seen) >= IDS_PER_PROVIDER


# ---- a sample through the service, where "nothing is sent" can be seen ----


@pytest.mark.parametrize("provider", PROVIDERS)
def test_ids_the_service_refuses_send_nothing_and_the_rest_go_out_as_one_segment(provider: str) -> None:
    @settings(max_examples=SERVICE_BATCHES, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(batch=st.lists(task_ids(provider), min_size=BATCH, max_size=BATCH))
    def run(batch: list[str]) -> None:
        async def go() -> None:
            recorder = Recorder()
            async with httpx.AsyncClient(transport=recorder.transport) as client:
                adapters = adapters_from_env(provider_env(), Redactor())
                service = GenerationService(adapters, client, redactor=Redactor(), clock=VirtualClock())
                for task_id in batch:
                    recorder.requests.clear()
                    outcome: object
                    try:
                        outcome = await service.check(provider, task_id)
                    except GenResultError as exc:
                        outcome = exc
                    check_requests(provider, task_id, outcome, list(recorder.requests))

        anyio.run(go)

    run()


# ---- a sample through the MCP client ----


@pytest.mark.parametrize("provider", PROVIDERS)
def test_ids_through_the_mcp_client_are_refused_or_sent_as_one_segment(provider: str) -> None:
    @settings(max_examples=MCP_BATCHES, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(batch=st.lists(task_ids(provider), min_size=MCP_BATCH, max_size=MCP_BATCH))
    def run(batch: list[str]) -> None:
        async def go() -> None:
            recorder = Recorder()
            server = build_server(
                Settings(provider_env=provider_env()), redactor=Redactor(), transport=recorder.transport
            )
            async with Client(server) as client:
                for task_id in batch:
                    recorder.requests.clear()
                    reply = await client.call_tool("get_generation_result", {"provider": provider, "task_id": task_id})
                    text = reply.content[0].text if reply.content and reply.content[0].type == "text" else ""
                    assert reply.is_error, text
                    code = text.split(":")[0]
                    outcome: Any = InvalidTaskId(text) if code == "invalid_task_id" else GenResultError(text)
                    check_requests(provider, task_id, outcome, list(recorder.requests))

        anyio.run(go)

    run()
