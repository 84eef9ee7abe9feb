"""The redactor finds a secret however a provider or a URL spelled it: raw, percent-encoded any way, or
escaped inside JSON text."""

from __future__ import annotations

import json
import logging
import sys
from urllib.parse import quote

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tests.hardening.faults import spellings
from tools.redact import REDACTED, RedactingFilter, Redactor

SECRET = "sk-live/ab+cd=ef&gh ij~é"


def test_every_spelling_of_a_secret_is_redacted_inside_other_text() -> None:
    redact = Redactor([SECRET])
    for spelled in spellings(SECRET):
        cleaned = redact(f"GET https://api.example/x?key={spelled}&y=1 failed: {spelled}.")
        assert spelled not in cleaned
        assert cleaned.count(REDACTED) == 2, (spelled, cleaned)
        assert cleaned.startswith("GET https://api.example/x?key=")


def test_text_without_a_secret_is_left_exactly_as_it_was() -> None:
    text = "sk-live ab cd: nothing to see, 100% fine %2F"
    assert Redactor([SECRET])(text) == text


def test_the_longest_of_two_overlapping_secrets_wins_so_no_tail_is_left_behind() -> None:
    redact = Redactor(["abcd1234", "abcd1234-refresh-5678"])
    assert redact("token abcd1234-refresh-5678 and abcd1234") == f"token {REDACTED} and {REDACTED}"


def test_values_too_short_to_be_secrets_are_not_registered_and_the_user_is_told(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="tools.redact"):
        redact = Redactor(["abc", None, ""])
    assert redact("abc abc") == "abc abc"
    # The warning names the length, never the value.
    assert [record.getMessage() for record in caplog.records] == [
        "A credential of 3 characters cannot be kept out of the output: it would garble ordinary text. "
        "Use one of at least 4 characters."
    ]


def json_spellings(secret: str) -> list[str]:
    """The secret as JSON writers put it inside a string: ASCII-only or not, `/` escaped or not."""
    ascii_only = json.dumps(secret)[1:-1]
    return [ascii_only, json.dumps(secret, ensure_ascii=False)[1:-1], ascii_only.replace("/", "\\/")]


def test_a_secret_inside_json_text_is_redacted_however_the_writer_escaped_it() -> None:
    # A provider's message can carry an echoed key inside JSON it serialized itself (a validation error as
    # an object), so the key reaches us as `\u00e9`, `\"` and `\/` rather than as itself.
    secret = 'mlkey-é"q\\r/s-0123456789'
    redact = Redactor([secret])
    for spelled in json_spellings(secret):
        assert spelled != secret
        cleaned = redact(f'{{"message":{{"key":["The key {spelled} is invalid"]}}}}')
        assert cleaned == f'{{"message":{{"key":["The key {REDACTED} is invalid"]}}}}', spelled


def test_log_records_are_cleaned_args_and_tracebacks_included() -> None:
    redact = Redactor([SECRET])
    try:
        raise ValueError(f"boom {quote(SECRET)}")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "key %s", (SECRET,), sys.exc_info())
    RedactingFilter(redact).filter(record)
    text = logging.Formatter().format(record)
    assert all(spelled not in text for spelled in spellings(SECRET))
    assert REDACTED in text


secrets = st.text(st.characters(codec="utf-8"), min_size=4, max_size=40)
noise = st.text(max_size=30)


@settings(max_examples=300, deadline=None)
@given(secret=secrets, before=noise, after=noise, which=st.integers(0, 8))
def test_no_spelling_of_any_secret_survives_whatever_surrounds_it(
    secret: str, before: str, after: str, which: int
) -> None:
    # A secret that could be spelled with the marker's own characters would be found again in the marker.
    assume("[" not in secret and "]" not in secret and secret not in REDACTED)
    spelled = [*spellings(secret), *json_spellings(secret)][which]
    cleaned = Redactor([secret])(before + spelled + after)
    assert spelled not in cleaned
    assert secret not in cleaned


def test_a_token_with_a_line_break_is_found_however_many_times_a_log_line_escaped_it() -> None:
    token = "tok\r\nen-0123456789"
    redact = Redactor([token])
    for spelling in (token, json.dumps(token), repr(token), repr(json.dumps(token)), json.dumps(repr(token))):
        assert "0123456789" not in redact(f"headers={{'authorization': {spelling}}}"), spelling
