"""What a scan finds on disk under a collection's paths, and what it may not conclude.

A folder that is missing, unreadable, or empty where files were indexed before (a drive not yet
mounted, a network share down, a mistyped DOCUMENTS_DIR) is reported as unavailable, never taken
for an empty one: the files indexed under it stay, and only files gone from a folder that can
be read are removed.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from llmserver_common import docstore

logger = logging.getLogger(__name__)


@dataclass
class Survey:
    """Files found (real path -> stat), and the paths that could not be looked at, with why."""

    found: dict[str, os.stat_result] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    over_limit: int = 0

    def hides(self, path: str) -> bool:
        """Whether `path` lies under a folder this survey could not look into."""
        return any(is_within(path, folder) for folder in self.unavailable)


def is_within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _reason(exc: OSError) -> str:
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return "missing"
    return exc.strerror or exc.__class__.__name__


def _is_hidden(path: str, root: str) -> bool:
    relative = os.path.relpath(path, root)
    return relative != "." and any(part.startswith(".") for part in Path(relative).parts)


class Surveyor:
    """Walks a collection's paths (all of them, or only some changed paths under them)."""

    def __init__(self, allowed_roots: Sequence[Path], limit: int) -> None:
        self.allowed_roots = allowed_roots
        self.limit = limit

    def survey(
        self,
        roots: Sequence[str],
        scopes: Iterable[str] | None,
        *,
        indexed_under: Callable[[str], int],
    ) -> Survey:
        """Walk `scopes` (None: every root). A root's own state is checked first: a scope under
        an unavailable root is not walked. `indexed_under(folder)` counts the files indexed
        under a folder, so an empty root that held files is not taken for an emptied one."""
        survey = Survey()
        available_roots: list[str] = []
        for root in roots:
            problem = self._root_problem(root, indexed_under)
            if problem is None:
                available_roots.append(root)
            else:
                survey.unavailable[root] = problem
                logger.warning("collection path %s is unavailable: %s", root, problem)
        if scopes is None:
            walk = list(available_roots)
        else:
            walk = []
            for scope in scopes:
                owners = [root for root in available_roots if is_within(scope, root)]
                if owners and not any(_is_hidden(scope, root) for root in owners):
                    walk.append(scope)
        for scope in walk:
            for path, stat in self._files_under(scope, survey):
                if path in survey.found:
                    continue
                if len(survey.found) >= self.limit:
                    survey.over_limit += 1
                    continue
                survey.found[path] = stat
        return survey

    def _root_problem(self, root: str, indexed_under: Callable[[str], int]) -> str | None:
        try:
            os.stat(root)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                return "missing: the folder or file does not exist (not mounted?)"
            return f"cannot be read: {_reason(exc)}"
        try:
            docstore.resolve_allowed_path(root, self.allowed_roots)
        except docstore.PathNotAllowed as exc:
            return f"not allowed: {exc}"
        if not os.path.isdir(root):
            return None if os.path.isfile(root) else "neither a folder nor a file"
        try:
            with os.scandir(root) as entries:
                empty = next(iter(entries), None) is None
        except OSError as exc:
            return f"cannot be read: {_reason(exc)}"
        known = indexed_under(root) if empty else 0
        if known:
            return (
                f"empty: the folder has no files where {known} were indexed (not mounted?); "
                "they are kept until it has files again or the path is removed"
            )
        return None

    def _files_under(self, scope: str, survey: Survey) -> Iterable[tuple[str, os.stat_result]]:
        """Regular files at or under `scope` that resolve inside the allowed roots; hidden
        entries skipped; links resolved and re-checked. Unreadable folders go in the survey."""
        try:
            is_dir = os.path.isdir(scope) and not os.path.islink(scope)
            os.stat(scope)
        except FileNotFoundError:
            return  # gone: what was indexed under it is removed by the caller
        except OSError as exc:
            if exc.errno == errno.ENOTDIR:
                return
            survey.unavailable[scope] = f"cannot be read: {_reason(exc)}"
            return
        if not is_dir:
            real = self._allowed(scope)
            if real is not None and real.is_file():
                yield str(real), real.stat()
            return

        def unreadable(exc: OSError) -> None:
            folder = exc.filename or scope
            survey.unavailable[str(folder)] = f"cannot be read: {_reason(exc)}"
            logger.warning("cannot read %s: %s", folder, _reason(exc))

        for folder, dirs, files in os.walk(scope, onerror=unreadable, followlinks=False):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for file_name in sorted(files):
                if file_name.startswith("."):
                    continue
                real = self._allowed(os.path.join(folder, file_name))
                if real is None:
                    continue
                try:
                    if real.is_file():
                        yield str(real), real.stat()
                except OSError as exc:
                    logger.info("skipping %s: %s", real, _reason(exc))

    def _allowed(self, path: str) -> Path | None:
        try:
            return docstore.resolve_allowed_path(path, self.allowed_roots)
        except docstore.PathNotAllowed as exc:
            logger.info("skipping %s: %s", os.path.basename(path), exc)
            return None
