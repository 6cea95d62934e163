"""The anthropic SDK's HTTP transports: CPU per streamed event and a short call.

    python -m bench.sdk [--events 20000] [--rate 0,2000] [--calls 200] [--transport aiohttp,httpx]
                        [--reader provider,models]

The provider the server uses (``AnthropicLLM`` over ``AsyncAnthropic``) reads
one stream of ``--events`` text chunks from the bench's stand-in (its own
process), three times per transport and ``--rate``: 0 sends them as fast as
possible (many events per read), 2,000 chunks/s comes closer to a model's
stream (about one event per read); the CPU of
this process per event (``time.process_time``) is the cost of reading the
model's stream, which every chunk pays before any fan-out. Then ``--calls``
one-chunk calls one after another: the wall time of a whole call (request
set-up, the stand-in's answer, parsing), p50/p99. The server's transport is
``RA_ANTHROPIC_HTTP`` (``aiohttp`` by default). ``--reader models`` reads the
same streams as SDK model objects (``messages.create(stream=True)`` iterated
as is), which the provider did before it read events in their wire form: the
difference is the price of building a model per event. Rows go to
bench/results/sdk.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import (
    add_list_arg,
    log,
    parse_list,
    percentiles,
    print_table,
    standin_model,
)
from .streaming import run_scenario

KEY = ("scenario", "transport", "rate", "reader")


async def measure(
    url: str, transport: str, reader: str, events: int, rate: float, calls: int
) -> dict[str, Any]:
    import anthropic

    from realtime_agent.llm.anthropic import AnthropicLLM

    http = (
        anthropic.DefaultAioHttpClient()
        if transport == "aiohttp"
        else anthropic.DefaultAsyncHttpxClient()
    )
    async with anthropic.AsyncAnthropic(
        api_key="bench-key", base_url=url, max_retries=0, http_client=http
    ) as client:
        llm = AnthropicLLM(client, model="bench", max_tokens=100)

        async def call(content: str) -> int:
            messages: list[Any] = [{"role": "user", "content": content}]
            n = 0
            if reader == "models":
                models = await client.messages.create(
                    model="bench", max_tokens=100, messages=messages, stream=True
                )
                async with models:
                    async for _ in models:
                        n += 1
                return n
            async with llm.stream(system="", messages=messages, tools=()) as stream:
                async for _ in stream:
                    n += 1
            return n

        await call("bench chunks=100 rate=0")  # connection and first-use costs
        per_event = []
        for _ in range(3):
            cpu0 = time.process_time()
            n = await call(f"bench chunks={events} rate={rate:g}")
            per_event.append((time.process_time() - cpu0) * 1e6 / n)
        walls = []
        for _ in range(calls):
            t0 = time.perf_counter_ns()
            await call("bench chunks=1 rate=0")
            walls.append((time.perf_counter_ns() - t0) / 1e6)
    p50, p99 = percentiles(walls)
    return {
        "scenario": "sdk",
        "transport": transport,
        "reader": reader,
        "events": events,
        "rate": rate,
        "cpu_us_per_event": min(per_event),
        "cpu_us_per_event_runs": per_event,
        "calls": calls,
        "call_p50_ms": p50,
        "call_p99_ms": p99,
    }


async def main(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    async with standin_model(Path(tempfile.mkdtemp(prefix="ra-bench-"))) as url:
        for rate in args.rate:
            for transport in args.transport:
                for reader in args.reader:
                    log(
                        f"sdk {transport}, {reader}: {args.events} events at {rate:g}/s,"
                        f" {args.calls} calls"
                    )
                    rows.append(
                        await measure(url, transport, reader, args.events, rate, args.calls)
                    )
    return rows


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument(
        "--rate", type=lambda v: parse_list(v, float), default=[0.0, 2000.0], help="chunks/s"
    )
    parser.add_argument("--calls", type=int, default=200)
    add_list_arg(parser, "--transport", ["aiohttp", "httpx"])
    add_list_arg(parser, "--reader", ["provider", "models"])
    rows = run_scenario("sdk", parser.parse_args(), main, KEY)
    for row in rows:
        print(json.dumps(row), flush=True)
    print_table(
        rows,
        [
            ("transport", "transport"),
            ("reader", "reader"),
            ("rate", "chunks/s"),
            ("cpu_us_per_event", "CPU µs/event"),
            ("call_p50_ms", "call p50 ms"),
            ("call_p99_ms", "call p99 ms"),
        ],
    )


if __name__ == "__main__":
    cli()
