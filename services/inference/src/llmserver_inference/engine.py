"""llama.cpp engines: continuous batching for chat models (embeddings: embedding.py).

A llama.cpp context is not thread-safe, so each loaded model owns exactly one context and one
thread that touches it. Chat requests to one model are decoded together: the scheduler thread
admits queued requests into free slots (one llama sequence each), evaluates their prompts, then on
every step builds one llama_batch with the next token of every active sequence, calls llama_decode
once and samples each sequence with its own sampler chain, as llama-server's slots do.
"""

from __future__ import annotations

import collections
import itertools
import logging
import math
import threading
from typing import Any

import llama_cpp
import numpy as np
from llama_cpp._internals import LlamaModel

from llmserver_inference.generation import (
    EngineClosedError,
    GenerationEvent,
    GenerationRequest,
    QueueFullError,
    TokenLogprob,
    deliver_events,
)
from llmserver_inference.llama_backend import context_params, token_piece
from llmserver_inference.sampling import GrammarSampling
from llmserver_inference.slots import Slot, choose_slot

logger = logging.getLogger(__name__)


def _stop_prefix_len(text: str, stops: list[str]) -> int:
    """Length of the longest suffix of text that could still grow into a stop string."""
    best = 0
    for stop in stops:
        for k in range(min(len(stop) - 1, len(text)), best, -1):
            if text.endswith(stop[:k]):
                best = k
                break
    return best


class ChatEngine:
    """One chat model: one llama context with `slots` sequences, one scheduler thread."""

    def __init__(
        self,
        model: LlamaModel,
        *,
        context_length: int,
        slots: int,
        threads: int,
        batch_size: int,
        max_queue: int,
        kv_unified: bool = False,
        stop_token_ids: frozenset[int] = frozenset(),
        prompt_cache: bool = False,
    ) -> None:
        self.model = model
        self.vocab = model.vocab
        # End-of-turn markers of the chat format: they end a sequence as EOG tokens do.
        self.stop_token_ids = stop_token_ids
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self.vocab)
        self.slots_total = slots
        self.max_queue = max_queue
        self.batch_size = batch_size

        params = context_params(context_length * slots, batch_size, slots, threads)
        # At most one sampled position per sequence per batch: no room for more logits needed.
        params.n_outputs_max = slots
        # False: each sequence gets its own share of the context (n_ctx / n_seq_max).
        # True: one shared KV buffer; each sequence is still capped at context_length below,
        # so the slots together never need more than n_ctx cells.
        params.kv_unified = kv_unified
        # Sliding-window layers (Gemma 3: 5 in 6) keep only their window of each sequence
        # unless swa_full: without the prompt cache nothing is reused across requests, so the
        # full-size cache would only cost memory (about 200 MB with the default 8 slots of 2048
        # tokens); with it, a prefix is reusable only if every layer still holds it.
        self.prompt_cache = prompt_cache
        params.swa_full = prompt_cache
        self.ctx = llama_cpp.llama_init_from_model(model.model, params)
        if not self.ctx:
            raise RuntimeError("llama.cpp could not create a context")
        self.memory = llama_cpp.llama_get_memory(self.ctx)
        self.n_ctx_seq = min(context_length, int(llama_cpp.llama_n_ctx_seq(self.ctx)))
        self.batch = llama_cpp.llama_batch_init(batch_size, 0, 1)

        self._grammar_sampling = GrammarSampling(self.n_vocab)
        # Events of one step, handed to each event loop in one call (one wake-up per step).
        self._outbox: list[tuple[GenerationRequest, GenerationEvent]] = []
        self._slots = [Slot(i) for i in range(slots)]
        self._pending: collections.deque[GenerationRequest] = collections.deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._active = 0
        self._release_ticks = itertools.count(1)
        # Tokens llama.cpp has decoded (prompts and generated), for tests and diagnostics.
        self.decoded_tokens = 0
        self._thread = threading.Thread(target=self._run, name="chat-scheduler", daemon=True)
        self._thread.start()

    # -- event-loop side -------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        with self._cond:
            return self._active > 0 or bool(self._pending)

    def submit(self, requests: list[GenerationRequest]) -> None:
        """Queues the requests together, or raises QueueFullError without queueing any."""
        with self._cond:
            if self._stopping:
                raise EngineClosedError("model unloaded")
            free = self.slots_total - self._active
            if len(self._pending) + len(requests) > self.max_queue + max(free, 0):
                raise QueueFullError
            leaders: dict[int, GenerationRequest] = {}
            for request in requests:
                leader = leaders.setdefault(id(request.prompt_tokens), request)
                request.prompt_leader = leader if leader is not request else None
            self._pending.extend(requests)
            self._cond.notify()

    def cancel(self, requests: list[GenerationRequest]) -> None:
        with self._cond:
            for request in requests:
                request.cancelled = True
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join()
        llama_cpp.llama_batch_free(self.batch)
        llama_cpp.llama_free(self.ctx)
        self.ctx = None
        self.model.close()

    # -- scheduler thread -------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._stopping and not self._pending and self._active == 0:
                        self._cond.wait()
                    if self._stopping:
                        break
                    self._admit()
                self._drop_cancelled()
                if self._active:
                    self._step()
                self._flush()
        except Exception:
            logger.exception("chat scheduler failed")
            self._fail_all("The model failed while generating.")
        finally:
            self._fail_all("The model was unloaded.")

    def _admit(self) -> None:
        while self._pending:
            free = [slot for slot in self._slots if slot.request is None]
            if not free:
                return
            request = self._pending.popleft()
            if request.cancelled:
                request.sampler.free()
                continue
            leader = self._pending_leader(request)
            # A choice that will copy its leader's cache reuses nothing of its own. Nor does a
            # request with a seed: a reused prefix was evaluated in other batches, whose sums
            # round differently, and a seed promises the same answer to the same request.
            reuse_wanted = self.prompt_cache and leader is None and request.params.seed is None
            wanted = request.prompt_tokens if reuse_wanted else None
            slot, reuse = choose_slot(free, wanted)
            slot.reset(request, self._keep_prefix(slot, reuse))
            if leader is not None:
                slot.to_eval = []
                slot.leader = leader
                leader.followers.append(slot)
            self._active += 1

    def _keep_prefix(self, slot: Slot, reuse: int) -> int:
        """Removes all but the first `reuse` positions of the slot's sequence from the KV
        memory; how many are kept (0 where the memory cannot keep a part of a sequence)."""
        if reuse > 0:
            # Cells before the prefix's end already dropped (a sliding window): none usable.
            complete = llama_cpp.llama_memory_seq_pos_min(self.memory, slot.seq_id) == 0
            if complete and llama_cpp.llama_memory_seq_rm(self.memory, slot.seq_id, reuse, -1):
                return reuse
        llama_cpp.llama_memory_seq_rm(self.memory, slot.seq_id, -1, -1)
        slot.tokens = []
        return 0

    def _pending_leader(self, request: GenerationRequest) -> Slot | None:
        """Another choice of a prompt still being evaluated waits for it instead of
        evaluating it again; once the leader's prompt is done, the cache is copied."""
        if request.prompt_leader is None:
            return None
        for other in self._slots:
            if other.request is request.prompt_leader and other.prompt_pending:
                return other
        return None

    def _drop_cancelled(self) -> None:
        for slot in self._slots:
            if slot.request is not None and slot.request.cancelled:
                self._release(slot)

    def _release(self, slot: Slot, *, keep_cache: bool = True) -> None:
        """Frees the slot; with the prompt cache its sequence stays for a later request,
        unless `keep_cache` is False (a failed decode leaves the sequence's state unknown)."""
        request = slot.request
        if request is None:
            return
        if not (keep_cache and self.prompt_cache):
            llama_cpp.llama_memory_seq_rm(self.memory, slot.seq_id, -1, -1)
            slot.tokens = []
        slot.released_tick = next(self._release_ticks)
        request.sampler.free()
        if slot.leader is not None:
            slot.leader.followers.remove(slot)
            slot.leader = None
        for follower in slot.followers:
            # The leader ends before its prompt was evaluated: each evaluates its own.
            assert follower.request is not None
            follower.leader = None
            follower.to_eval = list(follower.request.prompt_tokens[follower.n_past :])
        slot.followers = []
        slot.request = None
        slot.to_eval = []
        with self._cond:
            self._active -= 1

    def _post(self, request: GenerationRequest, event: GenerationEvent) -> None:
        released = request.hold_or_release(event)
        if released is not None:
            self._outbox.append((request, released))

    def _flush(self) -> None:
        if not self._outbox:
            return
        by_loop: dict[int, tuple[Any, list[Any]]] = {}
        for request, event in self._outbox:
            loop = request._loop
            by_loop.setdefault(id(loop), (loop, []))[1].append((request._queue, event))
        self._outbox = []
        for loop, items in by_loop.values():
            try:
                loop.call_soon_threadsafe(deliver_events, items)
            except RuntimeError:  # loop closed: nobody is listening any more
                pass

    def _fail_all(self, message: str) -> None:
        self._flush()
        for slot in self._slots:
            if slot.request is not None:
                slot.request.emit(GenerationEvent(slot.request.index, error=message))
                self._release(slot)
        with self._cond:
            pending = list(self._pending)
            self._pending.clear()
        for request in pending:
            request.emit(GenerationEvent(request.index, error=message))
            request.sampler.free()

    def _step(self) -> None:
        batch = self.batch
        n = 0
        outputs: list[tuple[Slot, int]] = []
        in_batch: list[Slot] = []
        # Generating sequences first (one token each) so prompts never starve them.
        order = sorted(
            (s for s in self._slots if s.request is not None and s.to_eval),
            key=lambda s: len(s.to_eval) > 1,
        )
        for slot in order:
            room = self.batch_size - n
            if room <= 0:
                break
            if slot.n_past + len(slot.to_eval) > self.n_ctx_seq:
                self._finish(slot, "length")
                continue
            take = min(room, len(slot.to_eval))
            chunk = slot.to_eval[:take]
            in_batch.append(slot)
            for j, token in enumerate(chunk):
                batch.token[n] = token
                batch.pos[n] = slot.n_past + j
                batch.n_seq_id[n] = 1
                batch.seq_id[n][0] = slot.seq_id
                last = take == len(slot.to_eval) and j == take - 1
                batch.logits[n] = 1 if last else 0
                if last:
                    outputs.append((slot, n))
                n += 1
            slot.to_eval = slot.to_eval[take:]
            slot.tokens.extend(chunk)
        if n == 0:
            return
        batch.n_tokens = n
        rc = llama_cpp.llama_decode(self.ctx, batch)
        if rc != 0:
            # 1: no room in the KV cache; < 0: hard error. Either way these sequences' state
            # is unknown now: end them with an error rather than generate garbage.
            logger.error("llama_decode returned %d with %d tokens", rc, n)
            for slot in in_batch:
                if slot.request is not None:
                    slot.request.emit(
                        GenerationEvent(slot.request.index, error="The model failed to decode.")
                    )
                    self._release(slot, keep_cache=False)
            return
        self.decoded_tokens += n
        for slot, idx in outputs:
            if slot.prompt_pending:
                slot.prompt_pending = False
                self._branch_followers(slot, idx)
            self._sample(slot, idx)

    def _branch_followers(self, leader: Slot, idx: int) -> None:
        """The other choices of the leader's prompt start from its cache and its logits.

        Before the leader samples: sampling may finish it, and its sequence is then removed.
        llama.cpp copies the cells' bookkeeping now and the buffers at the next decode.
        """
        followers, leader.followers = leader.followers, []
        for follower in followers:
            follower.leader = None
            follower.prompt_pending = False
            llama_cpp.llama_memory_seq_cp(self.memory, leader.seq_id, follower.seq_id, -1, -1)
            follower.tokens = list(leader.tokens)
            follower.cached_tokens = leader.cached_tokens
            self._sample(follower, idx)

    def _sample(self, slot: Slot, idx: int) -> None:
        request = slot.request
        assert request is not None
        if request.sampler.greedy_only:
            ptr = llama_cpp.llama_get_logits_ith(self.ctx, idx)
            token = int(np.argmax(np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))))
        elif request.sampler.grammar is not None:
            token = self._grammar_sampling.sample(request.sampler, self.ctx, idx)
        else:
            token = llama_cpp.llama_sampler_sample(request.sampler.chain, self.ctx, idx)
        if token in self.stop_token_ids or llama_cpp.llama_vocab_is_eog(self.vocab, token):
            self._finish(slot, "stop")
            return
        slot.generated += 1
        logprobs = []
        if request.params.logprobs is not None:
            logprobs.append(self._logprob(idx, token, request.params.logprobs))
        piece = token_piece(self.vocab, token)
        slot.text += slot.decoder.decode(piece)
        params = request.params
        if params.stop:
            start = max(0, slot.sent - slot.max_stop)
            hits = [p for p in (slot.text.find(s, start) for s in params.stop) if p >= 0]
            if hits:
                cut = min(hits)
                text = slot.text[slot.sent : cut]
                slot.sent = len(slot.text)
                self._finish(slot, "stop", text=text, logprobs=logprobs, flush=False)
                return
        if params.max_tokens is not None and slot.generated >= params.max_tokens:
            self._finish(slot, "length", logprobs=logprobs)
            return
        if slot.n_past >= self.n_ctx_seq:
            self._finish(slot, "length", logprobs=logprobs)
            return
        hold = _stop_prefix_len(slot.text, params.stop) if params.stop else 0
        end = len(slot.text) - hold
        text = slot.text[slot.sent : end] if end > slot.sent else ""
        slot.sent = max(slot.sent, end)
        if text or logprobs:
            self._post(request, GenerationEvent(request.index, text=text, logprobs=logprobs))
        slot.to_eval = [token]

    def _finish(
        self,
        slot: Slot,
        reason: str,
        *,
        text: str | None = None,
        logprobs: list[TokenLogprob] | None = None,
        flush: bool = True,
    ) -> None:
        request = slot.request
        assert request is not None
        if flush:
            slot.text += slot.decoder.decode(b"", final=True)
            text = slot.text[slot.sent :]
        self._post(
            request,
            GenerationEvent(
                request.index,
                text=text or "",
                logprobs=logprobs or [],
                finish_reason=reason,
                completion_tokens=slot.generated,
                cached_tokens=slot.cached_tokens,
            ),
        )
        self._release(slot)

    def _logprob(self, idx: int, token: int, top: int) -> TokenLogprob:
        ptr = llama_cpp.llama_get_logits_ith(self.ctx, idx)
        logits = np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).astype(np.float64)
        peak = float(logits.max())
        log_z = peak + math.log(float(np.exp(logits - peak).sum()))

        def entry(tok: int) -> tuple[str, float, list[int]]:
            raw = token_piece(self.vocab, tok)
            return raw.decode("utf-8", "replace"), float(logits[tok]) - log_z, list(raw)

        chosen = entry(token)
        alternatives: list[tuple[str, float, list[int]]] = []
        if top > 0:
            best = np.argpartition(-logits, top)[:top]
            best = best[np.argsort(-logits[best])]
            alternatives = [entry(int(t)) for t in best]
        return TokenLogprob(chosen[0], chosen[1], chosen[2], alternatives)
