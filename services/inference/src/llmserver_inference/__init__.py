"""llama.cpp behind an OpenAI-compatible API, with continuous batching."""
