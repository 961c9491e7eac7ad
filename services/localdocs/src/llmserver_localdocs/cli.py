"""`llmserver-localdocs`: manage LocalDocs collections over the HTTP API (the gateway by default).

llmserver-localdocs create manuals /srv/docs/manuals     # and watch it index
llmserver-localdocs list
llmserver-localdocs add-path manuals /srv/docs/faq       # remove-path takes one out again
llmserver-localdocs search "how do I reset it" -c manuals -k 5
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

DEFAULT_URL = "http://127.0.0.1:4891"


class CLIError(Exception):
    """A failure to show the user as one line (the API's own message where there is one)."""


def _request(client: httpx.Client, method: str, path: str, **kwargs: Any) -> Any:
    try:
        response = client.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        raise CLIError(f"cannot reach {client.base_url}: {exc.__class__.__name__}") from exc
    if response.status_code >= 400:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text[:200]
        raise CLIError(f"{response.status_code}: {message}")
    return response.json()


def watch(
    client: httpx.Client, console: Console, name: str, poll_s: float, timeout_s: float
) -> int:
    """Show a progress bar until the collection is no longer indexing; 0 when ready."""
    deadline = time.monotonic() + timeout_s
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(name, total=None, detail="scanning")
        while True:
            state = _request(client, "GET", f"/v1/localdocs/collections/{name}")
            done = state["files_indexed"] + state["files_failed"]
            progress.update(
                task,
                total=state["files_total"] or None,
                completed=done,
                detail=f"{state['chunks']} chunks, {state['files_failed']} failed",
            )
            if state["state"] != "indexing":
                break
            if time.monotonic() > deadline:
                raise CLIError(f"still indexing after {timeout_s:.0f}s")
            time.sleep(poll_s)
    if state["files_failed"]:
        files = _request(client, "GET", f"/v1/localdocs/collections/{name}/files")["data"]
        for entry in files:
            if entry["state"] == "failed":
                console.print(f"[yellow]failed[/] {entry['path']}: {entry['error']}")
    _warn_unavailable(console, state)
    console.print(f"{name}: {state['state']}")
    return 0 if state["state"] == "ready" else 1


def _warn_unavailable(console: Console, state: dict[str, Any]) -> None:
    for entry in state.get("unavailable_paths") or []:
        console.print(
            f"[yellow]unavailable[/] {entry['path']}: {entry['reason']} (since {entry['since']}); "
            "its files stay searchable",
            highlight=False,
        )


def _paths_column(entry: dict[str, Any]) -> str:
    unavailable = {u["path"] for u in entry.get("unavailable_paths") or []}
    return "\n".join(
        f"{path} (unavailable)" if path in unavailable else path for path in entry["paths"]
    )


def _list(client: httpx.Client, console: Console) -> int:
    table = Table("name", "state", "files", "indexed", "failed", "chunks", "paths")
    for entry in _request(client, "GET", "/v1/localdocs/collections")["data"]:
        table.add_row(
            entry["name"],
            entry["state"],
            str(entry["files_total"]),
            str(entry["files_indexed"]),
            str(entry["files_failed"]),
            str(entry["chunks"]),
            _paths_column(entry),
        )
    console.print(table)
    return 0


def _search(client: httpx.Client, console: Console, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"query": args.query, "k": args.k}
    if args.collection:
        body["collections"] = args.collection
    hits = _request(client, "POST", "/v1/localdocs/search", json=body)["data"]
    if not hits:
        console.print("no results")
    for number, hit in enumerate(hits, 1):
        where = hit["file"] + (f", page {hit['page']}" if hit["page"] else "")
        title = f" — {hit['title']}" if hit["title"] else ""
        console.print(
            f"[bold]{number}. {where}{title}[/] ({hit['collection']}, {hit['score']:.3f})"
        )
        console.print(hit["text"], markup=False, highlight=False)
        console.print()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmserver-localdocs", description=__doc__.split("\n")[0])
    parser.add_argument("--url", default=DEFAULT_URL, help=f"API base URL (default {DEFAULT_URL})")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    commands = parser.add_subparsers(dest="command", required=True)

    create = commands.add_parser("create", help="create a collection and watch it index")
    create.add_argument("name")
    create.add_argument("paths", nargs="+", help="absolute folders or files on the server")
    create.add_argument("--no-wait", action="store_true", help="return once it is created")
    create.add_argument("--wait-timeout", type=float, default=3600.0)

    status = commands.add_parser("watch", help="watch a collection until it is ready")
    status.add_argument("name")
    status.add_argument("--wait-timeout", type=float, default=3600.0)

    commands.add_parser("list", help="list collections")

    add_path = commands.add_parser("add-path", help="add folders or files to a collection")
    add_path.add_argument("name")
    add_path.add_argument("paths", nargs="+", help="absolute folders or files on the server")

    remove_path = commands.add_parser(
        "remove-path", help="take paths out of a collection (their files leave the index)"
    )
    remove_path.add_argument("name")
    remove_path.add_argument("paths", nargs="+", help="paths as the collection lists them")

    search = commands.add_parser("search", help="search collections")
    search.add_argument("query")
    search.add_argument(
        "-c", "--collection", action="append", help="collection (repeatable; default: active)"
    )
    search.add_argument("-k", type=int, default=3)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console()
    try:
        with httpx.Client(base_url=args.url.rstrip("/"), timeout=args.timeout) as client:
            if args.command == "create":
                created = _request(
                    client,
                    "POST",
                    "/v1/localdocs/collections",
                    json={"name": args.name, "paths": args.paths},
                )
                console.print(f"created {created['name']}")
                if args.no_wait:
                    return 0
                return watch(client, console, args.name, 1.0, args.wait_timeout)
            if args.command == "watch":
                return watch(client, console, args.name, 1.0, args.wait_timeout)
            if args.command == "list":
                return _list(client, console)
            if args.command in ("add-path", "remove-path"):
                changed = (
                    _request(
                        client,
                        "POST",
                        f"/v1/localdocs/collections/{args.name}/paths",
                        json={"paths": args.paths},
                    )
                    if args.command == "add-path"
                    else _request(
                        client,
                        "DELETE",
                        f"/v1/localdocs/collections/{args.name}/paths",
                        params={"path": args.paths},
                    )
                )
                console.print(f"{changed['name']}: " + ", ".join(changed["paths"]))
                return 0
            return _search(client, console, args)
    except CLIError as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
