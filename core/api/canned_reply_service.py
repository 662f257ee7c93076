"""CannedReplyService: personal and shared canned replies and their categories
(``core.store.canned_replies``), their search and their preview for a conversation.

Canned replies are plain data, not routing state: the servicer writes them through the store,
never through the shard, and holds no SQL. Who may read or change which reply or category is
``core.api.policy.canned_reply_access`` (agents: the shared ones to read, their own to change;
supervisors and admins: all); lists and search apply the same rule in SQL
(``canned_replies.Viewer``). Store refusals become statuses here (``answering``):
``Violations`` INVALID_ARGUMENT with a BadRequest violation per field (prefixed with the
request's path, e.g. ``canned_reply.text``), ``Conflict`` ALREADY_EXISTS naming the field,
``Missing`` NOT_FOUND with ResourceInfo, ``QuotaExceeded`` RESOURCE_EXHAUSTED with a
QuotaFailure.
"""

from __future__ import annotations

import dataclasses
import functools
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Final, NoReturn, TypeVar

from google.protobuf import field_mask_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from usher.v1 import canned_reply_service_pb2 as pb
from usher.v1 import canned_reply_service_pb2_grpc as pb_grpc
from usher.v1 import conversation_pb2

from core.api import convert as cv
from core.api import policy
from core.api.admin import decode_token, encode_token, page_size
from core.api.auth import caller
from core.api.context import ApiContext, Caller
from core.api.conversation_access import authorize, who_acts
from core.api.errors import abort, shown, status
from core.routing.errors import InvalidArgument, PermissionDenied
from core.store import canned_templates as templates
from core.store.access import Access
from core.store.canned_replies import (
    CannedReplies,
    Category,
    QuotaExceeded,
    Reply,
    ReplyQuery,
    Scope,
    Viewer,
    check_id,
)
from core.store.customer_fields import Conflict, Missing, Violations
from core.store.records import Attachment

Ctx = Any  # grpc.aio.ServicerContext
S = TypeVar("S")
Req = TypeVar("Req")
Resp = TypeVar("Resp")

REPLIES: Final = "cannedReplies"
CATEGORIES: Final = "cannedReplyCategories"
RESOURCE_TYPES: Final = {
    "canned reply": "usher.v1.CannedReply",
    "canned reply category": "usher.v1.CannedReplyCategory",
}
CONFLICT_FIELDS: Final = {
    "canned_reply_id": "canned_reply_id",
    "category_id": "canned_reply_category_id",
}
"""A clash on a created id names the request's id field, not the resource's."""
REPLY_FIELDS: Final = ("category", "shortcut", "title", "text", "language", "attachments")
CATEGORY_FIELDS: Final = ("display_name", "display_order")
SEARCH_PAGE: Final = 20
MAX_SEARCH_PAGE: Final = 100
MAX_SEARCH_OFFSET: Final = 1_000
MAX_VIOLATIONS: Final = 50
RENDER_RPC: Final = "CannedReplyService.RenderCannedReply"
_SCOPES: Final[dict[int, Scope]] = {
    pb.CANNED_REPLY_SCOPE_UNSPECIFIED: "all",
    pb.CANNED_REPLY_SCOPE_SHARED: "shared",
    pb.CANNED_REPLY_SCOPE_PERSONAL: "personal",
}


# --- refusals ----------------------------------------------------------------------------------


async def _answered(context: Ctx, exc: Exception, prefix: str) -> NoReturn:
    """End the call with the status a store refusal stands for."""
    if isinstance(exc, Violations):
        items = list(exc.violations.items())[:MAX_VIOLATIONS]
        await abort(
            context,
            "INVALID_ARGUMENT",
            f"{len(exc.violations)} invalid value(s)",
            violations={f"{prefix}{k}": v for k, v in items},
        )
    if isinstance(exc, Conflict):
        taken = CONFLICT_FIELDS.get(exc.field, f"{prefix}{exc.field}")
        await abort(context, "ALREADY_EXISTS", str(exc), violations={taken: "already taken"})
    if isinstance(exc, Missing):
        await abort(
            context,
            "NOT_FOUND",
            f"{exc.kind} {shown(exc.name, 120)} not found",
            details={"resource_type": RESOURCE_TYPES[exc.kind], "resource_name": exc.name},
        )
    assert isinstance(exc, QuotaExceeded)
    built = status(
        "RESOURCE_EXHAUSTED",
        str(exc),
        reason="QUOTA_EXCEEDED",
        details={"subject": exc.subject, "limit": str(exc.limit)},
    )
    quota = error_details_pb2.QuotaFailure(
        violations=[
            error_details_pb2.QuotaFailure.Violation(
                subject=f"canned:{exc.subject}", description=str(exc)
            )
        ]
    )
    built.details.add().Pack(quota)
    await context.abort_with_status(rpc_status.to_status(built))
    raise AssertionError("abort_with_status returned")  # pragma: no cover


def answering(
    prefix: str = "",
) -> Callable[[Callable[[S, Req, Ctx], Awaitable[Resp]]], Callable[[S, Req, Ctx], Awaitable[Resp]]]:
    """A unary method whose store refusals end the call as ``_answered`` says (violation
    fields prefixed with ``prefix``); everything else as ``cv.guarded`` does."""

    def wrap(
        method: Callable[[S, Req, Ctx], Awaitable[Resp]],
    ) -> Callable[[S, Req, Ctx], Awaitable[Resp]]:
        @functools.wraps(method)
        async def inner(self: S, request: Req, context: Ctx) -> Resp:
            try:
                return await method(self, request, context)
            except (Violations, Conflict, Missing, QuotaExceeded) as exc:
                await _answered(context, exc, prefix)

        return cv.guarded(inner)

    return wrap


# --- conversions -------------------------------------------------------------------------------


def attachments_to_proto(items: Iterable[Attachment]) -> list[conversation_pb2.Attachment]:
    return [
        conversation_pb2.Attachment(
            sha256=a.sha256, name=a.name, content_type=a.type, size=a.size, uri=a.uri
        )
        for a in items
    ]


def attachments_from_proto(items: Iterable[conversation_pb2.Attachment]) -> tuple[Attachment, ...]:
    return tuple(
        Attachment(sha256=a.sha256, name=a.name, type=a.content_type, size=a.size, uri=a.uri)
        for a in items
    )


def _scope_to_proto(owner: str | None) -> pb.CannedReplyScope.ValueType:
    return pb.CANNED_REPLY_SCOPE_SHARED if owner is None else pb.CANNED_REPLY_SCOPE_PERSONAL


def reply_to_proto(reply: Reply) -> pb.CannedReply:
    return pb.CannedReply(
        name=f"{REPLIES}/{reply.reply_id}",
        scope=_scope_to_proto(reply.owner),
        owner=cv.agent_name(reply.owner),
        category=f"{CATEGORIES}/{reply.category_id}" if reply.category_id else "",
        shortcut=reply.shortcut,
        title=reply.title,
        text=reply.text,
        language=reply.language,
        attachments=attachments_to_proto(reply.attachments),
        variables=reply.variables,
        use_count=reply.use_count,
        last_use_time=cv.timestamp(reply.last_used_at),
        create_time=cv.timestamp(reply.created_at),
        update_time=cv.timestamp(reply.updated_at),
    )


def category_to_proto(category: Category) -> pb.CannedReplyCategory:
    return pb.CannedReplyCategory(
        name=f"{CATEGORIES}/{category.category_id}",
        scope=_scope_to_proto(category.owner),
        owner=cv.agent_name(category.owner),
        display_name=category.display_name,
        display_order=category.display_order,
        create_time=cv.timestamp(category.created_at),
        update_time=cv.timestamp(category.updated_at),
    )


def _new_id(given: str, field: str) -> str:
    """A client-chosen id, checked; a fresh one when none is given."""
    if not given:
        return uuid.uuid4().hex
    problem = check_id(given)
    if problem:
        raise InvalidArgument(f"{field}: {problem}", field=field)
    return given


def _mask(mask: field_mask_pb2.FieldMask, writable: tuple[str, ...]) -> tuple[str, ...]:
    """The mask's paths (``*`` or none: ``writable``); ``InvalidArgument`` for any other."""
    paths = tuple(mask.paths)
    if not paths or paths == ("*",):
        return writable
    for path in paths:
        if path not in writable:
            raise InvalidArgument(
                f"update_mask may name {', '.join(writable)}; not {shown(path)}",
                field="update_mask",
            )
    return paths


def viewer_of(who: Caller) -> Viewer:
    """What ``who`` may read in lists and search (``policy.canned_reply_access`` in SQL)."""
    everyone = who.role in (policy.Role.SUPERVISOR, policy.Role.ADMIN)
    return Viewer(agent_id=who.agent_id, everyone=everyone)


class CannedReplyServicer(pb_grpc.CannedReplyServiceServicer):
    """See the module docstring."""

    def __init__(self, api: ApiContext) -> None:
        self._api = api
        self._store = CannedReplies(api.pool)
        self._access = Access(api.pool)

    # --- shared steps ----------------------------------------------------------------------

    @staticmethod
    def _owner(who: Caller, scope: int, owner: str, field: str) -> str | None:
        """Whose a new reply or category is (None: shared), as the caller may make it."""
        if scope == pb.CANNED_REPLY_SCOPE_UNSPECIFIED:
            personal = who.role == policy.Role.AGENT or bool(owner)
        else:
            personal = scope == pb.CANNED_REPLY_SCOPE_PERSONAL
        if not personal:
            if owner:
                raise InvalidArgument("a shared one has no owner", field=f"{field}owner")
            chosen = None
        else:
            chosen = cv.parse_agent(owner, f"{field}owner") if owner else who.agent_id
            if chosen is None:
                raise InvalidArgument("a personal one needs an owner", field=f"{field}owner")
        verdict = policy.canned_reply_access(who.role, who.agent_id, chosen, policy.Kind.CHANGE)
        if verdict is not policy.Verdict.ALLOW:
            raise PermissionDenied("an agent creates personal ones of their own only")
        return chosen

    @staticmethod
    def _list_owner(who: Caller, scope: int, owner: str) -> str | None:
        if not owner:
            return None
        if scope != pb.CANNED_REPLY_SCOPE_PERSONAL:
            raise InvalidArgument("owner goes with scope PERSONAL", field="owner")
        agent = cv.parse_agent(owner, "owner")
        if who.role == policy.Role.AGENT and agent != who.agent_id:
            raise InvalidArgument("an agent lists their own personal ones", field="owner")
        return agent

    @staticmethod
    def _allowed(who: Caller, owner: str | None, kind: policy.Kind, missing: Missing) -> None:
        verdict = policy.canned_reply_access(who.role, who.agent_id, owner, kind)
        if verdict is policy.Verdict.NOT_FOUND:
            raise missing
        if verdict is policy.Verdict.PERMISSION_DENIED:
            raise PermissionDenied("only supervisors and admins change shared canned replies")

    async def _reply(self, who: Caller, name: str, kind: policy.Kind, field: str) -> Reply:
        reply_id = cv.parse_name(REPLIES, name, field=field)
        missing = Missing("canned reply", f"{REPLIES}/{reply_id}")
        found = await self._store.get(who.tenant, reply_id)
        if found is None:
            raise missing
        self._allowed(who, found.owner, kind, missing)
        return found

    async def _category(self, who: Caller, name: str, kind: policy.Kind, field: str) -> Category:
        category_id = cv.parse_name(CATEGORIES, name, field=field)
        missing = Missing("canned reply category", f"{CATEGORIES}/{category_id}")
        found = await self._store.category(who.tenant, category_id)
        if found is None:
            raise missing
        self._allowed(who, found.owner, kind, missing)
        return found

    # --- categories ------------------------------------------------------------------------

    @answering("canned_reply_category.")
    async def CreateCannedReplyCategory(
        self, request: pb.CreateCannedReplyCategoryRequest, context: Ctx
    ) -> pb.CreateCannedReplyCategoryResponse:
        who = who_acts(caller(context))
        given = request.canned_reply_category
        owner = self._owner(who, given.scope, given.owner, "canned_reply_category.")
        created = await self._store.create_category(
            who.tenant,
            Category(
                category_id=_new_id(request.canned_reply_category_id, "canned_reply_category_id"),
                display_name=given.display_name,
                owner=owner,
                display_order=given.display_order,
            ),
        )
        return pb.CreateCannedReplyCategoryResponse(
            canned_reply_category=category_to_proto(created)
        )

    @answering()
    async def GetCannedReplyCategory(
        self, request: pb.GetCannedReplyCategoryRequest, context: Ctx
    ) -> pb.GetCannedReplyCategoryResponse:
        who = who_acts(caller(context))
        found = await self._category(who, request.name, policy.Kind.READ, "name")
        return pb.GetCannedReplyCategoryResponse(canned_reply_category=category_to_proto(found))

    @answering()
    async def ListCannedReplyCategories(
        self, request: pb.ListCannedReplyCategoriesRequest, context: Ctx
    ) -> pb.ListCannedReplyCategoriesResponse:
        who = who_acts(caller(context))
        size = await page_size(context, request.page_size)
        after = await decode_token(context, request.page_token)
        owner = self._list_owner(who, request.scope, request.owner)
        found = await self._store.categories(
            who.tenant,
            viewer_of(who),
            scope=_SCOPES[request.scope],
            owner=owner,
            after=after,
            size=size + 1,
        )
        more = len(found) > size
        found = found[:size]
        return pb.ListCannedReplyCategoriesResponse(
            canned_reply_categories=[category_to_proto(c) for c in found],
            next_page_token=encode_token(found[-1].category_id) if more else "",
        )

    @answering("canned_reply_category.")
    async def UpdateCannedReplyCategory(
        self, request: pb.UpdateCannedReplyCategoryRequest, context: Ctx
    ) -> pb.UpdateCannedReplyCategoryResponse:
        who = who_acts(caller(context))
        given = request.canned_reply_category
        paths = _mask(request.update_mask, CATEGORY_FIELDS)
        found = await self._category(
            who, given.name, policy.Kind.CHANGE, "canned_reply_category.name"
        )
        changed = dataclasses.replace(
            found,
            display_name=given.display_name if "display_name" in paths else found.display_name,
            display_order=given.display_order if "display_order" in paths else found.display_order,
        )
        updated = await self._store.update_category(who.tenant, changed)
        return pb.UpdateCannedReplyCategoryResponse(
            canned_reply_category=category_to_proto(updated)
        )

    @answering()
    async def DeleteCannedReplyCategory(
        self, request: pb.DeleteCannedReplyCategoryRequest, context: Ctx
    ) -> pb.DeleteCannedReplyCategoryResponse:
        who = who_acts(caller(context))
        found = await self._category(who, request.name, policy.Kind.CHANGE, "name")
        await self._store.delete_category(who.tenant, found.category_id)
        return pb.DeleteCannedReplyCategoryResponse()

    # --- replies ---------------------------------------------------------------------------

    @staticmethod
    def _category_id(name: str) -> str | None:
        return cv.parse_name(CATEGORIES, name, field="canned_reply.category") if name else None

    @answering("canned_reply.")
    async def CreateCannedReply(
        self, request: pb.CreateCannedReplyRequest, context: Ctx
    ) -> pb.CreateCannedReplyResponse:
        who = who_acts(caller(context))
        given = request.canned_reply
        owner = self._owner(who, given.scope, given.owner, "canned_reply.")
        created = await self._store.create(
            who.tenant,
            Reply(
                reply_id=_new_id(request.canned_reply_id, "canned_reply_id"),
                title=given.title,
                text=given.text,
                owner=owner,
                category_id=self._category_id(given.category),
                shortcut=given.shortcut,
                language=given.language,
                attachments=attachments_from_proto(given.attachments),
            ),
        )
        return pb.CreateCannedReplyResponse(canned_reply=reply_to_proto(created))

    @answering()
    async def GetCannedReply(
        self, request: pb.GetCannedReplyRequest, context: Ctx
    ) -> pb.GetCannedReplyResponse:
        who = who_acts(caller(context))
        found = await self._reply(who, request.name, policy.Kind.READ, "name")
        return pb.GetCannedReplyResponse(canned_reply=reply_to_proto(found))

    def _query(
        self, who: Caller, scope: int, owner: str, category: str, language: str
    ) -> ReplyQuery:
        return ReplyQuery(
            viewer=viewer_of(who),
            scope=_SCOPES[scope],
            owner=self._list_owner(who, scope, owner),
            category_id=cv.parse_name(CATEGORIES, category, field="category") if category else None,
            language=language,
        )

    @answering()
    async def ListCannedReplies(
        self, request: pb.ListCannedRepliesRequest, context: Ctx
    ) -> pb.ListCannedRepliesResponse:
        who = who_acts(caller(context))
        size = await page_size(context, request.page_size)
        after = await decode_token(context, request.page_token)
        query = self._query(who, request.scope, request.owner, request.category, request.language)
        found = await self._store.page(who.tenant, query, after=after, size=size + 1)
        more = len(found) > size
        found = found[:size]
        return pb.ListCannedRepliesResponse(
            canned_replies=[reply_to_proto(r) for r in found],
            next_page_token=encode_token(found[-1].reply_id) if more else "",
        )

    @answering("canned_reply.")
    async def UpdateCannedReply(
        self, request: pb.UpdateCannedReplyRequest, context: Ctx
    ) -> pb.UpdateCannedReplyResponse:
        who = who_acts(caller(context))
        given = request.canned_reply
        paths = _mask(request.update_mask, REPLY_FIELDS)
        found = await self._reply(who, given.name, policy.Kind.CHANGE, "canned_reply.name")
        changes: dict[str, Any] = {}
        if "category" in paths:
            changes["category_id"] = self._category_id(given.category)
        if "attachments" in paths:
            changes["attachments"] = attachments_from_proto(given.attachments)
        for path in ("shortcut", "title", "text", "language"):
            if path in paths:
                changes[path] = getattr(given, path)
        updated = await self._store.update(who.tenant, dataclasses.replace(found, **changes))
        return pb.UpdateCannedReplyResponse(canned_reply=reply_to_proto(updated))

    @answering()
    async def DeleteCannedReply(
        self, request: pb.DeleteCannedReplyRequest, context: Ctx
    ) -> pb.DeleteCannedReplyResponse:
        who = who_acts(caller(context))
        found = await self._reply(who, request.name, policy.Kind.CHANGE, "name")
        await self._store.delete(who.tenant, found.reply_id)
        return pb.DeleteCannedReplyResponse()

    @answering()
    async def SearchCannedReplies(
        self, request: pb.SearchCannedRepliesRequest, context: Ctx
    ) -> pb.SearchCannedRepliesResponse:
        who = who_acts(caller(context))
        size = request.page_size or SEARCH_PAGE
        if not 1 <= size <= MAX_SEARCH_PAGE:
            raise InvalidArgument(
                f"page_size must be 1 to {MAX_SEARCH_PAGE} (0: {SEARCH_PAGE})", field="page_size"
            )
        token = await decode_token(context, request.page_token)
        if token and (not token.isdigit() or int(token) > MAX_SEARCH_OFFSET):
            raise InvalidArgument("page_token is not one this server issued", field="page_token")
        offset = int(token or 0)
        query = self._query(who, 0, "", request.category, request.language)
        found = await self._store.search(
            who.tenant, query, request.query, offset=offset, size=size + 1
        )
        more = len(found) > size and offset + size < MAX_SEARCH_OFFSET
        return pb.SearchCannedRepliesResponse(
            canned_replies=[reply_to_proto(r) for r in found[:size]],
            next_page_token=encode_token(str(offset + size)) if more else "",
        )

    @answering()
    async def RenderCannedReply(
        self, request: pb.RenderCannedReplyRequest, context: Ctx
    ) -> pb.RenderCannedReplyResponse:
        who = who_acts(caller(context))
        found = await self._reply(who, request.name, policy.Kind.READ, "name")
        conversation_id = None
        if request.conversation:
            conversation_id = cv.parse_conversation(request.conversation)
            await authorize(self._access, who, RENDER_RPC, conversation_id)
        values = await self._store.values_for(who.tenant, conversation_id, who.agent_id)
        rendered = templates.render(templates.parse(found.text, None), values.values)
        return pb.RenderCannedReplyResponse(
            text=rendered.text,
            attachments=attachments_to_proto(found.attachments),
            missing_variables=rendered.missing,
        )
