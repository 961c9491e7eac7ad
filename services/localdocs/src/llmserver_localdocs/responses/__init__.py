"""OpenAI's Responses API (/v1/responses) with the `file_search` tool over the vector stores."""
