"""The connect-time guard of downloads: every host but the provider's base URL host must resolve to a public
address, and the socket must be connected to one (not loopback, private, link-local, multicast or reserved).

A module of its own because it is built on httpcore (and h11 under it), about 11 ms of imports: the first
download loads it (`tools.downloads`, `server.app`), not every start of the server.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Sequence

import anyio
import httpcore
import httpx

from tools.errors import DownloadFailed

Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""host, port -> the addresses it resolves to."""


def forbidden_address(address: str) -> bool:
    """Loopback, private, link-local, multicast, reserved, unspecified, shared (CGNAT): anything not public."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return True
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


class RefusedAddress(DownloadFailed):
    """A host that is, or resolves to, an address downloads may not reach."""


async def system_resolver(host: str, port: int) -> list[str]:
    try:
        infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise httpcore.ConnectError(f"{host} does not resolve ({exc})") from None
    return [str(info[4][0]) for info in infos]


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Connects only to public addresses, except to the base URL's host and port.

    The host is resolved here and the connection made to an address that passed, so a DNS answer that changes
    between the check and the connect cannot slip through; the address the socket is actually connected to is
    checked once more, whatever the backend underneath did with the one it was given.
    """

    def __init__(
        self,
        exempt: tuple[str, int],
        resolver: Resolver = system_resolver,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self.exempt = (exempt[0].lower(), exempt[1])
        self.resolver = resolver
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface, which httpcore calls
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if (host.lower(), port) == self.exempt:
            return WideReads(await self.inner.connect_tcp(host, port, timeout, local_address, socket_options))
        try:
            with anyio.fail_after(timeout):
                addresses = await self.resolver(host, port)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"{host} did not resolve in time") from None
        allowed = [address for address in addresses if not forbidden_address(address)]
        if not allowed:
            raise _refused(host, addresses[0] if addresses else "no address")
        stream = await self.inner.connect_tcp(allowed[0], port, timeout, local_address, socket_options)
        peer = stream.get_extra_info("server_addr")
        connected = str(peer[0]) if isinstance(peer, tuple) and peer else "an unknown address"
        if forbidden_address(connected):
            await stream.aclose()
            raise _refused(host, connected)
        return WideReads(stream)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface, which httpcore calls
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise RefusedAddress("Downloads never go through a Unix socket.")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class WideReads(httpcore.AsyncNetworkStream):
    """A stream that takes whatever the socket has ready, up to `READ_BYTES`, at every read.

    httpcore asks for 64 KiB at a time, and anyio's socket stream cuts what the kernel handed over to that size
    (copying the rest for the next read): a 50 MB file from a fast host took ~1,600 reads, each with its own
    timeout scope and event-loop round, and the loop's overhead, not the network, set the pace of 20 downloads
    at once. The h11 layer above takes any amount per read, so nothing else changes. Through TLS a read still
    yields one record (16 KiB) at most.
    """

    READ_BYTES = 1 << 20

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self.inner = inner

    async def read(
        self,
        max_bytes: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface, which httpcore calls
    ) -> bytes:
        return await self.inner.read(max(max_bytes, self.READ_BYTES), timeout)

    async def write(
        self,
        buffer: bytes,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface, which httpcore calls
    ) -> None:
        await self.inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface, which httpcore calls
    ) -> httpcore.AsyncNetworkStream:
        return WideReads(await self.inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> object:
        return self.inner.get_extra_info(info)


def _refused(host: str, address: str) -> RefusedAddress:
    return RefusedAddress(
        f"The output's host {host} is at {address}, a loopback, private, link-local, multicast or reserved "
        "address, so it was not downloaded: only the provider's base URL host may be on such an address. "
        "If the provider really serves files there, point its *_BASE_URL at that host."
    )


@functools.cache
def _default_ssl_context() -> ssl.SSLContext:
    """httpx's default context (certifi's roots), built once: loading the roots costs ~18 ms of CPU, at every
    download otherwise. A context holds no per-connection state, so every download may share it."""
    return httpx.create_ssl_context()


def guarded_transport(
    exempt: tuple[str, int],
    *,
    ssl_context: ssl.SSLContext | None = None,
    resolver: Resolver = system_resolver,
    backend: httpcore.AsyncNetworkBackend | None = None,
) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose connections go through `GuardedBackend`."""
    context = ssl_context or _default_ssl_context()
    transport = httpx.AsyncHTTPTransport(verify=context)
    # httpx gives no say over the network backend of the pool it builds, so that pool is swapped for the same
    # one connecting through the guard (tests/test_downloads.py shows the guard is in the path).
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=context, network_backend=GuardedBackend(exempt, resolver, backend)
    )
    return transport
