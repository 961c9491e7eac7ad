"""A chat engine's slots (one llama sequence each) and the prompt prefix cache across requests.

With the prompt cache on, a slot keeps the tokens its sequence holds after its request ends.
A new request goes to the free slot whose tokens share the longest prefix with its prompt
(as llama-server's cache_prompt does): only the diverging tail is removed from the KV memory
and only the new tokens are evaluated, so turn 5 of a conversation re-evaluates turn 5 alone.
"""

from __future__ import annotations

import codecs

from llmserver_inference.generation import GenerationRequest

# A cached prefix shorter than this share of the prompt is not worth a slot whose cache
# another conversation may still want: the least recently used slot is taken instead
# (llama-server's --slot-prompt-similarity default).
MIN_PROMPT_SIMILARITY = 0.1


class Slot:
    def __init__(self, seq_id: int) -> None:
        self.seq_id = seq_id
        self.request: GenerationRequest | None = None
        self.to_eval: list[int] = []
        # The tokens at positions 0..n_past-1 of this sequence in the KV memory: decoded, so
        # a later request with the same prefix can start from them (the prompt cache).
        self.tokens: list[int] = []
        # Prompt tokens this request took from the cache instead of evaluating them.
        self.cached_tokens = 0
        # When the slot was last freed: the least recently used one is reused first.
        self.released_tick = 0
        # Until the prompt's last token is decoded; other choices of the same prompt wait in
        # `followers` for it, then copy this sequence's cache and sample from the same logits.
        self.prompt_pending = False
        self.followers: list[Slot] = []
        self.leader: Slot | None = None
        self.generated = 0
        self.decoder: codecs.IncrementalDecoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.text = ""
        self.sent = 0
        self.max_stop = 0

    @property
    def n_past(self) -> int:
        return len(self.tokens)

    def reset(self, request: GenerationRequest, reuse: int) -> None:
        """Starts `request` on this slot; its first `reuse` tokens are in the sequence."""
        self.request = request
        self.tokens = self.tokens[:reuse]
        self.cached_tokens = reuse
        self.to_eval = list(request.prompt_tokens[reuse:])
        self.prompt_pending = True
        self.followers = []
        self.leader = None
        self.generated = 0
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.text = ""
        self.sent = 0
        self.max_stop = max((len(s) for s in request.params.stop), default=0)


def common_prefix_len(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def reusable_len(slot: Slot, prompt: list[int]) -> int:
    """Prompt tokens this slot's sequence already holds; at least one is left to evaluate,
    since the logits of the prompt's last position are needed to sample the first token."""
    return min(common_prefix_len(slot.tokens, prompt), len(prompt) - 1)


def choose_slot(free: list[Slot], prompt: list[int] | None) -> tuple[Slot, int]:
    """The free slot for a prompt and how many of its tokens it reuses.

    None as the prompt (or the prompt cache off): no reuse wanted, the least recently used
    slot, emptiest first, is taken so the caches other conversations may want are kept.
    """
    least_used = min(free, key=lambda s: (s.released_tick, len(s.tokens)))
    if prompt is None:
        return least_used, 0
    best, reuse = max(
        ((slot, reusable_len(slot, prompt)) for slot in free), key=lambda pair: pair[1]
    )
    if reuse <= 0 or reuse < MIN_PROMPT_SIMILARITY * len(prompt):
        return least_used, reusable_len(least_used, prompt)
    return best, reuse
