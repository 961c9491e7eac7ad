"""max_tokens per model: the default when a request gives none, and the ceiling above which a
request is refused, so that no request holds a slot for its whole context by accident.

Both come from the model's catalog entry (`defaults.max_tokens`, `max_tokens_ceiling`), else
from the settings (INFERENCE_DEFAULT_MAX_TOKENS, INFERENCE_MAX_TOKENS_CAP), and neither is ever
above the model's per-request context.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmserver_common.errors import invalid_request
from llmserver_common.openai_api import SamplingRequest
from llmserver_inference.catalog import ModelEntry
from llmserver_inference.settings import InferenceSettings


@dataclass(frozen=True)
class TokenLimits:
    default: int
    ceiling: int
    # Where the ceiling comes from, for the 400 that names it.
    source: str


def token_limits(
    entry: ModelEntry, context_length: int, settings: InferenceSettings
) -> TokenLimits:
    if entry.max_tokens_ceiling is not None:
        ceiling, source = entry.max_tokens_ceiling, "the catalog's max_tokens_ceiling"
    else:
        ceiling, source = settings.max_tokens_cap, "INFERENCE_MAX_TOKENS_CAP"
    if context_length < ceiling:
        ceiling, source = context_length, "the model's context length"
    default = entry.defaults.get("max_tokens")
    if not isinstance(default, int) or isinstance(default, bool) or default < 1:
        default = settings.default_max_tokens
    return TokenLimits(default=min(default, ceiling), ceiling=ceiling, source=source)


def max_tokens_for(body: SamplingRequest, limits: TokenLimits) -> int:
    """The request's max_tokens (max_completion_tokens wins), else the model's default; a 400
    naming the ceiling when above it."""
    for name in ("max_completion_tokens", "max_tokens"):
        value = getattr(body, name)
        if value is None:
            continue
        if value > limits.ceiling:
            raise invalid_request(
                f"'{name}' is {value}, above this model's max_tokens ceiling of "
                f"{limits.ceiling} tokens ({limits.source}).",
                param=name,
                code="max_tokens_too_large",
            )
    return body.max_completion_tokens or body.max_tokens or limits.default
