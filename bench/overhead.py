"""Call overhead: one `get_generation_result` over stdio, against what it cannot avoid.

Three kinds of call, made in turn (so drift hits all alike), against the emulators on a loopback port in a
process of their own, about a job that is already done (the biggest answer to parse):

- direct: the very request our adapter builds, sent with a kept-alive httpx client: the provider's cost;
- trivial: a tool call to a bare `MCPServer` whose tool answers "pong": what any MCP tool call costs;
- ours: `get_generation_result` through the SDK client over stdio.

What we add is ours minus direct; the target is that it stays within 1.3x of a trivial tool call, i.e. our
own work (validation, parsing, the result model) costs under a third of one MCP round trip.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Awaitable, Callable, Iterator

import anyio
import httpx
from mcp import Client, StdioServerParameters

from bench.procs import PYTHON, REPO, child_env, free_port, serving
from bench.report import Row
from bench.stats import Spread, median, percentile
from sandbox import Sandbox
from tools.providers import adapters_from_env
from tools.redact import Redactor

TARGET = 1.3
PROVIDER = "skillsvideo"
TASK_ID = "gen_bench_done"
WARMUP = 20


async def _timed(call: Callable[[], Awaitable[object]], into: list[float]) -> None:
    started = time.perf_counter()
    await call()
    into.append(time.perf_counter() - started)


async def _measure(root: str, calls: int) -> dict[str, list[float]]:
    provider_env = Sandbox().env(root)
    adapter = adapters_from_env(provider_env, Redactor())[PROVIDER]
    ours_params = StdioServerParameters(
        command=PYTHON, args=["-m", "server", "serve"], env=child_env(provider_env), cwd=str(REPO)
    )
    bare_params = StdioServerParameters(
        command=PYTHON, args=["-m", "bench.bare_server"], env=child_env(), cwd=str(REPO)
    )
    timings: dict[str, list[float]] = {"direct": [], "trivial": [], "ours": []}
    async with (
        httpx.AsyncClient(timeout=10) as http,
        Client(ours_params) as ours,
        Client(bare_params) as bare,
    ):

        async def direct() -> None:
            response = await http.send(
                adapter.build_request(http, TASK_ID), auth=adapter.auth() or httpx.USE_CLIENT_DEFAULT
            )
            response.raise_for_status()

        async def trivial() -> None:
            await bare.call_tool("ping", {})

        async def get() -> None:
            result = await ours.call_tool("get_generation_result", {"provider": PROVIDER, "task_id": TASK_ID})
            if result.is_error or (result.structured_content or {}).get("status") != "succeeded":
                raise RuntimeError(f"unexpected answer: {result}")

        kinds = {"direct": direct, "trivial": trivial, "ours": get}
        for _ in range(WARMUP):
            for call in kinds.values():
                await call()
        for _ in range(calls):
            for name, call in kinds.items():
                await _timed(call, timings[name])
    return timings


def measure(calls: int) -> dict[str, list[float]]:
    port = free_port()
    root = f"http://127.0.0.1:{port}"
    args = ["-m", "bench.loopback", "--port", str(port), "--done", f"{PROVIDER}/{TASK_ID}"]
    with serving(args, port, child_env()):
        return anyio.run(_measure, root, calls)


# Calls are grouped into rounds, each a ratio of its own medians, so one noisy stretch moves one round.
ROUND_CALLS = 25


def rows(calls: int) -> Iterator[Row]:
    t = measure(calls)
    direct, trivial, ours = (median(t[k]) for k in ("direct", "trivial", "ours"))
    added = ours - direct
    rounds = []
    for start in range(0, calls - ROUND_CALLS + 1, ROUND_CALLS):
        part = {k: median(v[start : start + ROUND_CALLS]) for k, v in t.items()}
        rounds.append((part["ours"] - part["direct"]) / part["trivial"])
    spread = Spread.of(rounds)
    ms = 1000
    yield Row.judged(
        "call overhead (get_generation_result, stdio): added / trivial call",
        f"{ours * ms:.2f} ms = direct httpx {direct * ms:.2f} ms + added {added * ms:.2f} ms; "
        f"trivial tool call {trivial * ms:.2f} ms; added {spread.text()} "
        f"(p95 ours {percentile(t['ours'], 95) * ms:.2f} ms)",
        TARGET,
        spread,
    )


if __name__ == "__main__":
    sys.exit("run `python -m bench`")
