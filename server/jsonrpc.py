"""What can be read of a JSON-RPC message that may not parse as a whole: the id of its request.

Both transports need it: HTTP to cancel the request of a client that hung up (`server.http`), stdio to answer
a line it cannot parse under the id its sender waits on (`server.stdio`).
"""

from __future__ import annotations

import json

# The most one message may hold, on either transport. The largest honest request, a wait_for_generations over
# its 50 jobs with the longest task ids, is about 16 KiB; the SDK keeps about four copies of every accepted
# HTTP body for as long as its call runs, so this bounds what a long wait can be made to hold.
MAX_MESSAGE_BYTES = 64 * 1024

# How much of a message is kept to find its id: clients put the id before the params.
ID_SCAN_BYTES = 4096

_DECODER = json.JSONDecoder()


def request_id(head: bytes) -> str | int | None:
    """The id of the JSON-RPC request whose text starts with `head`, or None for a notification, a response,
    no JSON object at all, or an id that comes after `ID_SCAN_BYTES`.

    The top-level members are read one by one, as far as `head` goes, so a long params member after the id
    (the usual order) is never needed whole, and one that cannot be parsed does not hide the id before it.
    """
    text = head.decode("utf-8", "ignore")
    members: dict[str, object] = {}
    position = _skip(text, 0)
    if text[position : position + 1] != "{":
        return None
    position += 1
    try:
        while "id" not in members or "method" not in members:
            position = _skip(text, position)
            name, position = _DECODER.raw_decode(text, position)
            position = _skip(text, position)
            if text[position : position + 1] != ":":
                return None
            value, position = _DECODER.raw_decode(text, _skip(text, position + 1))
            members.setdefault(str(name), value)
            position = _skip(text, position)
            if text[position : position + 1] != ",":
                break
            position += 1
    except (ValueError, RecursionError):
        pass
    if not isinstance(members.get("method"), str):
        return None
    found = members.get("id")
    # bool is an int to Python, never an id to JSON-RPC.
    return found if isinstance(found, str | int) and not isinstance(found, bool) else None


def _skip(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position
