"""Benchmarks of realtime-agent against python-socketio and a bare Starlette loop.

Every scenario is a module run as ``python -m bench.<scenario>``; see bench/README.md.
"""
