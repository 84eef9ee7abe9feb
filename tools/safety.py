"""What a provider's answer may put in front of an agent: URLs it can follow, text it can read, a size it can hold.

A provider (or whoever answers at its base URL) is not trusted to be well-behaved. Its answer reaches a
model, which may follow links and obey text, and a client, which may warn at 10,000 tokens of tool output
(Claude Code) and refuse 25,000. So, for every result:

- an output's `url` is `https`, or `http` only to the provider's own configured host (the sandbox, a
  self-hosted queue); never `javascript:`, `data:`, `file:` or anything else, never a loopback, private,
  link-local or reserved address (a cloud metadata service) unless that is the configured host, never a
  URL with control characters or white space in it (a line break that starts a prompt of its own). An
  output whose URL fails is dropped and the result's `note` says so; a thumbnail that fails is left out.
- every other string loses its control characters and is cut to a length that fits its meaning;
- at most `MAX_OUTPUTS` outputs are listed (the note says how many there were).
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

MAX_OUTPUTS = 20
MAX_URL = 2048
# What each kind of text may take: a status word, a code, a MIME type, a failure message, a note.
MAX_WORD = 64
MAX_CODE = 100
MAX_MESSAGE = 1000
MAX_NOTE = 1000

# C0 and C1 controls, DEL, the Unicode line and paragraph separators, zero-width and direction marks, the
# invisible word joiner and operators, and the tag characters (U+E0000-E007F, invisible text a model still reads):
# what can break a line, hide text or turn it around in what the model reads.
_CONTROL = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff\U000e0000-\U000e007f]"
)
# Characters no URL carries unescaped: controls, space, <>"\^`{|}, and everything past ASCII (a provider's URLs
# are percent-encoded; past U+FFFF lie the invisible tag characters). Written as the complement of what may
# stay, printable ASCII less those, because a class that spans the BMP takes ~3 ms to compile, at every start.
_NOT_IN_URL = re.compile(r"[^!#-;=?-\[\]_a-z~]")


def clean_text(text: str, limit: int) -> str:
    """`text` with every control character made a space, runs of space folded, and cut to `limit`."""
    flat = " ".join(_CONTROL.sub(" ", text).split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def safe_url(url: str, own_host: str | None) -> str | None:
    """`url` if an agent may be handed it (see the module's rules), else None. `own_host` is the provider's
    configured base URL host, the one place plain http and private addresses are allowed."""
    if len(url) > MAX_URL or _NOT_IN_URL.search(url):
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 (a port that is no number raises here)
    except ValueError:
        return None
    if not host or parts.scheme not in ("https", "http"):
        return None
    own = own_host is not None and host == own_host.lower()
    if parts.scheme == "http" and not own:
        return None
    if not own and _internal(host):
        return None
    return url


def _internal(host: str) -> bool:
    """A host written as an address no public file lives at (loopback, private, link-local, reserved...)."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host == "localhost" or host.endswith((".localhost", ".internal", ".local"))
    return not address.is_global or address.is_multicast
