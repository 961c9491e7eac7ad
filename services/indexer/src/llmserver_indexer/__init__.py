"""LocalDocs indexer: Celery worker that extracts (Tika), chunks, embeds and stores (Weaviate)."""
