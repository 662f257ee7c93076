"""BlocklistService: the tenant's blocklist (``core.store.blocklist``), for supervisors and
admins; an agent may block the customer of a conversation they own (``core.api.policy``).

The blocklist is not routing state: this door writes it through ``ApiContext.blocklist``,
whose inbound cache it shares with ConversationService (a change here takes effect there at
once in this process). A block or unblock refreshes the profiles of the customers it names on
their open conversations (``core.api.profiles``), so the engine stops or lets through their
messages there. Block changes (created, unblocked, expired) are logged with them and streamed
by ``WatchBlocks`` from that log (``core.api.block_watch``), never from the shards'. The
servicer validates, authorizes and translates; it holds no SQL.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any, Final

from usher.v1 import blocklist_service_pb2 as pb
from usher.v1 import blocklist_service_pb2_grpc as pb_grpc

from core.api import convert as cv
from core.api import policy, profiles
from core.api.admin import decode_token, encode_token, page_size
from core.api.auth import caller
from core.api.block_watch import BlockWatch
from core.api.context import ApiContext, Caller
from core.api.conversation_access import authorize, who_acts
from core.routing.errors import InvalidArgument, NotFound, PermissionDenied
from core.store import block_events
from core.store.access import Access
from core.store.block_events import BlockEvent
from core.store.block_log import Change
from core.store.blocklist import Block, Kind, State, normalized
from core.store.errors import InvalidInput

Ctx = Any  # grpc.aio.ServicerContext

_TARGET_FIELDS = {
    "customer": Kind.CUSTOMER,
    "phone": Kind.PHONE,
    "email": Kind.EMAIL,
    "ip_address": Kind.IP,
}
_FIELD_OF = {kind: field for field, kind in _TARGET_FIELDS.items()}
_STATE = {
    State.ACTIVE: pb.BLOCK_STATE_ACTIVE,
    State.EXPIRED: pb.BLOCK_STATE_EXPIRED,
    State.UNBLOCKED: pb.BLOCK_STATE_UNBLOCKED,
}


def block_to_proto(block: Block, now: dt.datetime) -> pb.Block:
    out = pb.Block(
        name=f"blocks/{block.block_id}",
        reason=block.reason,
        state=_STATE[block.state(now)],
        create_time=cv.timestamp(block.created_at),
        creator=block.created_by,
        expire_time=cv.timestamp(block.expires_at),
        unblock_time=cv.timestamp(block.unblocked_at),
        unblocker=block.unblocked_by or "",
    )
    value = f"customers/{block.value}" if block.kind is Kind.CUSTOMER else block.value
    setattr(out, _FIELD_OF[block.kind], value)
    return out


_CHANGE: Final = {
    Change.CREATED: pb.BLOCK_CHANGE_CREATED,
    Change.UNBLOCKED: pb.BLOCK_CHANGE_UNBLOCKED,
    Change.EXPIRED: pb.BLOCK_CHANGE_EXPIRED,
}


def event_to_proto(event: BlockEvent) -> pb.BlockEvent:
    """A change, with the block as it left it (its state as of the change): a pure function of
    the log row, so a replay shows what the live stream showed."""
    return pb.BlockEvent(
        event_id=event.seq,
        time=cv.timestamp(event.at),
        change=_CHANGE[event.change],
        block=block_to_proto(event.block, event.at),
    )


def _target(message: pb.Block | pb.ListBlocksRequest, prefix: str) -> tuple[Kind, str] | None:
    """The (kind, normalized value) of a message's ``target`` oneof; None when unset."""
    field = message.WhichOneof("target")
    if field is None:
        return None
    kind = _TARGET_FIELDS[field]
    value: str = getattr(message, field)
    if kind is Kind.CUSTOMER:
        value = cv.parse_name("customers", value, field=f"{prefix}{field}")
    try:
        return kind, normalized(kind, value)
    except InvalidInput as exc:
        raise InvalidArgument(str(exc), field=f"{prefix}{field}") from None


def _block_id(name: str, field: str = "name") -> int:
    block = cv.parse_name("blocks", name, field=field)
    if not block.isascii() or not block.isdigit() or len(block) > 18:
        raise NotFound(
            f"block {name!r} not found", resource_type="usher.v1.Block", resource_name=name
        )
    return int(block)


def _who(who: Caller) -> str:
    return f"agents/{who.agent_id}" if who.agent_id else f"credentials/{who.credential_id}"


class BlocklistServicer(pb_grpc.BlocklistServiceServicer):
    """BlocklistService over an ``ApiContext``."""

    def __init__(self, api: ApiContext) -> None:
        self._api = api
        self._access = Access(api.pool)
        self._watch = BlockWatch(api.pool)

    async def _not_found(self, block_id: int) -> NotFound:
        return NotFound(
            f"block '{block_id}' not found",
            resource_type="usher.v1.Block",
            resource_name=f"blocks/{block_id}",
        )

    @cv.guarded
    async def CreateBlock(
        self, request: pb.CreateBlockRequest, context: Ctx
    ) -> pb.CreateBlockResponse:
        who = who_acts(caller(context))
        block = request.block
        target = _target(block, "block.")
        if request.conversation:
            if target is not None:
                raise InvalidArgument(
                    "name a conversation or a target, not both", field="block.target"
                )
            conversation_id = cv.parse_conversation(request.conversation)
            await authorize(self._access, who, "BlocklistService.CreateBlock", conversation_id)
            sender = await self._api.blocklist.sender_of(who.tenant, conversation_id)
            if sender is None:  # deleted meanwhile
                raise NotFound(
                    f"conversation {conversation_id!r} not found", conversation_id=conversation_id
                )
            target = Kind.CUSTOMER, sender.customer_id
        elif who.role == policy.Role.AGENT:
            raise PermissionDenied("an agent blocks the customer of a conversation they own")
        if target is None:
            raise InvalidArgument("name what to block", field="block.target")
        now = dt.datetime.now(dt.UTC)
        expires_at = await self._expiry(request, now)
        try:
            created = await self._api.blocklist.create(
                who.tenant,
                target[0],
                target[1],
                reason=block.reason,
                created_by=_who(who),
                expires_at=expires_at,
            )
        except InvalidInput as exc:
            raise InvalidArgument(str(exc), field="block.reason") from None
        if created is None:
            raise NotFound(
                f"customer {target[1]!r} not found",
                resource_type="usher.v1.Customer",
                resource_name=f"customers/{target[1]}",
            )
        await profiles.refresh_block(self._api, who.tenant, created.kind, created.value)
        return pb.CreateBlockResponse(block=block_to_proto(created, now))

    @staticmethod
    async def _expiry(request: pb.CreateBlockRequest, now: dt.datetime) -> dt.datetime | None:
        has_ttl = request.HasField("ttl")
        has_expiry = request.block.HasField("expire_time")
        if has_ttl and has_expiry:
            raise InvalidArgument("give ttl or block.expire_time, not both", field="ttl")
        if has_ttl:
            ttl = request.ttl.ToTimedelta()
            if ttl <= dt.timedelta(0) or ttl > dt.timedelta(days=36_500):
                raise InvalidArgument("ttl is positive and at most 100 years", field="ttl")
            return now + ttl
        if has_expiry:
            expires_at = cv.from_timestamp(request.block.expire_time)
            if expires_at <= now:
                raise InvalidArgument("expire_time is in the past", field="block.expire_time")
            return expires_at
        return None

    @cv.guarded
    async def GetBlock(self, request: pb.GetBlockRequest, context: Ctx) -> pb.GetBlockResponse:
        tenant = caller(context).tenant
        block_id = _block_id(request.name)
        found = await self._api.blocklist.get(tenant, block_id)
        if found is None:
            raise await self._not_found(block_id)
        return pb.GetBlockResponse(block=block_to_proto(found, dt.datetime.now(dt.UTC)))

    @cv.guarded
    async def ListBlocks(
        self, request: pb.ListBlocksRequest, context: Ctx
    ) -> pb.ListBlocksResponse:
        tenant = caller(context).tenant
        size = await page_size(context, request.page_size)
        token = await decode_token(context, request.page_token)
        head = await block_events.head(self._api.pool, tenant)  # before the page: no gap
        before: int | None = None
        if token:
            if not token.isascii() or not token.isdigit() or len(token) > 18:
                raise InvalidArgument(
                    "page_token is not one this server issued", field="page_token"
                )
            before = int(token)
        found = await self._api.blocklist.page(
            tenant,
            before=before,
            size=size + 1,
            target=_target(request, ""),
            active_only=not request.show_inactive,
        )
        more = len(found) > size
        found = found[:size]
        now = dt.datetime.now(dt.UTC)
        return pb.ListBlocksResponse(
            blocks=[block_to_proto(block, now) for block in found],
            next_page_token=encode_token(str(found[-1].block_id)) if more else "",
            watch_after_event_id=head,
        )

    @cv.guarded
    async def Unblock(self, request: pb.UnblockRequest, context: Ctx) -> pb.UnblockResponse:
        who = caller(context)
        block_id = _block_id(request.name)
        found = await self._api.blocklist.unblock(who.tenant, block_id, by=_who(who))
        if found is None:
            raise await self._not_found(block_id)
        await profiles.refresh_block(self._api, who.tenant, found.kind, found.value)
        return pb.UnblockResponse(block=block_to_proto(found, dt.datetime.now(dt.UTC)))

    @cv.guarded_stream
    async def WatchBlocks(
        self, request: pb.WatchBlocksRequest, context: Ctx
    ) -> AsyncIterator[pb.WatchBlocksResponse]:
        tenant = caller(context).tenant
        async for batch in self._watch.changes(tenant, request.resume_after_event_id):
            yield pb.WatchBlocksResponse(events=[event_to_proto(e) for e in batch])
