"""`download_generation_outputs`: a succeeded job's files streamed onto the server's disk (DESIGN.md §2).

    {GENRESULT_DOWNLOAD_DIR}/{provider}/{task folder}/{file name}   the file (folders owner-only)
                                                      .{file name}.sha256  its size and checksum, beside it

Each safety rule lives in one place:
- `check_url`: https only; plain http only to the provider's base URL origin (how the sandbox serves files).
- `GuardedBackend` (`tools.connect_guard`): at connect time, every host but the base URL's must resolve to a
  public address, and the socket must be connected to one (not loopback, private, link-local, multicast or
  reserved).
- `Downloader._fetch`: redirects followed by hand, at most `MAX_REDIRECTS`, each hop checked again; the
  adapter's download headers go only to the base URL's origin, and never on after a redirect.
- `Downloader._write`: the size cap on Content-Length and on the bytes received; a temporary name in the same
  folder, renamed only once whole, removed after any failure or cancellation.
- `safe_name`: names that cannot leave their folder, on any file system.

A file saved whole (its size and checksum match the record beside it) is not fetched again. Where a URL has
expired (403, 404, 410), the job is checked once more and a fresh URL tried once: providers that sign their
URLs afresh at every read hand one out.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import mimetypes
import os
import re
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

import anyio
import httpx

from tools.errors import DownloadFailed, InvalidArgument
from tools.polling import ProgressReporter
from tools.providers.base import Adapter
from tools.result import GenerationResult, Output

if TYPE_CHECKING:
    from tools.service import GenerationService

logger = logging.getLogger(__name__)

MIB = 1 << 20
DEFAULT_DOWNLOAD_DIR = "~/Downloads/genresult-mcp"
DEFAULT_MAX_DOWNLOAD_MB = 2048.0
MAX_REDIRECTS = 5
MAX_NAME_CHARS = 120
# What storage answers for a URL it no longer serves: S3 and GCS 403 once a signature has expired, Replicate
# 404 once an output is deleted, some CDNs 410.
EXPIRED_STATUSES = frozenset({403, 404, 410})
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# One progress notification per this many bytes, and one at the end of each file: a 2 GB file would
# otherwise send tens of thousands.
PROGRESS_STEP_BYTES = 4 * MIB
# What is received is hashed and written this much at a time, in a worker thread (both let go of the GIL):
# per 64 KiB chunk on the event loop, the writes and the checksum set the pace of many downloads at once.
# At most one batch per download is held in memory.
WRITE_BATCH_BYTES = MIB

Origin = tuple[str, str, int]
"""scheme, host, port."""
OpenClient = Callable[[Origin], httpx.AsyncClient]
"""An HTTP client for one call's downloads, given the provider's base URL origin."""
SavedHook = Callable[[GenerationResult], Awaitable[None]]


def origin_of(url: httpx.URL) -> Origin:
    return url.scheme, url.host.lower(), url.port or (443 if url.scheme == "https" else 80)


def check_url(url: httpx.URL, base: Origin, base_url_env: str) -> None:
    """https anywhere; plain http only to the base URL's own origin; nothing else."""
    if not url.host:
        raise DownloadFailed(f"The output URL has no host ({url.scheme}:...), so it cannot be downloaded.")
    if url.scheme == "https" or (url.scheme == "http" and origin_of(url) == base):
        return
    raise DownloadFailed(
        f"The output URL at {url.host} is {url.scheme}, not https, so it was not downloaded: plain http is "
        f"fetched only from the host of {base_url_env}. Open the URL yourself if you trust it."
    )


@dataclass(frozen=True)
class DownloadConfig:
    """Where files go, how large they may be, and how they are fetched."""

    folder: Path = field(default_factory=lambda: Path(DEFAULT_DOWNLOAD_DIR).expanduser())
    max_bytes: int = int(DEFAULT_MAX_DOWNLOAD_MB * MIB)
    open_client: OpenClient | None = None
    """None: a client of its own per call, through `guarded_transport`."""
    read_timeout_s: float = 20.0
    """The longest pause in a transfer (between two reads), not a limit on the whole file."""
    write: Callable[[int, memoryview], int] = os.write
    """Writes to the open file, as `os.write` (tests hand in a full disk)."""
    on_saved: SavedHook | None = None
    """Hears every finished download's result: where the job registry records the saved files."""


class _Expired(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


@dataclass
class _Progress:
    report: ProgressReporter | None
    done: int = 0
    total: int = 0
    known: bool = True
    last: float = -math.inf

    def expect(self, length: int | None) -> None:
        if length is None:
            self.known = False
        else:
            self.total += length

    async def advance(self, count: int, name: str, *, final: bool = False) -> None:
        self.done += count
        if self.report is None or (not final and self.done - self.last < PROGRESS_STEP_BYTES):
            return
        self.last = self.done
        total = max(self.total, self.done) if self.known else None
        of = f" of {_amount(total)}" if total is not None else ""
        await self.report(self.done, total, f"{name}: {_amount(self.done)}{of}")


class Downloader:
    """The downloads of one service: its checks, its adapters, and the settings in `config`."""

    def __init__(self, service: GenerationService, config: DownloadConfig) -> None:
        self.service = service
        self.config = config

    async def download(
        self, provider: str, task_id: str, index: int | None = None, report: ProgressReporter | None = None
    ) -> GenerationResult:
        """The job's result with `path`, `sha256` and `size_bytes` on every output saved (all, or `index`)."""
        if index is not None and index < 0:
            raise InvalidArgument("index must be 0 or more (the position in outputs), or null for every output.")
        result = await self.service.check(provider, task_id)
        if result.status != "succeeded":
            said = "it has not finished yet: wait for it first" if not result.done else f"it is {result.status}"
            return result.model_copy(update={"note": f"Nothing was downloaded: {said}."})
        if index is not None and index >= len(result.outputs):
            raise InvalidArgument(
                f"index {index} is past the job's outputs (it has {len(result.outputs)}); use 0 to "
                f"{len(result.outputs) - 1}, or null for every output."
            )
        adapter = self.service.adapter(provider)
        picked = list(range(len(result.outputs))) if index is None else [index]
        folder = self._folder(adapter.id, task_id)
        names = file_names(result.outputs)
        outputs = list(result.outputs)
        progress = _Progress(report)
        fetched = 0
        expired: dict[int, int] = {}
        notes: list[str] = []
        async with self._client(adapter) as client:
            for i in picked:
                try:
                    outputs[i], was_fetched = await self._save(client, adapter, folder / names[i], outputs[i], progress)
                except _Expired as exc:
                    expired[i] = exc.status
                else:
                    fetched += was_fetched
            if expired:
                result, retried = await self._again(client, adapter, result, expired, folder, names, progress)
                # Outputs not picked, or not saved yet, carry the fresh URLs now.
                outputs = [retried.get(i, old if old.path else result.outputs[i]) for i, old in enumerate(outputs)]
                fetched += len(retried)
                codes = ", ".join(f"outputs[{i}] HTTP {status}" for i, status in expired.items())
                notes.append(
                    f"A URL had expired ({codes}): the job was checked again and the file saved from its fresh URL."
                )
        kept = len(picked) - fetched
        saved = f"Saved {len(picked)} file(s) under {folder}"
        if not picked:
            saved = "Nothing was downloaded: the job lists no outputs that can be fetched"
        notes.insert(0, f"{saved}; {kept} already saved whole, not fetched again." if kept else f"{saved}.")
        # What the check itself had to say (outputs left out, files removed) comes first.
        done = result.model_copy(update={"outputs": outputs, "note": " ".join(filter(None, [result.note, *notes]))})
        if self.config.on_saved is not None:
            await self.config.on_saved(done)
        return done

    async def _again(
        self,
        client: httpx.AsyncClient,
        adapter: Adapter,
        first: GenerationResult,
        expired: dict[int, int],
        folder: Path,
        names: list[str],
        progress: _Progress,
    ) -> tuple[GenerationResult, dict[int, Output]]:
        """One more check of the job, and one more try of each expired output at the URL it now gives."""
        fresh = await self.service.check(first.provider, first.task_id)
        if fresh.status != "succeeded" or len(fresh.outputs) != len(first.outputs):
            raise DownloadFailed(
                f"The output URL(s) had expired, and the job now reads {fresh.status} with {len(fresh.outputs)} "
                "output(s), so nothing fresh could be fetched. Check the job with get_generation_result."
            )
        saved: dict[int, Output] = {}
        for i, status in expired.items():
            output = fresh.outputs[i]
            if output.url == first.outputs[i].url:
                raise DownloadFailed(
                    f"outputs[{i}] answers HTTP {status} and the provider hands out the same URL again: it no "
                    "longer serves the file (expired or deleted). Generate it again."
                )
            try:
                saved[i], _ = await self._save(client, adapter, folder / names[i], output, progress)
            except _Expired as exc:
                raise DownloadFailed(
                    f"outputs[{i}] answered HTTP {exc.status} at its fresh URL too: the provider no longer serves "
                    "it. Generate it again."
                ) from None
        return fresh, saved

    @asynccontextmanager
    async def _client(self, adapter: Adapter) -> AsyncIterator[httpx.AsyncClient]:
        base = origin_of(httpx.URL(adapter.base_url))
        if self.config.open_client is not None:
            client = self.config.open_client(base)
        else:
            # Imported at the first download: the guard is built on httpcore, ~11 ms of imports at every start.
            from tools.connect_guard import guarded_transport

            client = httpx.AsyncClient(transport=guarded_transport((base[1], base[2])), trust_env=False)
        client.timeout = httpx.Timeout(self.config.read_timeout_s)
        async with client:
            yield client

    def _folder(self, provider_id: str, task_id: str) -> Path:
        root = self.config.folder.expanduser().absolute()
        folder = root / (safe_name(provider_id) or "provider") / (safe_name(task_id) or "task")
        try:
            for level in reversed([folder, *folder.parents]):
                if level.is_dir():
                    continue
                try:
                    level.mkdir(mode=0o700)
                except FileExistsError:
                    continue
                # The umask may have taken bits away; the owner's must all be there, and nobody else's.
                level.chmod(0o700)
            if not folder.is_dir():
                raise NotADirectoryError(20, "not a folder")
        except OSError as exc:
            raise DownloadFailed(
                f"Could not create the folder {folder} ({exc.strerror}). Set GENRESULT_DOWNLOAD_DIR to a folder "
                "this server may write to."
            ) from None
        return folder

    async def _save(
        self, client: httpx.AsyncClient, adapter: Adapter, dest: Path, output: Output, progress: _Progress
    ) -> tuple[Output, bool]:
        """The output saved at `dest` (or found there whole already), and whether it was fetched."""
        found = await anyio.to_thread.run_sync(_saved_whole, dest)
        fetched = found is None
        sha256, size = await self._fetch(client, adapter, output.url, dest, progress) if found is None else found
        return output.model_copy(update={"path": str(dest), "sha256": sha256, "size_bytes": size}), fetched

    async def _fetch(
        self, client: httpx.AsyncClient, adapter: Adapter, url: str, dest: Path, progress: _Progress
    ) -> tuple[str, int]:
        base = origin_of(httpx.URL(adapter.base_url))
        try:
            target = httpx.URL(url)
        except httpx.InvalidURL:
            raise DownloadFailed("The output URL cannot be read as a URL, so it was not downloaded.") from None
        headers = dict(adapter.download_headers(url)) if origin_of(target) == base else {}
        for _hop in range(MAX_REDIRECTS + 1):
            check_url(target, base, adapter.base_url_env)
            request = client.build_request("GET", target, headers={**headers, "Accept-Encoding": "identity"})
            try:
                response = await client.send(request, stream=True, follow_redirects=False)
                try:
                    location = response.headers.get("location")
                    if response.status_code in _REDIRECT_STATUSES and location:
                        target = target.join(location)
                        # Credentials are for the first hop only, whatever host the redirect names.
                        headers = {}
                        continue
                    if response.status_code in EXPIRED_STATUSES:
                        raise _Expired(response.status_code)
                    if response.status_code != 200:
                        raise DownloadFailed(
                            f"{target.host} answered HTTP {response.status_code} to the download. Try again later; "
                            "files already saved whole are not fetched again."
                        )
                    return await self._write(response, dest, progress)
                finally:
                    await response.aclose()
            except httpx.TimeoutException:
                raise DownloadFailed(
                    f"The transfer from {target.host} stalled for more than {self.config.read_timeout_s:g}s. Try "
                    "again; files already saved whole are not fetched again."
                ) from None
            except (httpx.TransportError, httpx.InvalidURL) as exc:
                raise DownloadFailed(
                    f"The transfer from {target.host} failed ({type(exc).__name__}: {exc}). Check the network and "
                    "try again; files already saved whole are not fetched again."
                ) from None
        raise DownloadFailed(
            f"The output URL redirected more than {MAX_REDIRECTS} times, so it was not followed further."
        )

    async def _write(self, response: httpx.Response, dest: Path, progress: _Progress) -> tuple[str, int]:
        cap = self.config.max_bytes
        length = _content_length(response)
        if length is not None and length > cap:
            raise _too_large(dest.name, length, cap)
        coding = response.headers.get("content-encoding", "identity").strip().lower()
        if coding not in ("", "identity"):
            raise DownloadFailed(
                f"{dest.name} came in the content coding {coding[:20]!r} although none was asked for, so it was "
                "not saved (it would not be the file itself)."
            )
        progress.expect(length)
        fd, part = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        digest, size, whole = hashlib.sha256(), 0, False
        try:
            try:
                batch: list[bytes] = []
                batched = 0
                async for chunk in response.aiter_raw():
                    size += len(chunk)
                    if size > cap:
                        raise _too_large(dest.name, size, cap)
                    batch.append(chunk)
                    batched += len(chunk)
                    if batched >= WRITE_BATCH_BYTES:
                        await anyio.to_thread.run_sync(self._spill, fd, batch, digest, dest)
                        batch, batched = [], 0
                    await progress.advance(len(chunk), dest.name)
                if batch:
                    await anyio.to_thread.run_sync(self._spill, fd, batch, digest, dest)
            finally:
                os.close(fd)
            if length is not None and size != length:
                raise DownloadFailed(f"{dest.name} arrived with {size} of the {length} bytes announced. Try again.")
            os.replace(part, dest)
            whole = True
        finally:
            if not whole:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(part)
        sha256 = digest.hexdigest()
        _record(dest, sha256, size)
        await progress.advance(0, dest.name, final=True)
        logger.debug("saved %s (%d bytes)", dest, size)
        return sha256, size

    def _spill(self, fd: int, batch: list[bytes], digest: hashlib._Hash, dest: Path) -> None:
        """One batch into the checksum and onto the disk; run in a worker thread."""
        for chunk in batch:
            digest.update(chunk)
            self._write_all(fd, chunk, dest)

    def _write_all(self, fd: int, chunk: bytes, dest: Path) -> None:
        view = memoryview(chunk)
        try:
            while view:
                view = view[self.config.write(fd, view) :]
        except OSError as exc:
            raise DownloadFailed(
                f"The disk refused to write {dest} ({exc.strerror or exc}); nothing was left under that name. Free "
                "some space, or set GENRESULT_DOWNLOAD_DIR to a disk with room, then call again."
            ) from None


def _amount(size: int) -> str:
    return f"{size / MIB:.1f} MB" if size >= MIB else f"{size / 1024:.1f} KB"


def _too_large(name: str, size: int, cap: int) -> DownloadFailed:
    return DownloadFailed(
        f"{name} is over the download limit of {cap / MIB:g} MB (at least {size / MIB:.1f} MB), so it was not "
        "saved. Raise GENRESULT_MAX_DOWNLOAD_MB if you want files this large."
    )


def _content_length(response: httpx.Response) -> int | None:
    declared = response.headers.get("content-length", "").strip()
    return int(declared) if declared.isascii() and declared.isdigit() else None


def _sidecar(dest: Path) -> Path:
    # A dot name: `safe_name` never makes one, so no output can collide with the record of another.
    return dest.with_name(f".{dest.name}.sha256")


def _record(dest: Path, sha256: str, size: int) -> None:
    sidecar = _sidecar(dest)
    part = sidecar.with_name(sidecar.name + ".part")
    part.write_text(json.dumps({"sha256": sha256, "size": size}))
    os.replace(part, sidecar)


def _saved_whole(dest: Path) -> tuple[str, int] | None:
    """The checksum and size of the file at `dest` when they match the record beside it, else None."""
    try:
        record = json.loads(_sidecar(dest).read_text())
        size = dest.stat().st_size
        if not isinstance(record, dict) or record.get("size") != size:
            return None
        digest = hashlib.sha256()
        with dest.open("rb") as file:
            while block := file.read(MIB):
                digest.update(block)
    except (OSError, ValueError):
        return None
    return (digest.hexdigest(), size) if digest.hexdigest() == record.get("sha256") else None


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_WINDOWS_RESERVED = re.compile(r"(con|prn|aux|nul|com[0-9]|lpt[0-9]|conin\$|conout\$)(\..*)?", re.IGNORECASE)
_MAX_EXTENSION = 12


def safe_name(raw: str, limit: int = MAX_NAME_CHARS) -> str | None:
    """`raw` as one file name that stays in its folder on any file system, or None when nothing is left.

    Anything but letters, digits, `.`, `_` and `-` is replaced (so no separator, NUL or drive letter
    survives); a leading dot (hidden files, `..`) and trailing dots (dropped by Windows) too; Windows'
    reserved device names are prefixed. When the name had to change or be cut, a short hash of the original
    keeps two different originals apart.
    """
    if not raw:
        return None
    name = _UNSAFE.sub("_", raw)
    if name.startswith("."):
        name = "_" + name[1:]
    if name.endswith("."):
        name = name.rstrip(".") + "_"
    if _WINDOWS_RESERVED.fullmatch(name):
        name = "_" + name
    if name != raw or len(name) > limit:
        stem, ext = split_extension(name)
        tag = "-" + hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        name = stem[: limit - len(tag) - len(ext)] + tag + ext
    return name


def split_extension(name: str) -> tuple[str, str]:
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or not ext or len(ext) > _MAX_EXTENSION:
        return name, ""
    return stem, "." + ext


def file_names(outputs: Sequence[Output]) -> list[str]:
    """Every output's file name: its URL's last path segment made safe, else `output-{i}` plus the extension
    of its MIME type. Names are kept apart case-insensitively (macOS and Windows folders are)."""
    names: list[str] = []
    taken: set[str] = set()
    for i, output in enumerate(outputs):
        extension = mimetypes.guess_extension(output.mime_type or "") or ""
        segment = unquote(urlsplit(output.url).path.rsplit("/", 1)[-1])
        name = safe_name(segment) or f"output-{i}{extension}"
        if not split_extension(name)[1] and extension:
            name += extension
        if name.lower() in taken:
            stem, ext = split_extension(name)
            name = f"{stem}-{i}{ext}"
        taken.add(name.lower())
        names.append(name)
    return names
