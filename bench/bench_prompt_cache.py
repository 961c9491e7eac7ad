"""Prompt prefix cache benchmark (issue #13 item 7): time to first token of turn 5 of a
conversation of about 2,000 tokens, with the prompt cache and without it, and llama.cpp's
llama-server with cache_prompt as a reference, all in the same run.

    python bench/bench_prompt_cache.py

Each server gets the same conversations: turns 1 to 4 (the assistant's replies are fixed text,
so every server sees the same prompts) warm whatever cache it keeps, then turn 5 is timed with
max_tokens 1 (prompt evaluation and the first token). Best of REPEATS conversations, each with
words of its own so nothing is reused from the one before. Writes bench/results/prompt_cache.json.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from typing import Any

import httpx
from bench_inference import (
    CHAT,
    CHAT_FILE,
    GPU_LAYERS,
    LLAMA_SERVER,
    MODELS_DIR,
    THREADS,
    free_port,
    stop_service,
    wait_healthy,
)
from bench_results import save_results

TURNS = 5
REPEATS = 3
SLOTS = 4
# Per slot: the 2,000-token conversation and its reply fit.
CONTEXT = 4096
USER_WORDS = 335  # about 2,000 prompt tokens at turn 5 with Gemma 3's tokenizer
_WORDS = (
    "river harbour lantern engine meadow copper signal orchard canyon ledger violet thunder "
    "marble compass glacier quarry whistle saddle beacon timber falcon velvet anchor prism "
    "granite ember willow cobalt tundra citadel mosaic nebula pepper saffron cedar garnet"
).split()


def conversation(seed: int) -> list[list[dict[str, str]]]:
    """The message lists of turns 1..TURNS (each ends with the user's new message)."""
    rng = random.Random(seed)
    messages: list[dict[str, str]] = []
    turns = []
    for turn in range(1, TURNS + 1):
        words = " ".join(rng.choice(_WORDS) for _ in range(USER_WORDS))
        messages.append(
            {"role": "user", "content": f"Note {seed}-{turn}: {words}. Summarise it briefly."}
        )
        turns.append(list(messages))
        reply = " ".join(rng.choice(_WORDS) for _ in range(30))
        messages.append({"role": "assistant", "content": f"A summary of note {turn}: {reply}."})
    return turns


def ask(http: httpx.Client, messages: list[dict[str, str]]) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    answer = http.post(
        "/v1/chat/completions",
        json={
            "model": CHAT,
            "messages": messages,
            "max_tokens": 1,
            "temperature": 0,
            "cache_prompt": True,  # llama-server's switch; ignored by the service
        },
    )
    elapsed = time.perf_counter() - started
    answer.raise_for_status()
    return elapsed, answer.json()


def measure(url: str, warm_up: bool = True) -> dict[str, Any]:
    """Best turn-5 time over REPEATS conversations, and what the server said of the prompt.

    Without a prompt cache turns 1 to 4 leave nothing turn 5 could use: warm_up False skips
    them (the machine is shared and slow; the baseline is the same either way)."""
    best: dict[str, Any] | None = None
    with httpx.Client(base_url=url, timeout=600) as http:
        for repeat in range(REPEATS):
            turns = conversation(seed=1000 * repeat + os.getpid() % 1000)
            for messages in turns[:-1] if warm_up else []:
                ask(http, messages)
            seconds, body = ask(http, turns[-1])
            usage = body.get("usage", {})
            run = {
                "ttft_s": round(seconds, 4),
                "prompt_tokens": usage.get("prompt_tokens"),
                "cached_tokens": (usage.get("prompt_tokens_details") or {}).get("cached_tokens"),
                # llama-server: how many prompt tokens it evaluated for this turn.
                "prompt_evaluated": (body.get("timings") or {}).get("prompt_n"),
                "first_token": body["choices"][0]["message"].get("content"),
            }
            if best is None or run["ttft_s"] < best["ttft_s"]:
                best = run
    assert best is not None
    return best


def start_service(prompt_cache: bool) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "INFERENCE_PORT": str(port),
        "INFERENCE_HOST": "127.0.0.1",
        "INFERENCE_MODELS_DIR": str(MODELS_DIR),
        "INFERENCE_THREADS": str(THREADS),
        "INFERENCE_N_GPU_LAYERS": str(GPU_LAYERS),
        "INFERENCE_SLOTS": str(SLOTS),
        "INFERENCE_CONTEXT_LENGTH": str(CONTEXT),
        "INFERENCE_PRELOAD_DEFAULTS": "false",
        "INFERENCE_PRELOAD": CHAT,
        "INFERENCE_PROMPT_CACHE": "true" if prompt_cache else "false",
        "INFERENCE_LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmserver_inference"], env=env, start_new_session=True
    )
    return wait_healthy(proc, port, "the inference service"), f"http://127.0.0.1:{port}"


def start_llama_server() -> tuple[subprocess.Popen[bytes], str]:
    """Same model, threads, slots and per-slot context; --swa-full as the service keeps the
    whole cache of Gemma 3's sliding-window layers when its prompt cache is on."""
    port = free_port()
    proc = subprocess.Popen(
        [
            str(LLAMA_SERVER),
            *("-m", str(MODELS_DIR / CHAT_FILE), "-t", str(THREADS), "-tb", str(THREADS)),
            *("-np", str(SLOTS), "-c", str(SLOTS * CONTEXT), "--swa-full"),
            *("-ngl", str(999 if GPU_LAYERS < 0 else GPU_LAYERS)),
            *("--host", "127.0.0.1", "--port", str(port), "--no-webui"),
        ],
        env={**os.environ, "LD_LIBRARY_PATH": str(LLAMA_SERVER.parent)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    return wait_healthy(proc, port, "llama-server"), f"http://127.0.0.1:{port}"


def run(start: Any, *args: Any, warm_up: bool = True) -> dict[str, Any]:
    proc, url = start(*args)
    try:
        return measure(url, warm_up)
    finally:
        stop_service(proc)


def main() -> None:
    if not (MODELS_DIR / CHAT_FILE).exists():
        raise SystemExit(f"the default chat model {CHAT_FILE} is not in {MODELS_DIR}")
    with_cache = run(start_service, True)
    without_cache = run(start_service, False, warm_up=False)
    reference: dict[str, Any] | str
    if LLAMA_SERVER.exists():
        reference = run(start_llama_server)
    else:
        reference = f"skipped: {LLAMA_SERVER} is absent (make llama-server)"
        print(f"llama-server reference {reference}")

    rows = [
        ("turn-5 TTFT, prompt cache off (baseline)", without_cache["ttft_s"], 1.0),
        (
            "turn-5 TTFT, prompt cache on",
            with_cache["ttft_s"],
            without_cache["ttft_s"] / with_cache["ttft_s"],
        ),
    ]
    if isinstance(reference, dict):
        rows.append(
            (
                "turn-5 TTFT, llama-server cache_prompt",
                reference["ttft_s"],
                without_cache["ttft_s"] / reference["ttft_s"],
            )
        )
    print(f"{'measure':<42}  {'seconds':>8}  {'speed-up vs off':>15}")
    for name, seconds, speedup in rows:
        print(f"{name:<42}  {seconds:>8.3f}  {speedup:>15.2f}")
    print(
        f"turn 5: {without_cache['prompt_tokens']} prompt tokens; cached with the cache on: "
        f"{with_cache['cached_tokens']}; first token alike on and off: "
        f"{with_cache['first_token'] == without_cache['first_token']}"
    )
    if isinstance(reference, dict):
        print(
            f"service on vs llama-server: {reference['ttft_s'] / with_cache['ttft_s']:.2f}x "
            f"(llama-server evaluated {reference['prompt_evaluated']} of "
            f"{reference['prompt_tokens']} prompt tokens)"
        )
    save_results(
        {
            "turns": TURNS,
            "repeats": REPEATS,
            "slots": SLOTS,
            "threads": THREADS,
            "gpu_layers": GPU_LAYERS,
            "prompt_cache_on": with_cache,
            "prompt_cache_off": without_cache,
            "speedup": round(without_cache["ttft_s"] / with_cache["ttft_s"], 2),
            "llama_server": reference,
        },
        name="prompt_cache",
    )


if __name__ == "__main__":
    main()
