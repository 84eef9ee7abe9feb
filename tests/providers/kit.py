"""What the shared suites (fuzz, fault matrix, task ids, secrets, load) need to know of one provider.

Each provider's test module, `tests/providers/test_{id}.py`, exports one `ProviderKit` as `KIT`; `kit(id)`
finds it by the registry id. So a new provider is one adapter, one emulator, one test module and one
registry line: the shared suites pick it up from there and name no provider themselves.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import quote

from hypothesis import strategies as st

from tools.errors import GenResultError

# Letters, digits and the separators DESIGN.md allows in an id of no stricter form.
SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~:-]{0,255}")


class Expected(NamedTuple):
    """What `get_generation_result` must give: a tool error `code`, or (None) a result with `status`; a
    `transient` answer must not end a wait."""

    code: str | None
    status: str | None = None
    transient: bool = False


def one_segment(*templates: str, travels_as: Callable[[str], str] = str) -> Callable[[str], set[str]]:
    """The paths of a read whose id travels as one escaped segment in each of `templates` (`{}` for it)."""

    def paths(task_id: str) -> set[str]:
        segment = quote(travels_as(task_id), safe="")
        return {template.format(segment) for template in templates}

    return paths


def safe_id(task_id: str) -> bool:
    return SAFE_ID.fullmatch(task_id) is not None


@dataclass(frozen=True)
class ProviderKit:
    """One provider, as the shared suites see it. Paths are under the base URL, as sent (escaped)."""

    seeds: Sequence[Any]
    """The documented payloads of the first reply of a read (PROVIDERS*.md): the fuzz suite grows near
    misses from them."""
    issued: Callable[[str], bool]
    """Could the provider have issued this id? Anything else must be `invalid_task_id`, with nothing sent."""
    paths: Callable[[str], set[str]]
    """The raw paths a read of an issued id may request (each part of the id one escaped segment)."""
    finished_with_key: Callable[[str], tuple[str, list[Any]]]
    """A task id and the bodies, in request order, of a succeeded read whose every URL carries `key`."""
    plausible: st.SearchStrategy[str] | None = None
    """Ids shaped like the provider's real ones, valid or just over the edge (None: letters and digits)."""
    query: Callable[[str], str] | None = None
    """Where the id travels in a documented query parameter: the raw query the read's request of `paths` carries
    for this id (None: no query at all)."""
    side_paths: frozenset[str] = frozenset()
    """Requests the provider's own auth makes on the side (a login), never carrying the id."""
    follow_ups: Sequence[tuple[Any, Sequence[Any]]] = ()
    """For reads of more than one request: a first reply (to a read of the adapter's `example_task_id`) that
    leads on, and seeds of the next reply."""
    body_decides: tuple[range, tuple[type[GenResultError], ...]] | None = None
    """HTTP codes under which the body decides the error, and the errors it may then give."""
    failed_by_code: bool = False
    """Whether an answer with an HTTP error code can still be a failed job (an error code in the body)."""
    fault_overrides: Mapping[str, Expected] = field(default_factory=dict)
    """Fault matrix cases (by name) this provider answers otherwise than the rest, and how."""
    finished_read_requests: int = 1
    """How many requests a read of a finished job takes (fal: the status, then the result)."""
    reports_cost: bool = False
    """Whether a succeeded job's answer says what it cost (so the sandbox's must too)."""


def kit(provider_id: str) -> ProviderKit:
    module = importlib.import_module(f"tests.providers.test_{provider_id}")
    found: ProviderKit = module.KIT
    return found
