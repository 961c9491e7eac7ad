"""Anthropic's Messages API (POST /v1/messages) on the same engine as /v1/chat/completions."""
