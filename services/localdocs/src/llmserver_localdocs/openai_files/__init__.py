"""OpenAI's Files API (/v1/files): uploads kept by the server under its data folder."""
