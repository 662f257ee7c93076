"""``BroadcastClient``: BroadcastService, for supervisors' and admins' broadcast screens, and for
the channel gateways that send broadcasts (``claim_broadcast_sends``, ``report_broadcast_sends``
with a GATEWAY token)."""

from __future__ import annotations

from functools import cached_property

from usher.client._base import BaseClient
from usher.v1 import broadcast_service_pb2 as pb
from usher.v1 import broadcast_service_pb2_grpc as pb_grpc


class BroadcastClient(BaseClient):
    """Create, preview, send (now or scheduled), pause, resume and cancel broadcasts; read them
    and their recipients. Methods take the generated request message and return the generated
    response. Retried on transient errors: the reads, pause, resume, cancel and delete (repeating
    them changes nothing), and a gateway's reports (results apply once). Creating, previewing
    (it walks the whole audience), sending and claiming are not retried."""

    @cached_property
    def _stub(self) -> pb_grpc.BroadcastServiceAsyncStub:
        return pb_grpc.BroadcastServiceStub(self.channel)

    async def create_broadcast(
        self, request: pb.CreateBroadcastRequest, *, timeout: float | None = None
    ) -> pb.CreateBroadcastResponse:
        return await self._call(
            self._stub.CreateBroadcast, request, idempotent=False, timeout=timeout
        )

    async def get_broadcast(
        self, request: pb.GetBroadcastRequest, *, timeout: float | None = None
    ) -> pb.GetBroadcastResponse:
        return await self._call(self._stub.GetBroadcast, request, idempotent=True, timeout=timeout)

    async def list_broadcasts(
        self, request: pb.ListBroadcastsRequest, *, timeout: float | None = None
    ) -> pb.ListBroadcastsResponse:
        return await self._call(
            self._stub.ListBroadcasts, request, idempotent=True, timeout=timeout
        )

    async def delete_broadcast(
        self, request: pb.DeleteBroadcastRequest, *, timeout: float | None = None
    ) -> pb.DeleteBroadcastResponse:
        return await self._call(
            self._stub.DeleteBroadcast, request, idempotent=True, timeout=timeout
        )

    async def preview_broadcast(
        self, request: pb.PreviewBroadcastRequest, *, timeout: float | None = None
    ) -> pb.PreviewBroadcastResponse:
        return await self._call(
            self._stub.PreviewBroadcast, request, idempotent=False, timeout=timeout
        )

    async def send_broadcast(
        self, request: pb.SendBroadcastRequest, *, timeout: float | None = None
    ) -> pb.SendBroadcastResponse:
        return await self._call(
            self._stub.SendBroadcast, request, idempotent=False, timeout=timeout
        )

    async def pause_broadcast(
        self, request: pb.PauseBroadcastRequest, *, timeout: float | None = None
    ) -> pb.PauseBroadcastResponse:
        return await self._call(
            self._stub.PauseBroadcast, request, idempotent=True, timeout=timeout
        )

    async def resume_broadcast(
        self, request: pb.ResumeBroadcastRequest, *, timeout: float | None = None
    ) -> pb.ResumeBroadcastResponse:
        return await self._call(
            self._stub.ResumeBroadcast, request, idempotent=True, timeout=timeout
        )

    async def cancel_broadcast(
        self, request: pb.CancelBroadcastRequest, *, timeout: float | None = None
    ) -> pb.CancelBroadcastResponse:
        return await self._call(
            self._stub.CancelBroadcast, request, idempotent=True, timeout=timeout
        )

    async def list_broadcast_recipients(
        self, request: pb.ListBroadcastRecipientsRequest, *, timeout: float | None = None
    ) -> pb.ListBroadcastRecipientsResponse:
        return await self._call(
            self._stub.ListBroadcastRecipients, request, idempotent=True, timeout=timeout
        )

    async def claim_broadcast_sends(
        self, request: pb.ClaimBroadcastSendsRequest, *, timeout: float | None = None
    ) -> pb.ClaimBroadcastSendsResponse:
        """A gateway's claim. Not retried: a lost answer leaves sends claimed until their lease
        ends or the same sender claims under a new session."""
        return await self._call(
            self._stub.ClaimBroadcastSends, request, idempotent=False, timeout=timeout
        )

    async def report_broadcast_sends(
        self, request: pb.ReportBroadcastSendsRequest, *, timeout: float | None = None
    ) -> pb.ReportBroadcastSendsResponse:
        return await self._call(
            self._stub.ReportBroadcastSends, request, idempotent=True, timeout=timeout
        )
