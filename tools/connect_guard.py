"""The connect-time guard of downloads: every host but the provider's base URL host must resolve to a public
address, and the socket must be connected to one (not loopback, private, link-local, multicast or reserved).

A module of its own because it is built on httpcore (and h11 under it), about 11 ms of imports: the first
download loads it (`tools.downloads`, `server.app`), not every start of the server.
"""

from __future__ import annotations

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
            return await self.inner.connect_tcp(host, port, timeout, local_address, socket_options)
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
        return stream

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface, which httpcore calls
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise RefusedAddress("Downloads never go through a Unix socket.")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def _refused(host: str, address: str) -> RefusedAddress:
    return RefusedAddress(
        f"The output's host {host} is at {address}, a loopback, private, link-local, multicast or reserved "
        "address, so it was not downloaded: only the provider's base URL host may be on such an address. "
        "If the provider really serves files there, point its *_BASE_URL at that host."
    )


def guarded_transport(
    exempt: tuple[str, int],
    *,
    ssl_context: ssl.SSLContext | None = None,
    resolver: Resolver = system_resolver,
    backend: httpcore.AsyncNetworkBackend | None = None,
) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose connections go through `GuardedBackend`."""
    context = ssl_context or httpx.create_ssl_context()
    transport = httpx.AsyncHTTPTransport(verify=context)
    # httpx gives no say over the network backend of the pool it builds, so that pool is swapped for the same
    # one connecting through the guard (tests/tools/test_downloads.py shows the guard is in the path).
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=context, network_backend=GuardedBackend(exempt, resolver, backend)
    )
    return transport
