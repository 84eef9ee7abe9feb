"""Child processes for the benchmarks: free ports, readiness, clean shutdown, and /proc readings."""

from __future__ import annotations

import atexit
import functools
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} within {timeout_s:g}s")


def child_env(extra: Mapping[str, str] = {}) -> dict[str, str]:
    """The environment for a server under test: ours, minus every provider's settings and ours, with a data
    folder of this run's own (so the servers' job registry is not the user's), plus `extra`."""
    from tools.providers import ADAPTERS

    provider_vars = {name for adapter in ADAPTERS.values() for name in adapter.env_names()}
    env = {k: v for k, v in os.environ.items() if k not in provider_vars and not k.startswith("GENRESULT_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    env["GENRESULT_LOG_LEVEL"] = "WARNING"
    env["XDG_DATA_HOME"] = _data_home()
    env.update(extra)
    return env


@functools.cache
def _data_home() -> str:
    folder = tempfile.mkdtemp(prefix="genresult-bench-data-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


@contextmanager
def serving(
    args: Sequence[str], port: int, env: Mapping[str, str], nofile: int | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A child that listens on `port`, stopped (and reaped) on the way out, whatever happened; with `nofile`,
    its soft open-file limit is that (at most the hard one), whatever this process's is."""
    proc = subprocess.Popen(
        [PYTHON, *args],
        cwd=REPO,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=None if nofile is None else _soft_nofile(nofile),
    )
    try:
        wait_for_port(port, proc)
        yield proc
    finally:
        stop(proc)


def raise_nofile(needed: int) -> None:
    """Lift this process's soft open-file limit to `needed` where it is lower; the hard limit is the ceiling."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise RuntimeError(f"this benchmark holds {needed} open files; the hard limit (ulimit -Hn) is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def _soft_nofile(wanted: int) -> Callable[[], None]:
    def limit() -> None:
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(
            resource.RLIMIT_NOFILE, (wanted if hard == resource.RLIM_INFINITY else min(wanted, hard), hard)
        )

    return limit


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def rss_bytes(pid: int, field: str = "VmRSS") -> int:
    """Resident memory now (`VmRSS`) or at its highest so far (`VmHWM`)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise LookupError(f"{field} not in /proc/{pid}/status")


def reset_peak_rss(pid: int) -> None:
    """Start `VmHWM` afresh from the resident memory now, so the next peak read is of what follows."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def open_files(pid: int) -> int:
    """File descriptors the process holds: its sockets among them."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used."""
    # The command name (field 2) may hold spaces; everything after its closing parenthesis is fixed-width.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS
