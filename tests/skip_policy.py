"""What a skipped test must say, and which skips fail the run; hooks that tests/conftest.py
re-exports so pytest finds them.

A skip hides a test: the end of every run lists the skips with their reasons. Two kinds of skip
fail the run (exit status 1) although each test stays reported as skipped:
- an end-to-end test skipped without a reason (nobody could tell what went untested);
- a skip whose reason names something `make setup` installs (a model, redis-server, the
  reference vectors): `make test` runs setup first, so such a skip means setup failed to do its
  job, and a green run would hide the untested features.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

# Reasons naming what setup provides: the default models (linked into models/), redis-server
# (the unit tests' throwaway server) and the committed sentence-transformers reference vectors.
SETUP_SHOULD_PROVIDE = re.compile(
    r"not in models/|model is absent|no embedding model|redis-server|reference vectors",
    re.IGNORECASE,
)
# What pytest reports for a skip given no reason.
NO_REASON = {"", "unconditional skip", "skipped"}


@dataclass(frozen=True)
class Skip:
    nodeid: str
    reason: str


_skips: list[Skip] = []


def _reason(report: pytest.CollectReport | pytest.TestReport) -> str:
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr or "")
    return text.removeprefix("Skipped: ").removeprefix("Skipped").strip()


def _record(report: pytest.CollectReport | pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        _skips.append(Skip(report.nodeid, _reason(report)))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _record(report)


def pytest_collectreport(report: pytest.CollectReport) -> None:
    _record(report)


def forbidden(skip: Skip) -> str | None:
    """Why this skip fails the run, or None when it is a legitimate skip."""
    if "tests/e2e/" in skip.nodeid and skip.reason.lower() in NO_REASON:
        return "an end-to-end test skipped without saying why"
    if SETUP_SHOULD_PROVIDE.search(skip.reason):
        return "setup should have installed what it needs (run `make setup`)"
    return None


def pytest_sessionfinish(session: pytest.Session) -> None:
    # Only a run that would otherwise pass (or found nothing to run) changes its status.
    passing = (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED)
    if any(forbidden(skip) for skip in _skips) and session.exitstatus in passing:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    write = terminalreporter.write_line
    terminalreporter.section(f"skips: {len(_skips)}")
    by_reason: dict[str, list[str]] = {}
    for skip in _skips:
        by_reason.setdefault(skip.reason or "(no reason given)", []).append(skip.nodeid)
    for reason, nodeids in sorted(by_reason.items(), key=lambda item: -len(item[1])):
        write(f"{len(nodeids):4d}  {reason}  (e.g. {nodeids[0]})")
    bad = [(skip, why) for skip in _skips if (why := forbidden(skip))]
    if bad:
        terminalreporter.section("skips that fail this run", red=True)
        for skip, why in bad:
            write(f"{skip.nodeid}: {skip.reason or '(no reason)'} -- {why}", red=True)
