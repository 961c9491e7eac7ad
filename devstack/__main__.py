"""`python -m devstack install` (make setup) and `python -m devstack run` (make run)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path

from devstack import paths

logger = logging.getLogger("devstack")


def _run(args: argparse.Namespace) -> int:
    from devstack.stack import Ports, Stack, StackConfig
    from devstack.supervisor import Supervisor

    # LLMSERVER_PORTS, a JSON object such as {"gateway": 8080}, moves services to other ports.
    ports = Ports(**json.loads(os.environ.get("LLMSERVER_PORTS", "{}")))
    config = StackConfig(
        data_dir=Path(args.data_dir),
        ports=ports,
        models_dir=Path(args.models_dir),
        allowed_roots=[Path(root) for root in args.allowed_root],
        log_level=args.log_level,
        echo_logs=True,
    )
    stack = Stack(config)
    supervisor = Supervisor(stack)
    # A compose stack of this project left running (it comes back with dockerd) would hold
    # 127.0.0.1:4891: take it down, volumes kept (`make up` starts it again).
    from devstack.compose import stop_leftover_stacks

    stop_leftover_stacks()

    def interrupted(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    try:
        stack.start()
        logger.info(
            "all services are up: the API is at %s/v1 (documents folder: %s). Ctrl-C stops it.",
            stack.url("gateway"),
            ", ".join(str(root) for root in stack.allowed_roots),
        )
        # A service that exits on its own is restarted (as compose's restart: unless-stopped);
        # only Ctrl-C or SIGTERM stops the whole stack.
        while True:
            supervisor.poll()
            time.sleep(0.2)
    except KeyboardInterrupt:
        logger.info("stopping")
        return 0
    finally:
        # A second Ctrl-C must not abandon services half-stopped: the stop is bounded anyway.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        started = time.monotonic()
        stack.stop(budget_s=8.0)  # in order, dependents first; the user waits on it
        logger.info("stopped in %.1fs", time.monotonic() - started)


def _compose_command(args: argparse.Namespace) -> int:
    """`make up`, `make down` and the Docker part of `make test`: one line on any failure."""
    from devstack import compose, docker

    try:
        if args.command == "up":
            compose.up(Path(args.models_dir))
        elif args.command == "down":
            compose.down()
        else:
            docker.ensure_docker()
            compose.stop_leftover_stacks()
            # The test stacks choose their base images afresh (an env file of their own).
            settings = compose.prepare_images({})
            logger.info(
                "Docker ready for the compose tests; base images: %s", settings or "official"
            )
    except (docker.DockerUnavailable, compose.ComposeFailed) as failure:
        if args.command == "docker" and args.optional:
            logger.warning("compose tests will be skipped: %s", failure)
            return 0
        logger.error("%s", failure)
        return 1
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="devstack", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    install = commands.add_parser("install", help="install whatever is missing (make setup)")
    install.add_argument("--models-dir", default=str(paths.default_models_dir()))
    commands.add_parser(
        "llama-server", help="build llama.cpp's llama-server, the benchmark's reference"
    )
    run = commands.add_parser("run", help="start every service (make run)")
    run.add_argument("--data-dir", default=str(paths.default_data_dir()))
    run.add_argument("--models-dir", default=str(paths.default_models_dir()))
    run.add_argument(
        "--allowed-root",
        action="append",
        default=[],
        help="a folder collections may index (repeatable; default: <data-dir>/documents)",
    )
    run.add_argument("--log-level", default="INFO")
    up = commands.add_parser("up", help="the compose stack, built and started (make up)")
    up.add_argument("--models-dir", default=str(paths.default_models_dir()))
    commands.add_parser("down", help="stop the compose stack, volumes kept (make down)")
    docker = commands.add_parser(
        "docker", help="engine, plugins and base images for the compose tests (make test)"
    )
    docker.add_argument(
        "--optional",
        action="store_true",
        help="where Docker cannot be had, say why and exit 0 (the compose tests then skip)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s devstack  | %(message)s")
    if args.command == "install":
        from devstack import install as installer

        installer.main(Path(args.models_dir))
        return 0
    if args.command == "llama-server":
        from devstack import install as installer

        installer.ensure_llama_server()
        return 0
    if args.command in {"up", "down", "docker"}:
        return _compose_command(args)
    return _run(args)


if __name__ == "__main__":
    sys.exit(main())
