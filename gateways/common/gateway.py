"""The running gateway's shared parts, handed to its provider, and the HTTP helpers every
webhook uses: the served channel from the path (404), the raw body within its limit (413)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import structlog
from starlette.exceptions import HTTPException
from starlette.requests import Request
from usher.client import UsherError
from usher.v1 import conversation_pb2
from usher.v1 import conversation_service_pb2 as pb

from gateways.common.blobs import BlobStore
from gateways.common.choices import OfferLog
from gateways.common.directory import Directory, Served
from gateways.common.inbox import Inbox
from gateways.common.sentlog import SentLog
from gateways.common.settings import GatewaySettings

log = structlog.get_logger(__name__)

RECEIPTS = {
    "delivered": conversation_pb2.RECEIPT_STATUS_DELIVERED,
    "read": conversation_pb2.RECEIPT_STATUS_READ,
}


@dataclass(frozen=True, slots=True)
class Gateway:
    settings: GatewaySettings
    directory: Directory
    inbox: Inbox
    blobs: BlobStore
    sent: SentLog
    http: httpx.AsyncClient
    """For calls to the provider: timeouts set, connections pooled."""
    offers: OfferLog
    """The choices last offered to each customer (see ``gateways.common.choices``)."""

    def served(self, request: Request) -> Served:
        """The channel named by the path's ``tenant`` and ``channel``; 404 when not served."""
        tenant = request.path_params.get("tenant", "")
        channel = request.path_params.get("channel", "")
        found = self.directory.lookup(tenant, channel)
        if found is None:
            raise HTTPException(404, f"no channel {channel!r} for tenant {tenant!r} here")
        return found

    async def body(self, request: Request) -> bytes:
        """The raw body; 413 past ``max_body_bytes`` (checked as it streams in)."""
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise HTTPException(413, f"the body is over {limit} bytes")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise HTTPException(413, f"the body is over {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def receipt(self, served: Served, provider_id: str, status: str) -> bool:
        """Pass a provider's delivered/read status for a message it sent on to the core, once
        per (message, status). False when the message is unknown or the status repeated."""
        message = self.sent.message_for(served.tenant, served.channel.channel_id, provider_id)
        if message is None or status not in RECEIPTS:
            return False
        if not self.sent.first_receipt(
            served.tenant, served.channel.channel_id, provider_id, status
        ):
            return False
        try:
            await served.client.mark_read(
                pb.MarkReadRequest(message=message, status=RECEIPTS[status])
            )
        except UsherError as exc:
            log.warning("receipt not passed on", message=message, error=str(exc))
            return False
        return True
