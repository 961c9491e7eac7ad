"""Sampling: per-request parameters, llama.cpp sampler chains and grammar-constrained sampling."""

from __future__ import annotations

import ctypes
import json
import math
import random
from dataclasses import dataclass, field
from typing import Any

import llama_cpp
import numpy as np
from llama_cpp import llama_grammar


class GrammarError(ValueError):
    """The grammar (from response_format) could not be compiled."""


@dataclass
class SamplingParams:
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repeat_penalty: float = 1.0
    penalty_last_n: int = 64
    grammar: str | None = None
    max_tokens: int | None = None
    stop: list[str] = field(default_factory=list)
    # None: no logprobs; k >= 0: the chosen token's logprob and the k most likely alternatives.
    logprobs: int | None = None


def json_grammar(schema: dict[str, Any] | None) -> str:
    """GBNF for response_format: any JSON object, or one that matches the schema."""
    if schema is None:
        return llama_grammar.JSON_GBNF
    try:
        return llama_grammar.json_schema_to_gbnf(json.dumps(schema))
    except Exception as exc:
        raise GrammarError(f"unsupported JSON schema: {exc}") from exc


@dataclass
class Samplers:
    """A sequence's sampler chain and, kept apart from it, its grammar sampler."""

    chain: Any
    grammar: Any | None = None
    # Greedy with nothing else in the chain: an argmax over the logits does the same job
    # without building a candidate array over the whole vocabulary for every token.
    greedy_only: bool = False

    def free(self) -> None:
        if self.grammar is not None:
            llama_cpp.llama_sampler_free(self.grammar)
            self.grammar = None
        if self.chain is not None:
            llama_cpp.llama_sampler_free(self.chain)
            self.chain = None


def build_sampler(params: SamplingParams, vocab: Any, n_vocab: int) -> Samplers:
    """One sampler chain per sequence; the caller owns it (Samplers.free)."""
    grammar = None
    if params.grammar is not None:
        grammar = llama_cpp.llama_sampler_init_grammar(
            vocab, params.grammar.encode("utf-8"), b"root"
        )
        if not grammar:
            raise GrammarError("the grammar could not be parsed")
    chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
    samplers = Samplers(chain=chain, grammar=grammar)
    add = llama_cpp.llama_sampler_chain_add
    if (
        params.repeat_penalty != 1.0
        or params.frequency_penalty != 0.0
        or params.presence_penalty != 0.0
    ):
        add(
            chain,
            llama_cpp.llama_sampler_init_penalties(
                n_vocab,
                params.penalty_last_n,
                params.repeat_penalty,
                params.frequency_penalty,
                params.presence_penalty,
            ),
        )
    if params.temperature <= 0.0:
        add(chain, llama_cpp.llama_sampler_init_greedy())
        samplers.greedy_only = grammar is None and llama_cpp.llama_sampler_chain_n(chain) == 1
        return samplers
    if params.top_k > 0:
        add(chain, llama_cpp.llama_sampler_init_top_k(params.top_k))
    if params.top_p < 1.0:
        add(chain, llama_cpp.llama_sampler_init_top_p(params.top_p, 1))
    if params.min_p > 0.0:
        add(chain, llama_cpp.llama_sampler_init_min_p(params.min_p, 1))
    add(chain, llama_cpp.llama_sampler_init_temp(params.temperature))
    seed = params.seed if params.seed is not None else random.getrandbits(32)
    # 0xFFFFFFFF means "random" to llama.cpp; keep explicit seeds deterministic.
    seed &= 0xFFFFFFFF
    if seed == 0xFFFFFFFF:
        seed = 0xFFFFFFFE
    add(chain, llama_cpp.llama_sampler_init_dist(seed))
    return samplers


_TOKEN_DATA = np.dtype([("id", "<i4"), ("logit", "<f4"), ("p", "<f4")])


class GrammarSampling:
    """Grammar-constrained sampling without masking the whole vocabulary on every token.

    Checking a grammar against every one of a large vocabulary (Gemma: 262k) is very slow, so,
    as llama.cpp's common sampler does, sample without the grammar first and only when that
    token breaks the grammar mask the full vocabulary and sample again.
    """

    def __init__(self, n_vocab: int) -> None:
        self.n_vocab = n_vocab
        self.ids = np.arange(n_vocab, dtype=np.int32)
        self.candidates = np.zeros(n_vocab, dtype=_TOKEN_DATA)
        self.single = (llama_cpp.llama_token_data * 1)()

    def _apply(self, samplers: list[Any], logits: np.ndarray) -> int:
        self.candidates["id"] = self.ids
        self.candidates["logit"] = logits
        self.candidates["p"] = 0.0
        arr = llama_cpp.llama_token_data_array(
            data=self.candidates.ctypes.data_as(llama_cpp.llama_token_data_p),
            size=self.n_vocab,
            selected=-1,
            sorted=False,
        )
        for sampler in samplers:
            llama_cpp.llama_sampler_apply(sampler, ctypes.byref(arr))
        if arr.selected < 0:
            raise RuntimeError("the sampler chain selected no token")
        # Samplers may move the data pointer: read through the struct.
        return int(arr.data[arr.selected].id)

    def sample(self, samplers: Samplers, ctx: Any, idx: int) -> int:
        assert samplers.grammar is not None
        ptr = llama_cpp.llama_get_logits_ith(ctx, idx)
        logits = np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))
        token = self._apply([samplers.chain], logits)
        self.single[0].id = token
        self.single[0].logit = 0.0
        self.single[0].p = 0.0
        one = llama_cpp.llama_token_data_array(data=self.single, size=1, selected=-1, sorted=False)
        llama_cpp.llama_sampler_apply(samplers.grammar, ctypes.byref(one))
        if math.isinf(self.single[0].logit):
            token = self._apply([samplers.grammar, samplers.chain], logits)
        llama_cpp.llama_sampler_accept(samplers.grammar, token)
        llama_cpp.llama_sampler_accept(samplers.chain, token)
        return token
