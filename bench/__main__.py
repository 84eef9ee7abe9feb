"""`python -m bench [--quick]`: every benchmark in one run, one table of ratios, each target marked.

The table goes to stdout (Markdown, so it can be pasted into BENCHMARKS.md as is), followed by the detail
tables and the machine it ran on; progress goes to stderr. Exit status 0 whatever the verdicts: these are
measurements, not tests.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from bench import coldstart, compactness, concurrency, overhead, pollsim, registry
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
    args = parser.parse_args(argv)
    quick = args.quick
    rows: list[Row] = []
    details: list[Detail] = []

    def step(name: str, run: Callable[[], Iterable[Row]]) -> None:
        sys.stderr.write(f"bench: {name}...\n")
        started = time.monotonic()
        rows.extend(run())
        sys.stderr.write(f"bench: {name} done in {time.monotonic() - started:.1f}s\n")

    step("cold start", lambda: coldstart.rows(runs=5 if quick else 21))
    step("call overhead", lambda: overhead.rows(calls=100 if quick else 500))

    jobs = 300 if quick else 3000

    def policies() -> Iterable[Row]:
        result = pollsim.run(jobs)
        details.append(pollsim.detail(result, jobs))
        return pollsim.rows(result)

    step("poll policy", policies)
    step("concurrency", lambda: concurrency.rows(waits=1000, sessions=20))

    def sizes() -> Iterable[Row]:
        pairs = compactness.measure()
        details.append(compactness.detail(pairs))
        return compactness.rows(pairs)

    step("compactness", sizes)
    step("registry and multi-job wait", lambda: registry.rows(quick))

    print(render_rows(rows))
    for row in rows:
        if not row.holds and row.why:
            print(f"\n{row.benchmark}: {row.why}")
    for detail in details:
        print("\n" + render_detail(detail))
    print(f"\nMachine: {machine()}. Command: python -m bench{' --quick' if quick else ''}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
