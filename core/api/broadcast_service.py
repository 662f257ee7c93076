"""BroadcastService: broadcasts for supervisors and admins, sends for the channel gateways.

Broadcasts are plain data, not routing state: the servicer writes them through the store
(``core.store.broadcasts``, ``broadcast_audience``, ``broadcast_sends``) and holds no SQL. The
gateways send (``gateways.common.broadcasts``): they claim sends and report what became of them
here, so the store holds every recipient's durable state. Refusals from the store become
statuses here (``_answered``): ``Violations`` INVALID_ARGUMENT with a BadRequest violation per
field (prefixed with the request's path), ``Conflict`` ALREADY_EXISTS, ``Missing`` NOT_FOUND
with ResourceInfo, ``WrongState`` and ``NothingToSend`` FAILED_PRECONDITION; a quota refusal
(``core.store.quotas.QuotaExceeded``) is RESOURCE_EXHAUSTED with its QuotaFailure
(``core.api.errors``).
"""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo
from collections.abc import Awaitable, Callable
from typing import Any, Final, NoReturn, TypeVar

from usher.v1 import broadcast_service_pb2 as pb
from usher.v1 import broadcast_service_pb2_grpc as pb_grpc

from core.api import broadcast_values as bv
from core.api.admin import decode_token, encode_token, page_size
from core.api.auth import caller
from core.api.context import ApiContext, Caller
from core.api.convert import from_timestamp, guarded
from core.api.errors import abort, shown
from core.store import broadcast_audience, broadcast_sends
from core.store.broadcast_audience import NothingToSend
from core.store.broadcasts import Broadcasts, WrongState, tenant_zone
from core.store.customer_fields import Conflict, Missing, Violations

Ctx = Any  # grpc.aio.ServicerContext
S = TypeVar("S")
Req = TypeVar("Req")
Resp = TypeVar("Resp")

MAX_VIOLATIONS: Final = 50
RESOURCE_TYPES: Final = {
    "broadcast": "usher.v1.Broadcast",
    "channel": "usher.v1.Channel",
    "customer": "usher.v1.Customer",
    "customer group": "usher.v1.CustomerGroup",
}
PAST_GRACE: Final = dt.timedelta(minutes=1)
"""A schedule time this far in the past still means "now" (clocks and typing differ)."""
MAX_LEASE: Final = 3_600.0
_REFUSALS: Final = (Violations, Conflict, Missing, WrongState, NothingToSend)


async def _answered(context: Ctx, exc: Exception, prefix: str) -> NoReturn:
    """End the call with the status a store refusal stands for."""
    if isinstance(exc, Violations):
        items = list(exc.violations.items())
        more = len(items) - MAX_VIOLATIONS
        await abort(
            context,
            "INVALID_ARGUMENT",
            f"{len(items)} invalid value(s)" + (f" ({more} more not shown)" if more > 0 else ""),
            violations={f"{prefix}{k}": v for k, v in items[:MAX_VIOLATIONS]},
        )
    if isinstance(exc, Conflict):
        await abort(context, "ALREADY_EXISTS", str(exc), violations={exc.field: "already taken"})
    if isinstance(exc, Missing):
        await abort(
            context,
            "NOT_FOUND",
            f"{exc.kind} {shown(exc.name, 120)} not found",
            details={"resource_type": RESOURCE_TYPES[exc.kind], "resource_name": exc.name},
        )
    if isinstance(exc, WrongState):
        await abort(
            context,
            "FAILED_PRECONDITION",
            str(exc),
            reason="BROADCAST_STATE",
            details={"broadcast": f"broadcasts/{exc.broadcast_id}", "state": exc.state},
        )
    assert isinstance(exc, NothingToSend)
    await abort(context, "FAILED_PRECONDITION", str(exc), reason="NO_RECIPIENTS")


def answering(
    prefix: str = "",
) -> Callable[[Callable[[S, Req, Ctx], Awaitable[Resp]]], Callable[[S, Req, Ctx], Awaitable[Resp]]]:
    """A unary method whose store refusals end the call as ``_answered`` says (violation
    fields under ``prefix``); everything else (a quota included) as ``guarded`` does."""

    def wrap(
        method: Callable[[S, Req, Ctx], Awaitable[Resp]],
    ) -> Callable[[S, Req, Ctx], Awaitable[Resp]]:
        @functools.wraps(method)
        async def inner(self: S, request: Req, context: Ctx) -> Resp:
            try:
                return await method(self, request, context)
            except _REFUSALS as exc:
                await _answered(context, exc, prefix)

        return guarded(inner)

    return wrap


def _who(who: Caller) -> str:
    return f"agents/{who.agent_id}" if who.agent_id else f"credentials/{who.credential_id}"


async def _staff(context: Ctx) -> Caller:
    who = caller(context)
    if who.role not in ("supervisor", "admin"):
        await abort(context, "PERMISSION_DENIED", "broadcasts are supervisors' and admins'")
    return who


async def _gateway(context: Ctx) -> Caller:
    who = caller(context)
    if who.role != "gateway":
        await abort(context, "PERMISSION_DENIED", "only a channel gateway claims and reports sends")
    return who


class BroadcastServicer(pb_grpc.BroadcastServiceServicer):
    """BroadcastService over an ``ApiContext``."""

    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx
        self._store = Broadcasts(ctx.pool)

    async def _answer(self, tenant: str, broadcast_id: str) -> pb.Broadcast:
        found = await self._store.get(tenant, broadcast_id)
        stats = None if found.state == "draft" else await self._store.stats(tenant, broadcast_id)
        return bv.broadcast_to_proto(found, stats)

    @answering()
    async def CreateBroadcast(
        self, request: pb.CreateBroadcastRequest, context: Ctx
    ) -> pb.CreateBroadcastResponse:
        who = await _staff(context)
        draft = bv.draft_from_proto(request.broadcast)
        try:
            created = await self._store.create(
                who.tenant, request.broadcast_id or None, draft, _who(who)
            )
        except Violations as exc:  # the store names fields of the broadcast
            raise Violations(
                {
                    (k if k == "broadcast_id" else f"broadcast.{k}"): v
                    for k, v in exc.violations.items()
                }
            ) from exc
        return pb.CreateBroadcastResponse(broadcast=bv.broadcast_to_proto(created))

    @answering()
    async def GetBroadcast(
        self, request: pb.GetBroadcastRequest, context: Ctx
    ) -> pb.GetBroadcastResponse:
        who = await _staff(context)
        return pb.GetBroadcastResponse(
            broadcast=await self._answer(who.tenant, bv.broadcast_id(request.name))
        )

    @answering()
    async def ListBroadcasts(
        self, request: pb.ListBroadcastsRequest, context: Ctx
    ) -> pb.ListBroadcastsResponse:
        who = await _staff(context)
        size = await page_size(context, request.page_size)
        token = await decode_token(context, request.page_token)
        after = None
        if token:
            at, _, last = token.partition(" ")
            try:
                after = (dt.datetime.fromisoformat(at), last)
            except ValueError:
                raise Violations({"page_token": "not one this server issued"}) from None
        state = bv.STATE_FROM_PROTO.get(request.state) if request.state else None
        found = await self._store.list(who.tenant, state, after, size + 1)
        more = len(found) > size
        found = found[:size]
        next_token = (
            encode_token(f"{found[-1].created_at.isoformat()} {found[-1].broadcast_id}")
            if more
            else ""
        )
        return pb.ListBroadcastsResponse(
            broadcasts=[bv.broadcast_to_proto(b) for b in found], next_page_token=next_token
        )

    @answering()
    async def DeleteBroadcast(
        self, request: pb.DeleteBroadcastRequest, context: Ctx
    ) -> pb.DeleteBroadcastResponse:
        who = await _staff(context)
        await self._store.delete(who.tenant, bv.broadcast_id(request.name))
        return pb.DeleteBroadcastResponse()

    @answering()
    async def PreviewBroadcast(
        self, request: pb.PreviewBroadcastRequest, context: Ctx
    ) -> pb.PreviewBroadcastResponse:
        who = await _staff(context)
        found = await self._store.get(who.tenant, bv.broadcast_id(request.name))
        if not 0 <= request.sample_size <= broadcast_audience.MAX_SAMPLES:
            raise Violations({"sample_size": f"0 to {broadcast_audience.MAX_SAMPLES}"})
        tally = await broadcast_audience.preview(
            self.ctx.pool, who.tenant, found.broadcast_id, request.sample_size or 3
        )
        return bv.preview_to_proto(tally, found.channel_type)

    async def _schedule(self, tenant: str, request: pb.SendBroadcastRequest) -> dt.datetime | None:
        which = request.WhichOneof("schedule")
        now = dt.datetime.now(dt.UTC)
        if which is None:
            return None
        if which == "schedule_time":
            at = from_timestamp(request.schedule_time)
            field = "schedule_time"
        else:
            name = await tenant_zone(self.ctx.pool, tenant)
            try:
                zone: dt.tzinfo = zoneinfo.ZoneInfo(name)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                zone = dt.UTC
            field = "local_schedule_time"
            at = bv.local_time(request.local_schedule_time, zone, field)
        if at < now - PAST_GRACE:
            raise Violations({field: "in the past"})
        return at

    @answering()
    async def SendBroadcast(
        self, request: pb.SendBroadcastRequest, context: Ctx
    ) -> pb.SendBroadcastResponse:
        who = await _staff(context)
        broadcast = bv.broadcast_id(request.name)
        at = await self._schedule(who.tenant, request)
        await broadcast_audience.send(self.ctx.pool, who.tenant, broadcast, at)
        return pb.SendBroadcastResponse(broadcast=await self._answer(who.tenant, broadcast))

    @answering()
    async def PauseBroadcast(
        self, request: pb.PauseBroadcastRequest, context: Ctx
    ) -> pb.PauseBroadcastResponse:
        who = await _staff(context)
        done = await self._store.pause(who.tenant, bv.broadcast_id(request.name))
        return pb.PauseBroadcastResponse(
            broadcast=bv.broadcast_to_proto(
                done, await self._store.stats(who.tenant, done.broadcast_id)
            )
        )

    @answering()
    async def ResumeBroadcast(
        self, request: pb.ResumeBroadcastRequest, context: Ctx
    ) -> pb.ResumeBroadcastResponse:
        who = await _staff(context)
        done = await self._store.resume(who.tenant, bv.broadcast_id(request.name))
        return pb.ResumeBroadcastResponse(
            broadcast=bv.broadcast_to_proto(
                done, await self._store.stats(who.tenant, done.broadcast_id)
            )
        )

    @answering()
    async def CancelBroadcast(
        self, request: pb.CancelBroadcastRequest, context: Ctx
    ) -> pb.CancelBroadcastResponse:
        who = await _staff(context)
        done = await self._store.cancel(who.tenant, bv.broadcast_id(request.name))
        return pb.CancelBroadcastResponse(
            broadcast=bv.broadcast_to_proto(
                done, await self._store.stats(who.tenant, done.broadcast_id)
            )
        )

    @answering()
    async def ListBroadcastRecipients(
        self, request: pb.ListBroadcastRecipientsRequest, context: Ctx
    ) -> pb.ListBroadcastRecipientsResponse:
        who = await _staff(context)
        broadcast = bv.broadcast_id(request.parent, "parent")
        await self._store.get(who.tenant, broadcast)  # NOT_FOUND before an empty page
        size = await page_size(context, request.page_size)
        token = await decode_token(context, request.page_token)
        if token and not (token.isascii() and token.isdigit() and len(token) <= 9):
            raise Violations({"page_token": "not one this server issued"})
        state = bv.RECIPIENT_STATE_FROM_PROTO.get(request.state) if request.state else None
        found = await broadcast_sends.recipients(
            self.ctx.pool, who.tenant, broadcast, state, int(token or 0), size + 1
        )
        more = len(found) > size
        found = found[:size]
        return pb.ListBroadcastRecipientsResponse(
            recipients=[bv.recipient_to_proto(r) for r in found],
            next_page_token=encode_token(str(found[-1].recipient_id)) if more else "",
        )

    @answering()
    async def ClaimBroadcastSends(
        self, request: pb.ClaimBroadcastSendsRequest, context: Ctx
    ) -> pb.ClaimBroadcastSendsResponse:
        who = await _gateway(context)
        problems: dict[str, str] = {}
        for field in ("channel", "sender", "session"):
            if not getattr(request, field):
                problems[field] = "required"
        if not 1 <= request.max_sends <= broadcast_sends.MAX_CLAIM:
            problems["max_sends"] = f"1 to {broadcast_sends.MAX_CLAIM}"
        lease = request.lease.ToTimedelta()
        if not 1.0 <= lease.total_seconds() <= MAX_LEASE:
            problems["lease"] = f"1 s to {MAX_LEASE:.0f} s"
        if problems:
            raise Violations(problems)
        claimed = await broadcast_sends.claim(
            self.ctx.pool,
            who.tenant,
            request.channel,
            request.sender,
            request.session,
            request.max_sends,
            lease,
        )
        response = pb.ClaimBroadcastSendsResponse(
            sends=[bv.send_to_proto(s) for s in claimed.sends]
        )
        response.lease_expire_time.FromDatetime(claimed.lease_until)
        return response

    @answering()
    async def ReportBroadcastSends(
        self, request: pb.ReportBroadcastSendsRequest, context: Ctx
    ) -> pb.ReportBroadcastSendsResponse:
        who = await _gateway(context)
        if not request.channel:
            raise Violations({"channel": "required"})
        results = bv.results_from_proto(list(request.results))
        reported = await broadcast_sends.report(self.ctx.pool, who.tenant, request.channel, results)
        return pb.ReportBroadcastSendsResponse(
            applied=reported.applied,
            stopped_broadcasts=[f"broadcasts/{b}" for b in reported.stopped],
        )
