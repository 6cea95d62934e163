"""An MCP stdio server's tools, offered to the model and called through a full run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.helpers import Api, RunningServer, standin_settings
from tests.standin_anthropic import AnthropicStandIn, Text, ToolCalls

ROOT = Path(__file__).resolve().parents[2]


async def test_mcp_tools_run_through_a_full_turn(tmp_path: Path, standin: AnthropicStandIn) -> None:
    """MCP tools are listed with their flags; a change waits for approval; a read just runs."""
    config = tmp_path / "mcp.json"
    config.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "kv": {
                        "command": sys.executable,
                        "args": ["-m", "tests.tools.mcp_server"],
                        "cwd": str(ROOT),
                    }
                }
            }
        )
    )
    settings = standin_settings(
        tmp_path,
        standin,
        mcp_config=str(config),
    )
    standin.push(
        ToolCalls([("toolu_s", "kv__store", {"key": "colour", "value": "blue"})]),
        ToolCalls([("toolu_l", "kv__lookup", {"key": "colour"})]),
        Text(["It is blue."]),
    )
    async with RunningServer(settings) as server, Api(server.base_url) as api:
        tools = {t["name"]: t for t in (await api.http.get("/agent/tools")).json()["tools"]}
        assert tools["kv__lookup"]["changes"] is False and tools["kv__lookup"]["source"] == "mcp:kv"
        assert tools["kv__store"]["changes"] is True
        created = await api.create()
        owner = await api.join(created)
        await owner.message("store blue, then read it", "c-1")
        required = await owner.until_type("approval_required")
        assert [c["name"] for c in required["calls"]] == ["kv__store"]
        await owner.send({"type": "approve", "approval_id": required["approval_id"]})
        assert (await owner.until_idle())["status"] == "completed"
        results = [e for e in owner.events() if e["type"] == "tool_result"]
        assert [r["is_error"] for r in results] == [False, False]
        assert "blue" in results[1]["output"]
        approvals = [e for e in owner.events() if e["type"] == "approval_required"]
        assert len(approvals) == 1  # the read-only lookup did not ask
        first = (await standin.wait_for_requests(1))[0]
        assert {"kv__store", "kv__lookup"} <= {t["name"] for t in first["tools"]}
