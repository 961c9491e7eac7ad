"""The rerank route's models: the shared ones the gateway validates with too."""

from llmserver_common.rerank_api import (
    RerankDocument,
    RerankRequest,
    RerankResponse,
    RerankResult,
    RerankUsage,
)

__all__ = ["RerankDocument", "RerankRequest", "RerankResponse", "RerankResult", "RerankUsage"]
