"""Parsers never crash.

Every adapter gets arbitrary JSON, arbitrary bytes, and near misses of its provider's documented payloads
(fields dropped, wrong types, nulls, huge and non-finite numbers, 18-digit ids), under every HTTP code it
could meet, through what the service does with a reply (`read_reply`). The answer is always
a `JobState` that makes a valid, strict-JSON result, or the tool error the contract names for that code;
never any other exception.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.providers.kit import kit
from tools.errors import (
    AuthenticationFailed,
    GenResultError,
    ProviderProtocolError,
    ProviderRejected,
    ProviderUnavailable,
    TaskNotFound,
)
from tools.providers import ADAPTERS, adapters_from_env
from tools.providers.base import Adapter, Reply, Then
from tools.redact import Redactor
from tools.result import GenerationResult, JobState
from tools.service import read_reply

PROVIDERS = sorted(ADAPTERS)
# Bodies drawn in all, shared by the providers (each gets at least the floor), so the suite's time does not grow
# with every provider added.
EXAMPLES_IN_ALL = 4_000
EXAMPLES_PER_PROVIDER = max(250, EXAMPLES_IN_ALL // len(PROVIDERS))

# The documented payloads of PROVIDERS.md, the seeds the near misses grow from.

CODES = [200, 200, 200, 201, 202, 204, 301, 302, 307, 400, 401, 402, 403, 404, 409, 410, 422, 429, 500, 502, 503, 504]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.integers(10**17, 10**18 - 1),  # 18-digit ids, past what a float or a JS number holds exactly
    st.sampled_from([10**400, -(10**400), 0, -1, 2**63, 2**64]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e308, -1e308, 5e-324, -0.0]),
    st.text(max_size=20),
    st.sampled_from(["", "NaN", "Infinity", "-1", "1e400", "1e-400", "null", "COMPLETED", "success", "FAILED"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=12,
)


def places(doc: Any) -> Iterator[tuple[Any, Any]]:
    """Every (container, key) in a JSON document, at any depth."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield doc, key
            yield from places(value)
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            yield doc, index
            yield from places(value)


@st.composite
def near_miss(draw: st.DrawFn, seed: Any) -> Any:
    doc = copy.deepcopy(seed)
    for _ in range(draw(st.integers(1, 4))):
        spots = list(places(doc))
        if not spots:
            break
        container, key = draw(st.sampled_from(spots))
        if isinstance(container, dict) and draw(st.booleans()):
            del container[key]
        else:
            container[key] = draw(json_values)
    return doc


def as_bytes(doc: Any) -> bytes:
    # NaN and Infinity are not JSON, but Python's own parser takes them, and so would a sloppy provider's.
    return json.dumps(doc, allow_nan=True).encode()


def bodies(seeds: Sequence[Any]) -> st.SearchStrategy[bytes]:
    documented = st.sampled_from(seeds)
    return st.one_of(
        documented.flatmap(near_miss).map(as_bytes),
        documented.flatmap(near_miss).map(as_bytes),
        json_values.map(as_bytes),
        st.builds(lambda body, cut: body[:cut], documented.map(as_bytes), st.integers(0, 400)),
        st.binary(max_size=64),
        st.sampled_from([b"", b" ", b"null", b"<!DOCTYPE html><html></html>", b"\xef\xbb\xbf{}", b"\xff\xfe{"]),
    )


def nested(depth: int) -> list[bytes]:
    return [b"[" * depth + b"]" * depth, b'{"a":' * depth + b"1" + b"}" * depth]


header_text = st.one_of(
    st.text(st.characters(codec="latin-1"), max_size=30),
    st.sampled_from(
        ["30", "0", "-5", "1e9", "1e400", "99999999999999999999", "9" * 400, "\u00b2", "Wed, 21 Oct 2015 07:28:00 GMT"]
    ),
)
headers = st.dictionaries(st.sampled_from(["retry-after", "date", "content-type", "location"]), header_text, max_size=3)

# The tool errors the contract allows for each kind of HTTP answer.
ALLOWED: list[tuple[range, tuple[type[GenResultError], ...]]] = [
    (range(200, 300), (ProviderRejected,)),
    (range(300, 400), (ProviderProtocolError,)),
    (range(401, 402), (AuthenticationFailed,)),
    (range(404, 405), (TaskNotFound,)),
    (range(400, 429), (ProviderRejected,)),
    (range(429, 430), (ProviderUnavailable,)),
    (range(500, 600), (ProviderUnavailable,)),
]


def allowed_errors(code: int) -> tuple[type[GenResultError], ...]:
    return next(errors for codes, errors in ALLOWED if code in codes)


def read(adapter: Adapter, reply: Reply) -> JobState | Then | GenResultError:
    """What the service makes of a first reply, from the bytes on."""
    try:
        return read_reply(adapter, reply, adapter.redact)
    except GenResultError as exc:
        return exc


def check_outcome(
    provider: str, outcome: JobState | Then | GenResultError, code: int, *, model_answer: bool = False
) -> None:
    """`model_answer`: the reply is a model's own answer relayed by the API (fal's result call), whose HTTP
    code says how the model did, not what the API thinks of the request."""
    if isinstance(outcome, Then):
        # The read goes on; what the next reply makes of it is fuzzed on its own.
        assert 200 <= code < 300, (code, outcome)
        return
    if isinstance(outcome, GenResultError):
        codes, also = kit(provider).body_decides or (range(0), ())
        allowed = (ProviderRejected, ProviderUnavailable) if model_answer else allowed_errors(code)
        assert isinstance(outcome, allowed + (also if code in codes else ())), (code, outcome)
        assert outcome.message
        return
    # A model's own answer may end the job under any code; elsewhere only an error code in the body can.
    ended_by_code = model_answer or (kit(provider).failed_by_code and code >= 400 and outcome.status == "failed")
    assert 200 <= code < 300 or ended_by_code, (code, outcome)
    result = GenerationResult.from_state(provider, "t-1", outcome, datetime(2026, 11, 22, tzinfo=UTC))
    # The answer is strict JSON: NaN or Infinity would break clients that parse it to the letter.
    json.loads(result.compact_json(), parse_constant=_refuse)
    json.dumps(result.structured(), allow_nan=False)
    if outcome.progress is not None:
        assert 0 <= outcome.progress <= 100, outcome.progress
    if outcome.eta_s is not None:
        assert math.isfinite(outcome.eta_s) and outcome.eta_s >= 0, outcome.eta_s


def _refuse(constant: str) -> None:
    raise AssertionError(f"{constant} in the result's JSON")


def adapter_for(provider: str) -> Adapter:
    env = dict.fromkeys(ADAPTERS[provider].credential_envs, f"key-{provider}-0123456789")
    return adapters_from_env(env, Redactor())[provider]


def read_with(step: Then, adapter: Adapter, reply: Reply) -> JobState | Then | GenResultError:
    """What the service makes of a later reply of a read, from the bytes on."""
    try:
        return read_reply(adapter, reply, adapter.redact, step.parse, own_errors=step.own_errors)
    except GenResultError as exc:
        return exc


def follow_ups(provider: str) -> list[tuple[Then, Sequence[Any]]]:
    """The later requests of the provider's reads: what each documented lead-in hands on, and its seeds."""
    adapter = adapter_for(provider)
    # The first reply of a read of the provider's example id, since what a reply leads to may depend on the id.
    first = adapter.parser_for(adapter.validate_task_id(adapter.example_task_id))
    found = []
    for lead, seeds in kit(provider).follow_ups:
        step = read_reply(adapter, Reply(200, as_bytes(lead)), adapter.redact, first)
        assert isinstance(step, Then), (lead, step)
        found.append((step, seeds))
    return found


@pytest.mark.parametrize("provider", PROVIDERS)
def test_any_body_under_any_status_is_a_state_or_the_documented_error(provider: str) -> None:
    adapter = adapter_for(provider)

    @settings(max_examples=EXAMPLES_PER_PROVIDER, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(body=bodies(kit(provider).seeds), code=st.sampled_from(CODES), extra=headers)
    def run(body: bytes, code: int, extra: dict[str, str]) -> None:
        check_outcome(provider, read(adapter, Reply(code, body, extra)), code)

    run()


def fuzz_later_reply(provider: str, adapter: Adapter, step: Then, seeds: Sequence[Any]) -> None:
    """One later request's replies, fuzzed (its own function: hypothesis refuses a test with defaults)."""

    @settings(
        max_examples=EXAMPLES_PER_PROVIDER // 2, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(body=bodies(seeds), code=st.sampled_from(CODES), extra=headers)
    def run(body: bytes, code: int, extra: dict[str, str]) -> None:
        outcome = read_with(step, adapter, Reply(code, body, extra))
        check_outcome(provider, outcome, code, model_answer=step.own_errors)

    run()


@pytest.mark.parametrize("provider", [p for p in PROVIDERS if kit(p).follow_ups])
def test_any_body_under_any_status_at_a_later_request_of_a_read_is_a_state_or_the_documented_error(
    provider: str,
) -> None:
    adapter = adapter_for(provider)
    for step, seeds in follow_ups(provider):
        fuzz_later_reply(provider, adapter, step, seeds)
        readable = [read_with(step, adapter, Reply(200, as_bytes(seed))) for seed in seeds]
        assert any(isinstance(outcome, JobState) for outcome in readable), readable


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_documented_payloads_still_read_as_states(provider: str) -> None:
    adapter = adapter_for(provider)
    readable = [read(adapter, Reply(200, as_bytes(seed))) for seed in kit(provider).seeds]
    assert any(isinstance(outcome, JobState | Then) for outcome in readable), readable


@pytest.mark.parametrize("provider", PROVIDERS)
def test_json_nested_deeper_than_the_parser_goes_is_a_protocol_error_not_a_crash(provider: str) -> None:
    # A few kilobytes of brackets: json.loads gives up with RecursionError, which is not a ValueError.
    adapter = adapter_for(provider)
    for body in [*nested(10), *nested(5_000), *nested(100_000)]:
        for code in CODES:
            check_outcome(provider, read(adapter, Reply(code, body)), code)


HOSTILE: list[Any] = [
    None, True, "", "x", [], {}, 0, -1, 10**18 + 7, 2**63, 10**400, -(10**400),
    1e308, -1e308, 5e-324, math.nan, math.inf, -math.inf, "NaN", "1e400", "-5", ["x"], {"x": 1},
]  # fmt: skip


def variants(seed: Any) -> Iterator[Any]:
    """The seed with each field in turn dropped, or replaced by each hostile value."""
    for index in range(len(list(places(seed)))):
        for value in [_DROP, *HOSTILE]:
            doc = copy.deepcopy(seed)
            container, key = list(places(doc))[index]
            if value is _DROP:
                if isinstance(container, dict):
                    del container[key]
                    yield doc
            else:
                container[key] = value
                yield doc


_DROP = object()


@pytest.mark.parametrize("provider", PROVIDERS)
def test_every_field_of_every_documented_payload_may_be_missing_or_hostile(provider: str) -> None:
    adapter = adapter_for(provider)
    for seed in kit(provider).seeds:
        for doc in variants(seed):
            for code in (200, 202, 400):
                check_outcome(provider, read(adapter, Reply(code, as_bytes(doc))), code)
