"""``BlocklistClient``: BlocklistService, for supervisors' and admins' blacklist screens (an
agent may call ``create_block`` naming a conversation they own)."""

from __future__ import annotations

from functools import cached_property

from usher.client._base import BaseClient
from usher.client._stream import EventStream
from usher.v1 import blocklist_service_pb2 as pb
from usher.v1 import blocklist_service_pb2_grpc as pb_grpc


class BlocklistClient(BaseClient):
    """Block a customer, phone number, e-mail address or IP address for a period with a reason;
    list, get and unblock. Methods take the generated request message and return the generated
    response. Retried on transient errors: GetBlock, ListBlocks and Unblock (unblocking twice
    changes nothing).

    ``async for event in client.watch_blocks()`` yields ``BlockEvent`` values (created,
    unblocked, expired), reconnecting and resuming by itself; start it after a listing's
    ``watch_after_event_id`` to miss nothing the listing did not show.
    """

    @cached_property
    def _stub(self) -> pb_grpc.BlocklistServiceAsyncStub:
        return pb_grpc.BlocklistServiceStub(self.channel)

    async def create_block(
        self, request: pb.CreateBlockRequest, *, timeout: float | None = None
    ) -> pb.CreateBlockResponse:
        return await self._call(self._stub.CreateBlock, request, idempotent=False, timeout=timeout)

    async def get_block(
        self, request: pb.GetBlockRequest, *, timeout: float | None = None
    ) -> pb.GetBlockResponse:
        return await self._call(self._stub.GetBlock, request, idempotent=True, timeout=timeout)

    async def list_blocks(
        self, request: pb.ListBlocksRequest, *, timeout: float | None = None
    ) -> pb.ListBlocksResponse:
        return await self._call(self._stub.ListBlocks, request, idempotent=True, timeout=timeout)

    async def unblock(
        self, request: pb.UnblockRequest, *, timeout: float | None = None
    ) -> pb.UnblockResponse:
        return await self._call(self._stub.Unblock, request, idempotent=True, timeout=timeout)

    def watch_blocks(
        self, *, resume_after_event_id: int = 0
    ) -> EventStream[pb.WatchBlocksResponse, pb.BlockEvent]:
        """The tenant's block changes, in order, each once."""
        return self._stream(
            self._stub.WatchBlocks,
            lambda after: pb.WatchBlocksRequest(resume_after_event_id=after),
            lambda response: response.events,
            lambda event: event.event_id,
            resume_after_event_id,
        )
