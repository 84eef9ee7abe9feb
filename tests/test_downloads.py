"""download_generation_outputs (DESIGN.md §2): files saved whole and linked, and every safety rule.

The happy paths go through the in-memory MCP client against the in-process emulators. The rules that live
on the network (the connect-time address check, streaming, cancellation) run against the emulators on a
real loopback socket, with a fake resolver and network backend where a test needs a host that is not
127.0.0.1; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

import anyio
import httpcore
import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from sandbox import EMULATORS, IN_PROCESS_ROOT, Emulator, Sandbox, Timeline
from sandbox.tensorpix import URL_LIFETIME_S
from tests.conftest import Connect
from tests.hardening.loopback import LoopbackServer, serving
from tools.clock import VirtualClock
from tools.connect_guard import WideReads, forbidden_address, guarded_transport
from tools.downloads import MAX_REDIRECTS, WRITE_BATCH_BYTES, DownloadConfig, file_names, safe_name
from tools.errors import DownloadFailed, InvalidArgument
from tools.providers import adapters_from_env
from tools.providers.skillsvideo import SkillsVideo
from tools.redact import Redactor
from tools.result import GenerationResult, Output
from tools.service import GenerationService

MAGIC: dict[str, Callable[[bytes], bool]] = {
    "video/mp4": lambda head: head[4:8] == b"ftyp",
    "image/gif": lambda head: head.startswith(b"GIF8"),
    "image/png": lambda head: head.startswith(b"\x89PNG\r\n\x1a\n"),
    "image/jpeg": lambda head: head.startswith(b"\xff\xd8\xff"),
    "audio/wav": lambda head: head[:4] == b"RIFF" and head[8:12] == b"WAVE",
    "audio/mpeg": lambda head: head.startswith((b"ID3", b"\xff\xfb", b"\xff\xf3")),
}


def finished(sandbox: Sandbox, provider: str, n: int = 1, **detail: Any) -> str:
    emulator = sandbox[provider]
    task_id = emulator.sandbox_id(n)
    emulator.add_job(task_id, Timeline(queued_s=0, running_s=0), **detail)
    return task_id


def file_requests(emulator: Emulator) -> list[str]:
    return [seen.path for seen in emulator.requests if "/files/" in seen.path]


# ---- through the MCP client ----


@pytest.mark.parametrize("provider", sorted(EMULATORS))
async def test_every_providers_outputs_are_saved_whole_and_linked_as_files_that_open(
    connect: Connect, sandbox: Sandbox, tmp_path: Path, provider: str
) -> None:
    task_id = finished(sandbox, provider)
    async with connect(download_dir=tmp_path) as client:
        reply = await client.call_tool("download_generation_outputs", {"provider": provider, "task_id": task_id})

    assert not reply.is_error, reply.content
    result = GenerationResult.model_validate(reply.structured_content)
    assert json.loads(reply.content[0].text) == reply.structured_content  # type: ignore[union-attr]
    links = [block for block in reply.content if block.type == "resource_link"]
    assert result.outputs and len(links) == len(result.outputs)
    for output, link in zip(result.outputs, links, strict=True):
        assert output.path is not None and Path(output.path).is_absolute()
        assert Path(output.path).is_relative_to(tmp_path / provider)
        assert str(link.uri).startswith("file://")
        body = Path(url2pathname(urlsplit(str(link.uri)).path)).read_bytes()
        assert (len(body), hashlib.sha256(body).hexdigest()) == (output.size_bytes, output.sha256)
        assert (link.name, link.mime_type, link.size) == (Path(output.path).name, output.mime_type, len(body))
        assert output.mime_type is not None and MAGIC[output.mime_type](body[:16])


async def test_a_second_download_of_the_same_job_fetches_no_file_again(
    connect: Connect, sandbox: Sandbox, tmp_path: Path
) -> None:
    task_id = finished(sandbox, "skillsvideo")
    arguments = {"provider": "skillsvideo", "task_id": task_id}
    async with connect(download_dir=tmp_path) as client:
        first = GenerationResult.model_validate(
            (await client.call_tool("download_generation_outputs", arguments)).structured_content
        )
        fetched = len(file_requests(sandbox["skillsvideo"]))
        second = GenerationResult.model_validate(
            (await client.call_tool("download_generation_outputs", arguments)).structured_content
        )

    assert fetched == 1
    assert len(file_requests(sandbox["skillsvideo"])) == 1
    assert second.outputs[0].sha256 == first.outputs[0].sha256
    assert second.note is not None and "1 already saved whole" in second.note


async def test_a_file_changed_on_disk_is_fetched_again(connect: Connect, sandbox: Sandbox, tmp_path: Path) -> None:
    task_id = finished(sandbox, "skillsvideo")
    arguments = {"provider": "skillsvideo", "task_id": task_id}
    async with connect(download_dir=tmp_path) as client:
        first = GenerationResult.model_validate(
            (await client.call_tool("download_generation_outputs", arguments)).structured_content
        )
        assert first.outputs[0].path is not None
        saved = Path(first.outputs[0].path)
        saved.write_bytes(b"x" * saved.stat().st_size)
        await client.call_tool("download_generation_outputs", arguments)

    assert len(file_requests(sandbox["skillsvideo"])) == 2
    assert hashlib.sha256(saved.read_bytes()).hexdigest() == first.outputs[0].sha256


async def test_progress_reports_bytes_done_of_the_total(connect: Connect, sandbox: Sandbox, tmp_path: Path) -> None:
    task_id = finished(sandbox, "tensorpix")
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async with connect(download_dir=tmp_path) as client:
        reply = await client.call_tool(
            "download_generation_outputs", {"provider": "tensorpix", "task_id": task_id}, progress_callback=on_progress
        )
    size = GenerationResult.model_validate(reply.structured_content).outputs[0].size_bytes
    assert seen and seen[-1][:2] == (size, size)
    assert f"{size / 1024:.1f} KB of {size / 1024:.1f} KB" in (seen[-1][2] or "")


async def test_a_job_that_has_not_succeeded_is_answered_with_a_note_and_nothing_saved(
    connect: Connect, sandbox: Sandbox, tmp_path: Path
) -> None:
    sandbox["skillsvideo"].add_job("gen_slow", Timeline(queued_s=100, running_s=100))
    saved = tmp_path / "downloads"
    async with connect(download_dir=saved) as client:
        reply = await client.call_tool(
            "download_generation_outputs", {"provider": "skillsvideo", "task_id": "gen_slow"}
        )

    assert not reply.is_error
    result = GenerationResult.model_validate(reply.structured_content)
    assert (result.status, result.outputs) == ("queued", [])
    assert result.note is not None and "Nothing was downloaded" in result.note
    assert not saved.exists() or list(saved.iterdir()) == []


@pytest.mark.parametrize(("index", "said"), [(-1, "0 or more"), (1, "past the job's outputs")])
async def test_an_index_outside_the_outputs_is_invalid_argument(
    connect: Connect, sandbox: Sandbox, tmp_path: Path, index: int, said: str
) -> None:
    task_id = finished(sandbox, "skillsvideo")
    async with connect(download_dir=tmp_path) as client:
        reply = await client.call_tool(
            "download_generation_outputs", {"provider": "skillsvideo", "task_id": task_id, "index": index}
        )
    assert reply.is_error
    text = reply.content[0].text  # type: ignore[union-attr]
    assert "invalid_argument: " in text and said in text


async def test_an_expired_tensorpix_url_is_fetched_again_from_the_fresh_one_a_second_check_hands_out(
    connect: Connect, sandbox: Sandbox, clock: VirtualClock, tmp_path: Path
) -> None:
    emulator = sandbox["tensorpix"]
    task_id = finished(sandbox, "tensorpix")
    serve = emulator.file_access
    late = [True]

    def file_access(request: Request, name: str) -> Response | None:
        # The download starts after the URL read a moment ago has expired.
        if late.pop() if late else False:
            clock.advance(URL_LIFETIME_S + 1)
        return serve(request, name)

    emulator.file_access = file_access  # type: ignore[method-assign]
    async with connect(download_dir=tmp_path) as client:
        reply = await client.call_tool("download_generation_outputs", {"provider": "tensorpix", "task_id": task_id})

    assert not reply.is_error, reply.content
    result = GenerationResult.model_validate(reply.structured_content)
    assert result.outputs[0].path is not None and MAGIC["video/mp4"](Path(result.outputs[0].path).read_bytes())
    assert result.note is not None and "HTTP 403" in result.note and "checked again" in result.note
    assert len([seen for seen in emulator.requests if "/video-gen/jobs/" in seen.path]) == 2


async def test_the_tensorpix_emulator_refuses_an_expired_url_as_s3_does(sandbox: Sandbox, clock: VirtualClock) -> None:
    emulator = sandbox["tensorpix"]
    task_id = finished(sandbox, "tensorpix")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sandbox.app)) as http:
        job = await http.get(
            f"{IN_PROCESS_ROOT}/tensorpix/api/video-gen/jobs/{task_id}/",
            headers={"Authorization": f"Token {emulator.api_key}"},
        )
        url = job.json()["generated_video"]["file"]
        fresh = await http.get(url)
        clock.advance(URL_LIFETIME_S + 1)
        expired = await http.get(url)
        forged = await http.get(url.replace("X-Amz-Signature=", "X-Amz-Signature=0"))

    assert (fresh.status_code, fresh.headers["content-type"]) == (200, "video/mp4")
    assert int(fresh.headers["content-length"]) == len(fresh.content)
    assert expired.status_code == 403 and expired.headers["content-type"].startswith("application/xml")
    assert b"<Code>AccessDenied</Code><Message>Request has expired</Message>" in expired.content
    assert forged.status_code == 403 and b"SignatureDoesNotMatch" in forged.content


async def test_a_url_that_stays_gone_after_a_second_check_is_download_failed(
    connect: Connect, sandbox: Sandbox, tmp_path: Path
) -> None:
    emulator = sandbox["skillsvideo"]
    task_id = finished(sandbox, "skillsvideo")
    emulator.file_access = lambda request, name: Response(b"", 404)  # type: ignore[method-assign]
    async with connect(download_dir=tmp_path) as client:
        reply = await client.call_tool("download_generation_outputs", {"provider": "skillsvideo", "task_id": task_id})

    assert reply.is_error
    text = reply.content[0].text  # type: ignore[union-attr]
    assert "download_failed: " in text and "no longer serves" in text
    assert [p.name for p in (tmp_path / "skillsvideo").rglob("*") if p.is_file()] == []


# ---- the rules, at the service ----


class Recording(httpx.AsyncBaseTransport):
    """Every request that reached the transport, whatever its host."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.seen: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        return await self.inner.handle_async_request(request)


def in_process_service(
    sandbox: Sandbox, clock: VirtualClock, tmp_path: Path, adapters: dict[str, Any] | None = None, **config: Any
) -> tuple[GenerationService, Recording]:
    recording = Recording(httpx.ASGITransport(app=sandbox.app))
    redactor = Redactor()
    service = GenerationService(
        adapters or adapters_from_env(sandbox.env(), redactor),
        httpx.AsyncClient(transport=recording),
        redactor=redactor,
        clock=clock,
        downloads=DownloadConfig(
            folder=tmp_path, open_client=lambda base: httpx.AsyncClient(transport=recording), **config
        ),
    )
    return service, recording


def serve_at(emulator: Emulator, url: str) -> None:
    """The emulator hands out `url` as every output's URL."""
    emulator.file_url = lambda request, name, **query: url  # type: ignore[method-assign]


@pytest.mark.parametrize(
    "url",
    [
        "http://cdn.example.com/output/x.mp4",
        "http://sandbox.genresult.invalid:8080/skillsvideo/files/x.mp4",
        "ftp://sandbox.genresult.invalid/skillsvideo/files/x.mp4",
        "file:///etc/passwd",
    ],
)
async def test_only_https_is_fetched_and_plain_http_only_from_the_base_url_host(
    sandbox: Sandbox, clock: VirtualClock, tmp_path: Path, url: str
) -> None:
    task_id = finished(sandbox, "skillsvideo")
    serve_at(sandbox["skillsvideo"], url)
    service, recording = in_process_service(sandbox, clock, tmp_path)
    # Refused in one of two places: the check drops an output whose link an agent may not be handed at all
    # (tools.safety), and the download refuses any URL it may not fetch (another port on the base host).
    try:
        result = await service.downloads.download("skillsvideo", task_id)
    except DownloadFailed:
        pass
    else:
        assert result.outputs == [] and result.note is not None and "left out" in result.note
    assert [
        request.url.path
        for request in recording.seen
        if "/files/" in str(request.url)
        or request.url.scheme != "http"
        or request.url.host != "sandbox.genresult.invalid"
    ] == []


def redirecting(emulator: Emulator, hops: int, last: str | None = None) -> None:
    """`hop-0.mp4` redirects to `hop-1.mp4` ... up to `hop-{hops}.mp4`, which is the file (or `last`)."""
    serve = emulator.file_access

    def file_access(request: Request, name: str) -> Response | None:
        stem = name.rsplit("/", 1)[-1].removesuffix(".mp4")
        if stem.startswith("hop-") and int(stem[4:]) < hops:
            target = last if last is not None and int(stem[4:]) == hops - 1 else f"hop-{int(stem[4:]) + 1}.mp4"
            return Response(b"", 302, headers={"Location": target})
        return serve(request, name)

    emulator.file_access = file_access  # type: ignore[method-assign]


async def test_up_to_five_redirects_are_followed(sandbox: Sandbox, clock: VirtualClock, tmp_path: Path) -> None:
    task_id = finished(sandbox, "skillsvideo")
    serve_at(sandbox["skillsvideo"], f"{IN_PROCESS_ROOT}/skillsvideo/files/output/hop-0.mp4")
    redirecting(sandbox["skillsvideo"], MAX_REDIRECTS)
    service, _ = in_process_service(sandbox, clock, tmp_path)
    result = await service.downloads.download("skillsvideo", task_id)
    assert result.outputs[0].path is not None and Path(result.outputs[0].path).name == "hop-0.mp4"
    assert len(file_requests(sandbox["skillsvideo"])) == MAX_REDIRECTS + 1


async def test_a_sixth_redirect_is_refused(sandbox: Sandbox, clock: VirtualClock, tmp_path: Path) -> None:
    task_id = finished(sandbox, "skillsvideo")
    serve_at(sandbox["skillsvideo"], f"{IN_PROCESS_ROOT}/skillsvideo/files/output/hop-0.mp4")
    redirecting(sandbox["skillsvideo"], MAX_REDIRECTS + 1)
    service, _ = in_process_service(sandbox, clock, tmp_path)
    with pytest.raises(DownloadFailed, match="redirected more than 5 times"):
        await service.downloads.download("skillsvideo", task_id)
    assert len(file_requests(sandbox["skillsvideo"])) == MAX_REDIRECTS + 1


async def test_every_redirect_hop_is_checked_again(sandbox: Sandbox, clock: VirtualClock, tmp_path: Path) -> None:
    task_id = finished(sandbox, "skillsvideo")
    serve_at(sandbox["skillsvideo"], f"{IN_PROCESS_ROOT}/skillsvideo/files/output/hop-0.mp4")
    redirecting(sandbox["skillsvideo"], 2, last="http://collector.genresult.invalid/steal.mp4")
    service, recording = in_process_service(sandbox, clock, tmp_path)
    with pytest.raises(DownloadFailed, match="not https"):
        await service.downloads.download("skillsvideo", task_id)
    assert all(request.url.host == "sandbox.genresult.invalid" for request in recording.seen)


class KeyedFiles(SkillsVideo):
    """An adapter whose files need its key, as Veo's do."""

    def download_headers(self, url: str) -> dict[str, str]:
        return {"x-goog-api-key": str(self.api_key)}


async def test_download_credentials_go_only_to_the_base_url_host_and_never_across_a_redirect(
    sandbox: Sandbox, clock: VirtualClock, tmp_path: Path
) -> None:
    emulator = sandbox["skillsvideo"]
    serve = emulator.file_access

    def demands_key(request: Request, name: str) -> Response | None:
        if name.endswith("hop-0.mp4") and request.headers.get("x-goog-api-key") != emulator.api_key:
            return Response(b"", 403)
        return serve(request, name)

    emulator.file_access = demands_key  # type: ignore[method-assign]
    redirecting(emulator, 1)
    adapter = KeyedFiles.from_env(sandbox.env(), Redactor())
    task_id = finished(sandbox, "skillsvideo")
    serve_at(emulator, f"{IN_PROCESS_ROOT}/skillsvideo/files/output/hop-0.mp4")
    service, recording = in_process_service(sandbox, clock, tmp_path, {"skillsvideo": adapter})
    await service.downloads.download("skillsvideo", task_id)
    keyed = ["x-goog-api-key" in request.headers for request in recording.seen if "/files/" in request.url.path]
    assert keyed == [True, False]

    other = finished(sandbox, "skillsvideo", 2)
    serve_at(emulator, "https://cdn.genresult.invalid/output/x.mp4")
    with pytest.raises(DownloadFailed):
        await service.downloads.download("skillsvideo", other)
    elsewhere = [request for request in recording.seen if request.url.host == "cdn.genresult.invalid"]
    assert elsewhere and all("x-goog-api-key" not in request.headers for request in elsewhere)


async def test_a_file_announced_over_the_cap_is_refused_unread(
    sandbox: Sandbox, clock: VirtualClock, tmp_path: Path
) -> None:
    emulator = sandbox["skillsvideo"]
    task_id = finished(sandbox, "skillsvideo")
    emulator.file_access = lambda request, name: Response(  # type: ignore[method-assign]
        b"tiny", headers={"Content-Length": str(10 << 20)}, media_type="video/mp4"
    )
    service, _ = in_process_service(sandbox, clock, tmp_path, max_bytes=1 << 20)
    with pytest.raises(DownloadFailed, match=r"over the download limit of 1 MB \(at least 10\.0 MB\)"):
        await service.downloads.download("skillsvideo", task_id)


@pytest.mark.parametrize("failing", [errno.ENOSPC, errno.EDQUOT])
async def test_a_full_disk_is_download_failed_with_the_path_and_leaves_nothing_behind(
    sandbox: Sandbox, clock: VirtualClock, tmp_path: Path, failing: int
) -> None:
    task_id = finished(sandbox, "skillsvideo")

    def full(fd: int, data: memoryview) -> int:
        raise OSError(failing, os.strerror(failing))

    service, _ = in_process_service(sandbox, clock, tmp_path, write=full)
    with pytest.raises(DownloadFailed) as raised:
        await service.downloads.download("skillsvideo", task_id)
    folder = tmp_path / "skillsvideo" / task_id
    assert str(folder / f"{task_id}.mp4") in raised.value.message
    assert list(folder.iterdir()) == []


async def test_the_folders_are_created_owner_only(sandbox: Sandbox, clock: VirtualClock, tmp_path: Path) -> None:
    task_id = finished(sandbox, "skillsvideo")
    service, _ = in_process_service(sandbox, clock, tmp_path / "new" / "downloads")
    result = await service.downloads.download("skillsvideo", task_id)
    assert result.outputs[0].path is not None
    saved = Path(result.outputs[0].path)
    for folder in (tmp_path / "new", tmp_path / "new" / "downloads", saved.parent.parent, saved.parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    assert stat.S_IMODE(saved.stat().st_mode) & 0o077 == 0


async def test_a_url_naming_its_way_out_of_the_folder_stays_in_it(
    sandbox: Sandbox, clock: VirtualClock, tmp_path: Path
) -> None:
    task_id = finished(sandbox, "skillsvideo")
    serve_at(sandbox["skillsvideo"], f"{IN_PROCESS_ROOT}/skillsvideo/files/output/..%2F..%2F..%2Fescape.mp4")
    service, _ = in_process_service(sandbox, clock, tmp_path / "dl")
    result = await service.downloads.download("skillsvideo", task_id)
    assert result.outputs[0].path is not None
    saved = Path(result.outputs[0].path)
    assert saved.parent == tmp_path / "dl" / "skillsvideo" / task_id
    assert not (tmp_path / "escape.mp4").exists()


@pytest.mark.parametrize(
    "raw",
    [
        "..",
        ".",
        "../../etc/passwd",
        "/etc/passwd",
        "C:\\Windows\\win.ini",
        "a\x00b.mp4",
        "CON",
        "aux.mp4",
        "lpt1.txt",
        "name.",
        ".hidden",
        "x" * 300 + ".mp4",
        "clip .mp4",
    ],
)
def test_a_name_cannot_escape_its_folder_or_be_one_windows_reserves(raw: str) -> None:
    name = safe_name(raw)
    assert name is not None and 0 < len(name) <= 120
    assert "/" not in name and "\\" not in name and "\x00" not in name and ":" not in name
    assert not name.startswith(".") and not name.endswith(".")
    assert name.split(".")[0].upper() not in {"CON", "PRN", "AUX", "NUL", "LPT1", "COM1"}
    assert name != raw


def test_a_safe_name_is_kept_and_two_different_unsafe_ones_stay_apart() -> None:
    assert safe_name("fox-in_snow.v2.mp4") == "fox-in_snow.v2.mp4"
    assert safe_name("a b.mp4") != safe_name("a_b.mp4")
    assert safe_name("x" * 300 + ".mp4").endswith(".mp4")  # type: ignore[union-attr]


def test_file_names_come_from_the_url_else_the_index_and_the_mime_type_and_never_collide() -> None:
    outputs = [
        Output(url="https://cdn.example.com/a/clip.mp4?sig=1", kind="video"),
        Output(url="https://cdn.example.com/b/CLIP.mp4", kind="video"),
        Output(url="https://cdn.example.com/", kind="image", mime_type="image/png"),
        Output(url="https://api.example.com/files/abc:download?alt=media", kind="video", mime_type="video/mp4"),
    ]
    assert file_names(outputs) == [
        "clip.mp4",
        "CLIP-1.mp4",
        "output-2.png",
        "abc_download-" + file_names(outputs)[3][13:],
    ]
    assert file_names(outputs)[3].endswith(".mp4")


@pytest.mark.parametrize(
    ("address", "forbidden"),
    [
        ("127.0.0.1", True),
        ("10.1.2.3", True),
        ("172.16.0.1", True),
        ("192.168.1.1", True),
        ("169.254.169.254", True),
        ("224.0.0.1", True),
        ("0.0.0.0", True),
        ("100.64.0.1", True),
        ("240.0.0.1", True),
        ("::1", True),
        ("fe80::1%eth0", True),
        ("fc00::1", True),
        ("ff02::1", True),
        ("::ffff:127.0.0.1", True),
        ("93.184.216.34", False),
        ("2606:2800:220:1::1", False),
    ],
)
def test_only_public_addresses_are_reachable(address: str, forbidden: bool) -> None:
    assert forbidden_address(address) is forbidden


# ---- on a real loopback socket ----


@pytest.fixture
def loopback(sandbox: Sandbox) -> Iterator[LoopbackServer]:
    with serving(sandbox.app) as server:
        yield server


class Dialed(httpcore.AsyncNetworkBackend):
    """A network backend that dials the loopback server whatever address it is asked for, as a DNS answer
    that changed between the check and the connect would."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.asked: list[str] = []
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        self.asked.append(host)
        return await self.inner.connect_tcp("127.0.0.1", self.port, timeout, local_address, socket_options)

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def resolving_to(address: str) -> Callable[[str, int], Any]:
    async def resolve(host: str, port: int) -> list[str]:
        return [address]

    return resolve


@pytest.fixture
async def provider_client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def loopback_service(
    sandbox: Sandbox, clock: VirtualClock, root: str, tmp_path: Path, http: httpx.AsyncClient, **config: Any
) -> GenerationService:
    redactor = Redactor()
    return GenerationService(
        adapters_from_env(sandbox.env(root), redactor),
        http,
        redactor=redactor,
        clock=clock,
        downloads=DownloadConfig(folder=tmp_path, **config),
    )


async def test_the_base_url_host_on_loopback_is_fetched_over_plain_http(
    sandbox: Sandbox, clock: VirtualClock, loopback: LoopbackServer, tmp_path: Path, provider_client: httpx.AsyncClient
) -> None:
    task_id = finished(sandbox, "tensorpix")
    service = loopback_service(sandbox, clock, loopback.root, tmp_path, provider_client)
    result = await service.downloads.download("tensorpix", task_id)
    assert result.outputs[0].path is not None and MAGIC["video/mp4"](Path(result.outputs[0].path).read_bytes())


async def test_loopback_on_another_port_than_the_base_url_is_refused(
    sandbox: Sandbox, clock: VirtualClock, loopback: LoopbackServer, tmp_path: Path, provider_client: httpx.AsyncClient
) -> None:
    task_id = finished(sandbox, "skillsvideo")
    with serving(sandbox.app) as other:
        serve_at(sandbox["skillsvideo"], f"https://127.0.0.1:{other.port}/skillsvideo/files/x.mp4")
        service = loopback_service(sandbox, clock, loopback.root, tmp_path, provider_client)
        with pytest.raises(DownloadFailed, match=r"127\.0\.0\.1, a loopback"):
            await service.downloads.download("skillsvideo", task_id)


@pytest.mark.parametrize("address", ["10.0.0.5", "169.254.169.254", "127.0.0.1"])
async def test_a_host_resolving_to_a_private_address_is_refused_before_any_connection(
    sandbox: Sandbox,
    clock: VirtualClock,
    loopback: LoopbackServer,
    tmp_path: Path,
    provider_client: httpx.AsyncClient,
    address: str,
) -> None:
    task_id = finished(sandbox, "skillsvideo")
    serve_at(sandbox["skillsvideo"], "https://files.genresult.invalid/x.mp4")
    dialed = Dialed(loopback.port)

    def open_client(base: tuple[str, str, int]) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=guarded_transport((base[1], base[2]), resolver=resolving_to(address), backend=dialed)
        )

    service = loopback_service(sandbox, clock, loopback.root, tmp_path, provider_client, open_client=open_client)
    with pytest.raises(DownloadFailed, match=address.replace(".", r"\.")):
        await service.downloads.download("skillsvideo", task_id)
    assert dialed.asked == []


async def test_the_address_actually_connected_to_is_checked_not_only_the_dns_answer(
    sandbox: Sandbox, clock: VirtualClock, loopback: LoopbackServer, tmp_path: Path, provider_client: httpx.AsyncClient
) -> None:
    task_id = finished(sandbox, "skillsvideo")
    serve_at(sandbox["skillsvideo"], "https://files.genresult.invalid/x.mp4")
    dialed = Dialed(loopback.port)

    def open_client(base: tuple[str, str, int]) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=guarded_transport((base[1], base[2]), resolver=resolving_to("93.184.216.34"), backend=dialed)
        )

    service = loopback_service(sandbox, clock, loopback.root, tmp_path, provider_client, open_client=open_client)
    with pytest.raises(DownloadFailed, match=r"at 127\.0\.0\.1"):
        await service.downloads.download("skillsvideo", task_id)
    assert dialed.asked == ["93.184.216.34"]


async def test_a_redirect_to_a_private_address_is_refused_at_its_hop(
    sandbox: Sandbox, clock: VirtualClock, loopback: LoopbackServer, tmp_path: Path, provider_client: httpx.AsyncClient
) -> None:
    task_id = finished(sandbox, "skillsvideo")
    serve_at(sandbox["skillsvideo"], f"{loopback.root}/skillsvideo/files/output/hop-0.mp4")
    redirecting(sandbox["skillsvideo"], 1, last="https://metadata.genresult.invalid/latest/meta-data")
    dialed = Dialed(loopback.port)

    def open_client(base: tuple[str, str, int]) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=guarded_transport((base[1], base[2]), resolver=resolving_to("169.254.169.254"), backend=dialed)
        )

    service = loopback_service(sandbox, clock, loopback.root, tmp_path, provider_client, open_client=open_client)
    with pytest.raises(DownloadFailed, match=r"169\.254\.169\.254"):
        await service.downloads.download("skillsvideo", task_id)
    assert dialed.asked == ["127.0.0.1"]


def endless(chunk: int = 64 << 10) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        while True:
            yield b"\0" * chunk
            await anyio.sleep(0)

    return StreamingResponse(body(), media_type="video/mp4")


async def test_a_body_past_the_cap_is_cut_off_whatever_it_announced(
    sandbox: Sandbox, clock: VirtualClock, loopback: LoopbackServer, tmp_path: Path, provider_client: httpx.AsyncClient
) -> None:
    task_id = finished(sandbox, "skillsvideo")
    sandbox["skillsvideo"].file_access = lambda request, name: endless()  # type: ignore[method-assign]
    service = loopback_service(sandbox, clock, loopback.root, tmp_path, provider_client, max_bytes=1 << 20)
    with anyio.fail_after(10), pytest.raises(DownloadFailed, match="over the download limit of 1 MB"):
        await service.downloads.download("skillsvideo", task_id)
    assert list((tmp_path / "skillsvideo" / task_id).iterdir()) == []


async def test_cancelling_a_download_removes_the_partial_file(
    sandbox: Sandbox, clock: VirtualClock, loopback: LoopbackServer, tmp_path: Path, provider_client: httpx.AsyncClient
) -> None:
    task_id = finished(sandbox, "skillsvideo")
    sandbox["skillsvideo"].file_access = lambda request, name: endless()  # type: ignore[method-assign]
    service = loopback_service(sandbox, clock, loopback.root, tmp_path, provider_client)
    folder = tmp_path / "skillsvideo" / task_id
    partial: list[str] = []

    async def report(progress: float, total: float | None, message: str) -> None:
        if progress > 8 << 20:
            partial.extend(path.name for path in folder.iterdir())
            group.cancel_scope.cancel()

    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(service.downloads.download, "skillsvideo", task_id, None, report)
    assert partial and partial[0].endswith(".part")
    assert list(folder.iterdir()) == []


class ReadSizes(Dialed):
    """`Dialed`, recording how many bytes each read of its streams asks for."""

    def __init__(self, port: int) -> None:
        super().__init__(port)
        self.sizes: list[int] = []

    async def connect_tcp(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        stream = await super().connect_tcp(*args, **kwargs)
        original = stream.read

        async def read(max_bytes: int, timeout: float | None = None) -> bytes:
            self.sizes.append(max_bytes)
            return await original(max_bytes, timeout)

        stream.read = read  # type: ignore[method-assign]
        return stream


async def test_a_large_file_is_read_as_the_socket_has_it_and_written_in_batches_off_the_event_loop(
    sandbox: Sandbox,
    clock: VirtualClock,
    loopback: LoopbackServer,
    tmp_path: Path,
    provider_client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # httpcore asks for 64 KiB per read, and a read or write per 64 KiB set the pace of 20 downloads at once
    # (BENCHMARKS.md): reads take what the socket has, writes and the checksum go in 1 MiB batches, off the loop.
    body = os.urandom(5 << 20)
    sandbox["skillsvideo"].media_for = lambda name: (body, "video/mp4")  # type: ignore[method-assign]
    task_id = finished(sandbox, "skillsvideo")
    sizes = ReadSizes(loopback.port)
    writes: list[tuple[int, int]] = []

    def write(fd: int, data: memoryview) -> int:
        writes.append((len(data), threading.get_ident()))
        return os.write(fd, data)

    def open_client(base: tuple[str, str, int]) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=guarded_transport((base[1], base[2]), backend=sizes))

    batches: list[int] = []
    to_thread = anyio.to_thread.run_sync

    async def counting(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if getattr(func, "__name__", "") == "_spill":
            batches.append(sum(len(chunk) for chunk in args[1]))
        return await to_thread(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counting)
    service = loopback_service(
        sandbox, clock, loopback.root, tmp_path, provider_client, open_client=open_client, write=write
    )
    result = await service.downloads.download("skillsvideo", task_id)

    assert result.outputs[0].sha256 == hashlib.sha256(body).hexdigest()
    assert sizes.sizes and min(sizes.sizes) >= WideReads.READ_BYTES
    assert sum(size for size, _ in writes) == len(body)
    assert sum(batches) == len(body) and len(batches) <= len(body) // WRITE_BATCH_BYTES + 1
    assert all(size >= WRITE_BATCH_BYTES for size in batches[:-1])
    assert threading.get_ident() not in {thread for _, thread in writes}


def test_downloads_share_one_tls_context_rather_than_loading_the_roots_each_time() -> None:
    first, second = guarded_transport(("a.example", 443)), guarded_transport(("b.example", 443))
    assert first._pool._ssl_context is second._pool._ssl_context is not None


async def test_a_negative_index_sends_nothing(sandbox: Sandbox, clock: VirtualClock, tmp_path: Path) -> None:
    service, recording = in_process_service(sandbox, clock, tmp_path)
    with pytest.raises(InvalidArgument):
        await service.downloads.download("skillsvideo", "gen_1", -2)
    assert recording.seen == []


@pytest.mark.parametrize("provider", sorted(EMULATORS))
async def test_each_providers_finished_sandbox_id_downloads_at_once_as_a_one_shot_command_needs(
    clock: VirtualClock, tmp_path: Path, provider: str
) -> None:
    # `genresult-mcp --sandbox download P ID` checks once: the id must be a job already finished when first seen.
    sandbox = Sandbox(clock)
    service, _ = in_process_service(sandbox, clock, tmp_path)
    result = await service.downloads.download(provider, EMULATORS[provider].finished_id(1))
    assert result.status == "succeeded" and result.outputs
    assert all(output.path is not None and Path(output.path).stat().st_size > 0 for output in result.outputs)
