"""The provider interface every gateway implements, and the delivery errors it raises."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
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


class Hold(Exception):
    """Not now: leave a broadcast send claimed; it comes back when its lease ends."""


@dataclass(frozen=True, slots=True)
class BroadcastMessage:
    """One broadcast send a gateway claimed (``usher.v1.BroadcastSend``)."""

    recipient: str
    """``broadcasts/{b}/recipients/{n}``."""
    address: str
    """E.164 phone, e-mail address or LINE user id."""
    text: str = ""
    subject: str = ""
    template_name: str = ""
    template_language: str = ""
    parameters: tuple[str, ...] = ()
    key: str = ""
    """Stable across claims: the provider's idempotency or correlation key."""
    previous_claims: int = 0
    """More than 0: it may have gone out already; reconcile before sending."""
    first_claim_time: dt.datetime | None = None

    @property
    def broadcast(self) -> str:
        return self.recipient.rsplit("/recipients/", 1)[0]


class Provider:
    """One channel provider. Subclasses set ``name`` and ``channel_type``, return their webhook
    routes (paths start with ``/{tenant}/{channel}``), and deliver outbound items; those that
    can broadcast send and reconcile broadcast messages (``send_broadcast``)."""

    name: ClassVar[str]
    channel_type: ClassVar[channel_pb2.ChannelType.ValueType]
    broadcast_rate: ClassVar[float] = 0.0
    """Broadcast messages a second per channel unless its ``broadcast_rate`` setting says
    otherwise; 0: this provider does not broadcast."""

    def routes(self, gateway: Gateway) -> Sequence[BaseRoute]:
        return ()

    async def deliver(self, gateway: Gateway, served: Served, item: pb.OutboundItem) -> None:
        """Send one outbound item to the customer; raise ``DeliveryError`` on failure. Items the
        provider cannot show (e.g. typing on SMS) are skipped silently."""
        raise NotImplementedError

    async def send_broadcast(
        self, gateway: Gateway, served: Served, message: BroadcastMessage
    ) -> str:
        """Send one broadcast message; the provider's id of it. ``DeliveryError`` on failure
        (transient ones are retried)."""
        raise DeliveryError(f"{self.name} does not broadcast", transient=False)

    async def reconcile_broadcast(
        self, gateway: Gateway, served: Served, message: BroadcastMessage
    ) -> str | None:
        """After an attempt whose outcome is unknown (the gateway died during it): the
        provider's id of the message if it went out, None if it did not (send it), or
        ``Hold``. The default, None, suits providers whose send is idempotent by ``key``."""
        return None

    async def start(self, gateway: Gateway) -> None:
        """Start listeners other than HTTP (e.g. SMTP). Called after the directory is read."""

    async def stop(self) -> None:
        """Stop what ``start`` started."""
