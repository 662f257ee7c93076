"""The tenants and channels a gateway serves, read from the core with its GATEWAY keys.

``Directory.lookup(tenant, channel_id)`` answers a webhook's path: the channel's configuration
and the client to use, or None (the gateway answers 404). ``refresh`` re-reads every tenant's
channels; a tenant whose read fails keeps its last known channels, so a core restart does not
turn webhooks away.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import structlog
from usher.client import GatewayClient, UsherError
from usher.v1 import channel_pb2
from usher.v1 import conversation_service_pb2 as pb

log = structlog.get_logger(__name__)


class MissingSetting(LookupError):
    """A channel lacks a setting or secret its provider needs (an admin must set it)."""


@dataclass(frozen=True, slots=True)
class ChannelConfig:
    """One channel as its admin configured it (``usher.v1.Channel``)."""

    channel_id: str
    display_name: str = ""
    settings: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict)

    def setting(self, key: str, default: str | None = None) -> str:
        value = self.settings.get(key) or default
        if value is None:
            raise MissingSetting(f"channel {self.channel_id!r} has no setting {key!r}")
        return value

    def secret(self, key: str) -> str:
        value = self.secrets.get(key)
        if not value:
            raise MissingSetting(f"channel {self.channel_id!r} has no secret {key!r}")
        return value

    @classmethod
    def from_proto(cls, channel: channel_pb2.Channel) -> ChannelConfig:
        return cls(
            channel.name.removeprefix("channels/"),
            channel.display_name,
            dict(channel.settings),
            dict(channel.secrets),
        )


@dataclass(frozen=True, slots=True)
class Served:
    """A channel of a tenant, with the client that speaks for the tenant."""

    tenant: str
    channel: ChannelConfig
    client: GatewayClient


class Directory:
    """See the module docstring. ``clients`` are GATEWAY clients, one per tenant."""

    def __init__(
        self,
        clients: Sequence[GatewayClient],
        channel_type: channel_pb2.ChannelType.ValueType,
        *,
        refresh_seconds: float = 30.0,
    ) -> None:
        self._clients = list(clients)
        self._type = channel_type
        self._refresh_seconds = refresh_seconds
        self._served: dict[tuple[str, str], Served] = {}
        self._by_client: dict[int, dict[tuple[str, str], Served]] = {}
        self._task: asyncio.Task[None] | None = None
        self.changed = asyncio.Event()
        """Set after a refresh changed what is served (the outbound loops watch it)."""

    def lookup(self, tenant: str, channel_id: str) -> Served | None:
        return self._served.get((tenant, channel_id))

    def __iter__(self) -> Iterator[Served]:
        return iter(list(self._served.values()))

    async def refresh(self) -> None:
        for i, client in enumerate(self._clients):
            try:
                found = await client.fetch_gateway_channels(
                    pb.FetchGatewayChannelsRequest(type=self._type), timeout=10.0
                )
            except UsherError as exc:
                log.warning("channel refresh failed", error=str(exc))
                continue
            self._by_client[i] = {
                (found.webhook_namespace, ch.name.removeprefix("channels/")): Served(
                    found.webhook_namespace, ChannelConfig.from_proto(ch), client
                )
                for ch in found.channels
            }
        served = {key: s for part in self._by_client.values() for key, s in part.items()}
        if served != self._served:
            self._served = served
            log.info("serving", channels=sorted(f"{t}/{c}" for t, c in served))
            self.changed.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="directory-refresh")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_seconds)
            await self.refresh()
