"""`make bench`: run every benchmark script in this folder, one after another.

Each benchmark measures its own baseline in the same run and prints ratios against it; each
writes its table as JSON under bench/results/.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

logger = logging.getLogger("bench")

BENCH_DIR = Path(__file__).resolve().parent
ORDER = [
    "bench_inference.py",
    "bench_prompt_cache.py",
    "bench_gateway.py",
    "bench_localdocs.py",
    "bench_retrieval.py",
    "bench_openai_retrieval.py",
]


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    failures = []
    for name in ORDER:
        script = BENCH_DIR / name
        if not script.exists():
            logger.warning("skipping %s: not present", name)
            continue
        logger.info("== %s", name)
        completed = subprocess.run([sys.executable, str(script)], cwd=BENCH_DIR.parent)
        if completed.returncode != 0:
            failures.append(name)
    if failures:
        logger.error("failed: %s", ", ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
