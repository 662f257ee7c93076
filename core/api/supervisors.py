"""SupervisorService: wallboards and supervisors' consoles (roles SUPERVISOR and ADMIN).

Contracts:

- ``ForceAssign``, ``MonitorConversation`` and ``StopMonitoring`` are engine commands acting as
  the caller (its agent id, else its credential id); refusals answer with their code.
- ``ExplainRouting`` reads the decisions recorded with the offers, oldest first
  (``core.store.decisions``).
- ``StreamDashboard`` sends a complete snapshot at once, then one whenever the figures changed,
  at most every ``min_interval`` (1 s by default, at least 200 ms). The figures are the shard's
  live state (``ApiContext.live``, ``core.runtime.live``): per queue the conversations queued
  and offered, the longest wait and whether business hours have it open; per agent the status,
  load and capacity, the conversations owned and the offers pending. One poller per tenant in
  this process feeds all of the tenant's dashboards (``core.api.dashboard``).
- ``StreamConversation`` is the tenant feed filtered to one conversation, with the feed's event
  ids: each change is sent as ``updated`` (the conversation as stored now), each message as
  ``message``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from usher.v1 import routing_pb2, supervisor_service_pb2, supervisor_service_pb2_grpc

from core.api import convert as cv
from core.api import door
from core.api import resources as res
from core.api.context import ApiContext, Caller
from core.api.conversations import CallerOf, default_caller, require_role
from core.api.dashboard import Dashboards, interval_of
from core.routing import commands as c
from core.routing import events as ev
from core.store.decisions import routing_decisions


class SupervisorServicer(supervisor_service_pb2_grpc.SupervisorServiceServicer):
    """SupervisorService over an ``ApiContext``."""

    def __init__(
        self,
        api: ApiContext,
        *,
        caller_of: CallerOf = default_caller,
    ) -> None:
        self._api = api
        self._caller_of = caller_of
        self._dashboards = Dashboards(api.live)

    def _supervisor(self, context: cv.Ctx) -> tuple[Caller, str]:
        who = self._caller_of(context)
        require_role(who, "supervisor", "admin")
        return who, who.agent_id or who.credential_id or who.role

    @cv.guarded
    async def ForceAssign(
        self, request: supervisor_service_pb2.ForceAssignRequest, context: cv.Ctx
    ) -> supervisor_service_pb2.ForceAssignResponse:
        who, me = self._supervisor(context)
        conversation_id = cv.parse_conversation(request.conversation)
        agent_id = cv.parse_agent(request.agent)
        outcome = await door.run(
            self._api,
            c.ForceAssign(
                tenant=who.tenant,
                supervisor_id=me,
                conversation_id=conversation_id,
                agent_id=agent_id,
                override_capacity=request.override_capacity,
            ),
        )
        return supervisor_service_pb2.ForceAssignResponse(
            conversation=door.conversation_of(outcome)
        )

    async def _monitor(self, context: cv.Ctx, conversation: str, *, stop: bool) -> Any:
        who, me = self._supervisor(context)
        conversation_id = cv.parse_conversation(conversation)
        outcome = await door.run(
            self._api,
            c.Monitor(
                tenant=who.tenant, supervisor_id=me, conversation_id=conversation_id, stop=stop
            ),
        )
        return door.conversation_of(outcome)

    @cv.guarded
    async def MonitorConversation(
        self, request: supervisor_service_pb2.MonitorConversationRequest, context: cv.Ctx
    ) -> supervisor_service_pb2.MonitorConversationResponse:
        conversation = await self._monitor(context, request.conversation, stop=False)
        return supervisor_service_pb2.MonitorConversationResponse(conversation=conversation)

    @cv.guarded
    async def StopMonitoring(
        self, request: supervisor_service_pb2.StopMonitoringRequest, context: cv.Ctx
    ) -> supervisor_service_pb2.StopMonitoringResponse:
        conversation = await self._monitor(context, request.conversation, stop=True)
        return supervisor_service_pb2.StopMonitoringResponse(conversation=conversation)

    @cv.guarded
    async def ExplainRouting(
        self, request: supervisor_service_pb2.ExplainRoutingRequest, context: cv.Ctx
    ) -> supervisor_service_pb2.ExplainRoutingResponse:
        who, _ = self._supervisor(context)
        conversation_id = cv.parse_conversation(request.conversation)
        await door.stored_conversation(self._api, who.tenant, conversation_id)
        decisions = []
        for r in await routing_decisions(self._api.pool, who.tenant, conversation_id):
            d = r.decision
            decisions.append(
                routing_pb2.RoutingDecision(
                    offer=cv.offer_name(r.offer_id),
                    step=d.step,
                    filters=d.filters,
                    strategy=d.strategy,
                    candidates=[
                        routing_pb2.Candidate(agent=cv.agent_name(x.agent_id), verdict=x.verdict)
                        for x in d.candidates
                    ],
                    winners=[cv.agent_name(w) for w in d.winners],
                    score=d.score,
                    reason=d.reason,
                    time=cv.timestamp(r.made_at),
                )
            )
        return supervisor_service_pb2.ExplainRoutingResponse(decisions=decisions)

    @cv.guarded_stream
    async def StreamDashboard(
        self, request: supervisor_service_pb2.StreamDashboardRequest, context: cv.Ctx
    ) -> AsyncIterator[supervisor_service_pb2.StreamDashboardResponse]:
        who, _ = self._supervisor(context)
        queues = [cv.parse_queue(q, "queues") for q in request.queues]
        async for snapshot in self._dashboards.stream(who.tenant, queues, interval_of(request)):
            yield supervisor_service_pb2.StreamDashboardResponse(snapshot=snapshot)

    @cv.guarded_stream
    async def StreamConversation(
        self, request: supervisor_service_pb2.StreamConversationRequest, context: cv.Ctx
    ) -> AsyncIterator[supervisor_service_pb2.StreamConversationResponse]:
        who, _ = self._supervisor(context)
        tenant = who.tenant
        conversation_id = cv.parse_conversation(request.conversation)
        feed = self._api.feeds.feed(tenant)
        after = request.resume_after_event_id or None
        subscription = feed.subscribe(after)
        try:
            current = await door.stored_conversation(self._api, tenant, conversation_id)
            if after is None:
                yield supervisor_service_pb2.StreamConversationResponse(
                    events=[
                        supervisor_service_pb2.ConversationEvent(
                            event_id=feed.last_id, updated=current
                        )
                    ]
                )
            async for item in subscription:
                event = item.event
                if getattr(event, "conversation_id", None) != conversation_id:
                    continue
                payload: dict[str, Any]
                if isinstance(event, ev.MessageRecorded):
                    payload = {"message": res.message_from_event(event)}
                else:  # the state after the change, as stored (committed before it was sent)
                    payload = {
                        "updated": await door.stored_conversation(
                            self._api, tenant, conversation_id
                        )
                    }
                yield supervisor_service_pb2.StreamConversationResponse(
                    events=[
                        supervisor_service_pb2.ConversationEvent(
                            event_id=item.event_id, time=cv.timestamp(event.at), **payload
                        )
                    ]
                )
        finally:
            subscription.close()
