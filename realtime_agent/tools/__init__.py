"""Tools the agent can call: a registry of typed Python functions."""
