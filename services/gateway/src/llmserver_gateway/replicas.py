"""Inference replicas: pick a healthy, least busy one; mark failures down; re-check them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

import httpx

logger = logging.getLogger(__name__)

ReplicaState = Literal["up", "loading", "down"]

# Preference when choosing: a serving replica first; a loading one answers 503 itself, which
# still beats the gateway's own 503; a replica that refused connections is never chosen.
_STATE_RANK = {"up": 0, "loading": 1}


@dataclass
class Replica:
    name: str
    url: str
    # Optimistic until the first health check: the first request may come before it.
    state: ReplicaState = "up"
    in_flight: int = 0
    order: int = field(default=0)


class NoReplicaAvailable(Exception):
    """Every inference replica is down."""


class ReplicaPool:
    def __init__(self, urls: list[str]) -> None:
        self.replicas = [
            Replica(name=f"inference-{index}", url=url, order=index)
            for index, url in enumerate(urls)
        ]

    def candidates(self) -> list[Replica]:
        """Replicas to try, best first: serving before loading, then fewest in flight."""
        usable = [replica for replica in self.replicas if replica.state != "down"]
        return sorted(usable, key=lambda r: (_STATE_RANK[r.state], r.in_flight, r.order))

    def any_serving(self) -> bool:
        return any(replica.state == "up" for replica in self.replicas)

    @contextmanager
    def busy(self, replica: Replica) -> Iterator[None]:
        replica.in_flight += 1
        try:
            yield
        finally:
            replica.in_flight -= 1

    def mark_down(self, replica: Replica, reason: str) -> None:
        if replica.state != "down":
            logger.warning("%s marked down: %s", replica.name, reason)
        replica.state = "down"

    def set_state(self, replica: Replica, state: ReplicaState) -> None:
        if replica.state != state:
            logger.info("%s is now %s", replica.name, state)
        replica.state = state

    async def check(self, client: httpx.AsyncClient, timeout: float) -> None:
        """Ask every replica's /health once, concurrently, and record the answers."""
        await asyncio.gather(*(self._check_one(client, r, timeout) for r in self.replicas))

    async def _check_one(self, client: httpx.AsyncClient, replica: Replica, timeout: float) -> None:
        try:
            response = await client.get(f"{replica.url}/health", timeout=timeout)
        except httpx.HTTPError as exc:
            self.set_state(replica, "down")
            logger.debug("%s health check failed: %s", replica.name, type(exc).__name__)
            return
        if response.status_code == 200:
            self.set_state(replica, "up")
        elif response.status_code == 503:
            self.set_state(replica, "loading")
        else:
            self.set_state(replica, "down")

    async def watch(self, client: httpx.AsyncClient, interval: float, timeout: float) -> None:
        """Background loop: a replica marked down comes back once its /health answers again."""
        while True:
            try:
                await self.check(client, timeout)
            except Exception:  # the loop must survive anything; the next round retries
                logger.exception("replica health check round failed")
            await asyncio.sleep(interval)
