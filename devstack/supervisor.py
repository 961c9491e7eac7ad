"""The restart policy of `make run`: a service that exits on its own is started again.

What compose's `restart: unless-stopped` does for containers, for the local processes of a
`Stack`: an unexpected exit is logged with its exit code or signal and the service is started
again after a backoff (0.5 s, doubling while it keeps failing, reset once it has run for a
while), the other services untouched. A service that keeps failing (5 failed starts or early
crashes in a minute) is left stopped with one line naming it and its last log lines; the rest of
the stack stays up and the gateway answers 503 with Retry-After for what needs it.

Only exits the stack did not ask for are restarted: `Stack.stop_service` and `Stack.kill_service`
forget the process before ending it, so a deliberate stop (Ctrl-C, a test's fault injection) is
never undone here. A service started again through the stack is watched again.

The supervisor is a polled state machine with no thread of its own: `make run` drives it from its
main thread (so Ctrl-C interrupts it anywhere), tests from a thread of theirs (`run`).
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from enum import Enum

from devstack.stack import SERVICE_ORDER, Stack, describe_exit

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RestartPolicy:
    first_delay_s: float = 0.5
    max_delay_s: float = 10.0
    # A start that fails, or a crash this soon after becoming ready, counts as a failure...
    stable_after_s: float = 10.0
    # ...and this many failures within the window leave the service stopped.
    max_failures: int = 5
    failure_window_s: float = 60.0

    def delay(self, consecutive_failures: int) -> float:
        return min(self.max_delay_s, self.first_delay_s * 2 ** max(0, consecutive_failures - 1))


class State(Enum):
    RUNNING = "running"
    WAITING = "waiting"  # exited; starts again at restart_at
    STARTING = "starting"  # started again; not ready yet
    GIVEN_UP = "given up"
    STOPPED = "stopped"  # stopped through the stack on purpose: not ours to restart


@dataclass
class _Watched:
    state: State
    ready_at: float = 0.0
    exited_at: float = 0.0
    started_at: float = 0.0
    restart_at: float = 0.0
    consecutive_failures: int = 0
    failures: deque[float] = field(default_factory=deque)


@dataclass(frozen=True)
class Restart:
    """One completed restart, for logs and tests."""

    service: str
    exit: str
    exited_at: float
    ready_at: float


class Supervisor:
    def __init__(
        self,
        stack: Stack,
        policy: RestartPolicy | None = None,
        services: list[str] | None = None,
    ) -> None:
        self.stack = stack
        self.policy = policy or RestartPolicy()
        self.services = [name for name in SERVICE_ORDER if name in (services or SERVICE_ORDER)]
        self.restarts: list[Restart] = []
        self._watched: dict[str, _Watched] = {}
        self._last_exit: dict[str, str] = {}
        self._lock = threading.Lock()

    # -- what tests and the CLI ask ------------------------------------------------------------
    def state(self, name: str) -> State:
        with self._lock:
            watched = self._watched.get(name)
            return watched.state if watched else State.STOPPED

    def restarts_of(self, name: str) -> list[Restart]:
        with self._lock:
            return [r for r in self.restarts if r.service == name]

    # -- the loop --------------------------------------------------------------------------
    def run(self, stop: threading.Event, interval_s: float = 0.2) -> None:
        """Poll until `stop` is set (for a caller that runs the supervisor in a thread)."""
        while not stop.is_set():
            self.poll()
            stop.wait(interval_s)

    def poll(self) -> None:
        """One look at every service: notice exits, start what is due, check what is starting."""
        for name in self.services:
            with self._lock:
                self._poll_one(name, time.monotonic())

    def _poll_one(self, name: str, now: float) -> None:
        watched = self._watched.get(name)
        process = self.stack.process_of(name)
        alive = process is not None and process.poll() is None
        if watched is None or watched.state in (State.STOPPED, State.GIVEN_UP):
            if alive:
                # Running (again) through the stack: watch it from now on.
                self._watched[name] = _Watched(State.RUNNING, ready_at=now)
            return
        if watched.state is State.RUNNING:
            if process is None:
                watched.state = State.STOPPED  # stopped on purpose
            elif not alive:
                self._exited(name, watched, describe_exit(process.poll()), now)
        elif watched.state is State.WAITING:
            if process is not None:
                # Started through the stack meanwhile (a test did it): that one counts.
                watched.state = State.RUNNING
                watched.ready_at = now
            elif now >= watched.restart_at:
                self.stack.launch(name)
                watched.state = State.STARTING
                watched.started_at = now
        elif watched.state is State.STARTING:
            self._check_start(name, watched, process, now)

    def _exited(self, name: str, watched: _Watched, how: str, now: float) -> None:
        ran_s = now - watched.ready_at
        self.stack.stop_service(name)  # closes its log; ends children it may have left behind
        watched.exited_at = now
        self._last_exit[name] = how
        logger.warning(
            "%s exited unexpectedly (%s) after running %.0fs; the other services keep running",
            name,
            how,
            ran_s,
        )
        if ran_s < self.policy.stable_after_s:
            self._failed(name, watched, now)  # crashed soon after starting: a crash loop?
        else:
            watched.consecutive_failures = 1
            self._wait(name, watched, now)

    def _check_start(
        self, name: str, watched: _Watched, process: subprocess.Popen[bytes] | None, now: float
    ) -> None:
        if process is None:
            watched.state = State.STOPPED  # stopped on purpose while starting
            return
        exit_code = process.poll()
        ready_timeout = self.stack.specs()[name].ready_timeout
        if exit_code is not None:
            how = describe_exit(exit_code)
            self._last_exit[name] = f"{how} while starting"
            self.stack.stop_service(name)
            logger.warning("%s exited with %s while starting again", name, how)
            self._failed(name, watched, now)
        elif self.stack.is_ready(name):
            ready = time.monotonic()
            watched.state = State.RUNNING
            watched.ready_at = ready
            self.restarts.append(
                Restart(name, self._last_exit.get(name, "?"), watched.exited_at, ready)
            )
            logger.info(
                "%s restarted: ready %.1fs after it exited (restart %d)",
                name,
                ready - watched.exited_at,
                sum(1 for r in self.restarts if r.service == name),
            )
        elif now - watched.started_at > ready_timeout:
            self._last_exit[name] = f"not ready after {ready_timeout:.0f}s"
            logger.warning("%s was not ready %.0fs after starting again", name, ready_timeout)
            self.stack.stop_service(name, timeout=5)
            self._failed(name, watched, now)

    def _failed(self, name: str, watched: _Watched, now: float) -> None:
        policy = self.policy
        watched.failures.append(now)
        while watched.failures and now - watched.failures[0] > policy.failure_window_s:
            watched.failures.popleft()
        watched.consecutive_failures += 1
        if len(watched.failures) >= policy.max_failures:
            watched.state = State.GIVEN_UP
            logger.error(
                "%s failed %d times within %.0fs (last: %s); leaving it stopped, the rest of "
                "the stack stays up. Its last log lines:\n%s",
                name,
                len(watched.failures),
                policy.failure_window_s,
                self._last_exit.get(name, "?"),
                self.stack.log_tail(name, lines=15),
            )
            return
        self._wait(name, watched, now)

    def _wait(self, name: str, watched: _Watched, now: float) -> None:
        watched.state = State.WAITING
        watched.restart_at = now + self.policy.delay(watched.consecutive_failures)
        logger.warning(
            "restarting %s in %.1fs (failures in the last %.0fs: %d)",
            name,
            watched.restart_at - now,
            self.policy.failure_window_s,
            len(watched.failures),
        )
