"""A local stand-in for the Anthropic Messages API, for tests.

It serves ``POST /v1/messages`` on 127.0.0.1 in the wire format the real SDK
parses (SSE for ``stream: true``, a JSON Message otherwise), so tests run the
real ``anthropic`` client against it via ``base_url``::

    async with AnthropicStandIn() as standin:
        standin.push(Text(["Hel", "lo"]), ToolCalls([("toolu_1", "search", {"q": "x"})]))
        client = anthropic.AsyncAnthropic(api_key="test-key", base_url=standin.base_url)
        ...
        requests = await standin.wait_for_requests(2)

Replies are scripted in a FIFO queue; when it is empty the stand-in answers
:data:`DEFAULT_REPLY`. Like the real API it rejects malformed conversations
with 400 ``invalid_request_error`` (see :func:`validate_request`); a rejected
request is recorded but does not consume a scripted reply.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

__all__ = [
    "DEFAULT_REPLY",
    "AnthropicStandIn",
    "Drop",
    "Error",
    "Hang",
    "Reply",
    "StreamError",
    "Text",
    "ToolCalls",
    "validate_request",
]


@dataclass(frozen=True, slots=True)
class Text:
    """Stream ``chunks`` as text deltas (stop_reason ``end_turn``).

    ``delay`` seconds pass before each chunk. With ``hold_after=n`` the stream
    sends ``n`` chunks, then waits for :meth:`AnthropicStandIn.release`.
    """

    chunks: list[str]
    delay: float = 0.0
    hold_after: int | None = None


@dataclass(frozen=True, slots=True)
class ToolCalls:
    """Optional text, then one tool_use block per ``(id, name, input)`` call.

    Each input is streamed as 2-3 ``input_json_delta`` pieces; stop_reason
    ``tool_use``.
    """

    calls: list[tuple[str, str, dict[str, Any]]]
    text_chunks: list[str] = field(default_factory=list)
    delay: float = 0.0


@dataclass(frozen=True, slots=True)
class Error:
    """Answer HTTP ``status`` with the API's JSON error body."""

    status: int
    error_type: str
    message: str


@dataclass(frozen=True, slots=True)
class Hang:
    """Send ``message_start``, then nothing until the client or the stand-in leaves."""


@dataclass(frozen=True, slots=True)
class Drop:
    """Stream ``chunks`` as text, then cut the connection (no ``message_stop``)."""

    chunks: list[str]


@dataclass(frozen=True, slots=True)
class StreamError:
    """Stream ``chunks`` as text, then an SSE ``error`` event and the end of the body.

    This is how the real API reports an overload after the stream began (the
    HTTP status is already 200). A non-streaming request gets HTTP 529/500.
    """

    chunks: list[str]
    error_type: str = "overloaded_error"
    message: str = "Overloaded"


Reply = Text | ToolCalls | Error | Hang | Drop | StreamError
_Streamed = Text | ToolCalls | Hang | Drop | StreamError

DEFAULT_REPLY = Text(["Hello from ", "the stand-in."])


class _DropConnection(Exception):
    """Raised inside a response to make uvicorn close the socket mid-body."""


class _HideDrops(logging.Filter):
    """Keep uvicorn from logging our deliberate drops as application errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], _DropConnection))


def validate_request(body: dict[str, Any]) -> str | None:
    """Return the API's error message for a conversation it would reject, else None."""
    messages: list[dict[str, Any]] = body.get("messages", [])
    if not messages or messages[0].get("role") != "user":
        return 'messages: first message must use the "user" role'
    pending: list[str] = []  # tool_use ids the next message must answer
    for i, message in enumerate(messages):
        content = message.get("content")
        blocks: list[dict[str, Any]] = (
            [{"type": "text", "text": content}] if isinstance(content, str) else content or []
        )
        answered = {b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"}
        if message.get("role") == "user":
            for j, block in enumerate(blocks):
                if block.get("type") == "tool_result" and block.get("tool_use_id") not in pending:
                    return (
                        f"messages.{i}.content.{j}: unexpected `tool_use_id` found in "
                        f"`tool_result` blocks: {block.get('tool_use_id')}. Each `tool_result` "
                        "block must have a corresponding `tool_use` block in the previous message."
                    )
        if missing := [tid for tid in pending if tid not in answered]:
            return (
                f"messages.{i}: `tool_use` ids were found without `tool_result` blocks "
                f"immediately after: {', '.join(missing)}. Each `tool_use` block must have a "
                "corresponding `tool_result` block in the next message."
            )
        if any(b.get("type") == "text" and not b.get("text") for b in blocks):
            return "messages: text content blocks must be non-empty"
        is_assistant = message.get("role") == "assistant"
        pending = [b["id"] for b in blocks if is_assistant and b.get("type") == "tool_use"]
    if pending:
        return (
            f"messages.{len(messages) - 1}: `tool_use` ids were found without `tool_result` "
            f"blocks immediately after: {', '.join(pending)}. Each `tool_use` block must have "
            "a corresponding `tool_result` block in the next message."
        )
    return None


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _split_json(value: dict[str, Any]) -> list[str]:
    """Split the JSON text of ``value`` into 3 pieces (fewer if it is short)."""
    text = orjson.dumps(value).decode()
    cut1, cut2 = len(text) // 3, 2 * len(text) // 3
    return [piece for piece in (text[:cut1], text[cut1:cut2], text[cut2:]) if piece]


def _error_body(error_type: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type, "message": message}}


def _blocks(
    reply: Text | ToolCalls | Drop | StreamError,
) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Content blocks as ``(content_block_start payload, deltas)`` pairs."""
    chunks = reply.text_chunks if isinstance(reply, ToolCalls) else reply.chunks
    blocks: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    if chunks or not isinstance(reply, ToolCalls):
        deltas = [{"type": "text_delta", "text": chunk} for chunk in chunks]
        blocks.append(({"type": "text", "text": ""}, deltas))
    for tool_id, name, tool_input in reply.calls if isinstance(reply, ToolCalls) else []:
        start = {"type": "tool_use", "id": tool_id, "name": name, "input": {}}
        pieces = _split_json(tool_input) if tool_input else []
        blocks.append((start, [{"type": "input_json_delta", "partial_json": p} for p in pieces]))
    return blocks


def _message(model: str, content: list[dict[str, Any]], stop_reason: str | None) -> dict[str, Any]:
    return {
        "id": "msg_standin",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 0 if stop_reason is None else 5},
    }


class AnthropicStandIn:
    """Serve the stand-in API on a free local port while the context is entered.

    Attributes:
        base_url: ``http://127.0.0.1:PORT``, for ``AsyncAnthropic(base_url=...)``.
        requests: every request body received, parsed, in arrival order.
        disconnects: how many streams the client closed before their end.
    """

    def __init__(self) -> None:
        self.base_url = ""
        self.requests: list[dict[str, Any]] = []
        self.disconnects = 0
        self._replies: deque[Reply] = deque()
        self._changed = asyncio.Event()  # replaced by a fresh one at every change
        self._released = asyncio.Event()
        self._closing = asyncio.Event()
        self._filter = _HideDrops()
        app = Starlette(routes=[Route("/v1/messages", self._messages, methods=["POST"])])
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            log_config=None,  # leave the process's logging configuration alone
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=5,
        )
        self._server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None

    def push(self, *replies: Reply) -> None:
        """Queue replies; each request takes the oldest one."""
        self._replies.extend(replies)

    def release(self) -> None:
        """Let every held stream (``Text(hold_after=...)``) go on, now and later."""
        self._released.set()

    async def wait_for_requests(self, n: int) -> list[dict[str, Any]]:
        """Wait until at least ``n`` requests have arrived; return :attr:`requests`."""
        while len(self.requests) < n:
            await self._changed.wait()
        return self.requests

    async def wait_for_disconnects(self, n: int) -> None:
        """Wait until the client has closed at least ``n`` streams before their end."""
        while self.disconnects < n:
            await self._changed.wait()

    def _notify(self) -> None:
        # Synchronous on purpose: it also runs in a cancelled body iterator.
        self._changed.set()
        self._changed = asyncio.Event()

    async def __aenter__(self) -> AnthropicStandIn:
        logging.getLogger("uvicorn.error").addFilter(self._filter)
        self._task = asyncio.create_task(self._server.serve())
        # uvicorn offers no start-up event; this poll is the one place we sleep.
        while not self._server.started:
            if self._task.done():
                await self._task
                raise RuntimeError("the Anthropic stand-in failed to start")
            await asyncio.sleep(0.01)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Hanging and held streams end first, so uvicorn's graceful shutdown can finish.
        self._closing.set()
        self._released.set()
        self._server.should_exit = True
        try:
            if self._task is not None:
                await self._task
        finally:
            logging.getLogger("uvicorn.error").removeFilter(self._filter)

    async def _messages(self, request: Request) -> Response:
        body: dict[str, Any] = orjson.loads(await request.body())
        self.requests.append(body)
        self._notify()
        if (problem := validate_request(body)) is not None:
            reply: Reply = Error(400, "invalid_request_error", problem)
        else:
            reply = self._replies.popleft() if self._replies else DEFAULT_REPLY
        if isinstance(reply, Error):
            body = _error_body(reply.error_type, reply.message)
            return JSONResponse(body, status_code=reply.status)
        model = str(body.get("model", "claude-standin"))
        if body.get("stream"):
            return StreamingResponse(
                self._watch(self._stream(reply, model)), media_type="text/event-stream"
            )
        return await self._whole(reply, model)

    async def _whole(self, reply: _Streamed, model: str) -> Response:
        """A non-streaming answer: the same content as one JSON Message."""
        if isinstance(reply, Hang):
            await self._closing.wait()
            return JSONResponse(_error_body("api_error", "stand-in shut down"), status_code=500)
        if isinstance(reply, StreamError):
            status = 529 if reply.error_type == "overloaded_error" else 500
            return JSONResponse(_error_body(reply.error_type, reply.message), status_code=status)
        if isinstance(reply, Text) and reply.hold_after is not None:
            await self._released.wait()
        content: list[dict[str, Any]] = []
        for start, deltas in _blocks(reply):
            if start["type"] == "text":
                content.append({"type": "text", "text": "".join(d["text"] for d in deltas)})
            else:
                tool_input = orjson.loads("".join(d["partial_json"] for d in deltas) or "{}")
                content.append({**start, "input": tool_input})
        stop_reason = "tool_use" if isinstance(reply, ToolCalls) else "end_turn"
        message = _message(model, content, stop_reason)
        if isinstance(reply, Drop):
            partial = orjson.dumps(message)[:20]

            async def cut() -> AsyncIterator[bytes]:
                yield partial
                raise _DropConnection

            return StreamingResponse(cut(), media_type="application/json")
        return JSONResponse(message)

    async def _watch(self, stream: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """Pass ``stream`` through, counting a client disconnect.

        Starlette cancels the body iterator when the client goes away (ASGI
        spec < 2.4, which uvicorn's HTTP protocols report).
        """
        try:
            async for chunk in stream:
                yield chunk
        except asyncio.CancelledError:
            if not self._closing.is_set():
                self.disconnects += 1
                self._notify()
            raise

    async def _stream(self, reply: _Streamed, model: str) -> AsyncIterator[bytes]:
        """The SSE body: message_start, content blocks, message_delta, message_stop."""
        yield _sse("message_start", {"type": "message_start", "message": _message(model, [], None)})
        if isinstance(reply, Hang):
            await self._closing.wait()
            return
        delay = reply.delay if isinstance(reply, Text | ToolCalls) else 0.0
        hold_after = reply.hold_after if isinstance(reply, Text) else None
        sent = 0
        for index, (start, deltas) in enumerate(_blocks(reply)):
            yield _sse(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": start},
            )
            for delta in deltas:
                if sent == hold_after:
                    await self._released.wait()
                if delay:
                    await asyncio.sleep(delay)
                yield _sse(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
                sent += 1
            if isinstance(reply, Drop):
                raise _DropConnection
            if isinstance(reply, StreamError):
                yield _sse("error", _error_body(reply.error_type, reply.message))
                return
            if hold_after is not None and sent <= hold_after:
                await self._released.wait()
            yield _sse("content_block_stop", {"type": "content_block_stop", "index": index})
        stop_reason = "tool_use" if isinstance(reply, ToolCalls) else "end_turn"
        yield _sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": max(sent, 1)},
            },
        )
        yield _sse("message_stop", {"type": "message_stop"})
