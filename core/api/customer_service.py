"""CustomerService: the tenant's customer database (``core.store.customer_*``).

Customers are plain data, not routing state: the servicer writes them through the store, never
through the shard; a write that changes what a customer's profile shows (details, tags, groups,
a merge, an import) then refreshes it on their open conversations (``core.api.profiles``).
Who may see and change a customer is ``core.api.policy.customer_access``
(agents: by visibility and ownership; lists apply the same rule in SQL). Refusals from the
store become statuses here (``_answered``): ``Violations`` INVALID_ARGUMENT with a BadRequest
violation per field (prefixed with the request's path, e.g. ``customer.fields.vip``),
``Conflict`` ALREADY_EXISTS naming the field, ``Missing`` NOT_FOUND with ResourceInfo,
``QuotaExceeded`` RESOURCE_EXHAUSTED with a QuotaFailure, ``SavedFilterGroup``
FAILED_PRECONDITION. The servicer holds no SQL.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final, NoReturn, Protocol, TypeVar

import structlog
from google.protobuf import field_mask_pb2
from usher.v1 import customer_pb2 as cpb
from usher.v1 import customer_service_pb2 as pb
from usher.v1 import customer_service_pb2_grpc as pb_grpc

from core.api import customer_values as cv
from core.api import profiles
from core.api.admin import decode_token, encode_token, page_size
from core.api.auth import caller
from core.api.context import ApiContext, Caller
from core.api.convert import guarded, guarded_stream, parse_name
from core.api.errors import abort, abort_quota, shown
from core.api.note_values import files_from_proto
from core.api.policy import Kind, Verdict, customer_access
from core.store import customer_fields as fields_store
from core.store import customer_files as files
from core.store import customer_import
from core.store.blocklist import Block
from core.store.customer_fields import Conflict, Missing, Violations
from core.store.customer_records import (
    CustomerQuery,
    CustomerStore,
    SavedFilterGroup,
    StoredCustomer,
)
from core.store.quotas import QuotaExceeded

log = structlog.get_logger(__name__)

Ctx = Any  # grpc.aio.ServicerContext
S = TypeVar("S")
Req = TypeVar("Req")
Resp = TypeVar("Resp")

FORMATS: Final[dict[int, str]] = {pb.FILE_FORMAT_CSV: "csv", pb.FILE_FORMAT_XLSX: "xlsx"}
IMPORT_KEYS: Final = {
    pb.IMPORT_KEY_UNSPECIFIED: "external_id",
    pb.IMPORT_KEY_EXTERNAL_ID: "external_id",
    pb.IMPORT_KEY_PHONE: "phone",
    pb.IMPORT_KEY_EMAIL: "email",
    pb.IMPORT_KEY_CUSTOM_FIELD: "field",
}
MAX_VIOLATIONS: Final = 50
"""Violations in one answer at most (the rest are counted in its message): trailers are small."""
RESOURCE_TYPES: Final = {
    "customer": "usher.v1.Customer",
    "custom field": "usher.v1.CustomField",
    "customer group": "usher.v1.CustomerGroup",
}


async def _answered(context: Ctx, exc: Exception, prefix: str) -> NoReturn:
    """End the call with the status a store refusal stands for."""
    if isinstance(exc, Violations):
        items = list(exc.violations.items())
        extra = (
            f" ({len(items) - MAX_VIOLATIONS} more not shown)"
            if len(items) > MAX_VIOLATIONS
            else ""
        )
        await abort(
            context,
            "INVALID_ARGUMENT",
            f"{len(items)} invalid value(s){extra}",
            violations={f"{prefix}{k}": v for k, v in items[:MAX_VIOLATIONS]},
        )
    if isinstance(exc, Conflict):
        await abort(
            context,
            "ALREADY_EXISTS",
            str(exc),
            violations={f"{prefix}{exc.field}": "already taken"},
        )
    if isinstance(exc, Missing):
        await abort(
            context,
            "NOT_FOUND",
            f"{exc.kind} {shown(exc.name, 120)} not found",
            details={"resource_type": RESOURCE_TYPES[exc.kind], "resource_name": exc.name},
        )
    if isinstance(exc, SavedFilterGroup):
        await abort(
            context,
            "FAILED_PRECONDITION",
            str(exc),
            reason="SAVED_FILTER_GROUP",
            details={"group": f"customerGroups/{exc.group_id}"},
        )
    assert isinstance(exc, QuotaExceeded)
    await abort_quota(context, exc)


_REFUSALS: Final = (Violations, Conflict, Missing, QuotaExceeded, SavedFilterGroup)


def answering(
    prefix: str = "",
) -> Callable[[Callable[[S, Req, Ctx], Awaitable[Resp]]], Callable[[S, Req, Ctx], Awaitable[Resp]]]:
    """A unary method whose store refusals end the call as ``_answered`` says (violation
    fields prefixed with ``prefix``); everything else as ``guarded`` does."""

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


def _paths(mask: field_mask_pb2.FieldMask, writable: tuple[str, ...]) -> list[str] | str:
    """The mask's paths (``*`` or none: ``writable``), or the first one not writable."""
    paths = list(mask.paths)
    if not paths or paths == ["*"]:
        return list(writable)
    for path in paths:
        head = path.split(".")[0]
        if head not in writable or ("." in path and head != "fields"):
            return path
    return paths


T = TypeVar("T")


class _Paged(Protocol):
    page_size: int
    page_token: str


async def _offset_page(context: Ctx, items: list[T], request: _Paged) -> tuple[list[T], str]:
    """A page of a short list read whole (custom fields: at most a few hundred), the token
    being the offset of the next page."""
    size = await page_size(context, request.page_size)
    start = await _offset(context, request.page_token)
    end = start + size
    return items[start:end], encode_token(str(end)) if end < len(items) else ""


async def _offset(context: Ctx, page_token: str) -> int:
    """Where a page of a list paged by offset starts (its token is that offset)."""
    token = await decode_token(context, page_token)
    if token and (not token.isascii() or not token.isdigit() or len(token) > 9):
        await abort(
            context,
            "INVALID_ARGUMENT",
            "page_token is not one this server issued",
            violations={"page_token": "malformed"},
        )
    return int(token or 0)


def _usage_item(used: int, limit: int | None) -> cpb.UsageItem:
    return cpb.UsageItem(used=used, limit=limit or 0, unlimited=limit is None)


class CustomerServicer(pb_grpc.CustomerServiceServicer):
    """See the module docstring."""

    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx
        self._store = CustomerStore(ctx.pool)

    # --- shared steps ----------------------------------------------------------------------

    async def _blocks(self, tenant: str, customers: list[StoredCustomer]) -> dict[str, Block]:
        """The standing blocks on ``customers`` (one query for them all)."""
        return await self.ctx.blocklist.standing_for_customers(
            tenant, [(c.customer_id, c.data.phone, c.data.email) for c in customers]
        )

    @staticmethod
    async def _allowed(context: Ctx, who: Caller, found: StoredCustomer, kind: Kind) -> None:
        verdict = customer_access(
            who.role, who.agent_id, found.data.owner, found.data.visibility, kind
        )
        if verdict is Verdict.NOT_FOUND:
            raise Missing("customer", f"customers/{found.customer_id}")
        if verdict is Verdict.PERMISSION_DENIED:
            await abort(
                context,
                "PERMISSION_DENIED",
                "only the customer's owner, a supervisor or an admin may change it",
            )

    async def _visible(self, context: Ctx, name: str, field: str) -> StoredCustomer:
        """The live customer ``name`` names, if the caller may read it (else NOT_FOUND)."""
        who = caller(context)
        found = await self._store.get(who.tenant, parse_name("customers", name, field=field))
        await self._allowed(context, who, found, Kind.READ)
        return found

    @staticmethod
    async def _format(context: Ctx, value: int, field: str = "format") -> str:
        fmt = FORMATS.get(value)
        if fmt is None:
            await abort(
                context,
                "INVALID_ARGUMENT",
                "format must be CSV or XLSX",
                violations={field: "unset"},
            )
        return fmt

    # --- customers -------------------------------------------------------------------------

    @answering("customer.")
    async def CreateCustomer(
        self, request: pb.CreateCustomerRequest, context: Ctx
    ) -> pb.CreateCustomerResponse:
        who = caller(context)
        customer_id = None
        if request.customer_id:
            customer_id = parse_name(
                "customers", f"customers/{request.customer_id}", field="customer_id"
            )
        created = await self._store.create(
            who.tenant, customer_id, cv.data_from_proto(request.customer)
        )
        return pb.CreateCustomerResponse(customer=cv.customer_to_proto(created))

    @answering()
    async def GetCustomer(
        self, request: pb.GetCustomerRequest, context: Ctx
    ) -> pb.GetCustomerResponse:
        found = await self._visible(context, request.name, "name")
        blocks = await self._blocks(caller(context).tenant, [found])
        return pb.GetCustomerResponse(
            customer=cv.customer_to_proto(found, blocks.get(found.customer_id))
        )

    @answering("customer.")
    async def UpdateCustomer(
        self, request: pb.UpdateCustomerRequest, context: Ctx
    ) -> pb.UpdateCustomerResponse:
        who = caller(context)
        writable: tuple[str, ...] = cv.CUSTOMER_FIELDS
        if who.role == "agent":
            writable = tuple(f for f in writable if f not in cv.OWNERSHIP_FIELDS)
            named = {p.split(".")[0] for p in request.update_mask.paths}
            if named & cv.OWNERSHIP_FIELDS:
                await abort(
                    context,
                    "PERMISSION_DENIED",
                    "only supervisors and admins change a customer's owner or visibility",
                )
        paths = _paths(request.update_mask, writable)
        if isinstance(paths, str):
            await abort(
                context,
                "INVALID_ARGUMENT",
                f"update_mask names {shown(paths)}, which cannot be written",
                violations={"update_mask": f"{shown(paths)} is not writable"},
            )
        customer_id = parse_name("customers", request.customer.name, field="customer.name")
        found = await self._store.get(who.tenant, customer_id)
        await self._allowed(context, who, found, Kind.READ)
        await self._allowed(context, who, found, Kind.CHANGE)
        new = cv.patched(found.data, request.customer, paths)
        updated = await self._store.update(who.tenant, found.customer_id, new)
        await profiles.refresh(self.ctx, who.tenant, [found.customer_id])
        return pb.UpdateCustomerResponse(customer=cv.customer_to_proto(updated))

    @answering()
    async def DeleteCustomer(
        self, request: pb.DeleteCustomerRequest, context: Ctx
    ) -> pb.DeleteCustomerResponse:
        customer_id = parse_name("customers", request.name, field="name")
        deleted = await self._store.delete(caller(context).tenant, customer_id)
        return pb.DeleteCustomerResponse(customer=cv.customer_to_proto(deleted))

    @answering()
    async def UndeleteCustomer(
        self, request: pb.UndeleteCustomerRequest, context: Ctx
    ) -> pb.UndeleteCustomerResponse:
        customer_id = parse_name("customers", request.name, field="name")
        restored = await self._store.undelete(caller(context).tenant, customer_id)
        return pb.UndeleteCustomerResponse(customer=cv.customer_to_proto(restored))

    @staticmethod
    def _query(who: Caller, f: cpb.CustomerFilter) -> CustomerQuery:
        return cv.query_from_proto(f, who.agent_id if who.role == "agent" else None)

    @answering()
    async def ListCustomers(
        self, request: pb.ListCustomersRequest, context: Ctx
    ) -> pb.ListCustomersResponse:
        who = caller(context)
        size = await page_size(context, request.page_size)
        after = await decode_token(context, request.page_token)
        if who.role == "agent" and request.filter.deleted:
            await abort(
                context,
                "PERMISSION_DENIED",
                "the recycle bin is the supervisors' and admins'",
            )
        found = await self._store.search(
            who.tenant, self._query(who, request.filter), after, size + 1
        )
        more = len(found) > size
        found = found[:size]
        blocks = await self._blocks(who.tenant, found)
        return pb.ListCustomersResponse(
            customers=[cv.customer_to_proto(c, blocks.get(c.customer_id)) for c in found],
            next_page_token=encode_token(found[-1].customer_id) if more else "",
        )

    @answering()
    async def MergeCustomers(
        self, request: pb.MergeCustomersRequest, context: Ctx
    ) -> pb.MergeCustomersResponse:
        survivor = parse_name("customers", request.customer, field="customer")
        merged = [
            parse_name("customers", name, field=f"merged[{i}]")
            for i, name in enumerate(request.merged)
        ]
        if not merged:
            await abort(
                context,
                "INVALID_ARGUMENT",
                "name a customer to merge",
                violations={"merged": "empty"},
            )
        result = await self._store.merge(caller(context).tenant, survivor, merged)
        await profiles.refresh(self.ctx, caller(context).tenant, [survivor])
        return pb.MergeCustomersResponse(customer=cv.customer_to_proto(result))

    # --- notes -----------------------------------------------------------------------------

    @answering()
    async def AddCustomerNote(
        self, request: pb.AddCustomerNoteRequest, context: Ctx
    ) -> pb.AddCustomerNoteResponse:
        who = caller(context)
        found = await self._visible(context, request.parent, "parent")
        await self._allowed(context, who, found, Kind.CHANGE)
        author = f"agents/{who.agent_id}" if who.agent_id else who.role
        note = await self._store.add_note(
            who.tenant,
            found.customer_id,
            author,
            request.text,
            files_from_proto(request.attachments),
        )
        return pb.AddCustomerNoteResponse(note=cv.note_to_proto(note))

    @answering()
    async def ListCustomerNotes(
        self, request: pb.ListCustomerNotesRequest, context: Ctx
    ) -> pb.ListCustomerNotesResponse:
        who = caller(context)
        size = await page_size(context, request.page_size)
        token = await decode_token(context, request.page_token)
        if token and not token.isdigit():
            await abort(
                context,
                "INVALID_ARGUMENT",
                "page_token is not one this server issued",
                violations={"page_token": "malformed"},
            )
        found = await self._visible(context, request.parent, "parent")
        notes = await self._store.notes(who.tenant, found.customer_id, int(token or 0), size + 1)
        more = len(notes) > size
        notes = notes[:size]
        return pb.ListCustomerNotesResponse(
            notes=[cv.note_to_proto(n) for n in notes],
            next_page_token=encode_token(str(notes[-1].note_id)) if more else "",
        )

    # --- custom fields ---------------------------------------------------------------------

    @answering("field.")
    async def CreateCustomField(
        self, request: pb.CreateCustomFieldRequest, context: Ctx
    ) -> pb.CreateCustomFieldResponse:
        d = cv.field_from_proto(request.field_id, request.field)
        try:
            created = await fields_store.create_definition(self.ctx.pool, caller(context).tenant, d)
        except Violations as exc:  # the key is the request's field_id
            problems = {
                ("field_id" if k == "key" else f"field.{k}"): v for k, v in exc.violations.items()
            }
            await abort(context, "INVALID_ARGUMENT", "invalid custom field", violations=problems)
        except Conflict:
            await abort(
                context,
                "ALREADY_EXISTS",
                f"custom field {shown(d.key)} already exists",
                details={
                    "resource_type": "usher.v1.CustomField",
                    "resource_name": f"customFields/{d.key}",
                },
            )
        return pb.CreateCustomFieldResponse(field=cv.field_to_proto(created))

    @answering()
    async def ListCustomFields(
        self, request: pb.ListCustomFieldsRequest, context: Ctx
    ) -> pb.ListCustomFieldsResponse:
        found = await fields_store.definitions(self.ctx.pool, caller(context).tenant)
        page, token = await _offset_page(context, list(found.values()), request)
        return pb.ListCustomFieldsResponse(
            fields=[cv.field_to_proto(d) for d in page], next_page_token=token
        )

    @answering("field.")
    async def UpdateCustomField(
        self, request: pb.UpdateCustomFieldRequest, context: Ctx
    ) -> pb.UpdateCustomFieldResponse:
        tenant = caller(context).tenant
        key = request.field.name.removeprefix("customFields/")
        current = (await fields_store.definitions(self.ctx.pool, tenant)).get(key)
        if current is None:
            raise Missing("custom field", f"customFields/{key}")
        paths = _paths(request.update_mask, cv.FIELD_FIELDS)
        if isinstance(paths, str):
            await abort(
                context,
                "INVALID_ARGUMENT",
                f"update_mask names {shown(paths)}, which cannot change",
                violations={
                    "update_mask": f"{shown(paths)} is not one of {', '.join(cv.FIELD_FIELDS)}"
                },
            )
        merged = cpb.CustomField()
        merged.CopyFrom(cv.field_to_proto(current))
        field_mask_pb2.FieldMask(paths=paths).MergeMessage(
            request.field, merged, replace_repeated_field=True
        )
        updated = await fields_store.update_definition(
            self.ctx.pool, tenant, cv.field_from_proto(key, merged)
        )
        return pb.UpdateCustomFieldResponse(field=cv.field_to_proto(updated))

    @answering()
    async def DeleteCustomField(
        self, request: pb.DeleteCustomFieldRequest, context: Ctx
    ) -> pb.DeleteCustomFieldResponse:
        key = request.name.removeprefix("customFields/")
        await fields_store.delete_definition(self.ctx.pool, caller(context).tenant, key)
        return pb.DeleteCustomFieldResponse()

    # --- groups ----------------------------------------------------------------------------

    @answering()
    async def CreateCustomerGroup(
        self, request: pb.CreateCustomerGroupRequest, context: Ctx
    ) -> pb.CreateCustomerGroupResponse:
        saved = None
        if request.group.HasField("filter"):
            saved = cv.query_from_proto(request.group.filter)
        group = await self._store.create_group(
            caller(context).tenant, request.group_id, request.group.display_name, saved
        )
        return pb.CreateCustomerGroupResponse(group=cv.group_to_proto(group))

    @answering()
    async def ListCustomerGroups(
        self, request: pb.ListCustomerGroupsRequest, context: Ctx
    ) -> pb.ListCustomerGroupsResponse:
        size = await page_size(context, request.page_size)
        start = await _offset(context, request.page_token)
        groups = await self._store.groups(caller(context).tenant, start, size + 1)
        more = len(groups) > size
        return pb.ListCustomerGroupsResponse(
            groups=[cv.group_to_proto(g) for g in groups[:size]],
            next_page_token=encode_token(str(start + size)) if more else "",
        )

    @answering()
    async def DeleteCustomerGroup(
        self, request: pb.DeleteCustomerGroupRequest, context: Ctx
    ) -> pb.DeleteCustomerGroupResponse:
        group_id = parse_name("customerGroups", request.name, field="name")
        await self._store.delete_group(caller(context).tenant, group_id)
        return pb.DeleteCustomerGroupResponse()

    async def _members(
        self, context: Ctx, group: str, customers: Any, *, add: bool
    ) -> cpb.CustomerGroup:
        group_id = parse_name("customerGroups", group, field="group")
        ids = [
            parse_name("customers", name, field=f"customers[{i}]")
            for i, name in enumerate(customers)
        ]
        changed = await self._store.change_members(caller(context).tenant, group_id, ids, add=add)
        await profiles.refresh(self.ctx, caller(context).tenant, ids)
        return cv.group_to_proto(changed)

    @answering()
    async def AddCustomerGroupMembers(
        self, request: pb.AddCustomerGroupMembersRequest, context: Ctx
    ) -> pb.AddCustomerGroupMembersResponse:
        group = await self._members(context, request.group, request.customers, add=True)
        return pb.AddCustomerGroupMembersResponse(group=group)

    @answering()
    async def RemoveCustomerGroupMembers(
        self, request: pb.RemoveCustomerGroupMembersRequest, context: Ctx
    ) -> pb.RemoveCustomerGroupMembersResponse:
        group = await self._members(context, request.group, request.customers, add=False)
        return pb.RemoveCustomerGroupMembersResponse(group=group)

    # --- import and export -----------------------------------------------------------------

    @answering()
    async def ImportCustomers(
        self, request: pb.ImportCustomersRequest, context: Ctx
    ) -> pb.ImportCustomersResponse:
        fmt = await self._format(context, request.format)
        since = None if request.dry_run else await profiles.since_now(self.ctx)
        report = await customer_import.import_customers(
            self.ctx.pool,
            caller(context).tenant,
            request.content,
            fmt,
            key=IMPORT_KEYS[request.key],
            key_field=request.key_field.removeprefix("customFields/"),
            dry_run=request.dry_run,
        )
        if since is not None and report.committed and report.updated:
            await profiles.refresh_changed(self.ctx, caller(context).tenant, since)
        return pb.ImportCustomersResponse(
            rows=report.rows,
            created=report.created,
            updated=report.updated,
            unchanged=report.unchanged,
            problems=[
                pb.ImportRowProblem(row=row, problems=dict(found))
                for row, found in sorted(report.problems.items())
            ],
            committed=report.committed,
            file_problems=dict(report.file_problems),
        )

    @answering()
    async def GetImportTemplate(
        self, request: pb.GetImportTemplateRequest, context: Ctx
    ) -> pb.GetImportTemplateResponse:
        fmt = await self._format(context, request.format)
        defs = await fields_store.definitions(self.ctx.pool, caller(context).tenant)
        return pb.GetImportTemplateResponse(
            content=files.template(fmt, defs.values()),
            content_type=files.MEDIA_TYPES[fmt],
            filename=f"customers.{fmt}",
        )

    @guarded_stream
    async def ExportCustomers(
        self, request: pb.ExportCustomersRequest, context: Ctx
    ) -> AsyncIterator[pb.ExportCustomersResponse]:
        who = caller(context)
        fmt = await self._format(context, request.format)
        query = self._query(who, request.filter)
        chunks = customer_import.export_chunks(self._store, self.ctx.pool, who.tenant, query, fmt)
        async for chunk in chunks:
            yield pb.ExportCustomersResponse(chunk=chunk)

    # --- usage -----------------------------------------------------------------------------

    @answering()
    async def GetUsage(self, request: pb.GetUsageRequest, context: Ctx) -> pb.GetUsageResponse:
        usage = await self._store.usage(caller(context).tenant)

        return pb.GetUsageResponse(
            customers=_usage_item(usage.customers, usage.max_customers),
            groups=_usage_item(usage.groups, usage.max_groups),
        )
