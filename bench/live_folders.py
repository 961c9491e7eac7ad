"""Live folders in the LocalDocs benchmark: seconds from a file's write to its first search hit.

Measured: a small text file written into a watched folder (the folder watcher notices it).
Baseline, in the same run: the same kind of file added to the collection through the API
(`POST .../paths`), the explicit way with no watcher involved. Ratio = watched / API; the
watcher's debounce (0.5 s) is most of the difference.
"""

from __future__ import annotations

import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import httpx


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]


def _until_found(api: httpx.Client, name: str, word: str, timeout_s: float) -> float:
    """Seconds until `word` is in a search hit of the collection (polled every 50 ms)."""
    started = time.perf_counter()
    deadline = started + timeout_s
    while time.perf_counter() < deadline:
        hits = api.post(
            "/v1/localdocs/search", json={"query": word, "collections": [name], "k": 3}
        ).json()["data"]
        if any(word in hit["text"] for hit in hits):
            return time.perf_counter() - started
        time.sleep(0.05)
    raise TimeoutError(f"'{word}' not searchable after {timeout_s} s")


def _note(word: str) -> str:
    return f"Today's note mentions the code word {word} once.\n"


def _summary(seconds: list[float]) -> dict[str, float]:
    return {"p50": statistics.median(seconds), "p95": _percentile(seconds, 0.95)}


def bench_live_folder(api: httpx.Client, docs_root: Path, files: int) -> dict[str, Any]:
    name = f"bench-live-{uuid.uuid4().hex[:8]}"
    watched = docs_root / name
    elsewhere = docs_root / f"{name}-added"
    watched.mkdir(parents=True)
    elsewhere.mkdir(parents=True)
    (watched / "seed.txt").write_text("A folder the benchmark writes notes into.\n")
    api.post(
        "/v1/localdocs/collections", json={"name": name, "paths": [str(watched)]}
    ).raise_for_status()
    deadline = time.monotonic() + 300
    while api.get(f"/v1/localdocs/collections/{name}").json()["state"] != "ready":
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name} not ready")
        time.sleep(0.1)

    through_watcher: list[float] = []
    through_api: list[float] = []
    try:
        for number in range(files):
            word = "zq" + uuid.uuid4().hex[:10]
            written = time.perf_counter()
            (watched / f"note-{number:03d}.txt").write_text(_note(word))
            _until_found(api, name, word, timeout_s=120)
            through_watcher.append(time.perf_counter() - written)

            word = "zq" + uuid.uuid4().hex[:10]
            path = elsewhere / f"note-{number:03d}.txt"
            path.write_text(_note(word))
            added = time.perf_counter()
            api.post(
                f"/v1/localdocs/collections/{name}/paths", json={"paths": [str(path)]}
            ).raise_for_status()
            _until_found(api, name, word, timeout_s=120)
            through_api.append(time.perf_counter() - added)
    finally:
        api.delete(f"/v1/localdocs/collections/{name}")
    watcher, baseline = _summary(through_watcher), _summary(through_api)
    return {
        "files": files,
        "write_to_hit_s": watcher,
        "api_add_to_hit_s": baseline,
        "ratio_p50": watcher["p50"] / baseline["p50"],
    }
