"""``SupervisorClient``: SupervisorService, for wallboards and supervisors' consoles."""

from __future__ import annotations

from functools import cached_property

from google.protobuf import duration_pb2

from usher.client._base import BaseClient
from usher.client._stream import EventStream
from usher.v1 import supervisor_service_pb2 as pb
from usher.v1 import supervisor_service_pb2_grpc as pb_grpc


class SupervisorClient(BaseClient):
    """Watch queues and agents, monitor conversations, assign by hand, explain routing.

    Methods take the generated request message and return the generated response. Retried on
    transient errors: ExplainRouting (a read).

    ``async for snapshot in client.dashboard()`` yields ``DashboardSnapshot`` values and
    ``async for event in client.conversation_events(name)`` a conversation's events, both
    reconnecting by themselves.
    """

    @cached_property
    def _stub(self) -> pb_grpc.SupervisorServiceAsyncStub:
        return pb_grpc.SupervisorServiceStub(self.channel)

    def dashboard(
        self, *, queues: tuple[str, ...] = (), min_interval: float | None = None
    ) -> EventStream[pb.StreamDashboardResponse, pb.DashboardSnapshot]:
        """Complete snapshots of the queues (all, or ``queues``) and agents as they change."""
        interval = None
        if min_interval is not None:
            interval = duration_pb2.Duration()
            interval.FromNanoseconds(round(min_interval * 1e9))
        return self._stream(
            self._stub.StreamDashboard,
            lambda _: pb.StreamDashboardRequest(queues=queues, min_interval=interval),
            lambda response: (response.snapshot,),
            None,
        )

    def conversation_events(
        self, conversation: str, *, resume_after_event_id: int = 0
    ) -> EventStream[pb.StreamConversationResponse, pb.ConversationEvent]:
        """One conversation's messages, notes, typing and changes (``conversations/{id}``)."""
        return self._stream(
            self._stub.StreamConversation,
            lambda after: pb.StreamConversationRequest(
                conversation=conversation, resume_after_event_id=after
            ),
            lambda response: response.events,
            lambda event: event.event_id,
            resume_after_event_id,
        )

    async def monitor_conversation(
        self, request: pb.MonitorConversationRequest, *, timeout: float | None = None
    ) -> pb.MonitorConversationResponse:
        return await self._call(
            self._stub.MonitorConversation, request, idempotent=False, timeout=timeout
        )

    async def stop_monitoring(
        self, request: pb.StopMonitoringRequest, *, timeout: float | None = None
    ) -> pb.StopMonitoringResponse:
        return await self._call(
            self._stub.StopMonitoring, request, idempotent=False, timeout=timeout
        )

    async def force_assign(
        self, request: pb.ForceAssignRequest, *, timeout: float | None = None
    ) -> pb.ForceAssignResponse:
        return await self._call(self._stub.ForceAssign, request, idempotent=False, timeout=timeout)

    async def explain_routing(
        self, request: pb.ExplainRoutingRequest, *, timeout: float | None = None
    ) -> pb.ExplainRoutingResponse:
        return await self._call(
            self._stub.ExplainRouting, request, idempotent=True, timeout=timeout
        )
