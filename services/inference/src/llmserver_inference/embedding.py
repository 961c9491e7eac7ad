"""The embedding engine: one llama.cpp context per embedding model, many inputs per decode."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import llama_cpp
import numpy as np
from llama_cpp._internals import LlamaModel

from llmserver_inference.llama_backend import context_params, tokenize

# llama.cpp pooling types.
POOLING_UNSPECIFIED = -1
POOLING_NONE = 0
POOLING_MEAN = 1


class EmbeddingEngine:
    """One embedding model: one context, many inputs per llama_decode, one decode at a time.

    A request is split into groups that each fit one decode, and the context is taken per
    group, not per request: a search's one-line query waits for at most one group of a
    collection being indexed, not for the whole of it (seen: 9.8 s on 2 cores). A request of
    one group goes ahead of the next group of a longer one.
    """

    def __init__(
        self,
        model: LlamaModel,
        *,
        threads: int,
        batch_size: int,
        max_sequences: int,
    ) -> None:
        self.model = model
        self.vocab = model.vocab
        self.n_embd = llama_cpp.llama_model_n_embd(model.model)
        n_ctx_train = llama_cpp.llama_model_n_ctx_train(model.model)
        self.batch_size = batch_size
        self.max_sequences = max_sequences
        self._lock = threading.Lock()  # the context: one llama_decode at a time
        self._turns = threading.Condition()  # one-group requests waiting for the context
        self._short_waiting = 0
        self._active = 0  # requests between their first and last group

        self.ctx = self._make_context(threads, POOLING_UNSPECIFIED)
        if llama_cpp.llama_pooling_type(self.ctx) == POOLING_NONE:
            # No pooling in the GGUF: mean pooling, as sentence-transformers does.
            llama_cpp.llama_free(self.ctx)
            self.ctx = self._make_context(threads, POOLING_MEAN)
        self.pooling = int(llama_cpp.llama_pooling_type(self.ctx))
        self.memory = llama_cpp.llama_get_memory(self.ctx)
        # Non-causal models need a whole input inside one micro-batch.
        self.max_input_tokens = min(batch_size, n_ctx_train if n_ctx_train > 0 else batch_size)
        self.batch = llama_cpp.llama_batch_init(batch_size, 0, 1)
        # The token closing every tokenised input ([SEP] for BERT), kept when an input is cut.
        sep = llama_cpp.llama_vocab_sep(self.vocab)
        eos = llama_cpp.llama_vocab_eos(self.vocab)
        closing = tokenize(self.vocab, "", add_special=True, parse_special=False)
        self.end_token: int | None = closing[-1] if closing and closing[-1] in (sep, eos) else None

    def _make_context(self, threads: int, pooling: int) -> Any:
        params = context_params(self.batch_size, self.batch_size, self.max_sequences, threads)
        params.embeddings = True
        params.pooling_type = pooling
        # All sequences share the cells of one batch.
        params.kv_unified = True
        ctx = llama_cpp.llama_init_from_model(self.model.model, params)
        if not ctx:
            raise RuntimeError("llama.cpp could not create an embedding context")
        return ctx

    def tokenize(self, text: str) -> list[int]:
        return tokenize(self.vocab, text, add_special=True, parse_special=False)

    def embed(self, inputs: list[list[int]]) -> list[list[float]]:
        """L2-normalised pooled vectors for tokenised inputs (each within max_input_tokens)."""
        groups = self._groups(inputs)
        short = len(groups) == 1
        vectors: list[list[float]] = []
        with self._turns:
            self._active += 1
        try:
            for group in groups:
                with self._turn(short):
                    vectors.extend(self._embed_group(group))
        finally:
            with self._turns:
                self._active -= 1
                self._turns.notify_all()
        return vectors

    def _groups(self, inputs: list[list[int]]) -> list[list[list[int]]]:
        """Consecutive inputs packed into decodes of at most batch_size tokens and max_sequences."""
        groups: list[list[list[int]]] = []
        group: list[list[int]] = []
        used = 0
        for tokens in inputs:
            if group and (len(group) == self.max_sequences or used + len(tokens) > self.batch_size):
                groups.append(group)
                group, used = [], 0
            group.append(tokens)
            used += len(tokens)
        if group:
            groups.append(group)
        return groups

    @contextmanager
    def _turn(self, short: bool) -> Iterator[None]:
        """The context for one decode; a short request goes before a long one's next group."""
        with self._turns:
            if short:
                self._short_waiting += 1
            else:
                self._turns.wait_for(lambda: self._short_waiting == 0)
        try:
            self._lock.acquire()
        finally:
            if short:
                with self._turns:
                    self._short_waiting -= 1
                    self._turns.notify_all()
        try:
            yield
        finally:
            self._lock.release()

    def _embed_group(self, group: list[list[int]]) -> list[list[float]]:
        if self.memory:
            llama_cpp.llama_memory_clear(self.memory, True)
        batch = self.batch
        n = 0
        for seq, tokens in enumerate(group):
            for pos, token in enumerate(tokens):
                batch.token[n] = token
                batch.pos[n] = pos
                batch.n_seq_id[n] = 1
                batch.seq_id[n][0] = seq
                batch.logits[n] = 1
                n += 1
        batch.n_tokens = n
        rc = llama_cpp.llama_decode(self.ctx, batch)
        if rc != 0:
            raise RuntimeError(f"llama_decode returned {rc}")
        out: list[list[float]] = []
        for seq in range(len(group)):
            ptr = llama_cpp.llama_get_embeddings_seq(self.ctx, seq)
            if not ptr:
                raise RuntimeError("no pooled embedding returned")
            vec = np.ctypeslib.as_array(ptr, shape=(self.n_embd,)).astype(np.float64)
            norm = float(np.linalg.norm(vec))
            out.append((vec / norm if norm > 0 else vec).tolist())
        return out

    @property
    def busy(self) -> bool:
        return self._active > 0 or self._lock.locked()

    def close(self) -> None:
        # Between two groups of a request the context is free but still in use: wait for it.
        with self._turns:
            self._turns.wait_for(lambda: self._active == 0)
        with self._lock:
            llama_cpp.llama_batch_free(self.batch)
            llama_cpp.llama_free(self.ctx)
            self.ctx = None
            self.model.close()
