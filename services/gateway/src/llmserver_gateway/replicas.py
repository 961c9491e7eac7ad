"""Inference replicas: pick a healthy, least busy one; mark failures down; re-check them."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

import httpx

from llmserver_gateway.upstream_client import HTTPX_ERRORS

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
    # When it was last chosen (a pool-wide sequence number): ties go to the least recent.
    last_pick: int = 0
    # Set when `url` names one resolved address of a host name: the Host header to send.
    host_header: str | None = None
    # path -> parsed URL: parsing "http://host:port/path" again costs ~40 us per request.
    _urls: dict[str, httpx.URL] = field(default_factory=dict, repr=False, compare=False)

    def url_for(self, path: str) -> httpx.URL:
        """The parsed URL of `path` on this replica (paths are the few API routes)."""
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = httpx.URL(self.url + path)
        return url


# (host, port) -> the addresses it resolves to; replaced in unit tests.
Resolver = Callable[[str, int], Awaitable[list[str]]]


async def resolve_all(host: str, port: int) -> list[str]:
    """Every address (A and AAAA) of `host`, in the resolver's order, without duplicates."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass
class _Source:
    """One configured inference URL, and whether its host name is expanded into addresses."""

    index: int
    url: str
    scheme: str
    host: str
    port: int
    netloc: str
    path: str
    resolvable: bool


def _source(index: int, url: str) -> _Source:
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        ipaddress.ip_address(host)
        literal = True
    except ValueError:
        literal = False
    # https stays by name: certificate checks need it. localhost and IP literals are one
    # replica each, as configured.
    resolvable = parts.scheme == "http" and not literal and host.lower() != "localhost"
    return _Source(index, url, parts.scheme, host, port, parts.netloc, parts.path, resolvable)


class NoReplicaAvailable(Exception):
    """Every inference replica is down."""


class ReplicaPool:
    def __init__(
        self, urls: list[str], *, dns_refresh_s: float = 0.0, resolver: Resolver | None = None
    ) -> None:
        # Until the first resolution each URL is one replica, by name: requests work at once.
        self.replicas = [
            Replica(name=f"inference-{index}", url=url, order=index)
            for index, url in enumerate(urls)
        ]
        self.sources = [_source(index, url) for index, url in enumerate(urls)]
        self.dns_refresh_s = dns_refresh_s
        self.resolver = resolver
        self._resolved_at = float("-inf")
        self._picks = 0

    async def resolve(self) -> None:
        """Re-resolve each host name; every address is a replica (kept across rounds).

        A name that fails to resolve keeps its current replicas: a DNS hiccup must not empty
        the pool. Known replicas keep their state and in-flight counts.
        """
        if self.dns_refresh_s <= 0 or not any(source.resolvable for source in self.sources):
            return
        existing = {replica.url: replica for replica in self.replicas}
        replicas: list[Replica] = []
        for source in self.sources:
            if not source.resolvable:
                replicas.append(existing.get(source.url) or self._by_name(source))
                continue
            try:
                # Looked up at call time so tests can patch the module's resolve_all.
                addresses = await (self.resolver or resolve_all)(source.host, source.port)
            except (OSError, UnicodeError) as exc:
                logger.warning("cannot resolve %s: %s", source.host, exc)
                addresses = []
            if not addresses:
                kept = [r for r in self.replicas if r.order == source.index]
                replicas.extend(kept or [self._by_name(source)])
                continue
            for address in addresses:
                host = f"[{address}]" if ":" in address else address
                url = f"{source.scheme}://{host}:{source.port}{source.path}"
                replica = existing.get(url)
                if replica is None:
                    replica = Replica(
                        name=f"inference-{source.index}-{address}",
                        url=url,
                        order=source.index,
                        host_header=source.netloc,
                    )
                    logger.info("inference replica %s (%s) added", replica.name, source.host)
                replicas.append(replica)
        for gone in set(existing) - {replica.url for replica in replicas}:
            logger.info("inference replica %s removed", existing[gone].name)
        self.replicas = replicas

    @staticmethod
    def _by_name(source: _Source) -> Replica:
        return Replica(name=f"inference-{source.index}", url=source.url, order=source.index)

    async def maybe_resolve(self) -> None:
        if time.monotonic() - self._resolved_at >= self.dns_refresh_s:
            self._resolved_at = time.monotonic()
            await self.resolve()

    def candidates(self) -> list[Replica]:
        """Replicas to try, best first: serving before loading, then fewest in flight."""
        usable = [replica for replica in self.replicas if replica.state != "down"]
        return sorted(
            usable, key=lambda r: (_STATE_RANK[r.state], r.in_flight, r.last_pick, r.order)
        )

    def note_pick(self, replica: Replica) -> None:
        # Sequential requests (each finding every replica idle) rotate instead of all going
        # to the first one.
        self._picks += 1
        replica.last_pick = self._picks

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
        headers = {"host": replica.host_header} if replica.host_header else None
        try:
            response = await client.get(f"{replica.url}/health", timeout=timeout, headers=headers)
        except HTTPX_ERRORS as exc:
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
                await self.maybe_resolve()
                await self.check(client, timeout)
            except Exception:  # the loop must survive anything; the next round retries
                logger.exception("replica health check round failed")
            await asyncio.sleep(interval)
