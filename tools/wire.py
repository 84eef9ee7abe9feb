"""A provider's body off the wire, bounded: the size cap, on the wire and unpacked, and the codings we take.

`bounded(client)` readies an HTTP client: it asks for the codings we can unpack under the cap and caps every
response it gets, the ones httpx reads by itself too (a 401 before a Flexstack token renewal, the login
answer). Whoever reads a body turns `BodyTooLarge` and `httpx.DecodingError` into the provider's
`provider_protocol_error`.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator

import httpx

# A job answer is a few kilobytes; anything past this is not the documented shape, and reading it all would
# let a broken or hostile endpoint fill our memory.
MAX_BODY_BYTES = 1 << 20

# The content codings we ask for: a job answer is small, and these two unpack in the standard library under
# a bound (`_Inflater`). httpx would otherwise also offer br and zstd wherever their packages are installed.
ACCEPT_ENCODING = "gzip, deflate"


def bounded(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """`client`, asking only for the codings we unpack and stopping every body at the cap."""
    client.headers["Accept-Encoding"] = ACCEPT_ENCODING
    hooks = client.event_hooks["response"]
    if cap_body not in hooks:
        # On the client, not on our reads: httpx itself reads bodies in auth flows, and those must stop at
        # the cap too.
        hooks.append(cap_body)
    return client


class BodyTooLarge(Exception):
    """A body passed the cap, on the wire or unpacked; its reader makes it the provider's protocol error."""


async def cap_body(response: httpx.Response) -> None:
    """Response hook: refuse a body announced over the cap unread, and stop any other one at the cap.

    The cap holds for the unpacked body too. httpx would unpack a compressed body a whole network read at a
    time with no limit (64 KiB of gzip can unpack to 64 MB before any check sees it), so the decoding moves
    here, bounded, and httpx is told the body is plain.
    """
    declared = response.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        await response.aclose()
        raise BodyTooLarge
    codings = [
        coding
        for value in response.headers.get_list("content-encoding", split_commas=True)
        if (coding := value.strip().lower()) not in ("", "identity")
    ]
    if isinstance(response.stream, httpx.AsyncByteStream):
        # Codings are listed in the order they were applied, so they come off in reverse.
        response.stream = _CappedStream(response.stream, [_Inflater(coding) for coding in reversed(codings)])
        response.headers.pop("content-encoding", None)


class _Inflater:
    """One content coding undone, never unpacking more than it is allowed to."""

    def __init__(self, coding: str) -> None:
        self._inflate: zlib._Decompress | None
        if coding in ("gzip", "x-gzip"):
            self._inflate = zlib.decompressobj(zlib.MAX_WBITS | 16)
        elif coding == "deflate":
            # Chosen at the first two bytes (`_choose_deflate`).
            self._inflate = None
        else:
            # We ask for gzip and deflate only (ACCEPT_ENCODING); anything else was not asked for.
            raise httpx.DecodingError(f"a body in the content coding {coding[:20]!r}, which was not asked for")
        self._head = b""

    def inflate(self, data: bytes, room: int) -> bytes:
        if self._inflate is None:
            self._head += data
            if len(self._head) < 2:
                return b""
            self._inflate, data = _choose_deflate(self._head), self._head
        try:
            out = self._inflate.decompress(data, room + 1)
        except zlib.error:
            raise httpx.DecodingError("a body that does not decode as its Content-Encoding says") from None
        if len(out) > room or self._inflate.unconsumed_tail:
            raise BodyTooLarge
        return out

    def finish(self) -> bytes:
        if self._inflate is None:
            # A deflate body of fewer than two bytes is no deflate body.
            raise httpx.DecodingError("a body that does not decode as its Content-Encoding says")
        return self._inflate.flush()


def _choose_deflate(head: bytes) -> zlib._Decompress:
    """Servers disagree on "deflate": zlib-wrapped, as the RFC says, or raw. The zlib header tells them apart
    (method 8, and the first two bytes a multiple of 31 as a big-endian number)."""
    wrapped = head[0] & 0x0F == 8 and (head[0] << 8 | head[1]) % 31 == 0
    return zlib.decompressobj() if wrapped else zlib.decompressobj(-zlib.MAX_WBITS)


class _CappedStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, inflaters: list[_Inflater]) -> None:
        self._inner = inner
        self._inflaters = inflaters

    async def __aiter__(self) -> AsyncIterator[bytes]:
        wire = unpacked = 0
        async for chunk in self._inner:
            wire += len(chunk)
            if wire > MAX_BODY_BYTES:
                raise BodyTooLarge
            chunk = self._through(chunk, 0, MAX_BODY_BYTES - unpacked)
            unpacked += len(chunk)
            if chunk:
                yield chunk
        for index, inflater in enumerate(self._inflaters):
            tail = self._through(inflater.finish(), index + 1, MAX_BODY_BYTES - unpacked)
            unpacked += len(tail)
            if unpacked > MAX_BODY_BYTES:
                raise BodyTooLarge
            if tail:
                yield tail

    def _through(self, data: bytes, first: int, room: int) -> bytes:
        for inflater in self._inflaters[first:]:
            data = inflater.inflate(data, room)
        return data

    async def aclose(self) -> None:
        await self._inner.aclose()
