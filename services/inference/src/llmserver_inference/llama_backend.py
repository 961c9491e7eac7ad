"""llama.cpp's backend: its log routed to logging, models loaded, contexts and tokens."""

from __future__ import annotations

import ctypes
import logging
import threading
from typing import Any

import llama_cpp
from llama_cpp._internals import LlamaModel

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
