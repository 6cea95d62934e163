"""An MCP server for the tests, written with the ``mcp`` SDK's server side.

Tools: ``lookup`` (reads, annotated read-only), ``store`` (changes) and
``explode`` (always fails); its state lives in memory, so a restarted server
starts empty. Run it over stdio with ``python -m tests.tools.mcp_server`` or
``python tests/tools/mcp_server.py``; when ``MCP_TEST_PID_FILE`` is set it
writes its pid there first. :func:`build_server` makes one for streamable
HTTP in the test process.
"""

from __future__ import annotations

import os
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

PID_FILE_ENV = "MCP_TEST_PID_FILE"


def build_server() -> MCPServer[Any]:
    """A fresh server with its own empty store."""
    server: MCPServer[Any] = MCPServer("realtime-agent-test", log_level="WARNING")
    data: dict[str, str] = {}

    @server.tool(annotations=ToolAnnotations(read_only_hint=True))
    def lookup(key: str) -> str:
        """Look up the value stored under a key."""
        return data.get(key, f"nothing stored under {key!r}")

    @server.tool()
    def store(key: str, value: str) -> str:
        """Store a value under a key."""
        data[key] = value
        return f"stored {key!r}"

    @server.tool(annotations=ToolAnnotations(read_only_hint=False))
    def explode() -> str:
        """Always fail."""
        # ToolError's text reaches the client; any other exception's stays on the server.
        raise ToolError("kaboom: the test tool exploded")

    return server


def main() -> None:
    """Serve over stdio (after writing the pid file, when asked to)."""
    if pid_file := os.environ.get(PID_FILE_ENV):
        with open(pid_file, "w") as f:
            f.write(str(os.getpid()))
    build_server().run("stdio")


if __name__ == "__main__":
    main()
