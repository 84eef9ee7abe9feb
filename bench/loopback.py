"""The provider emulators on a loopback port, in a process of their own (so they cost the server nothing).

    python -m bench.loopback --port N [--done PROVIDER/TASK_ID ...]

Unknown ids are invented on first sight as in `genresult-mcp sandbox`; `--done` jobs are finished already,
for benchmarks that want the same answer every time.
"""

from __future__ import annotations

import argparse
import asyncio

import uvicorn

from sandbox import Sandbox, Timeline


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.loopback")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--done", action="append", default=[], metavar="PROVIDER/TASK_ID")
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.done))


async def serve(port: int, done: list[str]) -> None:
    # Jobs are stamped with the clock's time, which is the event loop's: add them inside it.
    sandbox = Sandbox()
    for spec in done:
        provider, task_id = spec.split("/", 1)
        sandbox[provider].add_job(task_id, Timeline(queued_s=0, running_s=0, outcome="succeeded"))
    config = uvicorn.Config(sandbox.app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    await uvicorn.Server(config).serve()


if __name__ == "__main__":
    main()
