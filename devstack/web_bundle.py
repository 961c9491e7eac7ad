"""`make setup`'s web page step: npm ci of the pinned toolchain, then the bundle into dist/.

The bundle (services/gateway/web/dist, git-ignored) is what the gateway serves at `/`. It is
keyed by the hash of everything that goes into it (package.json, the lock, build.mjs, src/): an
unchanged checkout is a no-op, and a fresh clone on the same machine copies the bundle from the
cache instead of running npm. Standard library only, like the rest of setup.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
from pathlib import Path

from devstack import paths

logger = logging.getLogger(__name__)

STAMP = ".llmserver-fingerprint"
INPUTS = ["package.json", "package-lock.json", "build.mjs"]


def fingerprint(source: Path) -> str:
    digest = hashlib.sha256()
    files = [source / name for name in INPUTS]
    files += sorted(p for p in (source / "src").rglob("*") if p.is_file())
    for path in files:
        digest.update(str(path.relative_to(source)).encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _lock_hash(source: Path) -> str:
    return hashlib.sha256((source / "package-lock.json").read_bytes()).hexdigest()


def _run(cmd: list[str], cwd: Path) -> None:
    logger.info("$ %s", " ".join(cmd))
    subprocess.run(cmd, cwd=cwd, check=True)


def _npm_ci(source: Path) -> None:
    """node_modules exactly as the lock says, unless it already is (a stamp holds the hash)."""
    stamp = source / "node_modules" / STAMP
    lock = _lock_hash(source)
    if stamp.is_file() and stamp.read_text() == lock:
        return
    npm_cache = paths.web_bundle_cache_dir() / "npm"
    # --ignore-scripts: esbuild finds its binary in its platform package without a postinstall.
    _run(
        [
            "npm",
            "ci",
            "--ignore-scripts",
            "--no-audit",
            "--no-fund",
            "--prefer-offline",
            "--cache",
            str(npm_cache),
        ],
        source,
    )
    stamp.write_text(lock)


def _copy(source: Path, target: Path) -> None:
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)


def ensure_web_bundle(source: Path | None = None) -> None:
    source = source or paths.web_source_dir()
    dist = source / "dist"
    wanted = fingerprint(source)
    if (dist / STAMP).is_file() and (dist / STAMP).read_text() == wanted:
        return
    cached = paths.web_bundle_cache_dir() / f"bundle-{wanted[:16]}"
    if not (cached / STAMP).is_file():
        if shutil.which("npm") is None:
            raise SystemExit("npm is missing: install Debian's nodejs and npm packages")
        _npm_ci(source)
        _run(["node", "build.mjs"], source)
        (dist / STAMP).write_text(wanted)
        _copy(dist, cached)
        return
    _copy(cached, dist)
