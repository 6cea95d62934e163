"""Settings, read from the environment (all optional).

``DATABASE_URL``, ``REDIS_URL`` and ``ANTHROPIC_API_KEY`` keep their common
names; everything of our own is prefixed ``RA_``. With no environment at all
the server runs on embedded defaults: a SQLite file in the working directory,
in-process channels and the offline demo model.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .auth import MIN_SECRET_BYTES

DEFAULT_MODEL = "claude-sonnet-5-5"
#: How the database URLs the store factory opens begin.
SQLITE_SCHEME = "sqlite:///"
POSTGRES_SCHEMES = ("postgres://", "postgresql://")
DATABASE_SCHEMES = (SQLITE_SCHEME, *POSTGRES_SCHEMES)
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*(?=://)")


def scheme_problem(url: str) -> str | None:
    """What is wrong with a database URL's scheme, naming only the scheme (the rest may
    carry a password); ``None`` when the store factory opens it."""
    if url.startswith(DATABASE_SCHEMES):
        return None
    found = _SCHEME.match(url)
    scheme = repr(found.group()) if found else "none"
    return f"scheme {scheme}: expected sqlite:///path.db or postgresql://user@host/db"


class ConfigError(ValueError):
    """The environment holds invalid settings; one line per problem, no values."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration:\n" + "\n".join(f"  {p}" for p in problems))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RA_", extra="ignore", frozen=True, populate_by_name=True
    )

    database_url: str = Field(
        "sqlite:///realtime-agent.db",
        validation_alias="DATABASE_URL",
        description="sqlite:///path.db (embedded) or postgresql://... (distributed)",
    )
    redis_url: str | None = Field(
        None, validation_alias="REDIS_URL", description="unset: in-process channels"
    )
    redis_max_connections: int = Field(
        256,
        ge=8,
        description=(
            "Redis command pool per process (callers wait for a free one); at most 11"
            " more: subscriber, probe, script lanes"
        ),
    )
    redis_prefix: str = Field("ra:", description="prefix of every Redis key and channel")
    run_lease_seconds: float = Field(
        15.0, gt=0, description="run lease TTL: a dead process's run is taken over after it"
    )
    cache_ttl_seconds: int = Field(86_400, ge=1, description="session cache TTL in Redis")
    redis_probe_seconds: float = Field(
        2.0, gt=0, description="publish-to-receive probe of the Redis subscriber"
    )
    anthropic_api_key: SecretStr | None = Field(
        None, validation_alias="ANTHROPIC_API_KEY", description="unset: the offline demo model"
    )
    anthropic_base_url: str | None = Field(
        None, validation_alias="ANTHROPIC_BASE_URL", description="unset: the SDK's default"
    )
    llm_max_retries: int = Field(2, ge=0, description="the SDK's retries of a failed call")
    anthropic_http: Literal["aiohttp", "httpx"] = Field(
        "aiohttp",
        description="the SDK's HTTP transport: aiohttp (the SDK's DefaultAioHttpClient, a third"
        " to a half less CPU per streamed event) or httpx (its default transport)",
    )
    model: str = Field(DEFAULT_MODEL, description="Claude model for the Anthropic provider")
    max_tokens: int = Field(4096, ge=1, description="max_tokens of each model call")
    system_prompt: str = Field(
        "You are a helpful assistant in a live chat session.",
        description="system prompt sent with every model call",
    )

    secret: SecretStr | None = Field(
        None, description="token signing key; unset: random per start (tokens die with it)"
    )
    api_key: SecretStr | None = Field(None, description="when set, creating sessions needs it")
    allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="comma-separated browser origins allowed on the websocket; "
        "empty: same host only",
    )
    token_ttl_seconds: int = Field(86_400, ge=1, description="lifetime of session tokens")

    tools: str | None = Field(
        None, description="your tools: package.module:attr[,package.module:attr...]"
    )
    mcp_config: str | None = Field(
        None, description='MCP servers JSON file ({"mcpServers": {...}}), connected at start-up'
    )
    max_iterations: int = Field(5, ge=1, description="model calls per run before it stops")
    tool_timeout_seconds: float = Field(30.0, gt=0, description="per tool call")
    llm_timeout_seconds: float = Field(300.0, gt=0, description="per model call")

    max_frame_bytes: int = Field(1 << 20, ge=1024, description="one client frame; past: 1009")
    max_content_chars: int = Field(100_000, ge=1, description="message content; past: too_long")
    max_event_bytes: int = Field(64 * 1024, ge=4096, description="one server event")
    send_queue_bytes: int = Field(
        1 << 20, ge=1024, description="per-socket send bound (bytes buffered); past: close 1013"
    )
    history_events: int = Field(1000, ge=1, description="resume history kept, at least")
    history_seconds: float = Field(120.0, gt=0, description="resume history kept, at least")
    history_max_events: int = Field(
        20_000, ge=1, description="hard cap on resume history per session (memory bound)"
    )
    history_max_bytes: int = Field(
        4 << 20,
        ge=1024,
        description="hard cap on the in-process resume history per session, in bytes "
        "(embedded mode; memory bound)",
    )
    ws_per_message_deflate: bool = Field(
        False, description="accept permessage-deflate (2.4x memory per socket)"
    )
    rate_limit_per_second: float = Field(
        20.0, gt=0, description="client frames per second per socket (token bucket rate)"
    )
    rate_limit_burst: int = Field(
        40, ge=1, description="client frames a socket may send at once (bucket size)"
    )
    max_sockets_per_session: int = Field(2000, ge=1, description="open sockets per session")
    max_sockets_per_address: int = Field(2000, ge=1, description="open sockets per client address")
    max_queued_messages: int = Field(20, ge=1, description="waiting messages per session")
    max_concurrent_runs: int = Field(64, ge=1, description="runs at once per process")
    shutdown_grace_seconds: float = Field(
        10.0, ge=0, description="on SIGTERM, how long runs may go on before they are interrupted"
    )
    handshake_timeout_seconds: float = Field(
        10.0, gt=0, description="the first request head (or websocket upgrade) must arrive in this"
    )
    ws_ping_interval: float = Field(20.0, gt=0, description="websocket keep-alive ping interval")
    delta_coalesce_ms: float = Field(
        5.0, ge=0, description="model chunks closer than this merge into one delta; 0: never"
    )
    delta_coalesce_max_ms: float = Field(
        20.0,
        ge=0,
        description="the merge window grows up to this while a stream stays fast",
    )
    demo_chunk_delay: float = Field(
        0.02, ge=0, description="seconds between the demo model's chunks"
    )

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if (problem := scheme_problem(value)) is not None:
            raise ValueError(f"unsupported {problem}")
        return value

    @field_validator("secret")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"must be at least {MIN_SECRET_BYTES} bytes")
        return value

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [o.strip().rstrip("/") for o in value.split(",") if o.strip()]
        return value


def load_settings() -> Settings:
    """The settings from the environment, or :class:`ConfigError` naming each invalid
    variable (pydantic's own error would show the values: secrets, passwords)."""
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def _describe(error: ValidationError) -> list[str]:
    """One line per invalid setting, named by its environment variable, without its value
    (it may be a secret)."""
    lines = []
    for item in error.errors(include_url=False, include_input=False):
        name = str(item["loc"][0]) if item["loc"] else "settings"
        # A setting with a common name (DATABASE_URL, ...) is reported by that name.
        variable = f"RA_{name.upper()}" if name in Settings.model_fields else name
        lines.append(f"{variable}: {item['msg'].removeprefix('Value error, ')}")
    return lines
