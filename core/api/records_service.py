"""RecordService: the tenant's conversations as lists for consoles and reports.

Reads only (plus the caller's pins): lists, counts, customers' histories and exports come from
``core.store.conversation_lists``, activity logs from ``core.store.activity``; the servicer
holds no SQL. Supervisors and admins see the whole tenant; an agent sees what
``core.api.policy`` lets them read (the lists apply the same relations in SQL: owned, served
last, offered now, waiting or never served in a queue they serve, and their department
colleagues' where the tenant allows team reads). A conversation the caller may not see is
NOT_FOUND, like one that does not exist.

``WatchConversationLists`` keeps a console's lists live: it starts from the counts read at an
event-log position (``core.store.list_watch``) and follows the tenant's feed from there, each
event folded into the lists of its conversation (``core.api.list_watch``); pins made through
this servicer reach the pinner's watches here (``PinSignals``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, Final

from usher.v1 import conversation_pb2
from usher.v1 import record_service_pb2 as pb
from usher.v1 import record_service_pb2_grpc as pb_grpc

from core.api import convert as cv
from core.api import policy
from core.api.auth import caller
from core.api.context import ApiContext, Caller
from core.api.list_facts import ListName, may_change_lists
from core.api.list_watch import (
    FOLDED_KINDS,
    ChangeKind,
    ListWatch,
    PinSignals,
    Update,
    follow,
)
from core.api.resources import conversation_from_row, conversation_from_view
from core.routing import events as ev
from core.routing.errors import InvalidArgument, NotFound, PermissionDenied
from core.runtime.feed import MAX_CATCH_UP, ResumeTooOld, Subscription
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
from core.store.list_watch import ListWatchReads, WatchStart
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
_LISTS: Final = {
    pb.CONVERSATION_LIST_BOT: ListName.BOT,
    pb.CONVERSATION_LIST_WAITING: ListName.WAITING,
    pb.CONVERSATION_LIST_MINE: ListName.MINE,
    pb.CONVERSATION_LIST_ACTIVE: ListName.ACTIVE,
    pb.CONVERSATION_LIST_WRAP_UP: ListName.WRAP_UP,
    pb.CONVERSATION_LIST_CLOSED_TODAY: ListName.CLOSED_TODAY,
    pb.CONVERSATION_LIST_PINNED: ListName.PINNED,
    pb.CONVERSATION_LIST_LEFT_MESSAGES: ListName.LEFT_MESSAGES,
    pb.CONVERSATION_LIST_TEAM: ListName.TEAM,
}
_LIST_PROTOS: Final = {name: number for number, name in _LISTS.items()}
_CHANGE_KINDS: Final = {
    ChangeKind.ENTERED: pb.LIST_CHANGE_KIND_ENTERED,
    ChangeKind.LEFT: pb.LIST_CHANGE_KIND_LEFT,
    ChangeKind.UPDATED: pb.LIST_CHANGE_KIND_UPDATED,
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
        bot_answered=f.bot_answered,
        bot_not_answered=f.bot_could_not_answer,
    )


def departments_from_proto(names: Any, field: str) -> tuple[str, ...]:
    """The ids of ``departments/{d}`` names, each once, in order."""
    return tuple(dict.fromkeys(cv.parse_name("departments", n, field=field) for n in names))


def closed_since(request: Any) -> dt.datetime:
    """The request's ``closed_since``, else 00:00 UTC today."""
    if request.HasField("closed_since"):
        return cv.from_timestamp(request.closed_since)
    now = dt.datetime.now(dt.UTC)
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def watched_lists(values: Sequence[int]) -> tuple[ListName, ...]:
    """The lists a watch names: at least one, each known and named once."""
    if not values:
        raise InvalidArgument("name at least one list", field="lists")
    found: list[ListName] = []
    for value in values:
        name = _LISTS.get(value)  # type: ignore[call-overload]
        if name is None:
            raise InvalidArgument("lists has an unknown value", field="lists")
        if name in found:
            raise InvalidArgument("lists names a list twice", field="lists")
        found.append(name)
    return tuple(found)


def watch_message(update: Update) -> pb.WatchConversationListsResponse:
    return pb.WatchConversationListsResponse(
        event_id=update.position,
        reset=update.reset,
        counts=[
            pb.ListCount(list=_LIST_PROTOS[name], count=min(count, 2**31 - 1))
            for name, count in update.counts.items()
        ],
        changes=[
            pb.ListChange(
                list=_LIST_PROTOS[change.list],
                kind=_CHANGE_KINDS[change.kind],
                conversation=pb.ConversationRecord(
                    conversation=conversation_from_view(change.facts.view()),
                    customer_id=change.facts.customer_id,
                    pinned=change.pinned,
                ),
            )
            for change in update.changes
        ],
    )


def pinner_of(who: Caller) -> str:
    """Whose pins: a person's who signed in (an agent, or a supervisor or admin signed in to the
    console as their agent: their pins outlive each refreshed token), else the credential's."""
    if who.agent_id:
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
        self._watch_reads = ListWatchReads(ctx.pool)
        self.pin_signals = PinSignals()
        """Pins and unpins made here, for the pinner's watches here."""

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
        since = closed_since(request)
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
        self.pin_signals.publish(who.tenant, pinner_of(who), conversation_id, True)
        return pb.PinConversationResponse()

    @cv.guarded
    async def UnpinConversation(
        self, request: pb.UnpinConversationRequest, context: Ctx
    ) -> pb.UnpinConversationResponse:
        who = caller(context)
        conversation_id = cv.parse_conversation(request.conversation)
        await self._visible(who, "RecordService.UnpinConversation", conversation_id)
        await self._pins.unpin(who.tenant, pinner_of(who), conversation_id)
        self.pin_signals.publish(who.tenant, pinner_of(who), conversation_id, False)
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

    @cv.guarded_stream
    async def WatchConversationLists(
        self, request: pb.WatchConversationListsRequest, context: Ctx
    ) -> AsyncIterator[pb.WatchConversationListsResponse]:
        who = caller(context)
        watched = watched_lists(request.lists)
        departments = departments_from_proto(request.departments, "departments")
        since = closed_since(request)
        if who.role == policy.Role.AGENT and not who.agent_id:
            raise PermissionDenied("an agent credential without an agent")
        agent_id = who.agent_id if who.role == policy.Role.AGENT else None
        tenant, pinner = who.tenant, pinner_of(who)

        def start() -> Awaitable[WatchStart]:
            return self._watch_reads.start(
                tenant,
                agent_id=agent_id,
                pinner=pinner,
                departments=departments,
                closed_since=since,
            )

        def load(bounds: Mapping[str, int]) -> Awaitable[Mapping[str, Sequence[ev.Event]]]:
            return self._watch_reads.histories(tenant, bounds, FOLDED_KINDS)

        watch = ListWatch(
            watched=watched,
            agent_id=agent_id,
            departments=departments,
            closed_since=since.timestamp(),
            load=load,
        )
        inbox = self.pin_signals.subscribe(tenant, pinner)
        subscription: Subscription | None = None
        try:
            begun = await start()
            after = request.resume_after_event_id
            if not after:
                opening = watch.begin(begun)
            else:
                if after > begun.position:
                    raise InvalidArgument(
                        "resume_after_event_id is past the tenant's last event",
                        field="resume_after_event_id",
                    )
                if begun.position - after > MAX_CATCH_UP:
                    raise ResumeTooOld(
                        f"{begun.position - after} events missed since {after}: more than the"
                        f" {MAX_CATCH_UP} a watch may catch up on; watch afresh"
                    )
                missed = await self._watch_reads.events(tenant, after, begun.position)
                opening = await watch.resume(after, missed, begun)
            yield watch_message(opening)
            feed = self.ctx.feeds.feed(tenant)
            subscription = feed.subscribe(watch.position, accepts=may_change_lists)
            async for update in follow(watch, subscription, inbox, start):
                yield watch_message(update)
        finally:
            self.pin_signals.unsubscribe(tenant, pinner, inbox)
            if subscription is not None:
                subscription.close()
