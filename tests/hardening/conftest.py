"""Fixtures of the hardening suite: one loopback server per module, and the server's own log setup."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from tests.hardening.loopback import LoopbackServer, Switch, serving


@pytest.fixture(scope="module")
def loopback() -> Iterator[LoopbackServer]:
    """uvicorn on 127.0.0.1 serving whatever app a test puts in `loopback.app.target`."""
    with serving(Switch()) as server:
        yield server


@pytest.fixture
def root_logging() -> Iterator[None]:
    """Lets a test install the server's logging (which replaces the root handlers) and puts pytest's back."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
