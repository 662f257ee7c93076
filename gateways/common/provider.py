"""The provider interface every gateway implements, and the delivery errors it raises."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

import httpx
from starlette.routing import BaseRoute
from usher.v1 import channel_pb2
from usher.v1 import conversation_service_pb2 as pb

if TYPE_CHECKING:
    from gateways.common.directory import Served
    from gateways.common.gateway import Gateway


class DeliveryError(Exception):
    """Sending to the provider failed. ``transient`` failures are retried with backoff."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


def check_response(response: httpx.Response) -> httpx.Response:
    """``response`` if 2xx; else a ``DeliveryError``, transient for 408, 429 and 5xx."""
    if response.is_success:
        return response
    transient = response.status_code in (408, 429) or response.status_code >= 500
    raise DeliveryError(
        f"{response.request.method} {response.request.url.path} answered"
        f" {response.status_code}: {response.text[:300]}",
        transient=transient,
    )


class Provider:
    """One channel provider. Subclasses set ``name`` and ``channel_type``, return their webhook
    routes (paths start with ``/{tenant}/{channel}``), and deliver outbound items."""

    name: ClassVar[str]
    channel_type: ClassVar[channel_pb2.ChannelType.ValueType]

    def routes(self, gateway: Gateway) -> Sequence[BaseRoute]:
        return ()

    async def deliver(self, gateway: Gateway, served: Served, item: pb.OutboundItem) -> None:
        """Send one outbound item to the customer; raise ``DeliveryError`` on failure. Items the
        provider cannot show (e.g. typing on SMS) are skipped silently."""
        raise NotImplementedError

    async def start(self, gateway: Gateway) -> None:
        """Start listeners other than HTTP (e.g. SMTP). Called after the directory is read."""

    async def stop(self) -> None:
        """Stop what ``start`` started."""
