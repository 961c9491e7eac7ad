"""The OpenAPI documents are the contract: schemathesis checks the running services against them.

`st run` (schemathesis's CLI) against the gateway's /openapi.json and those of the inference
and localdocs services,
with every check on: no 5xx, no undocumented status, content type or header, no schema-valid
request refused, no schema-violating request accepted, every response matching its schema,
405 with the right Allow for other methods, and (stateful phase) a resource readable after it is
created and gone after it is deleted. Bounded: a fixed seed, a few examples per operation,
and the hooks in schemathesis_hooks.py keep every generation at a few tokens.

Around the run: the LocalDocs state the fuzzing changes (collections, vector stores and files it
creates, the active set) is put back, so the modules after this one see the stack as it was.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMATHESIS = Path(sys.executable).with_name("st")
SEED = 20261207
# Per operation and phase; the coverage phase adds its own boundary cases on top.
MAX_EXAMPLES = 5
REQUEST_TIMEOUT_S = 60
# A generation is a few tokens (the hooks); anything slower than this is a hang, not load.
MAX_RESPONSE_TIME_S = 30
# About 2 minutes for both services on an idle 2-core machine (~1,900 cases).
RUN_TIMEOUT_S = 600


@pytest.fixture(scope="module")
def fuzz_folders(stack: Stack) -> tuple[Path, Path]:
    """Two one-file folders under the allowed root for the collections fuzzing creates."""
    folders = (stack.docs_root / "openapi-fuzz-a", stack.docs_root / "openapi-fuzz-b")
    for index, folder in enumerate(folders):
        folder.mkdir(exist_ok=True)
        (folder / "notes.txt").write_text(f"Fuzz notes {index}: llamas and alpacas.\n")
    return folders


def _ids(client: httpx.Client, path: str) -> set[str]:
    """Every id of an OpenAI list (cursor pages)."""
    ids: set[str] = set()
    params: dict[str, Any] = {"limit": 100}
    while True:
        page = client.get(path, params=params)
        page.raise_for_status()
        body = page.json()
        ids.update(item["id"] for item in body["data"])
        if not body.get("has_more"):
            return ids
        params["after"] = body["last_id"]


@pytest.fixture
def localdocs_restored(stack: Stack) -> Iterator[None]:
    """Collections, vector stores and files created by the fuzzing are deleted and the active
    set put back afterwards; those that existed before are left as they were."""
    base = stack.url("gateway")
    with httpx.Client(base_url=base, timeout=30) as client:
        before = {c["name"] for c in client.get("/v1/localdocs/collections").json()["data"]}
        stores = _ids(client, "/v1/vector_stores")
        files = _ids(client, "/v1/files")
        active = client.get("/v1/localdocs/active").json()
        # Other modules' data: the hooks keep the fuzzing from changing or deleting it.
        os.environ["FUZZ_PROTECTED_COLLECTIONS"] = ",".join(sorted(before))
        os.environ["FUZZ_PROTECTED_FILES"] = ",".join(sorted(files))
        try:
            yield
        finally:
            os.environ.pop("FUZZ_PROTECTED_COLLECTIONS", None)
            os.environ.pop("FUZZ_PROTECTED_FILES", None)
        client.put("/v1/localdocs/active", json=active).raise_for_status()
        for store_id in _ids(client, "/v1/vector_stores") - stores:
            client.delete(f"/v1/vector_stores/{store_id}").raise_for_status()
        for file_id in _ids(client, "/v1/files") - files:
            client.delete(f"/v1/files/{file_id}").raise_for_status()
        assert _ids(client, "/v1/vector_stores") == stores
        assert _ids(client, "/v1/files") == files
        for collection in client.get("/v1/localdocs/collections").json()["data"]:
            if collection["name"] not in before:
                client.delete(f"/v1/localdocs/collections/{collection['name']}")
        after = {c["name"] for c in client.get("/v1/localdocs/collections").json()["data"]}
        assert after == before, sorted(after ^ before)


def run_schemathesis(schema_url: str, folders: tuple[Path, Path], workdir: Path) -> str:
    """One bounded `st run` with every check; its report if it found anything, else ''."""
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.e2e.schemathesis_hooks",
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
        "FUZZ_FOLDER_A": str(folders[0]),
        "FUZZ_FOLDER_B": str(folders[1]),
    }
    command = [
        str(SCHEMATHESIS),
        "run",
        schema_url,
        "--checks=all",
        # ST302 takes any 404 from an operation linked to a created resource for that resource
        # missing, also a 404 naming a *body* id: attaching an unknown file_id to a vector store
        # just created is 404 param=file_id (as OpenAI answers), and failed CI on a random walk.
        # use_after_free (a deleted resource must be gone) stays on.
        "--exclude-checks=ensure_resource_availability",
        f"--max-examples={MAX_EXAMPLES}",
        f"--seed={SEED}",
        # stateful: sequences along the links schemathesis infers (create a collection, read it,
        # delete it, read it again: use_after_free, ensure_resource_availability).
        "--phases=examples,coverage,fuzzing,stateful",
        "--workers=1",
        f"--request-timeout={REQUEST_TIMEOUT_S}",
        f"--max-response-time={MAX_RESPONSE_TIME_S}",
        "--no-shrink",
        "--suppress-health-check=all",
        "--output-sanitize=false",
        "--max-failures=30",
    ]
    started = time.monotonic()
    log = workdir / "schemathesis.log"
    with log.open("w") as sink:
        try:
            code = subprocess.run(
                command,
                cwd=workdir,  # its .schemathesis/ cache and reports stay out of the repository
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                timeout=RUN_TIMEOUT_S,
            ).returncode
        except subprocess.TimeoutExpired:
            code = None
    took = time.monotonic() - started
    output = log.read_text(errors="replace")
    summary = [line.strip() for line in output.splitlines() if " generated" in line]
    print(f"schemathesis {schema_url}: rc={code}, {took:.0f}s; {summary[-1:]}")
    assert code is not None, f"not done within {RUN_TIMEOUT_S}s:\n{output[-6000:]}"
    assert "Test cases:" in output, output[-3000:]
    return "" if code == 0 else output[-12000:]


def test_gateway_answers_as_its_openapi_document_says(
    stack: Stack, fuzz_folders: tuple[Path, Path], localdocs_restored: None, tmp_path: Path
) -> None:
    failures = run_schemathesis(f"{stack.url('gateway')}/openapi.json", fuzz_folders, tmp_path)
    assert not failures, failures


@pytest.mark.local_only("the inference service is not published by the compose stack")
def test_inference_answers_as_its_openapi_document_says(
    stack: Stack, fuzz_folders: tuple[Path, Path], tmp_path: Path
) -> None:
    failures = run_schemathesis(f"{stack.url('inference')}/openapi.json", fuzz_folders, tmp_path)
    assert not failures, failures


@pytest.mark.local_only("the localdocs service is not published by the compose stack")
def test_localdocs_answers_as_its_openapi_document_says(
    stack: Stack, fuzz_folders: tuple[Path, Path], localdocs_restored: None, tmp_path: Path
) -> None:
    failures = run_schemathesis(f"{stack.url('localdocs')}/openapi.json", fuzz_folders, tmp_path)
    assert not failures, failures
