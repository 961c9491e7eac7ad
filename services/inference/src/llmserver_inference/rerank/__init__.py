"""POST /v1/rerank: documents ordered by relevance to a query."""
