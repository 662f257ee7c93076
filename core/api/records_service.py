"""RecordService: the tenant's conversations as lists for consoles and reports.

Reads only (plus the caller's pins): lists, counts, customers' histories and exports come from
``core.store.conversation_lists``, activity logs from ``core.store.activity``; the servicer
holds no SQL. Supervisors and admins see the whole tenant; an agent sees what
``core.api.policy`` lets them read (the lists apply the same relations in SQL: owned, served
last, offered now, waiting or never served in a queue they serve). A conversation the caller may
not see is NOT_FOUND, like one that does not exist.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

from usher.v1 import conversation_pb2
from usher.v1 import record_service_pb2 as pb
from usher.v1 import record_service_pb2_grpc as pb_grpc

from core.api import convert as cv
from core.api import policy
from core.api.auth import caller
from core.api.context import ApiContext, Caller
from core.api.resources import conversation_from_row
from core.routing.errors import InvalidArgument, NotFound, PermissionDenied
from core.store import records_export
from core.store.access import Access
from core.store.activity import ActivityLog
from core.store.conversation_lists import (
    CLOSE_REASONS,
    ConversationLists,
    ListFilter,
    Order,
    Scope,
)
from core.store.errors import InvalidInput
from core.store.pins import Pins
from core.store.records import MessageRecord
from core.store.validation import require_phone

Ctx = Any  # grpc.aio.ServicerContext

DEFAULT_PAGE: Final = 50
DEFAULT_ACTIVITY_PAGE: Final = 100
MAX_PAGE: Final = 500

_ORDERS: Final = {
    pb.CONVERSATION_ORDER_UNSPECIFIED: Order.NEWEST_FIRST,
    pb.CONVERSATION_ORDER_NEWEST_FIRST: Order.NEWEST_FIRST,
    pb.CONVERSATION_ORDER_LONGEST_WAITING_FIRST: Order.LONGEST_WAITING_FIRST,
}
_OUTCOMES: Final = {
    conversation_pb2.OUTCOME_RESOLVED: "resolved",
    conversation_pb2.OUTCOME_SPAM: "spam",
    conversation_pb2.OUTCOME_IGNORED: "ignored",
}


def page_size(size: int, default: int = DEFAULT_PAGE) -> int:
    if size == 0:
        return default
    if not 1 <= size <= MAX_PAGE:
        raise InvalidArgument(f"page_size must be 0 to {MAX_PAGE}", field="page_size")
    return size


def _texts(field: str, values: Any) -> tuple[str, ...]:
    for value in values:
        if not value.strip():
            raise InvalidArgument(f"{field} has an empty value", field=field)
    return tuple(values)


def _interval(field: str, interval: pb.Interval) -> tuple[dt.datetime | None, dt.datetime | None]:
    start = cv.from_timestamp(interval.start_time) if interval.HasField("start_time") else None
    end = cv.from_timestamp(interval.end_time) if interval.HasField("end_time") else None
    if start is not None and end is not None and end < start:
        raise InvalidArgument(f"{field} ends before it starts", field=f"{field}.end_time")
    return start, end


def filter_from_proto(f: pb.ConversationFilter, field: str = "filter") -> ListFilter:
    """The store's filter; ``InvalidArgument`` naming the first bad field."""
    states = tuple(cv.parse_state(s).value for s in f.states)
    outcomes = []
    for outcome in f.outcomes:
        if outcome not in _OUTCOMES:
            raise InvalidArgument("outcomes has an unknown value", field=f"{field}.outcomes")
        outcomes.append(_OUTCOMES[outcome])
    for reason in f.close_reasons:
        if reason not in CLOSE_REASONS:
            raise InvalidArgument(
                "close_reasons has an unknown value", field=f"{field}.close_reasons"
            )
    phone = f.customer_phone or None
    if phone is not None:
        try:
            require_phone(phone)
        except InvalidInput:
            raise InvalidArgument(
                "customer_phone must be E.164", field=f"{field}.customer_phone"
            ) from None
    created_from, created_until = _interval(f"{field}.create_time", f.create_time)
    closed_from, closed_until = _interval(f"{field}.close_time", f.close_time)
    return ListFilter(
        states=states,
        queues=tuple(cv.parse_queue(q, field=f"{field}.queues") for q in f.queues),
        owner=cv.parse_agent(f.owner, field=f"{field}.owner") if f.owner else None,
        channels=_texts(f"{field}.channels", f.channels),
        any_tags=_texts(f"{field}.any_tags", f.any_tags),
        all_tags=_texts(f"{field}.all_tags", f.all_tags),
        outcomes=tuple(outcomes),
        close_reasons=tuple(f.close_reasons),
        pinned=f.pinned,
        customer_id=f.customer_id or None,
        phone=phone,
        email=f.customer_email or None,
        name=f.customer_name.strip() or None,
        keyword=f.keyword.strip() or None,
        created_from=created_from,
        created_until=created_until,
        closed_from=closed_from,
        closed_until=closed_until,
        departments=departments_from_proto(f.departments, f"{field}.departments"),
    )


def departments_from_proto(names: Any, field: str) -> tuple[str, ...]:
    """The ids of ``departments/{d}`` names, each once, in order."""
    return tuple(dict.fromkeys(cv.parse_name("departments", n, field=field) for n in names))


def pinner_of(who: Caller) -> str:
    """Whose pins: an agent's own, else the credential's."""
    if who.role == policy.Role.AGENT and who.agent_id:
        return who.agent_id
    return f"credential:{who.credential_id}"


class RecordServicer(pb_grpc.RecordServiceServicer):
    """See the module docstring."""

    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx
        self._lists = ConversationLists(ctx.pool)
        self._pins = Pins(ctx.pool)
        self._activity = ActivityLog(ctx.pool)
        self._access = Access(ctx.pool)

    async def _scope(self, who: Caller) -> Scope:
        if who.role != policy.Role.AGENT:
            return Scope(tenant=who.tenant, pinner=pinner_of(who))
        if not who.agent_id:
            raise PermissionDenied("an agent credential without an agent")
        mine = await self._lists.agent_scope(who.tenant, who.agent_id)
        return Scope(
            tenant=who.tenant,
            pinner=who.agent_id,
            agent_id=who.agent_id,
            queues=mine.queues,
            team=mine.team,
        )

    async def _visible(self, who: Caller, rpc: str, conversation_id: str) -> None:
        """``NotFound`` unless the conversation exists and the policy lets ``who`` read it."""
        relations: frozenset[policy.Relation] = frozenset()
        if who.role == policy.Role.AGENT and who.agent_id:
            facts = await self._access.facts(who.tenant, conversation_id, who.agent_id)
            exists = facts is not None
            if facts is not None:
                relations = policy.relations_of(facts)
        else:
            exists = await self.ctx.reads.conversation(who.tenant, conversation_id) is not None
        if not exists or policy.decide(who.role, rpc, relations) is not policy.Verdict.ALLOW:
            raise NotFound(
                f"conversation {conversation_id!r} not found", conversation_id=conversation_id
            )

    async def _page(
        self, scope: Scope, f: ListFilter, order: Order, size: int, token: str
    ) -> tuple[list[pb.ConversationRecord], str, int, bool]:
        try:
            found = await self._lists.page(scope, f, order, size, token or None)
        except InvalidInput as exc:
            field = "page_token" if "token" in str(exc) else "filter"
            raise InvalidArgument(str(exc), field=field) from None
        records = [
            pb.ConversationRecord(
                conversation=conversation_from_row(r),
                customer_id=r["customer_id"],
                pinned=r["pinned"],
            )
            for r in found.rows
        ]
        return records, found.next_page_token or "", found.total, found.exact

    @cv.guarded
    async def ListConversations(
        self, request: pb.ListConversationsRequest, context: Ctx
    ) -> pb.ListConversationsResponse:
        size = page_size(request.page_size)
        f = filter_from_proto(request.filter)
        order = _ORDERS.get(request.order_by)
        if order is None:
            raise InvalidArgument("order_by has an unknown value", field="order_by")
        scope = await self._scope(caller(context))
        records, token, total, exact = await self._page(scope, f, order, size, request.page_token)
        return pb.ListConversationsResponse(
            conversations=records,
            next_page_token=token,
            total_size=min(total, 2**31 - 1),
            total_size_exact=exact,
        )

    @cv.guarded
    async def CountConversations(
        self, request: pb.CountConversationsRequest, context: Ctx
    ) -> pb.CountConversationsResponse:
        if request.HasField("closed_since"):
            since = cv.from_timestamp(request.closed_since)
        else:
            now = dt.datetime.now(dt.UTC)
            since = now.replace(hour=0, minute=0, second=0, microsecond=0)
        departments = departments_from_proto(request.departments, "departments")
        counts = await self._lists.counts(await self._scope(caller(context)), since, departments)
        return pb.CountConversationsResponse(
            bot=counts.bot,
            waiting=counts.waiting,
            mine=counts.mine,
            active=counts.active,
            wrap_up=counts.wrap_up,
            closed_today=counts.closed_today,
            pinned=counts.pinned,
            left_messages=counts.left_messages,
            team=counts.team,
        )

    @cv.guarded
    async def PinConversation(
        self, request: pb.PinConversationRequest, context: Ctx
    ) -> pb.PinConversationResponse:
        who = caller(context)
        conversation_id = cv.parse_conversation(request.conversation)
        await self._visible(who, "RecordService.PinConversation", conversation_id)
        await self._pins.pin(who.tenant, pinner_of(who), conversation_id)
        return pb.PinConversationResponse()

    @cv.guarded
    async def UnpinConversation(
        self, request: pb.UnpinConversationRequest, context: Ctx
    ) -> pb.UnpinConversationResponse:
        who = caller(context)
        conversation_id = cv.parse_conversation(request.conversation)
        await self._visible(who, "RecordService.UnpinConversation", conversation_id)
        await self._pins.unpin(who.tenant, pinner_of(who), conversation_id)
        return pb.UnpinConversationResponse()

    @cv.guarded
    async def GetConversationActivity(
        self, request: pb.GetConversationActivityRequest, context: Ctx
    ) -> pb.GetConversationActivityResponse:
        who = caller(context)
        conversation_id = cv.parse_conversation(request.conversation)
        size = page_size(request.page_size, DEFAULT_ACTIVITY_PAGE)
        await self._visible(who, "RecordService.GetConversationActivity", conversation_id)
        try:
            found = await self._activity.page(
                who.tenant, conversation_id, size, request.page_token or None
            )
        except InvalidInput as exc:
            raise InvalidArgument(str(exc), field="page_token") from None
        return pb.GetConversationActivityResponse(
            entries=[
                pb.ActivityEntry(
                    time=cv.timestamp(a.at),
                    kind=a.kind,
                    actor=a.actor,
                    detail=a.detail,
                    message=cv.message_name(conversation_id, a.message_id) if a.message_id else "",
                )
                for a in found.entries
            ],
            next_page_token=found.next_page_token or "",
        )

    @cv.guarded
    async def ListCustomerConversations(
        self, request: pb.ListCustomerConversationsRequest, context: Ctx
    ) -> pb.ListCustomerConversationsResponse:
        customer_id = cv.parse_name("customers", request.customer, field="customer")
        size = page_size(request.page_size)
        scope = await self._scope(caller(context))
        records, token, _, _ = await self._page(
            scope,
            ListFilter(customer_id=customer_id),
            Order.NEWEST_FIRST,
            size,
            request.page_token,
        )
        return pb.ListCustomerConversationsResponse(conversations=records, next_page_token=token)

    @cv.guarded_stream
    async def ExportConversations(
        self, request: pb.ExportConversationsRequest, context: Ctx
    ) -> AsyncIterator[pb.ExportConversationsResponse]:
        f = filter_from_proto(request.filter)
        write: Callable[..., AsyncIterator[bytes]]
        if request.format == pb.EXPORT_FORMAT_CSV:
            write = records_export.csv_chunks
        elif request.format == pb.EXPORT_FORMAT_XLSX:
            write = records_export.xlsx_chunks
        else:
            raise InvalidArgument("format must be CSV or XLSX", field="format")
        scope = await self._scope(caller(context))

        def messages() -> AsyncIterator[MessageRecord]:
            return self._lists.export_messages(scope, f)

        transcripts = messages if request.include_transcripts else None
        async for chunk in write(self._lists.export(scope, f), transcripts):
            yield pb.ExportConversationsResponse(chunk=chunk)
