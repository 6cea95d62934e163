"""The ``realtime-agent`` command: serve, schema."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import uvicorn
from starlette.applications import Starlette

from .client.commands import add_client_commands
from .config import ConfigError, Settings, load_settings


def _settings() -> Settings:
    """The settings from the environment; an invalid one ends the command with exit 2."""
    try:
        return load_settings()
    except ConfigError as exc:
        sys.stderr.write(f"realtime-agent: {exc}\n")
        raise SystemExit(2) from None


def _serve(args: argparse.Namespace) -> int:
    from .app import create_app, server_config

    settings = _settings()
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    app = create_app(settings, freeze_heap=True)
    server = uvicorn.Server(
        server_config(app, settings, host=args.host, port=args.port, log_level=args.log_level)
    )
    # uvicorn re-raises SIGTERM after a clean shutdown, so the process would die by the
    # signal; a graceful stop must exit 0 for supervisors (systemd, Kubernetes).
    server.capture_signals = lambda: _stop_on_signals(server, app)  # type: ignore[method-assign]
    with asyncio.Runner(loop_factory=server.config.get_loop_factory()) as runner:  # uvloop
        runner.run(server.serve())
    return 0


@contextmanager
def _stop_on_signals(server: uvicorn.Server, app: Starlette) -> Iterator[None]:
    """SIGINT/SIGTERM: the app's graceful shutdown (runs finish or are interrupted,
    sockets close with 1001), then uvicorn stops. A second signal during the app's
    steps ends their waiting (runs are interrupted now) and the shutdown goes on; one
    after them, or a third, stops uvicorn at once (sockets still open close with 1012;
    the app's cleanup is cut short, see docs/operations.md)."""
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()
    hurry = asyncio.Event()

    async def graceful(sig: int) -> None:
        shutdown = getattr(app.state, "graceful_shutdown", None)  # set by the lifespan
        try:
            if shutdown is not None:
                await shutdown(hurry)
        finally:
            server.handle_exit(sig, None)

    def on_signal(sig: int) -> None:
        if not tasks:
            tasks.add(loop.create_task(graceful(sig)))
        elif not hurry.is_set() and not all(task.done() for task in tasks):
            hurry.set()
        else:
            server.handle_exit(sig, None)
            server.force_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        yield
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def _migrate(args: argparse.Namespace) -> int:
    from .store.factory import open_store

    settings = _settings()

    async def run() -> None:
        async with open_store(settings.database_url):  # opening a store migrates it
            pass

    asyncio.run(run())
    print("migrations are up to date")
    return 0


def _schema(args: argparse.Namespace) -> int:
    from .protocol import json_schema

    json.dump(json_schema(), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="realtime-agent",
        description="A websocket-first realtime server for live AI-agent sessions.",
        epilog="Configuration comes from the environment; see the README.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser(
        "serve",
        help="run the server",
        description=(
            "Run the server. With no environment it uses a SQLite file in the working directory, "
            "in-process channels and the offline demo model."
        ),
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    serve.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    serve.set_defaults(func=_serve)
    schema = sub.add_parser(
        "schema",
        help="print the JSON Schema of every protocol frame",
        description="Print the JSON Schema (2020-12) of every websocket frame of the wire "
        "protocol, client and server, as served at GET /agent/protocol.schema.json.",
    )
    schema.set_defaults(func=_schema)
    migrate = sub.add_parser(
        "migrate",
        help="apply database migrations and exit",
        description="Apply every pending migration to DATABASE_URL (SQLite or PostgreSQL) "
        "and exit. Start-up does the same; this is for deploy pipelines. Safe to run from "
        "several processes at once.",
    )
    migrate.set_defaults(func=_migrate)
    add_client_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
