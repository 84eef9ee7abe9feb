"""Hostile clients of the HTTP server (issue 15): connections that never finish a request, and padded waits.

    python -m bench.hostile [--quick]     just these rows

The server (`python -m server serve --transport http`, stateful, its defaults) and the emulators
(`python -m bench.loopback`) run in processes of their own, as in the concurrency benchmark.

Stalled connections. Two identical servers (twins) on the same emulators; in each round this process opens
1,000 connections to one of them that never finish a request (every other one sends nothing, the rest half
a request head), and a well-behaved SDK client, in a fresh session with each twin, then calls
`get_generation_result` on a finished sandbox job at the attacked twin and at the idle one in turn. The
twins swap roles every round. One ratio per round: the p95 latency of the attacked twin's calls over the
idle twin's, taken side by side so that a busier moment of a shared machine hits both alike (phases of
their own, one after the other, moved the ratio by 2x from round to round on a loaded machine).

The servers run with a soft open-file limit of 512, whatever the machine's, so the attack is larger than
the files a server may open, as in the issue (1,050 against 1,024): with no bound on connections the
attacked twin accepts stalled ones until it runs out and the client is locked out (measured so, with
`GENRESULT_HTTP_MAX_CONNECTIONS=100000`: no call of the attacked phase answered). Its bound
(`GENRESULT_HTTP_MAX_CONNECTIONS`, 256) closes the oldest stalled connection for each new one past it; the
calls start once it has done so for the whole burst, so they meet a table full of stalled connections, not
the burst itself. Every call must be answered, right.

Padded waits, two rows. Forty `wait_for_generation` calls at once in one 2025-era stateful session (where the
SDK runs requests in the session's task), on a fresh server for each kind: plain ones, the baseline of both
rows; the issue's attack, an unknown argument padded to 4 MiB, over the 64 KiB body cap (413 before the MCP
app reads the body); and the largest request the server accepts and holds for the whole wait: valid arguments
with a `_meta` padded to just under the cap (62 KiB). `_meta` is an open map the protocol lets a client fill,
while every argument has a length bound (a long task_id is `invalid_task_id` at once) and an unknown one is
refused by name before any wait. Each wait that starts is held 3 s on a job that runs 8 s and answers
`timed_out`. Measured: the server's peak resident memory during the burst (its `VmHWM`, reset just before)
over what it held idle just before, after a warm-up wait; the target, < 40 MB for the forty, is the issue's.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from bench.procs import (
    child_env,
    free_port,
    open_files,
    raise_nofile,
    reset_peak_rss,
    rss_bytes,
    serving,
)
from bench.report import Row, render_rows
from bench.stats import Spread, median, per_round, percentile
from sandbox import EMULATORS, Sandbox
from server.http import MAX_BODY_BYTES
from server.settings import DEFAULT_MAX_CONNECTIONS
from tools.mcp_tools import ERROR_META

PROVIDER = "skillsvideo"

STALLED = 1000
# Below the attack's size, as any limit is below some attack's: the 1,050 against 1,024, scaled down.
SERVER_NOFILE = 512
# Stalled connections, once bounded, cost a call nothing but one timer each in the server's loop; the p95
# of a ~5 ms loopback call moves by tens of percent from round to round on a shared machine. 2x leaves room
# for that and none for a server that makes real requests queue behind stalled ones or spends its loop on
# them (without the bound, no call to the attacked server is answered at all).
STALLED_TARGET = 2.0
# A request head cut off before its blank line: the server must wait for the rest, until its deadline.
HALF_HEAD = b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
SETTLE_LIMIT_S = 10.0
PHASE_LIMIT_S = 60.0

PADDED_WAITS = 40
PADDED_TARGET_MB = 40.0
OVER_CAP_PAD = 4 << 20
# Just under the server's body cap, leaving room for the request around the pad.
UNDER_CAP_PAD = MAX_BODY_BYTES - (2 << 10)
HELD_S = 3.0
PROTOCOL = "2025-11-25"
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def _ports(count: int, taken: tuple[int, ...] = ()) -> list[int]:
    """`count` free ports, none of them `taken` or the same as another."""
    chosen: list[int] = []
    while len(chosen) < count:
        port = free_port()
        if port not in chosen and port not in taken:
            chosen.append(port)
    return chosen


def _emulators(port: int) -> dict[str, str]:
    """The settings that point a server at the emulators on `port`."""
    return Sandbox().env(f"http://127.0.0.1:{port}")


def _serve(port: int) -> list[str]:
    return ["-m", "server", "serve", "--transport", "http", "--port", str(port)]


# ---- stalled connections ----


@dataclass
class Calls:
    """One server's calls in a round: each answered one's latency, and what went wrong with the others."""

    latencies: list[float] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)

    def p95(self) -> float:
        """Of the answered calls' latencies; infinite when a call went unanswered, as its latency was."""
        return float("inf") if self.wrong or not self.latencies else percentile(self.latencies, 95)


async def _paired(attacked: str, idle: str, task_id: str, calls: int) -> tuple[Calls, Calls]:
    """`calls` calls to each of two servers in a fresh SDK session each, in turn (which one goes first
    alternating), so a busier moment of the machine hits both alike."""
    got = (Calls(), Calls())
    try:
        with anyio.fail_after(PHASE_LIMIT_S):
            async with (
                httpx2.AsyncClient(timeout=httpx2.Timeout(30)) as http,
                Client(streamable_http_client(attacked, http_client=http)) as first,
                Client(streamable_http_client(idle, http_client=http)) as second,
            ):
                for number in range(calls):
                    for side in (0, 1) if number % 2 == 0 else (1, 0):
                        client = (first, second)[side]
                        started = time.perf_counter()
                        result = await client.call_tool(
                            "get_generation_result", {"provider": PROVIDER, "task_id": task_id}
                        )
                        elapsed = time.perf_counter() - started
                        answer = result.structured_content or {}
                        if result.is_error or answer.get("status") != "succeeded":
                            got[side].wrong.append(f"wanted succeeded, got {answer or result.content}")
                        else:
                            got[side].latencies.append(elapsed)
    # A client locked out is what this row exists to show: counted against the attacked server, not raised.
    except Exception as exc:
        got[0].wrong.append(f"the client gave up: {type(exc).__name__}: {exc}")
    return got


@contextmanager
def stalling(port: int, count: int) -> Iterator[list[socket.socket]]:
    """`count` connections to the server that never finish a request: every other one sends nothing, the
    rest half a request head. Closed on the way out."""
    held: list[socket.socket] = []
    try:
        for n in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            held.append(sock)
            if n % 2:
                # The server may have closed it already, to make room for the next.
                with suppress(OSError):
                    sock.sendall(HALF_HEAD)
            sock.setblocking(False)
        yield held
    finally:
        for sock in held:
            sock.close()


def closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except ConnectionError:
        return True


def settle(held: list[socket.socket], keeps: int) -> tuple[int, float]:
    """How many of `held` the server closed, once it has closed all but `keeps` (or after SETTLE_LIMIT_S),
    and how long that took."""
    started = time.monotonic()
    while True:
        closed = sum(closed_by_server(sock) for sock in held)
        waited = time.monotonic() - started
        if closed >= len(held) - keeps or waited > SETTLE_LIMIT_S:
            return closed, waited
        time.sleep(0.02)


def quiet(pid: int, files: int) -> None:
    """Until the server holds no more descriptors than `files` (bounded): the last round's are gone."""
    deadline = time.monotonic() + SETTLE_LIMIT_S
    while open_files(pid) > files and time.monotonic() < deadline:
        time.sleep(0.02)


@dataclass(frozen=True)
class StalledRounds:
    stalled: list[Calls]
    """Per round, the calls to the server under attack..."""
    idle: list[Calls]
    """...and those to its twin, in turn with them."""
    closed: list[int]
    """Per round: how many of the stalled connections the server closed to make room..."""
    absorbed_s: list[float]
    """...and how long after they were opened it had done so."""

    def spread(self) -> Spread:
        return Spread.of(per_round([c.p95() for c in self.stalled], [c.p95() for c in self.idle]))

    def wrong(self) -> list[str]:
        return [line for calls in (*self.stalled, *self.idle) for line in calls.wrong]

    def answered(self) -> int:
        return sum(len(calls.latencies) for calls in (*self.stalled, *self.idle))


def measure_stalled(rounds: int, calls: int) -> StalledRounds:
    # This process holds every stalled connection, beside the clients' and the children's pipes.
    raise_nofile(STALLED + 256)
    emu_port, *ports = _ports(3)
    task_id = EMULATORS[PROVIDER].finished_id(1)
    rounds_got = StalledRounds([], [], [], [])
    with ExitStack() as stack:
        stack.enter_context(serving(["-m", "bench.loopback", "--port", str(emu_port)], emu_port, child_env()))
        twins = [
            stack.enter_context(serving(_serve(port), port, child_env(_emulators(emu_port)), nofile=SERVER_NOFILE))
            for port in ports
        ]
        urls = [f"http://127.0.0.1:{port}/mcp" for port in ports]
        anyio.run(_paired, urls[0], urls[1], task_id, 5)
        idle_files = [open_files(twin.pid) for twin in twins]
        for number in range(rounds):
            # The twins swap roles every round, so neither's own quirks lean the ratio one way.
            target, other = number % 2, 1 - number % 2
            quiet(twins[target].pid, idle_files[target])
            with stalling(ports[target], STALLED) as sockets:
                closed, absorbed_s = settle(sockets, DEFAULT_MAX_CONNECTIONS)
                rounds_got.closed.append(closed)
                rounds_got.absorbed_s.append(absorbed_s)
                stalled, idle = anyio.run(_paired, urls[target], urls[other], task_id, calls)
            rounds_got.stalled.append(stalled)
            rounds_got.idle.append(idle)
    return rounds_got


def stalled_rows(rounds: int, calls: int) -> Iterator[Row]:
    measured = measure_stalled(rounds, calls)
    spread = measured.spread()
    wrong = measured.wrong()
    total = 2 * rounds * calls
    ms = 1000
    yield Row.judged(
        f"stalled connections: {STALLED} at once, p95 of a client's calls / idle twin server",
        f"p95 {median([c.p95() for c in measured.stalled]) * ms:.2f} ms vs "
        f"{median([c.p95() for c in measured.idle]) * ms:.2f} ms on an idle twin, in turn: {spread.text()}; "
        f"{measured.answered()}/{total} calls answered; of each {STALLED}, the server closed "
        f"{span(measured.closed)} to make room (within {median(measured.absorbed_s):.1f} s) and kept "
        f"{span([STALLED - n for n in measured.closed])} (bound {DEFAULT_MAX_CONNECTIONS}, open-file limit "
        f"{SERVER_NOFILE})",
        STALLED_TARGET,
        spread,
        also=not wrong and measured.answered() == total,
        condition="every call answered",
        why="; ".join(wrong[:3]),
    )


def span(counts: list[int]) -> str:
    low, high = min(counts), max(counts)
    return str(low) if low == high else f"{low}-{high}"


# ---- padded waits ----


@dataclass(frozen=True)
class Kind:
    name: str
    pad: int
    where: str
    """"argument" (an unknown one), "_meta", or "" for none."""
    expect: str
    """The outcome every one of the calls must have: "held" (a wait held to its timeout), a tool error's
    code, or "refused" (413, or the connection closed by the server before it read the body)."""


KINDS = (
    Kind("plain", 0, "", "held"),
    Kind("4 MiB unknown argument", OVER_CAP_PAD, "argument", "refused"),
    Kind(f"{UNDER_CAP_PAD >> 10} KiB _meta, accepted", UNDER_CAP_PAD, "_meta", "held"),
)


def wait_body(kind: Kind, request_id: int, task_id: str, timeout_s: float = HELD_S) -> bytes:
    """A tools/call of wait_for_generation with the id first, as clients write it, and its padding."""
    arguments: dict[str, Any] = {"provider": PROVIDER, "task_id": task_id, "timeout_s": timeout_s}
    meta: dict[str, Any] = {"progressToken": request_id}
    if kind.where == "argument":
        arguments["pad"] = "p" * kind.pad
    elif kind.where == "_meta":
        meta["bench.example/pad"] = "p" * kind.pad
    params = {"name": "wait_for_generation", "arguments": arguments, "_meta": meta}
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}).encode()


def outcome(status: int, stream: str, request_id: int) -> str:
    """What a tools/call POST got, from its HTTP status and its event stream: "held" for a wait that ran to
    its timeout, the code of a tool error, "refused" for 413, or what else came."""
    if status == 413:
        return "refused"
    if status != 200:
        return f"HTTP {status}"
    for line in stream.splitlines():
        if not line.startswith("data:"):
            continue
        message = json.loads(line.removeprefix("data:"))
        if message.get("id") != request_id:
            continue
        result = message.get("result") or {}
        if result.get("isError"):
            return str(((result.get("_meta") or {}).get(ERROR_META) or {}).get("code", "tool error"))
        got = result.get("structuredContent") or {}
        return "held" if got.get("timed_out") and not got.get("done") else f"answered {got.get('status')}"
    return "no answer"


async def _session(http: httpx.AsyncClient, url: str) -> dict[str, str]:
    """A 2025-era stateful session (the SDK runs its requests in the session's own task): its headers."""
    hello = {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}
    opened = await http.post(
        url, json={"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": hello}, headers=MCP_HEADERS
    )
    opened.raise_for_status()
    headers = {**MCP_HEADERS, "mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": PROTOCOL}
    (
        await http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
    ).raise_for_status()
    return headers


async def _post(http: httpx.AsyncClient, url: str, headers: dict[str, str], body: bytes, request_id: int) -> str:
    try:
        response = await http.post(url, content=body, headers=headers)
    # Past the cap the server answers 413 and closes while the client is still sending: refused unread.
    except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError):
        return "refused"
    return outcome(response.status_code, response.text, request_id)


@dataclass(frozen=True)
class Burst:
    kind: Kind
    rss_idle: int
    rss_peak: int
    outcomes: Counter[str]
    body_bytes: int
    """The size of one call's body."""

    @property
    def added_mb(self) -> float:
        return (self.rss_peak - self.rss_idle) / 1e6

    def per_body(self) -> float:
        """What one call added, in sizes of its body."""
        return (self.rss_peak - self.rss_idle) / PADDED_WAITS / self.body_bytes

    def right(self) -> bool:
        return self.outcomes == Counter({self.kind.expect: PADDED_WAITS})


async def _burst(url: str, pid: int, kind: Kind, first: int) -> Burst:
    job = EMULATORS[PROVIDER].sandbox_id
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    with anyio.fail_after(PHASE_LIMIT_S):
        async with httpx.AsyncClient(limits=limits, timeout=HELD_S + 30) as http:
            headers = await _session(http, url)
            # Warm-up: a wait of its own, so the wait's first-use costs are in the idle figure.
            await _post(http, url, headers, wait_body(KINDS[0], 1, job(first), timeout_s=0.5), 1)
            bodies = [(n, wait_body(kind, n, job(first + n))) for n in range(2, 2 + PADDED_WAITS)]
            rss_idle = rss_bytes(pid)
            reset_peak_rss(pid)
            got: Counter[str] = Counter()

            async def send(request_id: int, body: bytes) -> None:
                got[await _post(http, url, headers, body, request_id)] += 1

            async with anyio.create_task_group() as tg:
                for request_id, body in bodies:
                    tg.start_soon(send, request_id, body)
            rss_peak = rss_bytes(pid, "VmHWM")
    return Burst(kind, rss_idle, rss_peak, got, len(bodies[0][1]))


def measure_padded(rounds: int) -> list[Burst]:
    [emu_port] = _ports(1)
    bursts: list[Burst] = []
    with serving(["-m", "bench.loopback", "--port", str(emu_port)], emu_port, child_env()):
        for number in range(rounds):
            for index, kind in enumerate(KINDS):
                # A fresh server each time: memory one burst freed would otherwise be reused by the next.
                [mcp_port] = _ports(1, taken=(emu_port,))
                with serving(_serve(mcp_port), mcp_port, child_env(_emulators(emu_port))) as proc:
                    first = 1000 * (number * len(KINDS) + index + 1)
                    bursts.append(anyio.run(_burst, f"http://127.0.0.1:{mcp_port}/mcp", proc.pid, kind, first))
    return bursts


def padded_row(benchmark: str, bursts: list[Burst], names: tuple[str, ...], rounds: int) -> Row:
    """One row over the bursts of the kinds `names`, against the plain waits of the same run: the worst of
    the rounds for each."""

    def worst(kind: Kind) -> Burst:
        return max((b for b in bursts if b.kind == kind), key=lambda b: b.added_mb)

    judged = [worst(kind) for kind in KINDS if kind.name in names]
    plain = worst(KINDS[0])
    shown = (*names, plain.kind.name)
    wrong = [f"{b.kind.name}: {dict(b.outcomes)}" for b in bursts if not b.right() and b.kind.name in shown]
    over = [
        f"{b.kind.name} added {b.added_mb:.1f} MB, {b.per_body():.1f}x its {b.body_bytes / 1024:.0f} KiB body per call"
        for b in judged
        if b.added_mb >= PADDED_TARGET_MB
    ]

    def said(burst: Burst) -> str:
        return ", ".join(f"{n} {what}" for what, n in sorted(burst.outcomes.items()))

    return Row(
        benchmark,
        "; ".join(f"{b.kind.name}: {b.added_mb:.1f} MB ({said(b)})" for b in judged)
        + f"; baseline, {PADDED_WAITS} plain waits: {plain.added_mb:.1f} MB (worst of {rounds} rounds, "
        f"idle {median([b.rss_idle for b in bursts]) / 1e6:.0f} MB, waits held {HELD_S:g} s)",
        f"< {PADDED_TARGET_MB:.0f} MB, every call as expected",
        not wrong and not over,
        "; ".join(wrong[:3] + over),
    )


def padded_rows(rounds: int) -> Iterator[Row]:
    bursts = measure_padded(rounds)
    yield padded_row(
        f"padded waits: {PADDED_WAITS} at once, 4 MiB unknown argument each, added RSS",
        bursts,
        ("4 MiB unknown argument",),
        rounds,
    )
    yield padded_row(
        f"padded waits: {PADDED_WAITS} at once, {UNDER_CAP_PAD >> 10} KiB _meta each "
        f"(under the {MAX_BODY_BYTES >> 10} KiB cap), added RSS",
        bursts,
        (f"{UNDER_CAP_PAD >> 10} KiB _meta, accepted",),
        rounds,
    )


def rows(quick: bool) -> Iterator[Row]:
    yield from stalled_rows(rounds=3 if quick else 7, calls=50 if quick else 100)
    yield from padded_rows(rounds=1 if quick else 2)


def _main(argv: list[str]) -> int:
    measured = list(rows(quick="--quick" in argv))
    print(render_rows(measured))
    for row in measured:
        if not row.holds and row.why:
            print(f"\n{row.benchmark}: {row.why}")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
