"""Where each benchmark leaves its table: bench/results/<name>.json (git-ignored)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def save_results(result: Any, name: str | None = None, path: Path | None = None) -> Path:
    """Write `result` as indented JSON to `path`, or to bench/results/<name>.json; print where."""
    target = path if path is not None else RESULTS_DIR / f"{name}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {target}")
    return target
