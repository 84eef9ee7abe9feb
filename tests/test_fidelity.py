"""Results say what the provider's reply said and nothing more: a progress figure only where the reply
carries one (a progress or percent field, or a percent in its log text), never a 100 made up for a job
that is done."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator

import httpx
import pytest

from bench.compactness import raw_read
from sandbox import EMULATORS, Sandbox, Timeline
from server.app import open_service
from server.settings import Settings
from tools.clock import VirtualClock
from tools.providers import adapters_from_env
from tools.redact import Redactor

PHASE_S = 10.0
_PERCENT_IN_TEXT = re.compile(r"(\d+(?:\.\d+)?)\s*%")


def progress_figures(value: object, key: str = "") -> Iterator[float]:
    """Every figure a reply gives as progress: numbers under a key that names progress or a percent, and
    `N%` inside any text (a log line's progress bar)."""
    if isinstance(value, dict):
        for name, inner in value.items():
            yield from progress_figures(inner, str(name))
    elif isinstance(value, list):
        for inner in value:
            yield from progress_figures(inner, key)
    elif isinstance(value, bool):
        return
    elif isinstance(value, int | float) and ("progress" in key.lower() or "percent" in key.lower()):
        yield float(value)
    elif isinstance(value, str):
        yield from (float(n) for n in _PERCENT_IN_TEXT.findall(value))


def said(bodies: list[bytes], progress: float) -> bool:
    """Whether the reply carried this progress, as a percent or as a 0-1 fraction."""
    for body in bodies:
        try:
            data = json.loads(body)
        except ValueError:
            continue
        for figure in progress_figures(data):
            if math.isclose(figure, progress, abs_tol=0.5) or math.isclose(figure * 100, progress, abs_tol=0.5):
                return True
    return False


@pytest.mark.parametrize("provider", sorted(EMULATORS))
async def test_a_result_shows_progress_only_where_the_providers_reply_gave_a_figure(provider: str) -> None:
    clock = VirtualClock()
    sandbox = Sandbox(clock, auto_create=False)
    env = sandbox.env()
    adapter = adapters_from_env(env, Redactor())[provider]
    transport = httpx.ASGITransport(app=sandbox.app)
    seen = []
    async with (
        httpx.AsyncClient(transport=transport) as raw_client,
        open_service(Settings(provider_env=env), Redactor(), transport=transport, clock=clock) as service,
    ):
        for n, outcome in enumerate(sandbox[provider].outcomes, start=1):
            task_id = sandbox[provider].sandbox_id(n, outcome)
            job = sandbox[provider].add_job(task_id, Timeline(queued_s=PHASE_S, running_s=PHASE_S, outcome=outcome))
            for at in (0.5, 1.5, 2.5):
                clock.advance(at * PHASE_S - (clock.monotonic() - job.created_at))
                bodies = await raw_read(adapter, raw_client, adapter.validate_task_id(task_id))
                result = await service.check(provider, task_id)
                seen.append(result.status)
                if result.progress is not None:
                    assert said(bodies, result.progress), (result.status, result.progress, bodies)

    assert "succeeded" in seen
