"""OpenAI's Vector Stores API (/v1/vector_stores): each vector store is a LocalDocs collection."""
