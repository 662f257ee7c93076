"""TeamChatService: internal chat between a tenant's agents, and who of them is around.

Contracts (the proto's comments are the reference):

- The caller is the agent its credential names (a console session's, or an agent's API token);
  a credential naming none is refused PERMISSION_DENIED (``NO_AGENT``).
- Threads, members and messages are plain data (``core.store.team_chat``); a thread the caller
  is not in is NOT_FOUND. A stored message is announced to the streams
  (``core.api.team_chat_hub``): this process's at once, the others' through Redis pub/sub.
- ``StreamTeamChat`` replays the caller's messages after ``resume_after_message_id`` from the
  store, then sends new ones as the hub delivers them, each once and in id order; colleagues'
  status changes come from the tenant's event feed (``AgentStatusChanged``), live only.
- ``ListColleagues`` is the engine's view (``ApiContext.live``, as the supervisor dashboard's):
  status and load; names and departments from the stored agents.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, Final

import grpc
from usher.v1 import team_chat_service_pb2 as pb
from usher.v1 import team_chat_service_pb2_grpc as pb_grpc

from core.api import convert as cv
from core.api.auth import caller
from core.api.context import ApiContext
from core.api.team_chat_hub import BATCH, TeamChatHub
from core.routing import events as ev
from core.routing.errors import InvalidArgument, NotFound, PermissionDenied
from core.runtime.feed import Item
from core.runtime.shard import Failure
from core.store import team_chat as tc

Ctx = grpc.aio.ServicerContext[Any, Any]

THREADS: Final = "teamThreads"
DEFAULT_PAGE: Final = 100
DEFAULT_COLLEAGUES: Final = 500
_THREAD_KINDS: Final = {
    tc.ThreadKind.DIRECT: pb.TEAM_THREAD_KIND_DIRECT,
    tc.ThreadKind.GROUP: pb.TEAM_THREAD_KIND_GROUP,
}
_MESSAGE_KINDS: Final = {
    tc.MessageKind.TEXT: pb.TEAM_MESSAGE_KIND_TEXT,
    tc.MessageKind.THREAD_CREATED: pb.TEAM_MESSAGE_KIND_THREAD_CREATED,
}


def thread_name(thread_id: str) -> str:
    return f"{THREADS}/{thread_id}"


def message_to_proto(message: tc.TeamMessage) -> pb.TeamMessage:
    return pb.TeamMessage(
        name=f"{thread_name(message.thread_id)}/messages/{message.message_id}",
        thread=thread_name(message.thread_id),
        message_id=message.message_id,
        sender=cv.agent_name(message.sender),
        kind=_MESSAGE_KINDS[message.kind],
        text=message.text,
        create_time=cv.timestamp(message.created_at),
    )


def thread_to_proto(thread: tc.Thread) -> pb.TeamThread:
    out = pb.TeamThread(
        name=thread_name(thread.thread_id),
        kind=_THREAD_KINDS[thread.kind],
        title=thread.title,
        members=[cv.agent_name(a) for a in thread.members],
        creator=cv.agent_name(thread.creator),
        create_time=cv.timestamp(thread.created_at),
    )
    if thread.last is not None:
        out.last_message.CopyFrom(message_to_proto(thread.last))
    return out


def _size(size: int, default: int = DEFAULT_PAGE) -> int:
    return size or default


def _number_token(token: str) -> int | None:
    if not token:
        return None
    if not token.isdigit():
        raise InvalidArgument("page_token is not one this server issued", field="page_token")
    return int(token)


def _thread_token(token: str) -> tuple[int, str] | None:
    if not token:
        return None
    last, _, thread_id = token.partition(":")
    if not last.isdigit() or not thread_id:
        raise InvalidArgument("page_token is not one this server issued", field="page_token")
    return int(last), thread_id


def _not_found(name: str) -> NotFound:
    return NotFound(
        f"team thread {name!r} not found",
        resource_type="usher.v1.TeamThread",
        resource_name=name,
    )


class TeamChatServicer(pb_grpc.TeamChatServiceServicer):
    """See the module docstring."""

    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx
        self.store = tc.TeamChat(ctx.pool)
        self.hub = TeamChatHub(self.store, ctx.redis)

    @staticmethod
    def _me(context: Ctx) -> tuple[str, str]:
        who = caller(context)
        if not who.agent_id:
            raise PermissionDenied(
                "team chat is between agents: this credential names no agent", reason="NO_AGENT"
            )
        return who.tenant, who.agent_id

    async def _thread_of(self, tenant: str, me: str, name: str, field: str) -> tc.Thread:
        thread_id = cv.parse_name(THREADS, name, field=field)
        found = await self.store.thread(tenant, thread_id, me)
        if found is None:
            raise _not_found(name)
        return found

    @cv.guarded
    async def CreateThread(
        self, request: pb.CreateThreadRequest, context: Ctx
    ) -> pb.CreateThreadResponse:
        tenant, me = self._me(context)
        others = sorted(
            {cv.parse_agent(m, f"members[{i}]") for i, m in enumerate(request.members)} - {me}
        )
        if request.kind == pb.TEAM_THREAD_KIND_DIRECT:
            kind = tc.ThreadKind.DIRECT
            if len(others) != 1:
                raise InvalidArgument("a DIRECT thread names one other agent", field="members")
            if request.title:
                raise InvalidArgument("a DIRECT thread has no title", field="title")
        elif request.kind == pb.TEAM_THREAD_KIND_GROUP:
            kind = tc.ThreadKind.GROUP
            if not 1 <= len(others) <= tc.MAX_MEMBERS - 1:
                raise InvalidArgument(
                    f"a GROUP names 1 to {tc.MAX_MEMBERS - 1} other agents", field="members"
                )
            if not request.title.strip():
                raise InvalidArgument("a GROUP needs a title", field="title")
        else:
            raise InvalidArgument("kind is DIRECT or GROUP", field="kind")
        try:
            thread, created = await self.store.create(
                tenant, me, kind, others, request.title.strip()
            )
        except tc.UnknownMembers as exc:
            raise NotFound(f"agent {exc.agents[0]!r} not found", agent=exc.agents[0]) from None
        if created and thread.last is not None:
            await self.hub.announce(tenant, thread.last.message_id)
        return pb.CreateThreadResponse(thread=thread_to_proto(thread))

    @cv.guarded
    async def ListThreads(
        self, request: pb.ListThreadsRequest, context: Ctx
    ) -> pb.ListThreadsResponse:
        tenant, me = self._me(context)
        size = _size(request.page_size)
        found = await self.store.threads(tenant, me, _thread_token(request.page_token), size + 1)
        more = len(found) > size
        last = found[size - 1] if more else None
        return pb.ListThreadsResponse(
            threads=[thread_to_proto(t) for t in found[:size]],
            next_page_token=""
            if last is None
            else f"{last.last.message_id if last.last else 0}:{last.thread_id}",
        )

    @cv.guarded
    async def SendTeamMessage(
        self, request: pb.SendTeamMessageRequest, context: Ctx
    ) -> pb.SendTeamMessageResponse:
        tenant, me = self._me(context)
        thread_id = cv.parse_name(THREADS, request.thread, field="thread")
        if not request.text.strip():
            raise InvalidArgument("a message needs text", field="text")
        sent = await self.store.send(
            tenant, thread_id, me, request.text, request.request_id or None
        )
        if sent is None:
            raise _not_found(request.thread)
        message, duplicate = sent
        if not duplicate:
            await self.hub.announce(tenant, message.message_id)
        return pb.SendTeamMessageResponse(message=message_to_proto(message), duplicate=duplicate)

    @cv.guarded
    async def ListTeamMessages(
        self, request: pb.ListTeamMessagesRequest, context: Ctx
    ) -> pb.ListTeamMessagesResponse:
        tenant, me = self._me(context)
        thread = await self._thread_of(tenant, me, request.thread, "thread")
        size = _size(request.page_size)
        found = await self.store.messages(
            tenant, thread.thread_id, _number_token(request.page_token), size + 1
        )
        more = len(found) > size
        return pb.ListTeamMessagesResponse(
            messages=[message_to_proto(m) for m in found[:size]],
            next_page_token=str(found[size - 1].message_id) if more else "",
        )

    async def _item(self, tenant: str, me: str, message: tc.TeamMessage) -> Any:
        item = pb.StreamTeamChatResponse(message=message_to_proto(message))
        if message.kind is tc.MessageKind.THREAD_CREATED:
            thread = await self.store.thread(tenant, message.thread_id, me)
            if thread is not None:
                item.thread.CopyFrom(thread_to_proto(thread))
        return item

    @cv.guarded_stream
    async def StreamTeamChat(
        self, request: pb.StreamTeamChatRequest, context: Ctx
    ) -> AsyncIterator[pb.StreamTeamChatResponse]:
        tenant, me = self._me(context)
        inbox = await self.hub.join(tenant, me)  # first, so nothing falls between it and replay
        presence = self.ctx.feeds.feed(tenant).subscribe(
            None, accepts=lambda e: isinstance(e, ev.AgentStatusChanged) and e.agent_id != me
        )
        changes = aiter(presence)
        last = request.resume_after_message_id
        pending: dict[asyncio.Future[Any], str] = {}
        try:
            while last:  # the messages missed, from the store
                found = await self.store.after(tenant, last, BATCH, reader=me)
                for delivery in found:
                    yield await self._item(tenant, me, delivery.message)
                    last = delivery.message.message_id
                if len(found) < BATCH:
                    break
            pending = {
                asyncio.ensure_future(inbox.get()): "message",
                asyncio.ensure_future(anext(changes)): "presence",
            }
            while True:
                done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for future in done:
                    what = pending.pop(future)
                    if what == "message":
                        pending[asyncio.ensure_future(inbox.get())] = what
                        message: tc.TeamMessage = future.result()
                        if message.message_id > last:  # not replayed already
                            last = message.message_id
                            yield await self._item(tenant, me, message)
                    else:
                        pending[asyncio.ensure_future(anext(changes))] = what
                        change: Item = future.result()
                        yield pb.StreamTeamChatResponse(presence=_presence(change.event))
        finally:
            for future in pending:
                future.cancel()
                with contextlib.suppress(BaseException):
                    await future
            self.hub.leave(inbox)
            presence.close()

    @cv.guarded
    async def ListColleagues(
        self, request: pb.ListColleaguesRequest, context: Ctx
    ) -> pb.ListColleaguesResponse:
        tenant, _ = self._me(context)
        department = (
            cv.parse_name("departments", request.department, field="department")
            if request.department
            else None
        )
        if self.ctx.live is None:
            raise cv.Refused(Failure("UNAVAILABLE", "this front door has no live figures"))
        size = _size(request.page_size, DEFAULT_COLLEAGUES)
        found = await self.store.colleagues(tenant, department, request.page_token, size + 1)
        live = {a.agent_id: a for a in (await self.ctx.live(tenant)).agents}
        out = pb.ListColleaguesResponse()
        for colleague in found[:size]:
            now = live.get(colleague.agent_id)
            out.colleagues.append(
                pb.Colleague(
                    agent=cv.agent_name(colleague.agent_id),
                    display_name=colleague.display_name,
                    status=cv.status_to_proto(now.status if now else colleague.status),
                    custom_status=(now.custom_status if now else colleague.custom_status) or "",
                    load=now.load if now else 0.0,
                    capacity=now.capacity if now else 0.0,
                    departments=[f"departments/{d}" for d in colleague.departments],
                )
            )
        if len(found) > size:
            out.next_page_token = found[size - 1].agent_id
        return out


def _presence(event: ev.Event) -> pb.ColleaguePresence:
    assert isinstance(event, ev.AgentStatusChanged)
    return pb.ColleaguePresence(
        agent=cv.agent_name(event.agent_id),
        status=cv.status_to_proto(event.status),
        custom_status=event.custom_status or "",
        time=cv.timestamp(event.at),
    )
