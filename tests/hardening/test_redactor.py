"""The redactor finds a secret however a provider or a URL spelled it: raw, or percent-encoded any way."""

from __future__ import annotations

import logging
import sys
from urllib.parse import quote

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


def test_values_too_short_to_be_secrets_are_not_registered() -> None:
    redact = Redactor(["abc", None, ""])
    assert redact("abc abc") == "abc abc"


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
@given(secret=secrets, before=noise, after=noise, which=st.integers(0, 5))
def test_no_spelling_of_any_secret_survives_whatever_surrounds_it(
    secret: str, before: str, after: str, which: int
) -> None:
    # A secret that could be spelled with the marker's own characters would be found again in the marker.
    assume("[" not in secret and "]" not in secret and secret not in REDACTED)
    spelled = spellings(secret)[which]
    cleaned = Redactor([secret])(before + spelled + after)
    assert spelled not in cleaned
    assert secret not in cleaned
