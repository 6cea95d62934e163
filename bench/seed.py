"""Seed baselines: session create and load over REST, websocket connect-to-hello.

    python -m bench.seed [--requests 300] [--connects 200] [--mode embedded,distributed]

- create: ``POST /agent/sessions`` one after another on one keep-alive connection;
- load: ``GET /agent/session/{id}`` (owner token) of those sessions, each with
  ``--messages`` messages in its transcript (default 0: a new session);
- connect: open ``/agent/ws/{id}`` with the viewer token until ``hello`` arrives
  (TCP connect, HTTP upgrade, token and session checks, join), then close.

The client is a minimal HTTP/1.1 client (bench.common.Http) so that its own
overhead stays in the tens of microseconds. p50/p99 in ms; rows go to
bench/results/seed.json.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import orjson

from .common import (
    Deployment,
    Http,
    add_list_arg,
    fill_transcript,
    log,
    over_deployments,
    percentiles,
    print_table,
)
from .streaming import run_scenario

KEY = ("scenario", "impl", "mode", "what")
WARM = 20


async def measure(dep: Any, requests: int, connects: int, messages: int) -> list[dict[str, Any]]:
    from websockets.asyncio.client import connect

    port = dep.ports[0]
    http = Http("127.0.0.1", port)
    created: list[dict[str, Any]] = []
    create_ms = []
    try:
        for i in range(requests + WARM):
            t0 = time.perf_counter_ns()
            status, body = await http.request("POST", "/agent/sessions", {"character_id": 1})
            t1 = time.perf_counter_ns()
            if status != 201:
                raise RuntimeError(f"create: {status} {body}")
            created.append(body)
            if i >= WARM:
                create_ms.append((t1 - t0) / 1e6)
        for body in created if messages else ():  # every session gets a transcript
            url = body["ws_url"].replace("localhost", "127.0.0.1")
            await fill_transcript(f"{url}?token={body['owner_token']}", messages)
        load_ms = []
        for i, body in enumerate(created):
            headers = {"Authorization": f"Bearer {body['owner_token']}"}
            t0 = time.perf_counter_ns()
            status, data = await http.request(
                "GET", f"/agent/session/{body['session_id']}", headers=headers
            )
            t1 = time.perf_counter_ns()
            if status != 200:
                raise RuntimeError(f"load: {status} {data}")
            if i >= WARM:
                load_ms.append((t1 - t0) / 1e6)
        hello_ms = []
        for i in range(connects + WARM):
            body = created[i % len(created)]
            url = (
                f"ws://127.0.0.1:{port}/agent/ws/{body['session_id']}?token={body['viewer_token']}"
            )
            t0 = time.perf_counter_ns()
            ws = await connect(url, compression=None, max_size=None)
            hello = orjson.loads(await ws.recv())
            t1 = time.perf_counter_ns()
            assert hello["type"] == "hello", hello
            await ws.close()
            if i >= WARM:
                hello_ms.append((t1 - t0) / 1e6)
    finally:
        await http.close()
    rows = []
    for what, samples in (("create", create_ms), ("load", load_ms), ("connect_to_hello", hello_ms)):
        p50, p99 = percentiles(samples)
        rows.append(
            {
                "what": what,
                "n": len(samples),
                "p50_ms": p50,
                "p99_ms": p99,
                "messages_per_session": messages,
            }
        )
    return rows


async def main(args: argparse.Namespace) -> list[dict[str, Any]]:
    async def one(impl: str, mode: str, dep: Deployment) -> list[dict[str, Any]]:
        log(f"seed baselines {mode}")
        return await measure(dep, args.requests, args.connects, args.messages)

    return await over_deployments("seed", [("ours", mode) for mode in args.mode], one)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--connects", type=int, default=200)
    parser.add_argument(
        "--messages",
        type=int,
        default=0,
        help="messages in each session's transcript before loading it",
    )
    add_list_arg(parser, "--mode", ["embedded", "distributed"])
    rows = run_scenario("seed", parser.parse_args(), main, KEY)
    print_table(
        rows,
        [
            ("mode", "mode"),
            ("what", "what"),
            ("n", "n"),
            ("p50_ms", "p50 ms"),
            ("p99_ms", "p99 ms"),
        ],
    )


if __name__ == "__main__":
    cli()
