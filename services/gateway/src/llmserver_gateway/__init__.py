"""The public API gateway of llmserver: GPT4All's API server, OpenAI-compatible, on port 4891."""
