"""Custom fields a tenant defines on its customers: definitions, and the check of values against
them that every write path runs (the API, imports, later bot input).

A value is ``str`` (text, date ``YYYY-MM-DD``, single choice, phone in E.164, e-mail), ``float``
(number), ``bool`` (boolean) or ``tuple[str, ...]`` (multiple choice). ``check_values`` returns
the violations keyed ``fields.<key>``; writers refuse the write whole when there are any
(``Violations``). Uniqueness is not checked here: the store's ``customer_unique_values`` table
decides it (``core.store.customer_records``).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import asyncpg

from core.store.errors import InvalidInput, StoreError, translated_errors
from core.store.validation import PHONE_PATTERN

FieldValue = str | float | bool | tuple[str, ...]

TYPES: Final = (
    "text",
    "number",
    "date",
    "boolean",
    "single_choice",
    "multiple_choice",
    "phone",
    "email",
)
CHOICE_TYPES: Final = frozenset({"single_choice", "multiple_choice"})
UNIQUE_TYPES: Final = frozenset({"text", "number", "date", "single_choice", "phone", "email"})
KEY_PATTERN: Final = re.compile(r"[a-z][a-z0-9_]{0,63}")
BASE_COLUMNS: Final = (
    "external_id",
    "display_name",
    "phone",
    "email",
    "company",
    "address",
    "language",
    "region",
    "avatar_uri",
    "tags",
    "owner",
    "visibility",
)
"""The built-in columns of an import or export file, in order."""
RESERVED_KEYS: Final = frozenset({*BASE_COLUMNS, "name", "groups"})
"""Names no custom field may take: the base columns and two the files use."""
MAX_TEXT: Final = 1_000
MAX_CHOICES: Final = 200
MAX_CHOICE_LEN: Final = 100
EMAIL: Final = re.compile(r"[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s.]{1,63}")
DATE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class Violations(InvalidInput):
    """Values break the rules; ``violations`` maps each field path to what is wrong."""

    def __init__(self, violations: Mapping[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in violations.items()))
        self.violations = dict(violations)


class Conflict(StoreError):
    """A unique value (id, external id, a unique field's value) another customer holds."""

    code = "ALREADY_EXISTS"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class Missing(StoreError):
    """The named thing is not in the caller's tenant."""

    code = "NOT_FOUND"

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(f"{kind} {name!r} not found")
        self.kind = kind
        self.name = name


@dataclass(frozen=True, slots=True)
class FieldDef:
    key: str
    type: str
    display_name: str = ""
    unique: bool = False
    required: bool = False
    enabled: bool = True
    display_order: int = 0
    choices: tuple[str, ...] = ()
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


def check_definition(d: FieldDef) -> dict[str, str]:
    """What is wrong with a definition (keyed by the field's attribute), empty when nothing."""
    found: dict[str, str] = {}
    if KEY_PATTERN.fullmatch(d.key) is None:
        found["key"] = "must be 1 to 64 of a-z0-9_, starting with a letter"
    elif d.key in RESERVED_KEYS:
        found["key"] = "is the name of a built-in column"
    if d.type not in TYPES:
        found["type"] = "must be one of " + ", ".join(TYPES)
    if len(d.display_name) > 200:
        found["display_name"] = "at most 200 characters"
    if d.unique and d.type not in UNIQUE_TYPES:
        found["unique"] = f"a {d.type} field cannot be unique"
    if d.type in CHOICE_TYPES:
        if not d.choices:
            found["choices"] = "a choice field needs choices"
        elif len(d.choices) > MAX_CHOICES or len(set(d.choices)) != len(d.choices):
            found["choices"] = f"at most {MAX_CHOICES} distinct choices"
        elif any(not 1 <= len(c) <= MAX_CHOICE_LEN for c in d.choices):
            found["choices"] = f"each choice 1 to {MAX_CHOICE_LEN} characters"
    elif d.choices:
        found["choices"] = f"a {d.type} field takes no choices"
    if not -1_000_000 <= d.display_order <= 1_000_000:
        found["display_order"] = "must be within +-1,000,000"
    return found


def _check_one(d: FieldDef, value: FieldValue) -> str | None:
    """What is wrong with ``value`` for ``d``, or None."""
    t = d.type
    if t == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "must be a number"
        return None if math.isfinite(value) else "must be a finite number"
    if t == "boolean":
        return None if isinstance(value, bool) else "must be true or false"
    if t == "multiple_choice":
        if not isinstance(value, tuple) or not all(isinstance(v, str) for v in value):
            return "must be a list of choices"
        unknown = [v for v in value if v not in d.choices]
        return "not one of the field's choices" if unknown else None
    if not isinstance(value, str):
        return "must be text"
    if t == "text":
        return None if len(value) <= MAX_TEXT and "\x00" not in value else "too long or has NUL"
    if t == "single_choice":
        return None if value in d.choices else "not one of the field's choices"
    if t == "phone":
        return None if PHONE_PATTERN.fullmatch(value) else "must be E.164 (like +85291234567)"
    if t == "email":
        return None if len(value) <= 320 and EMAIL.fullmatch(value) else "must be an e-mail"
    if t == "date":
        if DATE.fullmatch(value) is None:
            return "must be a YYYY-MM-DD date"
        try:
            dt.date.fromisoformat(value)
        except ValueError:
            return "not a calendar date"
        return None
    return "unknown type"  # pragma: no cover - definitions are checked


def check_value(d: FieldDef, value: FieldValue) -> str | None:
    """What is wrong with ``value`` for a field of ``d``'s type and choices, or None: the one
    check every writer shares (bots reuse it through ``core.bots.fields``)."""
    return _check_one(d, value)


def check_values(
    defs: Mapping[str, FieldDef],
    new: Mapping[str, FieldValue],
    old: Mapping[str, FieldValue],
    *,
    creating: bool,
) -> dict[str, str]:
    """Violations (``fields.<key>`` -> what) of writing ``new`` over ``old``: unknown keys, wrong
    types, a changed value of a disabled field, and a required enabled field missing (on
    create, or cleared on update)."""
    found: dict[str, str] = {}
    for key, value in new.items():
        d = defs.get(key)
        if d is None:
            found[f"fields.{key}"] = "no such custom field"
            continue
        if not d.enabled and old.get(key) != value:
            found[f"fields.{key}"] = "the field is disabled"
            continue
        problem = _check_one(d, value)
        if problem is not None:
            found[f"fields.{key}"] = problem
    for key, d in defs.items():
        if d.required and d.enabled and key not in new and (creating or key in old):
            found[f"fields.{key}"] = "required"
    return found


def unique_text(d: FieldDef, value: FieldValue) -> str:
    """How a unique field's value is stored in ``customer_unique_values`` (e-mail compared
    without case; a number as its shortest repr)."""
    if isinstance(value, float):
        return repr(float(value))
    text = str(value)
    return text.lower() if d.type == "email" else text


def parse_text(d: FieldDef, text: str) -> FieldValue:
    """A value from a file's cell text (``ValueError`` when it cannot be one): numbers as
    decimals, booleans as true/false/yes/no/1/0, multiple choices separated by ``;``."""
    text = text.strip()
    if d.type == "number":
        number = float(text)
        if not math.isfinite(number):
            raise ValueError("not finite")
        return number
    if d.type == "boolean":
        lowered = text.lower()
        if lowered in ("true", "yes", "1", "y"):
            return True
        if lowered in ("false", "no", "0", "n"):
            return False
        raise ValueError("not a boolean")
    if d.type == "multiple_choice":
        return tuple(part.strip() for part in text.split(";") if part.strip())
    return text


def format_value(value: FieldValue) -> str:
    """A value as a file's cell text (the inverse of ``parse_text``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, tuple):
        return ";".join(value)
    return value


# --- definitions ---------------------------------------------------------------------------------

_COLUMNS: Final = (
    "field_key, display_name, type, is_unique, required, enabled, display_order, choices,"
    " created_at, updated_at"
)


def _def(row: asyncpg.Record) -> FieldDef:
    return FieldDef(
        key=row["field_key"],
        type=row["type"],
        display_name=row["display_name"],
        unique=row["is_unique"],
        required=row["required"],
        enabled=row["enabled"],
        display_order=row["display_order"],
        choices=tuple(row["choices"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def definitions(conn: asyncpg.Pool | asyncpg.Connection, tenant: str) -> dict[str, FieldDef]:
    """The tenant's fields by key, in display order."""
    with translated_errors():
        rows = await conn.fetch(
            f"SELECT {_COLUMNS} FROM customer_fields WHERE tenant_id = $1"
            " ORDER BY display_order, field_key",
            tenant,
        )
    return {row["field_key"]: _def(row) for row in rows}


async def create_definition(pool: asyncpg.Pool, tenant: str, d: FieldDef) -> FieldDef:
    """Store a new field; ``Violations`` (keyed by attribute) or ``Conflict`` (the key)."""
    problems = check_definition(d)
    if problems:
        raise Violations(problems)
    with translated_errors():
        row = await pool.fetchrow(
            f"""INSERT INTO customer_fields (tenant_id, field_key, display_name, type, is_unique,
                    required, enabled, display_order, choices)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                ON CONFLICT DO NOTHING RETURNING {_COLUMNS}""",
            tenant,
            d.key,
            d.display_name,
            d.type,
            d.unique,
            d.required,
            d.enabled,
            d.display_order,
            list(d.choices),
        )
    if row is None:
        raise Conflict("field_id", f"custom field {d.key!r} already exists")
    return _def(row)


async def update_definition(pool: asyncpg.Pool, tenant: str, d: FieldDef) -> FieldDef:
    """Rewrite a field's changeable attributes (type and uniqueness stay); ``Missing``."""
    problems = check_definition(d)
    if problems:
        raise Violations(problems)
    with translated_errors():
        row = await pool.fetchrow(
            f"""UPDATE customer_fields SET display_name = $3, required = $4, enabled = $5,
                    display_order = $6, choices = $7, updated_at = now()
                WHERE tenant_id = $1 AND field_key = $2 RETURNING {_COLUMNS}""",
            tenant,
            d.key,
            d.display_name,
            d.required,
            d.enabled,
            d.display_order,
            list(d.choices),
        )
    if row is None:
        raise Missing("custom field", f"customFields/{d.key}")
    return _def(row)


async def delete_definition(pool: asyncpg.Pool, tenant: str, key: str) -> None:
    """Delete a field and every customer's value of it, in one transaction; ``Missing``."""
    with translated_errors():
        async with pool.acquire() as conn, conn.transaction():
            deleted = await conn.execute(
                "DELETE FROM customer_fields WHERE tenant_id = $1 AND field_key = $2", tenant, key
            )
            if deleted == "DELETE 0":
                raise Missing("custom field", f"customFields/{key}")
            await conn.execute(
                "UPDATE customers SET fields = fields - $2 WHERE tenant_id = $1 AND fields ? $2",
                tenant,
                key,
            )
