"""schemathesis hooks for test_openapi_contract.py (loaded through SCHEMATHESIS_HOOKS).

They keep fuzzing cheap and inside what a schema cannot say, without making a request valid
that was generated invalid (a negative case keeps its invalid part):
- generation asks for at most SMALL_MAX_TOKENS tokens, SMALL_N choices and prompts, and
  embeddings for SMALL_BATCH inputs, so an accepted request costs a few tokens, not the model's
  default or a 2048-input batch;
- LocalDocs paths name the two small fuzz folders the test made under the allowed root (the
  schema cannot know which folders exist there); a positive new collection gets both, and both
  are attached again before one is taken out, so that taking it out is valid;
- detokenize asks for token ids every vocabulary has;
- chat tools (positive cases): at most SMALL_N, with distinct names, no description (long
  generated ones only lengthen the prompt), a small parameters schema (a schema cannot
  say that `parameters` must itself be a valid JSON Schema of an object), and a named
  tool_choice names one of them;
- collections, vector stores and files that existed before the run (other tests' data) are
  never changed or deleted: a request naming one in its path names one that does not exist;
- a Responses request asks for at most SMALL_MAX_TOKENS output tokens;
- an Anthropic Messages request (/v1/messages) asks for at most SMALL_MAX_TOKENS tokens, and
  its tools (positive cases) are few, distinctly named, with a small input_schema, a tool
  tool_choice naming one of them, and a positive case names the default model (Anthropic's
  `model` is required; a generated name is an unknown model, 404);
- loaded models are never unloaded (other modules use them): an unload names an absent model.
"""

from __future__ import annotations

import os
from typing import Any

import httpx
import schemathesis

SMALL_MAX_TOKENS = 4
# n up to 16 is valid; 2 choices exercise the same paths at an eighth of the cost.
SMALL_N = 2
# Up to 2048 embedding inputs are valid; a few exercise the same paths.
SMALL_BATCH = 4
GENERATION_PATHS = {"/v1/chat/completions", "/v1/completions"}
PATH_BODIES = {"/v1/localdocs/collections", "/v1/localdocs/collections/{name}/paths"}
SMALL_VOCABULARY = 200


FUZZ_TOOL_PARAMETERS = {"type": "object", "properties": {"q": {"type": "string"}}}


def _valid_tools(body: dict[str, Any]) -> None:
    """Few tools, distinct names, small valid parameter schemas, a named choice among them."""
    names = []
    body["tools"] = body["tools"][:SMALL_N]
    for index, tool in enumerate(body["tools"]):
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict):
            function["name"] = f"fuzz_{index}"
            function["parameters"] = FUZZ_TOOL_PARAMETERS
            function.pop("description", None)
            names.append(function["name"])
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict) and names:
        choice["function"]["name"] = names[0]


def _valid_flat_tools(body: dict[str, Any]) -> None:
    """The Responses API's flat function tools: as _valid_tools, the name on the tool; a named
    function choice gets a tool of its name (else it is a 400 naming tool_choice.name)."""
    choice = body.get("tool_choice")
    forced = isinstance(choice, dict) and choice.get("type") == "function"
    if not isinstance(body.get("tools"), list):
        if not forced:
            return
        body["tools"] = []
    names = []
    for index, tool in enumerate(body["tools"]):
        if isinstance(tool, dict) and tool.get("type") == "function":
            tool["name"] = f"fuzz_{index}"
            tool["parameters"] = FUZZ_TOOL_PARAMETERS
            tool.pop("description", None)
            names.append(tool["name"])
    if forced and not names:
        names.append("fuzz_choice")
        body["tools"].append(
            {"type": "function", "name": names[0], "parameters": FUZZ_TOOL_PARAMETERS}
        )
    if forced:
        choice["name"] = names[0]


FUZZ_MODEL = "gemma-3-270m"
ANTHROPIC_PATHS = {"/v1/messages", "/v1/messages/count_tokens"}


def _small_message(body: dict[str, Any], positive: bool) -> None:
    """An Anthropic Messages request: a few tokens; few valid tools, a tool choice among them."""
    if _integral(body.get("max_tokens")) and body["max_tokens"] > SMALL_MAX_TOKENS:
        body["max_tokens"] = SMALL_MAX_TOKENS
    if positive and isinstance(body.get("model"), str):
        body["model"] = FUZZ_MODEL
    if not positive or not isinstance(body.get("tools"), list):
        return
    body["tools"] = body["tools"][:SMALL_N]
    names = []
    for index, tool in enumerate(body["tools"]):
        if isinstance(tool, dict):
            tool.update(name=f"fuzz_{index}", input_schema=FUZZ_TOOL_PARAMETERS)
            tool.pop("description", None)
            names.append(tool["name"])
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "tool" and names:
        choice["name"] = names[0]


def _positive(case: Any) -> bool:
    meta = case.meta
    return meta is None or meta.generation.mode.is_positive


def _fuzz_folders() -> list[str]:
    return [os.environ["FUZZ_FOLDER_A"], os.environ["FUZZ_FOLDER_B"]]


def _protected(variable: str) -> set[str]:
    return {name for name in os.environ.get(variable, "").split(",") if name}


# Path parameters naming other tests' data, and the variable listing it (test_openapi_contract).
PROTECTED_PARAMETERS = {
    "name": "FUZZ_PROTECTED_COLLECTIONS",
    "vector_store_id": "FUZZ_PROTECTED_COLLECTIONS",  # a vector store is a collection
    "file_id": "FUZZ_PROTECTED_FILES",
}


def _spare_protected(case: Any) -> None:
    """A request that would change another test's data names an absent one instead."""
    params = case.path_parameters
    if case.method.upper() == "GET" or not params:
        return
    for name, variable in PROTECTED_PARAMETERS.items():
        value = params.get(name)
        if isinstance(value, str) and value in _protected(variable):
            # Same prefix (the id patterns), another id.
            params[name] = value[:-4] + "0fff" if value[-4:] != "0fff" else value[:-4] + "1fff"


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    body = case.body
    template = case.operation.path
    params = case.path_parameters
    if (
        template.startswith("/v1/localdocs/collections/{name}")
        and case.method.upper() != "GET"
        and params
        and params.get("name") in _protected("FUZZ_PROTECTED_COLLECTIONS")
    ):
        params["name"] = f"fuzz-absent-{params['name']}"[:64]
    elif template.startswith(("/v1/vector_stores/", "/v1/files/")):
        _spare_protected(case)
    elif template == "/v1/models/{name}/unload" and params and params.get("name"):
        params["name"] = f"fuzz-absent-{params['name']}"
    if template in ANTHROPIC_PATHS and isinstance(body, dict):
        _small_message(body, _positive(case))
    if template == "/v1/responses" and isinstance(body, dict):
        value = body.get("max_output_tokens")
        if value is None or _integral(value) and value > SMALL_MAX_TOKENS:
            body["max_output_tokens"] = SMALL_MAX_TOKENS
        if _positive(case):
            _valid_flat_tools(body)
    elif template in GENERATION_PATHS and isinstance(body, dict):
        for name in ("max_tokens", "max_completion_tokens"):
            value = body.get(name)
            if _integral(value) and value > SMALL_MAX_TOKENS:
                body[name] = SMALL_MAX_TOKENS
        if body.get("max_tokens") is None and body.get("max_completion_tokens") is None:
            body["max_tokens"] = SMALL_MAX_TOKENS
        if _integral(body.get("n")) and body["n"] > SMALL_N:
            body["n"] = SMALL_N
        if isinstance(body.get("prompt"), list) and _positive(case):
            body["prompt"] = body["prompt"][:SMALL_N]
        if isinstance(body.get("tools"), list) and _positive(case):
            _valid_tools(body)
    elif template == "/v1/embeddings" and isinstance(body, dict):
        if isinstance(body.get("input"), list) and _positive(case):
            body["input"] = body["input"][:SMALL_BATCH]
    elif template in PATH_BODIES and isinstance(body, dict) and isinstance(body.get("paths"), list):
        folders = _fuzz_folders()
        if _positive(case):
            body["paths"] = (
                folders
                if case.method.upper() == "POST" and "{name}" not in template
                else folders[:1]
            )
        else:
            body["paths"] = [
                folders[i % 2] if isinstance(p, str) and p else p
                for i, p in enumerate(body["paths"])
            ]
    elif template == "/v1/localdocs/collections/{name}/paths" and case.method.upper() == "DELETE":
        query = case.query or {}
        if _positive(case) and "path" in query:
            # Taking a folder out is valid only while the collection holds it and another one:
            # state no schema can say. Attach both first (the collection may not exist: 404).
            query["path"] = _fuzz_folders()[:1]
            url = case.operation.schema.get_base_url().rstrip("/") + case.formatted_path
            httpx.post(url, json={"paths": _fuzz_folders()}, timeout=60)
    elif (
        template == "/detokenize"
        and isinstance(body, dict)
        and isinstance(body.get("tokens"), list)
    ):
        body["tokens"] = [_small_token(t) for t in body["tokens"]]


def _integral(value: Any) -> bool:
    """An integer as JSON Schema has it (4 and 4.0; not true)."""
    return type(value) in (int, float) and float(value).is_integer()


def _small_token(value: Any) -> Any:
    """A token id any vocabulary has, for a valid one (integral numbers included)."""
    if _integral(value) and value >= 0:
        return int(value) % SMALL_VOCABULARY
    return value
