"""SupervisorService: wallboards and supervisors' consoles (roles SUPERVISOR and ADMIN).

Contracts:

- ``ForceAssign``, ``MonitorConversation`` and ``StopMonitoring`` are engine commands acting as
  the caller (its agent id, else its credential id); refusals answer with their code.
- ``ExplainRouting`` reads the decisions recorded with the offers, oldest first.
- ``StreamDashboard`` sends a complete snapshot at once, then one every ``min_interval`` (1 s by
  default, at least 200 ms), computed from the store's tables: per queue the conversations
  queued and offered and the longest wait; per agent the status and the conversations they own.
  Agent load and queue opening hours are not in the store and are not reported yet.
- ``StreamConversation`` is the tenant feed filtered to one conversation, with the feed's event
  ids: each change is sent as ``updated`` (the conversation as stored now), each message as
  ``message``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from google.protobuf import duration_pb2
from usher.v1 import routing_pb2, supervisor_service_pb2, supervisor_service_pb2_grpc

from core.api import convert as cv
from core.api.context import ApiContext, Caller
from core.api.conversations import (
    CallerOf,
    default_caller,
    load_conversation,
    message_to_proto,
    require_role,
)
from core.api.messages import MessageIndex
from core.routing import commands as c
from core.routing import events as ev
from core.routing.errors import NotFound


def _seconds(d: duration_pb2.Duration) -> float:
    return d.seconds + d.nanos / 1e9


class SupervisorServicer(supervisor_service_pb2_grpc.SupervisorServiceServicer):
    """SupervisorService over an ``ApiContext``."""

    def __init__(
        self,
        api: ApiContext,
        *,
        caller_of: CallerOf = default_caller,
        messages: MessageIndex | None = None,
    ) -> None:
        self._api = api
        self._caller_of = caller_of
        self._messages = api.messages if messages is None else messages

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
        cv.check(
            await self._api.submit(
                c.ForceAssign(
                    tenant=who.tenant,
                    supervisor_id=me,
                    conversation_id=conversation_id,
                    agent_id=agent_id,
                    override_capacity=request.override_capacity,
                )
            )
        )
        return supervisor_service_pb2.ForceAssignResponse(
            conversation=await load_conversation(self._api.pool, who.tenant, conversation_id)
        )

    async def _monitor(self, context: cv.Ctx, conversation: str, *, stop: bool) -> Any:
        who, me = self._supervisor(context)
        conversation_id = cv.parse_conversation(conversation)
        cv.check(
            await self._api.submit(
                c.Monitor(
                    tenant=who.tenant, supervisor_id=me, conversation_id=conversation_id, stop=stop
                )
            )
        )
        return await load_conversation(self._api.pool, who.tenant, conversation_id)

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
        await load_conversation(self._api.pool, who.tenant, conversation_id)
        rows = await self._api.pool.fetch(
            """SELECT offer_id, decision, made_at FROM offers
               WHERE tenant_id = $1 AND conversation_id = $2 ORDER BY made_at, offer_id""",
            who.tenant,
            conversation_id,
        )
        decisions = []
        for r in rows:
            d = json.loads(r["decision"])
            decisions.append(
                routing_pb2.RoutingDecision(
                    offer=cv.offer_name(r["offer_id"]),
                    step=int(d.get("step", 0)),
                    filters=str(d.get("filters", "")),
                    strategy=str(d.get("strategy", "")),
                    candidates=[
                        routing_pb2.Candidate(
                            agent=cv.agent_name(x.get("agent_id")), verdict=str(x.get("verdict"))
                        )
                        for x in d.get("candidates", [])
                    ],
                    winners=[cv.agent_name(w) for w in d.get("winners", [])],
                    score=float(d.get("score", 0.0)),
                    reason=str(d.get("reason", "")),
                    time=cv.timestamp(r["made_at"]),
                )
            )
        return supervisor_service_pb2.ExplainRoutingResponse(decisions=decisions)

    @cv.guarded_stream
    async def StreamDashboard(
        self, request: supervisor_service_pb2.StreamDashboardRequest, context: cv.Ctx
    ) -> AsyncIterator[supervisor_service_pb2.StreamDashboardResponse]:
        who, _ = self._supervisor(context)
        queues = [cv.parse_queue(q, "queues") for q in request.queues]
        for queue_id in queues:
            found = await self._api.pool.fetchval(
                "SELECT 1 FROM queues WHERE tenant_id = $1 AND queue_id = $2", who.tenant, queue_id
            )
            if found is None:
                raise NotFound(f"queue {queue_id!r} not found", queue=queue_id)
        interval = 1.0
        if request.HasField("min_interval"):
            interval = max(0.2, _seconds(request.min_interval))
        while True:
            snapshot = await self._snapshot(who.tenant, queues)
            yield supervisor_service_pb2.StreamDashboardResponse(snapshot=snapshot)
            await asyncio.sleep(interval)

    async def _snapshot(
        self, tenant: str, queues: list[str]
    ) -> supervisor_service_pb2.DashboardSnapshot:
        pool = self._api.pool
        now = await pool.fetchval("SELECT now()")
        queue_rows = await pool.fetch(
            """SELECT q.queue_id,
                      count(c.*) FILTER (WHERE c.state = 'queued') AS waiting,
                      count(c.*) FILTER (WHERE c.state = 'offered') AS offered,
                      min(c.queued_at) AS oldest
               FROM queues q LEFT JOIN conversations c ON c.tenant_id = q.tenant_id
                 AND c.queue_id = q.queue_id AND c.state IN ('queued', 'offered')
               WHERE q.tenant_id = $1 AND (cardinality($2::text[]) = 0 OR q.queue_id = ANY($2))
               GROUP BY q.queue_id ORDER BY q.queue_id""",
            tenant,
            queues,
        )
        agent_rows = await pool.fetch(
            """SELECT a.agent_id, a.status, a.custom_status, a.profile,
                      array_remove(array_agg(c.conversation_id ORDER BY c.conversation_id), NULL)
                        AS owned
               FROM agents a LEFT JOIN conversations c ON c.tenant_id = a.tenant_id
                 AND c.owner_agent_id = a.agent_id
               WHERE a.tenant_id = $1 AND a.removed_at IS NULL
               GROUP BY a.agent_id ORDER BY a.agent_id""",
            tenant,
        )
        offer_rows = await pool.fetch(
            "SELECT offer_id, agent_ids FROM offers WHERE tenant_id = $1 AND outcome IS NULL",
            tenant,
        )
        offers: dict[str, list[str]] = {}
        for r in offer_rows:
            for agent_id in r["agent_ids"]:
                offers.setdefault(agent_id, []).append(cv.offer_name(r["offer_id"]))
        out = supervisor_service_pb2.DashboardSnapshot(time=cv.timestamp(now))
        for r in queue_rows:
            wait = duration_pb2.Duration()
            if r["oldest"] is not None:
                wait.FromTimedelta(max(now - r["oldest"], now - now))
            out.queues.append(
                supervisor_service_pb2.QueueSummary(
                    queue=cv.queue_name(r["queue_id"]),
                    waiting=r["waiting"],
                    offered=r["offered"],
                    longest_wait=wait,
                    open=True,
                )
            )
        for r in agent_rows:
            profile = json.loads(r["profile"])
            out.agents.append(
                supervisor_service_pb2.AgentSummary(
                    agent=cv.agent_name(r["agent_id"]),
                    status=cv.status_to_proto(r["status"]),
                    custom_status=r["custom_status"] or "",
                    capacity=float(profile.get("capacity", 0.0)),
                    conversations=[cv.conversation_name(x) for x in r["owned"]],
                    offers=offers.get(r["agent_id"], []),
                )
            )
        return out

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
            current = await load_conversation(self._api.pool, tenant, conversation_id)
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
                    record = await self._messages.lookup(
                        self._api.pool, tenant, item.event_id, event
                    )
                    if record is None:
                        continue
                    payload = {"message": message_to_proto(record)}
                else:
                    payload = {
                        "updated": await load_conversation(self._api.pool, tenant, conversation_id)
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
