"""The websocket CLI client: ``realtime-agent chat`` and ``realtime-agent watch``.

It speaks only the wire protocol (``docs/protocol.md``). Modules, one concept each:

- ``state``: the protocol logic, pure: seq, status, approvals, own runs, frames to items.
- ``items``: what to show, as values; ``sinks`` and ``prompt`` print them.
- ``typed``: what a typed line means (messages and slash commands).
- ``connection``: the websocket, reconnecting with ``after``; ``rest``: creating sessions.
- ``runner``: a front end beside the connection; the front ends are ``prompt``
  (interactive), ``interactive`` (lines from stdin), ``script`` (``--send``), ``watch``.
- ``commands``: the argparse subcommands; ``urls``, ``style``, ``errors``: small helpers.
"""
