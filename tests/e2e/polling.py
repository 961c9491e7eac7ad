"""Waiting in end-to-end tests: poll a condition until a deadline, never a fixed sleep."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest


def poll_until(
    predicate: Callable[[], Any], timeout_s: float, what: str, poll_s: float = 0.2
) -> Any:
    """The first truthy value of `predicate()`, asked every `poll_s`; the test fails, naming
    `what`, if none comes within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(poll_s)
