"""The restart policy of `make run`, driven against small real processes (no heavy service)."""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devstack.stack import ServiceSpec, Stack, StackConfig
from devstack.supervisor import RestartPolicy, State, Supervisor

SLEEPER = [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(120)"]
FAST = RestartPolicy(first_delay_s=0.05, max_delay_s=0.2, stable_after_s=1.0)


def spec(name: str, command: list[str], ready_timeout: float = 10) -> ServiceSpec:
    return ServiceSpec(name, command, dict(os.environ), lambda: False, ready_timeout, "up")


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    # Two stand-ins under real service names (the supervisor walks SERVICE_ORDER).
    specs = {"redis": spec("redis", SLEEPER), "tika": spec("tika", SLEEPER)}
    local = Stack(StackConfig(data_dir=tmp_path))
    local.specs = lambda: specs  # type: ignore[method-assign]
    yield local
    local.stop(budget_s=5)


def poll_until(supervisor: Supervisor, done: Callable[[], bool], timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        supervisor.poll()
        if done():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached")


def crash(stack: Stack, name: str) -> int:
    process = stack.process_of(name)
    assert process is not None
    os.killpg(process.pid, signal.SIGKILL)  # from outside, as a crash or `kill -9` would
    process.wait(5)
    return process.pid


def test_a_killed_service_is_restarted_and_the_others_keep_running(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    stack.start(["redis", "tika"])
    supervisor = Supervisor(stack, FAST, ["redis", "tika"])
    supervisor.poll()
    tika_pid = stack.process_of("tika").pid  # type: ignore[union-attr]
    caplog.set_level(logging.INFO, logger="devstack.supervisor")

    old_pid = crash(stack, "redis")
    poll_until(supervisor, lambda: len(supervisor.restarts_of("redis")) == 1)

    assert stack.is_running("redis") and stack.process_of("redis").pid != old_pid  # type: ignore[union-attr]
    assert stack.process_of("tika").pid == tika_pid  # type: ignore[union-attr]
    assert supervisor.state("redis") is State.RUNNING
    restart = supervisor.restarts_of("redis")[0]
    assert restart.exit == "signal SIGKILL"
    assert restart.ready_at - restart.exited_at < 5
    assert any("redis exited unexpectedly (signal SIGKILL)" in m for m in caplog.messages)
    assert any("redis restarted" in m for m in caplog.messages)


def test_an_exit_code_is_logged(stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    stack.start(["redis"])
    supervisor = Supervisor(stack, FAST, ["redis"])
    supervisor.poll()
    caplog.set_level(logging.INFO, logger="devstack.supervisor")
    process = stack.process_of("redis")
    assert process is not None
    os.killpg(process.pid, signal.SIGTERM)
    poll_until(supervisor, lambda: len(supervisor.restarts_of("redis")) == 1)
    assert supervisor.restarts_of("redis")[0].exit == "signal SIGTERM"

    # A clean exit of its own (code 0) is unexpected too: only the stack stops services.
    stack.specs()["redis"].command = [
        sys.executable,
        "-c",
        "import time; print('up', flush=True); time.sleep(1.5); raise SystemExit(7)",
    ]
    crash(stack, "redis")
    poll_until(supervisor, lambda: len(supervisor.restarts_of("redis")) == 3)
    assert supervisor.restarts_of("redis")[2].exit == "code 7"


def test_a_service_failing_at_start_is_given_up_with_its_log_and_the_rest_stays_up(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    stack.start(["redis", "tika"])
    supervisor = Supervisor(stack, FAST, ["redis", "tika"])
    supervisor.poll()
    caplog.set_level(logging.INFO, logger="devstack.supervisor")
    broken = [sys.executable, "-c", "print('config error: port busy'); raise SystemExit(3)"]
    stack.specs()["redis"].command = broken

    crash(stack, "redis")
    poll_until(supervisor, lambda: supervisor.state("redis") is State.GIVEN_UP)

    assert not stack.is_running("redis") and stack.is_running("tika")
    given_up = [m for m in caplog.messages if "leaving it stopped" in m]
    assert len(given_up) == 1, caplog.messages
    assert "redis failed 5 times" in given_up[0] and "code 3 while starting" in given_up[0]
    assert "config error: port busy" in given_up[0]
    # Given up means given up: no further tries.
    for _ in range(20):
        supervisor.poll()
    assert stack.process_of("redis") is None and supervisor.state("redis") is State.GIVEN_UP


def test_backoff_doubles_up_to_its_cap() -> None:
    policy = RestartPolicy(first_delay_s=0.5, max_delay_s=4)
    assert [policy.delay(n) for n in range(1, 6)] == [0.5, 1, 2, 4, 4]


def test_services_stopped_or_killed_through_the_stack_are_not_restarted(stack: Stack) -> None:
    # The e2e fault tests stop and kill services themselves: the supervisor must not race them.
    stack.start(["redis", "tika"])
    supervisor = Supervisor(stack, FAST, ["redis", "tika"])
    supervisor.poll()
    stack.kill_service("redis")
    stack.stop_service("tika")
    for _ in range(30):
        supervisor.poll()
        time.sleep(0.01)
    assert stack.process_of("redis") is None and stack.process_of("tika") is None
    assert supervisor.state("redis") is State.STOPPED

    # Started again through the stack: watched again.
    stack.start_service("redis")
    supervisor.poll()
    crash(stack, "redis")
    poll_until(supervisor, lambda: len(supervisor.restarts_of("redis")) == 1)


def test_stop_with_a_budget_kills_what_ignores_sigterm(tmp_path: Path) -> None:
    stubborn = [
        sys.executable,
        "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('up', flush=True); time.sleep(120)",
    ]
    specs = {name: spec(name, stubborn) for name in ("redis", "tika", "gateway")}
    local = Stack(StackConfig(data_dir=tmp_path))
    local.specs = lambda: specs  # type: ignore[method-assign]
    local.start(list(specs))
    started = time.monotonic()
    local.stop(budget_s=3)
    assert time.monotonic() - started < 5
    assert all(local.process_of(name) is None for name in specs)
