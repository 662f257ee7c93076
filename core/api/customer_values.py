"""CustomerService's protos <-> the customer store's values. No I/O here."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Final

from usher.v1 import customer_pb2 as cpb

from core.api.convert import timestamp
from core.api.note_values import files_to_proto
from core.store.blocklist import Block
from core.store.customer_fields import FieldDef, FieldValue
from core.store.customer_records import CustomerData, CustomerQuery, Group, Note, StoredCustomer

VISIBILITY_TO_PROTO: Final = {
    "private": cpb.VISIBILITY_PRIVATE,
    "shared": cpb.VISIBILITY_SHARED,
    "public": cpb.VISIBILITY_PUBLIC,
}
VISIBILITY_FROM_PROTO: Final = {v: k for k, v in VISIBILITY_TO_PROTO.items()}
TYPE_TO_PROTO: Final = {
    "text": cpb.CUSTOM_FIELD_TYPE_TEXT,
    "number": cpb.CUSTOM_FIELD_TYPE_NUMBER,
    "date": cpb.CUSTOM_FIELD_TYPE_DATE,
    "boolean": cpb.CUSTOM_FIELD_TYPE_BOOLEAN,
    "single_choice": cpb.CUSTOM_FIELD_TYPE_SINGLE_CHOICE,
    "multiple_choice": cpb.CUSTOM_FIELD_TYPE_MULTIPLE_CHOICE,
    "phone": cpb.CUSTOM_FIELD_TYPE_PHONE,
    "email": cpb.CUSTOM_FIELD_TYPE_EMAIL,
}
TYPE_FROM_PROTO: Final = {v: k for k, v in TYPE_TO_PROTO.items()}
CUSTOMER_FIELDS: Final = (
    "display_name",
    "phone",
    "email",
    "company",
    "address",
    "language",
    "region",
    "avatar_uri",
    "external_id",
    "tags",
    "fields",
    "owner",
    "visibility",
)
"""Writable fields of a Customer (``update_mask`` paths; ``fields.<key>`` writes one value)."""
OWNERSHIP_FIELDS: Final = frozenset({"owner", "visibility"})
FIELD_FIELDS: Final = ("display_name", "required", "enabled", "display_order", "choices")


def value_to_proto(value: FieldValue) -> cpb.CustomFieldValue:
    if isinstance(value, bool):
        return cpb.CustomFieldValue(bool_value=value)
    if isinstance(value, int | float):
        return cpb.CustomFieldValue(number_value=float(value))
    if isinstance(value, tuple):
        return cpb.CustomFieldValue(list_value=cpb.StringList(values=list(value)))
    return cpb.CustomFieldValue(string_value=value)


def value_from_proto(value: cpb.CustomFieldValue) -> FieldValue | None:
    """The value, or None when no member is set (which clears the field)."""
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return value.string_value
    if kind == "number_value":
        return value.number_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "list_value":
        return tuple(value.list_value.values)
    return None


def block_to_proto(b: Block) -> cpb.CustomerBlock:
    return cpb.CustomerBlock(
        block=f"blocks/{b.block_id}",
        reason=b.reason,
        expire_time=timestamp(b.expires_at),
        create_time=timestamp(b.created_at),
    )


def customer_to_proto(c: StoredCustomer, block: Block | None = None) -> cpb.Customer:
    """The customer, with ``block``, their standing block, if given."""
    d = c.data
    return cpb.Customer(
        name=f"customers/{c.customer_id}",
        display_name=d.display_name,
        phone=d.phone or "",
        email=d.email or "",
        company=d.company,
        address=d.address,
        language=d.language,
        region=d.region,
        avatar_uri=d.avatar_uri,
        external_id=d.external_id or "",
        tags=list(d.tags),
        fields={k: value_to_proto(v) for k, v in d.fields.items()},
        owner=f"agents/{d.owner}" if d.owner else "",
        visibility=VISIBILITY_TO_PROTO.get(d.visibility, cpb.VISIBILITY_UNSPECIFIED),
        identities=[cpb.ChannelIdentity(channel=ch, external_id=ext) for ch, ext in c.identities],
        groups=[f"customerGroups/{g}" for g in c.groups],
        create_time=timestamp(c.created_at),
        update_time=timestamp(c.updated_at),
        delete_time=timestamp(c.deleted_at),
        block=None if block is None else block_to_proto(block),
    )


def _fields(values: Mapping[str, cpb.CustomFieldValue]) -> dict[str, FieldValue]:
    out: dict[str, FieldValue] = {}
    for key, value in values.items():
        found = value_from_proto(value)
        if found is not None:
            out[key] = found
    return out


def _scalar(name: str, p: cpb.Customer) -> Any:
    if name == "tags":
        return tuple(p.tags)
    if name == "owner":
        return p.owner.removeprefix("agents/") or None
    if name == "visibility":
        return VISIBILITY_FROM_PROTO.get(p.visibility, "public")
    if name in ("phone", "email", "external_id"):
        return getattr(p, name) or None
    return getattr(p, name)


def data_from_proto(p: cpb.Customer) -> CustomerData:
    changes = {name: _scalar(name, p) for name in CUSTOMER_FIELDS if name != "fields"}
    return CustomerData(fields=_fields(p.fields), **changes)


def patched(current: CustomerData, p: cpb.Customer, paths: Sequence[str]) -> CustomerData:
    """``current`` with the fields of ``p`` that ``paths`` name (already checked against
    ``CUSTOMER_FIELDS``): ``fields`` replaces the map, ``fields.<key>`` one value (cleared when
    ``p`` has none for it)."""
    changes: dict[str, Any] = {}
    values = dict(current.fields)
    for path in paths:
        if path == "fields":
            values = _fields(p.fields)
        elif path.startswith("fields."):
            key = path.removeprefix("fields.")
            found = value_from_proto(p.fields[key]) if key in p.fields else None
            if found is None:
                values.pop(key, None)
            else:
                values[key] = found
        else:
            changes[path] = _scalar(path, p)
    return dataclasses.replace(current, fields=values, **changes)


def field_to_proto(d: FieldDef) -> cpb.CustomField:
    return cpb.CustomField(
        name=f"customFields/{d.key}",
        display_name=d.display_name,
        type=TYPE_TO_PROTO.get(d.type, cpb.CUSTOM_FIELD_TYPE_UNSPECIFIED),
        unique=d.unique,
        required=d.required,
        enabled=d.enabled,
        display_order=d.display_order,
        choices=list(d.choices),
        create_time=timestamp(d.created_at),
        update_time=timestamp(d.updated_at),
    )


def field_from_proto(key: str, p: cpb.CustomField) -> FieldDef:
    return FieldDef(
        key=key,
        type=TYPE_FROM_PROTO.get(p.type, ""),
        display_name=p.display_name,
        unique=p.unique,
        required=p.required,
        enabled=p.enabled,
        display_order=p.display_order,
        choices=tuple(p.choices),
    )


def query_from_proto(f: cpb.CustomerFilter, viewer_agent: str | None = None) -> CustomerQuery:
    """A filter as the store's query (``viewer_agent``: an agent reads what it may see)."""
    return CustomerQuery(
        query=f.query,
        display_name=f.display_name,
        phone=f.phone,
        email=f.email,
        company=f.company,
        address=f.address,
        language=f.language,
        region=f.region,
        avatar_uri=f.avatar_uri,
        external_id=f.external_id,
        tags=tuple(f.tags),
        group=f.group.removeprefix("customerGroups/"),
        owner=f.owner.removeprefix("agents/"),
        visibility=VISIBILITY_FROM_PROTO.get(f.visibility, ""),
        deleted=f.deleted,
        viewer_agent=viewer_agent,
    )


def query_to_proto(q: CustomerQuery) -> cpb.CustomerFilter:
    return cpb.CustomerFilter(
        query=q.query,
        display_name=q.display_name,
        phone=q.phone,
        email=q.email,
        company=q.company,
        address=q.address,
        language=q.language,
        region=q.region,
        avatar_uri=q.avatar_uri,
        external_id=q.external_id,
        tags=list(q.tags),
        group=f"customerGroups/{q.group}" if q.group else "",
        owner=f"agents/{q.owner}" if q.owner else "",
        visibility=VISIBILITY_TO_PROTO.get(q.visibility, cpb.VISIBILITY_UNSPECIFIED),
        deleted=q.deleted,
    )


def group_to_proto(g: Group) -> cpb.CustomerGroup:
    return cpb.CustomerGroup(
        name=f"customerGroups/{g.group_id}",
        display_name=g.display_name,
        member_count=g.member_count,
        create_time=timestamp(g.created_at),
        filter=None if g.filter is None else query_to_proto(g.filter),
    )


def note_to_proto(n: Note) -> cpb.CustomerNote:
    return cpb.CustomerNote(
        name=f"customers/{n.customer_id}/notes/{n.note_id}",
        author=n.author,
        text=n.body,
        create_time=timestamp(n.created_at),
        attachments=files_to_proto(n.files),
    )
