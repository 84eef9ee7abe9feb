"""`python -m bench [--quick]`: every benchmark in one run, one table of ratios, each target marked.

The table goes to stdout (Markdown, so it can be pasted into BENCHMARKS.md as is), followed by the detail
tables and the machine it ran on; progress goes to stderr. Exit status 0 whatever the verdicts: these are
measurements, not tests.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from bench import coldstart, compactness, concurrency, downloads, hostile, overhead, pollsim, registry, toollist
from bench.report import Detail, Row, render_detail, render_rows


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}, Python {platform.python_version()}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs and jobs: a rough figure in about a minute")
    parser.add_argument(
        "--load",
        action="store_true",
        help="run a CPU-burning process beside the benchmarks, to see that the verdicts do not move with load",
    )
    args = parser.parse_args(argv)
    with burning() if args.load else contextlib.nullcontext():
        return run(quick=args.quick, loaded=args.load)


BURNER = """
import os, time
parent, end = os.getppid(), time.monotonic() + 3600
while time.monotonic() < end and os.getppid() == parent:
    for _ in range(100_000):
        pass
"""


@contextlib.contextmanager
def burning() -> Iterator[None]:
    """One process spinning on a core for as long as the benchmarks run, then stopped; it stops by itself after
    an hour, or as soon as this process is gone (killed, it runs no `finally`)."""
    burner = subprocess.Popen([sys.executable, "-c", BURNER])
    try:
        yield
    finally:
        burner.kill()
        burner.wait()


def run(*, quick: bool, loaded: bool) -> int:
    rows: list[Row] = []
    details: list[Detail] = []
    baselines: list[str] = []

    def step(name: str, run: Callable[[], Iterable[Row]]) -> None:
        sys.stderr.write(f"bench: {name}...\n")
        started = time.monotonic()
        rows.extend(run())
        sys.stderr.write(f"bench: {name} done in {time.monotonic() - started:.1f}s\n")

    step("cold start", lambda: coldstart.rows(runs=5 if quick else 21, baselines=baselines))
    step("call overhead", lambda: overhead.rows(calls=100 if quick else 500))

    jobs = 300 if quick else 3000

    def policies() -> Iterable[Row]:
        result = pollsim.run(jobs)
        details.append(pollsim.detail(result, jobs))
        return pollsim.rows(result)

    step("poll policy", policies)
    step(
        "concurrency", lambda: concurrency.rows(waits=1000, sessions=20, rounds=1 if quick else 3, baselines=baselines)
    )

    step("stalled connections and padded waits", lambda: hostile.rows(quick))

    def sizes() -> Iterable[Row]:
        pairs = compactness.measure()
        details.append(compactness.detail(pairs))
        return compactness.rows(pairs)

    step("compactness", sizes)
    step("tool list", toollist.rows)
    step("downloads", lambda: downloads.rows(rounds=3 if quick else 7))
    step("registry and multi-job wait", lambda: registry.rows(quick))

    print(render_rows(rows))
    for row in rows:
        if not row.holds and row.why:
            print(f"\n{row.benchmark}: {row.why}")
    for detail in details:
        print("\n" + render_detail(detail))
    command = "python -m bench" + (" --quick" if quick else "") + (" --load" if loaded else "")
    print(f"\nMachine: {machine()}; baselines: {', '.join(baselines)}. Command: {command}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
