"""Forwarding to the upstreams: inference replicas (with failover) and localdocs.

Mixed into GatewayService; also the public helpers for route modules that forward a request
(call_localdocs, open_inference / call_inference, passed_headers, upstream_error_response).
Upstream failures become the OpenAI envelope here; upstream error answers pass through with
their status, message and Retry-After.
"""

from __future__ import annotations

import json
import logging
from urllib.parse import quote

import httpx
from fastapi.responses import Response

from llmserver_common.errors import APIError, invalid_request
from llmserver_gateway.metrics import GatewayMetrics
from llmserver_gateway.replicas import Replica, ReplicaPool
from llmserver_gateway.settings import GatewaySettings
from llmserver_gateway.upstream_client import HTTPX_ERRORS

logger = logging.getLogger(__name__)

# Headers of an upstream answer worth passing on to the client (Allow: every 405 needs it).
PASSED_HEADERS = ("retry-after", "location", "allow")

# Characters a forwarded path may keep unescaped; anything else is percent-encoded again.
_PATH_SAFE = "/:@!$&'()*+,;=-._~"


def upstream_error_response(upstream: httpx.Response, body: bytes, service: str) -> Response:
    """Pass an upstream error through: its status and envelope; anything else gets wrapped."""
    headers = passed_headers(upstream)
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        return Response(body, upstream.status_code, headers, media_type="application/json")
    status = upstream.status_code if upstream.status_code >= 400 else 502
    error = APIError(status, f"The {service} service failed (HTTP {upstream.status_code}).")
    return Response(
        json.dumps(error.body()), status, {**headers, **error.headers}, "application/json"
    )


def passed_headers(upstream: httpx.Response) -> dict[str, str]:
    return {k: upstream.headers[k] for k in PASSED_HEADERS if k in upstream.headers}


class UpstreamErrorAnswer(Exception):
    """An upstream answered with an error; the prepared response goes to the client as is."""

    def __init__(self, response: Response) -> None:
        super().__init__(f"upstream error {response.status_code}")
        self.response = response


class UpstreamForwarding:
    """Calls to the upstreams through the one pooled client (GatewayService's part)."""

    settings: GatewaySettings
    client: httpx.AsyncClient
    pool: ReplicaPool
    metrics: GatewayMetrics
    inference_timeout: httpx.Timeout
    localdocs_timeout: httpx.Timeout

    def forget_models(self) -> None:
        """The model catalog may have changed (GatewayService caches it)."""

    def active_collections_changed(self) -> None:
        """The server-wide active collections changed through us (LocalDocsRetrieval caches)."""

    # -- errors ---------------------------------------------------------------------------

    def unavailable(self, service: str) -> APIError:
        return APIError(
            503,
            f"The {service} service is unavailable. Retry shortly.",
            code="service_unavailable",
            headers={"Retry-After": str(self.settings.retry_after_s)},
        )

    def timed_out(self, service: str) -> APIError:
        return APIError(504, f"The {service} service did not answer in time.", code="timeout")

    # -- inference ------------------------------------------------------------------------

    async def open_inference(
        self, method: str, path: str, body: bytes | None = None
    ) -> tuple[httpx.Response, Replica]:
        """Send to the best replica, failing over on connection errors; the caller must close.

        The replica's in-flight count stays raised until `release` is called.
        """
        tried: set[str] = set()
        while True:
            candidates = [r for r in self.pool.candidates() if r.name not in tried]
            if not candidates:
                raise self.unavailable("inference")
            replica = candidates[0]
            self.pool.note_pick(replica)
            tried.add(replica.name)
            headers = {"host": replica.host_header} if replica.host_header else {}
            if body is not None:
                headers["content-type"] = "application/json"
            try:
                request = self.client.build_request(
                    method,
                    replica.url_for(path),
                    content=body,
                    headers=headers,
                    timeout=self.inference_timeout,
                )
            except HTTPX_ERRORS as exc:
                logger.warning("cannot build an inference request: %s", type(exc).__name__)
                raise self.unavailable("inference") from None
            self._acquire(replica)
            try:
                response = await self.client.send(request, stream=True)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError) as exc:
                # Nothing was generated (or the replica died): safe to try the next replica.
                self.release(replica)
                self.pool.mark_down(replica, type(exc).__name__)
                self.forget_models()  # the listing must not outlive the replica serving it
                self.metrics.upstream_errors.labels("inference", "connect").inc()
                continue
            except httpx.TimeoutException:
                self.release(replica)
                self.metrics.upstream_errors.labels("inference", "timeout").inc()
                raise self.timed_out("inference") from None
            except HTTPX_ERRORS as exc:
                self.release(replica)
                self.metrics.upstream_errors.labels("inference", "transport").inc()
                logger.warning("inference request failed: %s", type(exc).__name__)
                raise self.unavailable("inference") from None
            except BaseException:  # cancelled (the client left): the slot must not leak
                self.release(replica)
                raise
            if response.status_code >= 500:
                self.metrics.upstream_errors.labels("inference", "status").inc()
            return response, replica

    def _acquire(self, replica: Replica) -> None:
        replica.in_flight += 1
        self.metrics.set_replica_in_flight(replica.name, replica.in_flight)
        self.metrics.replica_request_sent(replica.name)

    def release(self, replica: Replica) -> None:
        replica.in_flight -= 1
        self.metrics.set_replica_in_flight(replica.name, replica.in_flight)

    async def call_inference(
        self, method: str, path: str, body: bytes | None = None
    ) -> tuple[httpx.Response, bytes]:
        """A non-streamed call: the whole answer. Error answers raise UpstreamErrorAnswer."""
        response, replica = await self.open_inference(method, path, body)
        try:
            content = await response.aread()
        except httpx.TimeoutException:
            self.metrics.upstream_errors.labels("inference", "timeout").inc()
            raise self.timed_out("inference") from None
        except HTTPX_ERRORS as exc:
            self.metrics.upstream_errors.labels("inference", "transport").inc()
            logger.warning("inference answer broke off: %s", type(exc).__name__)
            raise self.unavailable("inference") from None
        finally:
            await response.aclose()
            self.release(replica)
        if response.status_code >= 400:
            if response.status_code == 404 or response.status_code >= 500:
                # The catalog may have changed (model removed, replica restarting).
                self.forget_models()
            raise UpstreamErrorAnswer(upstream_error_response(response, content, "inference"))
        return response, content

    # -- localdocs ------------------------------------------------------------------------

    async def call_localdocs(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        query: str = "",
        content_type: str | None = None,
        timeout: httpx.Timeout | None = None,
    ) -> httpx.Response:
        """One call to localdocs; connection failures are 503, timeouts 504, bad URLs 400."""
        if any(ord(char) < 0x20 or ord(char) == 0x7F for char in path + query):
            raise invalid_request("The request path or query contains control characters.")
        # `path` arrives percent-decoded: encode it again so '?', '#' or '%' in a name stay
        # part of the path instead of starting a query or an escape.
        url = self.settings.localdocs_url + quote(path, safe=_PATH_SAFE)
        url += f"?{query}" if query else ""
        headers = {"content-type": content_type or "application/json"} if body else None
        try:
            response = await self.client.request(
                method,
                url,
                content=body or None,
                headers=headers,
                timeout=timeout or self.localdocs_timeout,
            )
        except httpx.TimeoutException:
            self.metrics.upstream_errors.labels("localdocs", "timeout").inc()
            raise self.timed_out("localdocs") from None
        except httpx.InvalidURL:
            raise invalid_request("The request path or query is not a valid URL.") from None
        except HTTPX_ERRORS as exc:
            self.metrics.upstream_errors.labels("localdocs", "connect").inc()
            logger.debug("localdocs request failed: %s", type(exc).__name__)
            raise self.unavailable("localdocs") from None
        if response.status_code >= 500:
            self.metrics.upstream_errors.labels("localdocs", "status").inc()
        if method.upper() == "PUT" and path == "/v1/localdocs/active" and response.is_success:
            self.active_collections_changed()
        return response
