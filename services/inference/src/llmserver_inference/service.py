"""The logic behind the routes: request -> engine work -> OpenAI response (or SSE stream)."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import logging
import struct
import time
import uuid
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from llmserver_common.errors import APIError, context_length_exceeded, invalid_request
from llmserver_inference.catalog import ModelEntry
from llmserver_inference.chat_shaping import ChatShaping
from llmserver_inference.generation import (
    EngineClosedError,
    GenerationEvent,
    GenerationRequest,
    QueueFullError,
)
from llmserver_inference.llama_backend import tokenize
from llmserver_inference.metrics import InferenceMetrics
from llmserver_inference.models import LoadedChatModel, LoadedEmbeddingModel, ModelManager
from llmserver_inference.reasoning import ReasoningMarkers
from llmserver_inference.request_params import (
    messages_for_template,
    require_encodable,
    sampling_params,
)
from llmserver_inference.responses import ResponseMeta, Run, collect, sse, stream_events
from llmserver_inference.sampling import GrammarError, SamplingParams, build_sampler
from llmserver_inference.schemas import (
    ChatCompletionRequest,
    CompletionRequest,
    DetokenizeRequest,
    EmbeddingRequest,
    ModelCard,
    ModelList,
    TokenizeRequest,
)
from llmserver_inference.settings import InferenceSettings
from llmserver_inference.token_limits import max_tokens_for, token_limits
from llmserver_inference.tool_calls import ToolSetup, forced_call_grammar

logger = logging.getLogger(__name__)

_CREATED = int(time.time())


@dataclass
class _Prompt:
    tokens: list[int]
    text: str


class InferenceService:
    def __init__(self, settings: InferenceSettings, models: ModelManager) -> None:
        self.settings = settings
        self.models = models
        self.metrics = InferenceMetrics()
        # False until the start-up models are loaded (/health answers 503 meanwhile).
        self.ready = False

    # -- models -----------------------------------------------------------------------------

    def _card(self, entry: ModelEntry) -> ModelCard:
        context_length = self.models.context_length_of(entry)
        limits = None
        if entry.kind == "chat":
            limits = token_limits(entry, context_length, self.settings)
        return ModelCard(
            id=entry.name,
            created=_CREATED,
            kind=entry.kind,
            filename=entry.filename,
            aliases=list(entry.aliases),
            context_length=context_length,
            loaded=self.models.is_loaded(entry),
            default_max_tokens=limits.default if limits else None,
            max_tokens_ceiling=limits.ceiling if limits else None,
        )

    def list_models(self) -> ModelList:
        return ModelList(data=[self._card(e) for e in self.models.catalog.available()])

    def get_model(self, name: str) -> ModelCard:
        entry = self.models.catalog.resolve(name)
        if entry is None:
            from llmserver_common.errors import model_not_found

            raise model_not_found(name, self.models.catalog.installed_names())
        return self._card(entry)

    # -- tokenizer --------------------------------------------------------------------------

    async def _any_model(self, name: str | None) -> LoadedChatModel | LoadedEmbeddingModel:
        wanted = name or self.settings.default_chat_model
        entry = self.models.catalog.resolve(wanted)
        if entry is None:
            raise _not_found(self.models, wanted)
        return await self.models.get(entry)

    async def tokenize(self, body: TokenizeRequest) -> list[int]:
        require_encodable(body.content, "content")
        loaded = await self._any_model(body.model)
        return tokenize(loaded.engine.vocab, body.content, body.add_special, True)

    async def detokenize(self, body: DetokenizeRequest) -> str:
        loaded = await self._any_model(body.model)
        vocab = loaded.engine.vocab
        import llama_cpp

        n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
        bad = [t for t in body.tokens if t < 0 or t >= n_vocab]
        if bad:
            raise invalid_request(
                f"Token id {bad[0]} is out of range (vocabulary size {n_vocab}).", param="tokens"
            )
        return loaded.engine.model.detokenize(body.tokens, special=False).decode(
            "utf-8", errors="replace"
        )

    # -- embeddings -------------------------------------------------------------------------

    async def embeddings(self, body: EmbeddingRequest) -> dict[str, Any]:
        # The schema refuses empty input, empty strings, token ids and `dimensions`.
        inputs = body.input
        texts = [inputs] if isinstance(inputs, str) else list(inputs)
        for text in texts:
            require_encodable(text, "input")
        entry = self.models.resolve(body.model, self.settings.default_embedding_model, "embedding")
        loaded = await self.models.get(entry)
        assert isinstance(loaded, LoadedEmbeddingModel)
        prefix = ""
        if body.input_type == "query":
            prefix = entry.query_prefix
        elif body.input_type == "document":
            prefix = entry.document_prefix
        engine = loaded.engine
        limit = engine.max_input_tokens
        if entry.max_input_tokens is not None:
            limit = min(limit, entry.max_input_tokens)
        tokenized = [
            fit_embedding_input(
                engine.tokenize(prefix + text),
                limit,
                truncate=entry.max_input_tokens is not None,
                end_token=engine.end_token,
            )
            for text in texts
        ]
        try:
            vectors = await asyncio.to_thread(engine.embed, tokenized)
        except RuntimeError as exc:
            logger.error("embedding failed: %s", exc)
            raise APIError(500, "The embedding model failed.", type="internal_error") from None
        data = []
        for i, vec in enumerate(vectors):
            value: Any = vec
            if body.encoding_format == "base64":
                value = base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode("ascii")
            data.append({"object": "embedding", "index": i, "embedding": value})
        n_tokens = sum(len(t) for t in tokenized)
        self.metrics.count_embeddings(body.input_type, len(texts))
        return {
            "object": "list",
            "data": data,
            "model": entry.name,
            "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens},
        }

    # -- generation -------------------------------------------------------------------------

    async def chat_completion(self, body: ChatCompletionRequest, http: Request) -> Any:
        entry = self.models.resolve(body.model, self.settings.default_chat_model, "chat")
        # Tools are checked (and their grammar built) before a model is loaded for them.
        tools = ToolSetup.from_request(body.tools, body.tool_choice, body.parallel_tool_calls)
        tool_grammar = None
        if tools.forced:
            try:
                tool_grammar = forced_call_grammar(tools)
            except GrammarError as exc:
                raise invalid_request(str(exc), param="tools") from None
        loaded = await self.models.get(entry)
        assert isinstance(loaded, LoadedChatModel)
        limits = token_limits(entry, loaded.engine.n_ctx_seq, self.settings)
        max_tokens_for(body, limits)
        templater = loaded.templater
        native_tools = templater.supports_tools
        messages = messages_for_template(body, entry, tools, native_tools=native_tools)
        prompt = templater.render(messages, tools.tools if native_tools and tools.active else None)
        tokens = tokenize(
            loaded.engine.vocab, prompt.text, add_special=not prompt.has_bos, parse_special=True
        )
        # (top_logprobs without logprobs: true is refused by the schema)
        top = (body.top_logprobs or 0) if body.logprobs else None
        params = sampling_params(body, entry, limits, logprobs=top, tool_grammar=tool_grammar)
        run = self._start(
            loaded,
            [_Prompt(tokens, prompt.text)],
            body.n or 1,
            params,
            "messages",
            bool(body.stream),
            grammar_param="tools" if tool_grammar else "response_format",
        )
        markers = entry.reasoning_markers
        reasoning = ReasoningMarkers(*markers) if markers else None
        meta = ResponseMeta(
            id=f"chatcmpl-{uuid.uuid4().hex}",
            model=entry.name,
            chat=True,
            include_usage=bool(body.stream_options and body.stream_options.include_usage),
            echo=[],
            shaping=ChatShaping(
                tools=tools,
                reasoning=reasoning,
                # A template that opens the reasoning itself (Qwen3, DeepSeek-R1).
                reasoning_open=reasoning is not None
                and prompt.text.rstrip().endswith(reasoning.start),
            ),
        )
        if body.stream:
            return sse(stream_events(run, meta, http))
        return await collect(run, meta, http)

    async def completion(self, body: CompletionRequest, http: Request) -> Any:
        # The schema refuses suffix, best_of above 1, echo with logprobs and token-id prompts.
        raw = body.prompt
        prompts = [raw] if isinstance(raw, str) else list(raw)
        for text in prompts:
            require_encodable(text, "prompt")
        entry = self.models.resolve(body.model, self.settings.default_chat_model, "chat")
        loaded = await self.models.get(entry)
        assert isinstance(loaded, LoadedChatModel)
        limits = token_limits(entry, loaded.engine.n_ctx_seq, self.settings)
        max_tokens_for(body, limits)
        vocab = loaded.engine.vocab
        tokenized = [_Prompt(tokenize(vocab, p, True, True), p) for p in prompts]
        params = sampling_params(body, entry, limits, logprobs=body.logprobs)
        n = body.n or 1
        run = self._start(loaded, tokenized, n, params, "prompt", bool(body.stream))
        meta = ResponseMeta(
            id=f"cmpl-{uuid.uuid4().hex}",
            model=entry.name,
            chat=False,
            include_usage=bool(body.stream_options and body.stream_options.include_usage),
            echo=[p.text for p in tokenized for _ in range(n)] if body.echo else [],
        )
        if body.stream:
            return sse(stream_events(run, meta, http))
        return await collect(run, meta, http)

    def _start(
        self,
        loaded: LoadedChatModel,
        prompts: list[_Prompt],
        n: int,
        params: SamplingParams,
        prompt_param: str,
        stream: bool,
        grammar_param: str = "response_format",
    ) -> Run:
        engine = loaded.engine
        for prompt in prompts:
            # One token of room is needed to generate anything at all.
            if len(prompt.tokens) >= engine.n_ctx_seq:
                err = context_length_exceeded(len(prompt.tokens), engine.n_ctx_seq)
                err.param = prompt_param
                raise err
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[GenerationEvent] = asyncio.Queue()
        requests: list[GenerationRequest] = []
        try:
            for p_index, prompt in enumerate(prompts):
                for i in range(n):
                    choice_params = params
                    if params.seed is not None and i > 0:
                        # Same seed -> same output, but the n choices of one request differ.
                        choice_params = dataclasses.replace(params, seed=params.seed + i)
                    sampler = build_sampler(choice_params, engine.vocab, engine.n_vocab)
                    requests.append(
                        GenerationRequest(
                            p_index * n + i,
                            prompt.tokens,
                            choice_params,
                            sampler,
                            loop,
                            queue,
                            stream=stream,
                        )
                    )
            engine.submit(requests)
        except GrammarError as exc:
            _free_samplers(requests)
            raise invalid_request(str(exc), param=grammar_param) from None
        except QueueFullError:
            _free_samplers(requests)
            raise APIError(
                429,
                "Too many requests are waiting for this model; retry shortly.",
                code="queue_full",
                headers={"Retry-After": str(self.settings.retry_after_s)},
            ) from None
        except EngineClosedError:
            _free_samplers(requests)
            raise APIError(
                503,
                "The model is being unloaded; retry shortly.",
                headers={"Retry-After": str(self.settings.retry_after_s)},
            ) from None
        loaded.last_used = time.monotonic()
        return Run(
            engine=engine,
            requests=requests,
            queue=queue,
            prompt_tokens=sum(len(p.tokens) for p in prompts),
            logprobs=params.logprobs is not None,
        )


def _not_found(models: ModelManager, name: str) -> APIError:
    from llmserver_common.errors import model_not_found

    return model_not_found(name, models.catalog.installed_names())


def _free_samplers(requests: list[GenerationRequest]) -> None:
    for request in requests:
        request.sampler.free()
    requests.clear()


def fit_embedding_input(
    tokens: list[int], limit: int, *, truncate: bool, end_token: int | None
) -> list[int]:
    """Inputs longer than `limit` are cut (keeping the closing [SEP], as sentence-transformers
    does) when the model has a max_input_tokens, else rejected with context_length_exceeded."""
    if len(tokens) <= limit:
        return tokens
    if not truncate:
        raise APIError(
            400,
            f"This model's maximum context length is {limit} tokens, "
            f"but an input has {len(tokens)} tokens.",
            param="input",
            code="context_length_exceeded",
        )
    if end_token is not None and tokens and tokens[-1] == end_token:
        return tokens[: limit - 1] + [end_token]
    return tokens[:limit]
