"""llama.cpp engines: continuous batching for chat models (embeddings: embedding.py).

A llama.cpp context is not thread-safe, so each loaded model owns exactly one context and one
thread that touches it. Chat requests to one model are decoded together: the scheduler thread
admits queued requests into free slots (one llama sequence each), evaluates their prompts, then on
every step builds one llama_batch with the next token of every active sequence, calls llama_decode
once and samples each sequence with its own sampler chain, as llama-server's slots do.
"""

from __future__ import annotations

import asyncio
import codecs
import collections
import ctypes
import logging
import math
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import llama_cpp
import numpy as np
from llama_cpp import llama_grammar
from llama_cpp._internals import LlamaModel

logger = logging.getLogger(__name__)

_backend_lock = threading.Lock()
_backend_ready = False

_llama_logger = logging.getLogger("llama.cpp")
# ggml log levels: 1 debug, 2 info, 3 warn, 4 error, 5 continuation of the previous line.
# llama.cpp's info chatter (context set-up, per-layer details) goes to our logging at debug.
_GGML_LEVELS = {1: logging.DEBUG, 2: logging.DEBUG, 3: logging.WARNING, 4: logging.ERROR}
_last_llama_level = logging.DEBUG


@llama_cpp.llama_log_callback
def _llama_log(level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
    global _last_llama_level
    py_level = _GGML_LEVELS.get(level, _last_llama_level)
    _last_llama_level = py_level
    if _llama_logger.isEnabledFor(py_level):
        message = text.decode("utf-8", errors="replace").rstrip()
        if message:
            _llama_logger.log(py_level, "%s", message)


def ensure_backend() -> None:
    global _backend_ready
    with _backend_lock:
        if not _backend_ready:
            llama_cpp.llama_log_set(_llama_log, ctypes.c_void_p(0))
            llama_cpp.llama_backend_init()
            _backend_ready = True


class QueueFullError(Exception):
    """Every slot is busy and the wait queue is full."""


class GrammarError(ValueError):
    """The grammar (from response_format) could not be compiled."""


class EngineClosedError(Exception):
    """The model was unloaded while the request waited."""


def load_model(path: str, n_gpu_layers: int) -> LlamaModel:
    ensure_backend()
    params = llama_cpp.llama_model_default_params()
    params.n_gpu_layers = n_gpu_layers
    return LlamaModel(path_model=path, params=params, verbose=False)


def context_params(n_ctx: int, batch_size: int, sequences: int, threads: int) -> Any:
    """llama.cpp context parameters both engines start from (one batch = one ubatch)."""
    params = llama_cpp.llama_context_default_params()
    params.n_ctx = n_ctx
    params.n_batch = batch_size
    params.n_ubatch = batch_size
    params.n_seq_max = sequences
    params.n_threads = threads
    params.n_threads_batch = threads
    params.no_perf = True
    return params


def token_piece(vocab: Any, token: int, special: bool = False) -> bytes:
    buf = ctypes.create_string_buffer(64)
    n = llama_cpp.llama_token_to_piece(vocab, token, buf, len(buf), 0, special)
    if n < 0:
        buf = ctypes.create_string_buffer(-n)
        n = llama_cpp.llama_token_to_piece(vocab, token, buf, len(buf), 0, special)
    return buf.raw[:n]


def tokenize(vocab: Any, text: str, add_special: bool, parse_special: bool) -> list[int]:
    data = text.encode("utf-8")
    capacity = len(data) + 16
    while True:
        arr = (llama_cpp.llama_token * capacity)()
        n = llama_cpp.llama_tokenize(
            vocab, data, len(data), arr, capacity, add_special, parse_special
        )
        if n >= 0:
            return list(arr[:n])
        capacity = -n


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
    import json

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


@dataclass
class TokenLogprob:
    token: str
    logprob: float
    bytes: list[int]
    top: list[tuple[str, float, list[int]]]


@dataclass
class GenerationEvent:
    """What the scheduler thread sends back; `finish_reason` set on the last one."""

    index: int
    text: str = ""
    logprobs: list[TokenLogprob] = field(default_factory=list)
    finish_reason: str | None = None
    completion_tokens: int = 0
    error: str | None = None


class GenerationRequest:
    """One sequence to generate (n > 1 submits several), reporting to an asyncio queue."""

    def __init__(
        self,
        index: int,
        prompt_tokens: list[int],
        params: SamplingParams,
        sampler: Samplers,
        loop: asyncio.AbstractEventLoop,
        queue: asyncio.Queue[GenerationEvent],
        *,
        stream: bool = True,
    ) -> None:
        self.index = index
        self.prompt_tokens = prompt_tokens
        self.params = params
        self.sampler = sampler
        self._loop = loop
        self._queue = queue
        # Set from the event loop (client gone); read by the scheduler thread.
        self.cancelled = False
        # A non-streamed reply is read only once it is finished: its text is held in the
        # scheduler and sent with the last event, which spares the event loop (and the CPU
        # that decoding needs) one wake-up per token per request.
        self.stream = stream
        # The first of the n choices of one prompt (set by ChatEngine.submit): this choice
        # copies its KV cache instead of evaluating the same prompt again.
        self.prompt_leader: GenerationRequest | None = None
        self._held_text: list[str] = []
        self._held_logprobs: list[TokenLogprob] = []

    def hold_or_release(self, event: GenerationEvent) -> GenerationEvent | None:
        """The event to send now, or None when it is held for the last event (not streamed)."""
        if self.stream or event.error is not None:
            return event
        if event.finish_reason is None:
            self._held_text.append(event.text)
            self._held_logprobs.extend(event.logprobs)
            return None
        if self._held_text or self._held_logprobs:
            event.text = "".join(self._held_text) + event.text
            event.logprobs = self._held_logprobs + event.logprobs
            self._held_text, self._held_logprobs = [], []
        return event

    def emit(self, event: GenerationEvent) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, event)
        except RuntimeError:  # loop closed: nobody is listening any more
            self.cancelled = True


def _deliver(items: list[tuple[asyncio.Queue[GenerationEvent], GenerationEvent]]) -> None:
    for queue, event in items:
        queue.put_nowait(event)


class _Slot:
    def __init__(self, seq_id: int) -> None:
        self.seq_id = seq_id
        self.request: GenerationRequest | None = None
        self.to_eval: list[int] = []
        # Until the prompt's last token is decoded; other choices of the same prompt wait in
        # `followers` for it, then copy this sequence's cache and sample from the same logits.
        self.prompt_pending = False
        self.followers: list[_Slot] = []
        self.leader: _Slot | None = None
        self.n_past = 0
        self.generated = 0
        self.decoder: codecs.IncrementalDecoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.text = ""
        self.sent = 0
        self.max_stop = 0

    def reset(self, request: GenerationRequest) -> None:
        self.request = request
        self.to_eval = list(request.prompt_tokens)
        self.prompt_pending = True
        self.followers = []
        self.leader = None
        self.n_past = 0
        self.generated = 0
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.text = ""
        self.sent = 0
        self.max_stop = max((len(s) for s in request.params.stop), default=0)


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
        # Sliding-window layers (Gemma 3: 5 in 6) keep only their window of each sequence, not
        # the whole context, as llama-server does: a prompt is never reused across requests
        # here (a slot's sequence is cleared on admission), so the full-size cache would only
        # cost memory (about 200 MB with the default 8 slots of 2048 tokens).
        params.swa_full = False
        self.ctx = llama_cpp.llama_init_from_model(model.model, params)
        if not self.ctx:
            raise RuntimeError("llama.cpp could not create a context")
        self.memory = llama_cpp.llama_get_memory(self.ctx)
        self.n_ctx_seq = min(context_length, int(llama_cpp.llama_n_ctx_seq(self.ctx)))
        self.batch = llama_cpp.llama_batch_init(batch_size, 0, 1)

        self._grammar_sampling = GrammarSampling(self.n_vocab)
        # Events of one step, handed to each event loop in one call (one wake-up per step).
        self._outbox: list[tuple[GenerationRequest, GenerationEvent]] = []
        self._slots = [_Slot(i) for i in range(slots)]
        self._pending: collections.deque[GenerationRequest] = collections.deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._active = 0
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
        for slot in self._slots:
            if not self._pending:
                return
            if slot.request is not None:
                continue
            while self._pending:
                request = self._pending.popleft()
                if request.cancelled:
                    request.sampler.free()
                    continue
                llama_cpp.llama_memory_seq_rm(self.memory, slot.seq_id, -1, -1)
                slot.reset(request)
                self._follow_leader(slot)
                self._active += 1
                break

    def _follow_leader(self, slot: _Slot) -> None:
        """Another choice of a prompt still being evaluated waits for it instead of
        evaluating it again; once the leader's prompt is done, the cache is copied."""
        assert slot.request is not None
        leader = slot.request.prompt_leader
        if leader is None:
            return
        for other in self._slots:
            if other.request is leader and other.prompt_pending:
                slot.to_eval = []
                slot.leader = other
                other.followers.append(slot)
                return

    def _drop_cancelled(self) -> None:
        for slot in self._slots:
            if slot.request is not None and slot.request.cancelled:
                self._release(slot)

    def _release(self, slot: _Slot) -> None:
        request = slot.request
        if request is None:
            return
        llama_cpp.llama_memory_seq_rm(self.memory, slot.seq_id, -1, -1)
        request.sampler.free()
        if slot.leader is not None:
            slot.leader.followers.remove(slot)
            slot.leader = None
        for follower in slot.followers:
            # The leader ends before its prompt was evaluated: each evaluates its own.
            assert follower.request is not None
            follower.leader = None
            follower.to_eval = list(follower.request.prompt_tokens)
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
                loop.call_soon_threadsafe(_deliver, items)
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
        outputs: list[tuple[_Slot, int]] = []
        in_batch: list[_Slot] = []
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
            slot.n_past += take
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
                    self._release(slot)
            return
        self.decoded_tokens += n
        for slot, idx in outputs:
            if slot.prompt_pending:
                slot.prompt_pending = False
                self._branch_followers(slot, idx)
            self._sample(slot, idx)

    def _branch_followers(self, leader: _Slot, idx: int) -> None:
        """The other choices of the leader's prompt start from its cache and its logits.

        Before the leader samples: sampling may finish it, and its sequence is then removed.
        llama.cpp copies the cells' bookkeeping now and the buffers at the next decode.
        """
        followers, leader.followers = leader.followers, []
        for follower in followers:
            follower.leader = None
            follower.prompt_pending = False
            llama_cpp.llama_memory_seq_cp(self.memory, leader.seq_id, follower.seq_id, -1, -1)
            follower.n_past = leader.n_past
            self._sample(follower, idx)

    def _sample(self, slot: _Slot, idx: int) -> None:
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
        slot: _Slot,
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


EventSink = Callable[[GenerationEvent], None]
