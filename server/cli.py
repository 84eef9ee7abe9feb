"""The `genresult-mcp` command (DESIGN.md §4).

    genresult-mcp [--sandbox]                         MCP server over stdio (what mcp.json runs)
    genresult-mcp serve --transport http [...]        MCP server over streamable HTTP at /mcp
    genresult-mcp get PROVIDER TASK_ID                one check; compact JSON on stdout
    genresult-mcp wait PROVIDER TASK_ID [--timeout S] [--download]
                                                      progress on stderr, JSON on stdout; exit 0/1/2/3
    genresult-mcp download PROVIDER TASK_ID [--dir D] [--index I]
                                                      save a succeeded job's files; exit 0/1/2/3
    genresult-mcp sandbox [--port N]                  the emulators on loopback, and the settings for them
    genresult-mcp demo                                a real MCP client against the server in sandbox mode
    genresult-mcp wait-many P:ID ... [--any]          several jobs at once; exit 0/1/2/3
    genresult-mcp list [--provider P] [--status S]    the jobs checked before (the registry)

In stdio mode stdout is the protocol: everything human goes to stderr.
"""

from __future__ import annotations

import argparse
import gc
import logging
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import anyio
import httpx

from server import __version__
from server.app import build_server, configure_logging, open_service
from server.settings import Settings, SettingsError
from server.stdio import serve_stdio
from tools.errors import GenResultError
from tools.redact import Redactor
from tools.result import GenerationResult
from tools.service import Stopping

logger = logging.getLogger("genresult")

# A kept-alive connection with no next request is closed after this long.
KEEP_ALIVE_S = 5
# How long a stopping HTTP server gives requests in flight to finish before it cuts them. Waits answer at once
# (`StoppingServer`): this bounds what else is in flight, such as a download.
SHUTDOWN_GRACE_S = 3

EXIT_SUCCEEDED, EXIT_FAILED, EXIT_TIMED_OUT, EXIT_ERROR = 0, 1, 2, 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="genresult-mcp",
        description="MCP server that checks on and collects results of asynchronous AI generation jobs.",
    )
    parser.add_argument("--version", action="version", version=f"genresult-mcp {__version__}")
    sandbox_flag = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a subcommand that is not given the flag leaves the top-level one alone, so
    # `genresult-mcp --sandbox get ...` and `genresult-mcp get ... --sandbox` mean the same.
    sandbox_flag.add_argument(
        "--sandbox",
        action="store_true",
        default=argparse.SUPPRESS,
        help="use the built-in provider emulators instead of the real APIs",
    )
    parser.add_argument("--sandbox", action="store_true", help=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command")

    serve = commands.add_parser("serve", parents=[sandbox_flag], help="run the MCP server (default: stdio)")
    serve.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    serve.add_argument("--host", default="127.0.0.1", help="HTTP: address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="HTTP: port (default 8000)")
    serve.add_argument(
        "--stateless", action="store_true", help="HTTP: no session state, for several replicas behind a balancer"
    )
    serve.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME:PORT",
        help="HTTP: a Host header value clients use (needed off loopback, with GENRESULT_HTTP_TOKEN)",
    )

    get = commands.add_parser("get", parents=[sandbox_flag], help="check a job once; JSON on stdout")
    get.add_argument("provider")
    get.add_argument("task_id")

    wait = commands.add_parser("wait", parents=[sandbox_flag], help="wait for a job; JSON on stdout")
    wait.add_argument("provider")
    wait.add_argument("task_id")
    wait.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="S",
        help="longest wait in seconds (default GENRESULT_DEFAULT_WAIT_S, 50)",
    )
    wait.add_argument("--interval", type=float, default=None, metavar="S", help="fixed seconds between checks")
    wait.add_argument("--download", action="store_true", help="then save the files of a job that succeeded")
    wait.add_argument("--dir", default=None, metavar="D", help="with --download: where (GENRESULT_DOWNLOAD_DIR)")

    download = commands.add_parser(
        "download", parents=[sandbox_flag], help="save a succeeded job's files on this disk; JSON on stdout"
    )
    download.add_argument("provider")
    download.add_argument("task_id")
    download.add_argument("--dir", default=None, metavar="D", help="where to save (default GENRESULT_DOWNLOAD_DIR)")
    download.add_argument("--index", type=int, default=None, metavar="I", help="only outputs[I]")

    many = commands.add_parser("wait-many", parents=[sandbox_flag], help="wait for several jobs; JSON on stdout")
    many.add_argument("jobs", nargs="+", metavar="PROVIDER:TASK_ID", help="a job, e.g. replicate:gm3qorzdhgbf...")
    many.add_argument("--any", action="store_true", help="return when the first job is done, not all")
    many.add_argument("--timeout", type=float, default=None, metavar="S", help="longest wait in seconds, for all")

    listing = commands.add_parser("list", help="the jobs checked before, most recently checked first")
    listing.add_argument("--provider", default=None)
    listing.add_argument("--status", default=None)
    listing.add_argument("--limit", type=int, default=20)

    sandbox = commands.add_parser("sandbox", help="run the provider emulators on loopback")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8765)

    commands.add_parser("demo", help="newcomer's first run: a real MCP client, one sandbox job per provider")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    redactor = Redactor()
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        sys.stderr.write(f"genresult-mcp: {exc}\n")
        return EXIT_ERROR
    redactor.add(settings.http_token)
    configure_logging(settings.log_level, redactor)
    command = args.command or "serve"
    try:
        if command == "serve":
            return _serve(args, settings, redactor)
        if command in ("get", "wait", "download"):
            if getattr(args, "dir", None):
                settings = replace(settings, download_dir=Path(args.dir).expanduser().absolute())
            return anyio.run(_check, args, settings, redactor)
        if command == "wait-many":
            return anyio.run(_wait_many, args, settings, redactor)
        if command == "list":
            return anyio.run(_list, settings, redactor, args)
        if command == "sandbox":
            return _run_sandbox(args.host, args.port, settings.sandbox_pace)
        if command == "demo":
            from server.demo import run_demo

            return anyio.run(run_demo, settings.sandbox_pace)
    except SettingsError as exc:
        sys.stderr.write(f"genresult-mcp: {exc}\n")
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    raise AssertionError(f"unhandled command {command}")


def _sandboxed(settings: Settings) -> tuple[Settings, httpx.AsyncBaseTransport]:
    """Settings and a transport that route every provider to the in-process emulators."""
    from sandbox import Sandbox

    sandbox = Sandbox(pace=settings.sandbox_pace)
    env = {**settings.provider_env, **sandbox.env()}
    return replace(settings, provider_env=env), httpx.ASGITransport(app=sandbox.app)


def _serve(args: argparse.Namespace, settings: Settings, redactor: Redactor) -> int:
    transport: httpx.AsyncBaseTransport | None = None
    if args.sandbox:
        settings, transport = _sandboxed(settings)
        logger.warning("sandbox mode: answering from the built-in emulators, not the real providers")
    stopping = Stopping()
    mcp = build_server(settings, redactor=redactor, transport=transport, stopping=stopping)
    if getattr(args, "transport", "stdio") == "stdio":
        _settle_for_serving()
        anyio.run(serve_stdio, mcp)
        return 0
    # Imported for HTTP only: uvicorn's HTTP/1.1 protocol and h11 under it are ~7 ms of imports stdio never uses.
    import uvicorn

    from server.connections import guarded_protocol
    from server.http import StoppingServer, http_app

    app = http_app(
        mcp, settings, host=args.host, port=args.port, stateless=args.stateless, allowed_hosts=args.allow_host
    )
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        # None keeps uvicorn on our handlers, so its lines go through the redacting and flood filters too.
        log_config=None,
        lifespan="on",
        http=guarded_protocol(settings.http_max_connections, settings.http_head_timeout_s),
        timeout_keep_alive=KEEP_ALIVE_S,
        timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
    )
    _settle_for_serving()
    sys.stderr.write(f"genresult-mcp: MCP over streamable HTTP at http://{args.host}:{args.port}/mcp\n")
    StoppingServer(config, stopping).run()
    return 0


def _settle_for_serving() -> None:
    """Garbage collection for a long-lived server holding many waits, set just before it starts serving.

    What start-up built (modules, classes, the SDK's and our pydantic schemas: ~90,000 objects) lives as long
    as the process, so it is left out of every collection from now on; and young objects are collected every
    10,000 allocations, not 700, so full collections, which walk every wait in flight, come far more rarely.
    With 1,000 waits the collector's defaults cost 1.2 s of CPU over a 12 s run (five full collections), these
    settings 0.4 s (`python -m bench`, concurrency).
    """
    gc.freeze()
    gc.set_threshold(10_000)


async def _check(args: argparse.Namespace, settings: Settings, redactor: Redactor) -> int:
    transport: httpx.AsyncBaseTransport | None = None
    if args.sandbox:
        settings, transport = _sandboxed(settings)

    async def report(progress: float, total: float | None, message: str) -> None:
        sys.stderr.write(f"{args.provider} {args.task_id}: {message}\n")

    async with open_service(settings, redactor, transport=transport) as service:
        try:
            if args.command == "get":
                result = await service.check(args.provider, args.task_id)
            elif args.command == "wait":
                timeout = settings.default_wait_s if args.timeout is None else args.timeout
                result = await service.wait(args.provider, args.task_id, timeout, args.interval, report)
                if args.download and result.status == "succeeded":
                    waited = result
                    result = await service.downloads.download(args.provider, args.task_id, None, report)
                    result = result.model_copy(
                        update={"elapsed_s": waited.elapsed_s, "polls": waited.polls, "timed_out": waited.timed_out}
                    )
            else:
                result = await service.downloads.download(args.provider, args.task_id, args.index, report)
        except GenResultError as exc:
            sys.stderr.write(f"genresult-mcp: {redactor(str(exc))}\n")
            return EXIT_ERROR
    sys.stdout.write(result.compact_json() + "\n")
    return _exit_code(result, waited_for=args.command != "get")


async def _wait_many(args: argparse.Namespace, settings: Settings, redactor: Redactor) -> int:
    """Exit 0 when every job succeeded, 1 when any failed or was canceled (or could not be checked), 2 when
    time ran out first, 3 on an error of the call itself."""
    jobs = []
    for job in args.jobs:
        provider, colon, task_id = job.partition(":")
        if not colon or not provider or not task_id:
            sys.stderr.write(
                f"genresult-mcp: a job is PROVIDER:TASK_ID, such as skillsvideo:gen_123 (got {len(job)} characters)\n"
            )
            return EXIT_ERROR
        jobs.append((provider, task_id))
    transport: httpx.AsyncBaseTransport | None = None
    if args.sandbox:
        settings, transport = _sandboxed(settings)

    async def report(progress: float, total: float | None, message: str) -> None:
        sys.stderr.write(f"{message}\n")

    timeout = settings.default_wait_s if args.timeout is None else args.timeout
    async with open_service(settings, redactor, transport=transport) as service:
        try:
            answer = await service.wait_many(jobs, "any" if args.any else "all", timeout, report)
        except GenResultError as exc:
            sys.stderr.write(f"genresult-mcp: {redactor(str(exc))}\n")
            return EXIT_ERROR
    sys.stdout.write(answer.compact_json() + "\n")
    results = answer.results
    if any(not isinstance(r, GenerationResult) or r.status in ("failed", "canceled") for r in results):
        return EXIT_FAILED
    if answer.timed_out:
        return EXIT_TIMED_OUT
    return (
        EXIT_SUCCEEDED
        if all(isinstance(r, GenerationResult) and r.status == "succeeded" for r in results)
        else EXIT_TIMED_OUT
    )


async def _list(settings: Settings, redactor: Redactor, args: argparse.Namespace) -> int:
    async with open_service(settings, redactor) as service:
        try:
            listed = await service.list_jobs(args.provider, args.status, args.limit)
        except GenResultError as exc:
            sys.stderr.write(f"genresult-mcp: {redactor(str(exc))}\n")
            return EXIT_ERROR
    sys.stdout.write(listed.compact_json() + "\n")
    return EXIT_SUCCEEDED


def _exit_code(result: GenerationResult, *, waited_for: bool = False) -> int:
    """0 succeeded, 1 failed or canceled; a job not done is 2 for a wait that ran out of time and for a
    download (nothing saved yet), 0 for a plain check."""
    if result.status == "succeeded":
        return EXIT_SUCCEEDED
    if result.done:
        return EXIT_FAILED
    return EXIT_TIMED_OUT if waited_for else EXIT_SUCCEEDED


def _run_sandbox(host: str, port: int, pace: float) -> int:
    import uvicorn

    from sandbox import Sandbox

    sandbox = Sandbox(pace=pace)
    root = f"http://{host}:{port}"
    lines = [f"export {name}={value}" for name, value in sorted(sandbox.env(root).items())]
    sys.stdout.write("# Provider emulators on loopback. Point genresult-mcp at them with:\n" + "\n".join(lines) + "\n")
    sys.stdout.flush()
    uvicorn.run(sandbox.app, host=host, port=port, log_level="warning")
    return 0
