"""The ``chat`` and ``watch`` subcommands of ``realtime-agent``."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any, TextIO

from .connection import SessionClient
from .errors import ClientError
from .interactive import LineDriver
from .rest import create_session
from .runner import Driver, run_session
from .script import ScriptDriver
from .sinks import JsonSink, PlainSink, Sink
from .state import SessionState
from .style import use_color
from .urls import DEFAULT_URL, http_base, join_command, watch_command
from .watch import WatchDriver

CHAT_DESCRIPTION = """\
Talk to an agent session from the terminal. Without --session, creates a new
session (POST /agent/sessions) and prints its id and a read-only viewer token
to share; with --session and --token, joins an existing one. Then it opens the
session's websocket and shows everything live: assistant text as it streams,
status changes, tool calls and results, queued messages (dimmed on a terminal
unless NO_COLOR is set). Lines typed at the prompt are sent as messages;
commands: /interrupt, /approve, /reject [reason], /status, /help, /quit.
Ctrl-C interrupts a run in progress, a second Ctrl-C (or one when idle) quits.
A dropped connection is resumed where it stopped.

With --send the texts are sent in order, each once the previous run ended, and
the command exits when the last run ended: 0 if it completed, 1 if it ended in
error or was interrupted. When stdin is not a terminal (or with --json), lines
are read from stdin without a prompt, and the command exits 0 once the input
ended and its runs finished. With --json, stdout holds only the frames (the
session header goes to stderr). Errors (server unreachable, token refused,
unknown session, a message the server refused) exit 2 with a message on
stderr."""

CHAT_EPILOG = """\
examples:
  realtime-agent chat                                  # a new session on http://127.0.0.1:8000
  realtime-agent chat https://agents.example.com --api-key "$KEY"
  realtime-agent chat http://127.0.0.1:8000 --session sess-0f68e05e8e81f36c --token "$OWNER"
  realtime-agent chat --send "hello" --send "what time is it?"
  realtime-agent chat --send "hello" --json | jq -r 'select(.type == "delta") | .text'
  printf 'hello\\n/status\\n' | realtime-agent chat http://127.0.0.1:8000"""

WATCH_DESCRIPTION = """\
Follow a session read-only: print its live stream (assistant text as it
streams, status changes, tool calls, queued messages) without a prompt. A
viewer token is enough (the owner's works too). A dropped connection is resumed
where it stopped. Ctrl-C exits 0; errors (server unreachable, token refused,
unknown session) exit 2 with a message on stderr."""

WATCH_EPILOG = """\
examples:
  realtime-agent watch http://127.0.0.1:8000 --session sess-0f68e05e8e81f36c --token "$VIEWER"
  realtime-agent watch http://127.0.0.1:8000 --session sess-0f68e05e8e81f36c \\
      --token "$VIEWER" --json | jq -c '{seq, type}'"""


def add_client_commands(sub: Any) -> None:
    """Add ``chat`` and ``watch`` to the ``realtime-agent`` parser's subcommands."""
    chat = sub.add_parser(
        "chat",
        help="talk to an agent session from the terminal",
        description=CHAT_DESCRIPTION,
        epilog=CHAT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    chat.add_argument(
        "url", nargs="?", default=DEFAULT_URL, help=f"the server (default {DEFAULT_URL})"
    )
    chat.add_argument(
        "--character-id",
        type=int,
        default=1,
        metavar="N",
        help="the character of a new session (default 1)",
    )
    chat.add_argument(
        "--api-key",
        default=os.environ.get("RA_API_KEY") or None,
        metavar="KEY",
        help="API key to create sessions, sent as a Bearer token (default: $RA_API_KEY)",
    )
    chat.add_argument("--session", metavar="ID", help="join this session instead of creating one")
    chat.add_argument("--token", metavar="TOKEN", help="the joined session's owner token")
    chat.add_argument(
        "--send",
        action="append",
        metavar="TEXT",
        help="send TEXT, wait for its run to end, then go on (repeatable); no prompt",
    )
    _json_option(chat)
    chat.set_defaults(func=chat_command)

    watch = sub.add_parser(
        "watch",
        help="follow a session read-only",
        description=WATCH_DESCRIPTION,
        epilog=WATCH_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    watch.add_argument("url", help="the server, such as http://127.0.0.1:8000")
    watch.add_argument("--session", metavar="ID", required=True, help="the session to follow")
    watch.add_argument(
        "--token", metavar="TOKEN", required=True, help="its viewer (or owner) token"
    )
    _json_option(watch)
    watch.set_defaults(func=watch_command_main)


def _json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json",
        action="store_true",
        help="print every frame received as one line of compact JSON on stdout, nothing else",
    )


def chat_command(args: argparse.Namespace) -> int:
    """``realtime-agent chat``."""
    return _main(_chat(args))


def watch_command_main(args: argparse.Namespace) -> int:
    """``realtime-agent watch``."""
    return _main(_watch(args))


def _main(coro: Any) -> int:
    try:
        code: int = asyncio.run(coro)
    except ClientError as exc:
        sys.stdout.flush()
        print(f"realtime-agent: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader of stdout went away (| head): stop quietly, as the docs of the
        # signal module advise, without a second error when Python flushes at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    return code


def _text_sink(out: TextIO, err: TextIO) -> PlainSink:
    return PlainSink(out, err, color=use_color(out, os.environ))


async def _chat(args: argparse.Namespace) -> int:
    base = http_base(args.url)
    texts: list[str] = args.send or []
    if any(not text.strip() for text in texts):
        raise ClientError("--send needs a non-blank text")
    if (args.session is None) != (args.token is None):
        raise ClientError("--session and --token go together: give both to join a session")
    info = sys.stderr if args.json else sys.stdout
    if args.session is not None:
        session_id, token = str(args.session), str(args.token)
        print(f"session  {session_id}", file=info, flush=True)
    else:
        created = await create_session(base, args.character_id, args.api_key)
        session_id, token = created.session_id, created.owner_token
        print(
            f"session  {session_id}\n"
            f"viewer   {created.viewer_token}  (read-only: share it)\n"
            f"watch    {watch_command(base, session_id, created.viewer_token)}\n"
            f"rejoin   {join_command(base, session_id, created.owner_token)}",
            file=info,
            flush=True,
        )
    interactive = not texts and not args.json and sys.stdin.isatty() and sys.stdout.isatty()
    state = SessionState(echo_own=not interactive)
    sink: Sink
    driver: Driver
    if interactive:
        from .prompt import PromptDriver, PromptSink  # prompt_toolkit: only for a terminal

        print("type a message, or /help for commands", flush=True)
        prompt_sink = PromptSink(color=use_color(sys.stdout, os.environ))
        client = SessionClient(base, session_id, token, state, prompt_sink)
        driver = PromptDriver(client, state, prompt_sink)
        return await run_session(client, driver)
    sink = JsonSink(sys.stdout, sys.stderr) if args.json else _text_sink(sys.stdout, sys.stderr)
    client = SessionClient(base, session_id, token, state, sink)
    if texts:
        driver = ScriptDriver(client, state, sink, texts)
    else:
        driver = LineDriver(client, state, sink)
    return await run_session(client, driver)


async def _watch(args: argparse.Namespace) -> int:
    base = http_base(args.url)
    state = SessionState(echo_own=True)
    sink: Sink = (
        JsonSink(sys.stdout, sys.stderr) if args.json else _text_sink(sys.stdout, sys.stderr)
    )
    client = SessionClient(base, str(args.session), str(args.token), state, sink)
    return await run_session(client, WatchDriver())
