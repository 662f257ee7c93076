"""Gateway settings: flags override ``USHER_GATEWAY_*`` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class GatewaySettings(BaseSettings):
    """One gateway process. ``api_keys`` holds one GATEWAY credential per tenant served; each
    tenant's channels of the gateway's type are read from the core (``FetchGatewayChannels``)."""

    model_config = SettingsConfigDict(env_prefix="USHER_GATEWAY_", frozen=True)

    core: str = "127.0.0.1:50051"
    """The core's gRPC address."""
    api_keys: Annotated[tuple[str, ...], NoDecode] = ()
    """GATEWAY tokens, comma-separated in the environment: one per tenant."""
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = ""
    """How providers and browsers reach this gateway (attachment links); empty: from host/port."""
    data_dir: Path = Path(".usher-data/gateway")
    """Attachments (by content hash) and delivery state."""
    max_body_bytes: int = Field(default=1 << 20, gt=0)
    """Largest webhook body accepted; larger gets 413."""
    max_attachment_bytes: int = Field(default=16 << 20, gt=0)
    """Largest attachment accepted in either direction."""
    refresh_seconds: float = Field(default=30.0, gt=0)
    """How often channel configuration is re-read from the core."""
    broadcast_lease: float = Field(default=60.0, ge=1, le=3600)
    """Seconds a broadcast claim holds: after a crash, another gateway takes the sends this one
    claimed once it passes (this gateway, restarted, takes them back at once)."""
    broadcast_concurrency: int = Field(default=16, ge=1, le=256)
    """Broadcast sends in flight per channel (the channel's rate still applies)."""

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")
