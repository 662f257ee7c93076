"""The tenant's QR codes (table ``qr_codes``, migration 0022): campaign, place, dates, target,
active or not. Plain data beside routing, written by ``QrCodeService``.

- The code (8 of ``CODE_ALPHABET``, chosen here) is the code's id and its tracking link's path,
  unique in the installation: the link ``/q/{code}`` names no tenant (``resolve``).
- Every create reserves the tenant's ``qr_codes`` quota in its transaction
  (``core.store.quotas``): past it, ``QuotaExceeded`` and nothing stored. Deleting frees room.
- A trigger phrase (WhatsApp, LINE) and a reference (web chat) tie conversations to the code
  (``core.qr.targets.tie``), so each is unique among the tenant's codes: a clash is ``Conflict``
  naming the target's field. Phrases compare trimmed and lower-cased (``phrase_key``).
- Writes are checked whole first (``check_draft``: ``Violations`` keyed by the API's field
  paths under the code, ``target.whatsapp.phone_number``).
Counts (scans, conversations) are ``core.store.qr_scans``'.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

import asyncpg

from core.qr import targets
from core.qr.targets import Target
from core.store import quotas
from core.store.customer_fields import Conflict, Violations
from core.store.errors import translated_errors

CODE_ALPHABET: Final = "23456789abcdefghjkmnpqrstuvwxyz"
"""Lower-case letters and digits people do not misread (no 0, 1, i, l, o)."""
CODE_LENGTH: Final = 8
CODE: Final = re.compile(r"[a-z0-9]{6,16}")
MAX_TEXT: Final = 200
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
_TRIES: Final = 5
_COLUMNS: Final = (
    "code, display_name, campaign, place, start_at, end_at, target_kind, target, target_url,"
    " active, created_at, updated_at"
)


class State(StrEnum):
    ACTIVE = "active"
    SCHEDULED = "scheduled"
    EXPIRED = "expired"
    INACTIVE = "inactive"


class Listed(StrEnum):
    """Which codes a list holds."""

    ALL = "all"
    ACTIVE = "active"
    """Active and not expired (scheduled ones included)."""
    INACTIVE = "inactive"
    """Deactivated or expired."""


@dataclass(frozen=True, slots=True)
class QrDraft:
    """What a writer sets on a code."""

    display_name: str
    target: Target
    campaign: str = ""
    place: str = ""
    start_at: dt.datetime | None = None
    end_at: dt.datetime | None = None
    """Exclusive."""


def state_of(
    active: bool, start_at: dt.datetime | None, end_at: dt.datetime | None, now: dt.datetime
) -> State:
    """Whether a code's link redirects at ``now``, and if not, why."""
    if not active:
        return State.INACTIVE
    if end_at is not None and now >= end_at:
        return State.EXPIRED
    if start_at is not None and now < start_at:
        return State.SCHEDULED
    return State.ACTIVE


@dataclass(frozen=True, slots=True)
class StoredQrCode:
    code: str
    draft: QrDraft
    target_url: str
    active: bool
    created_at: dt.datetime
    updated_at: dt.datetime

    def state(self, now: dt.datetime) -> State:
        return state_of(self.active, self.draft.start_at, self.draft.end_at, now)


@dataclass(frozen=True, slots=True)
class Link:
    """What the tracking link needs of a code."""

    tenant: str
    code: str
    display_name: str
    target_url: str
    active: bool
    start_at: dt.datetime | None
    end_at: dt.datetime | None

    def state(self, now: dt.datetime) -> State:
        return state_of(self.active, self.start_at, self.end_at, now)


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def _text_problem(value: str, *, required: bool) -> str | None:
    if required and not value.strip():
        return "required"
    if len(value) > MAX_TEXT or _CONTROL.search(value):
        return f"one line of at most {MAX_TEXT} characters"
    return None


def check_draft(draft: QrDraft) -> dict[str, str]:
    """What is wrong with ``draft``, by field path under the code (empty: nothing)."""
    found: dict[str, str] = {}
    for name, value, required in (
        ("display_name", draft.display_name, True),
        ("campaign", draft.campaign, False),
        ("place", draft.place, False),
    ):
        problem = _text_problem(value, required=required)
        if problem:
            found[name] = problem
    if draft.start_at is not None and draft.end_at is not None and draft.end_at <= draft.start_at:
        found["end_time"] = "after start_time"
    found.update({f"target.{k}": v for k, v in targets.problems(draft.target).items()})
    return found


def _stored(row: asyncpg.Record) -> StoredQrCode:
    document = row["target"]
    fields = json.loads(document) if isinstance(document, str | bytes) else document
    draft = QrDraft(
        display_name=row["display_name"],
        target=targets.from_document(row["target_kind"], fields),
        campaign=row["campaign"],
        place=row["place"],
        start_at=row["start_at"],
        end_at=row["end_at"],
    )
    return StoredQrCode(
        code=row["code"],
        draft=draft,
        target_url=row["target_url"],
        active=row["active"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _row_args(draft: QrDraft, code: str) -> tuple[Any, ...]:
    tie = targets.tie(draft.target, code)
    return (
        draft.display_name,
        draft.campaign,
        draft.place,
        draft.start_at,
        draft.end_at,
        targets.kind_of(draft.target),
        json.dumps(targets.to_document(draft.target), ensure_ascii=False),
        targets.link(draft.target, code),
        tie.phrase,
        tie.reference,
    )


_CLASHES: Final[Mapping[str, str]] = {
    "qr_codes_phrase": "trigger_phrase",
    "qr_codes_reference": "reference",
}


def _clash(exc: asyncpg.UniqueViolationError, draft: QrDraft) -> Conflict | None:
    """The ``Conflict`` a unique violation stands for, None for a code taken (try another)."""
    field = _CLASHES.get(exc.constraint_name or "")
    if field is None:
        return None
    path = f"target.{targets.kind_of(draft.target)}.{field}"
    return Conflict(path, f"another QR code of the tenant has this {field.replace('_', ' ')}")


class QrCodes:
    """The ``qr_codes`` table of every tenant."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(self, tenant: str, draft: QrDraft, *, by: str) -> StoredQrCode:
        """Store a new active code with a new code; ``Violations``, ``Conflict``,
        ``QuotaExceeded`` (nothing stored)."""
        problems = check_draft(draft)
        if problems:
            raise Violations(problems)
        with translated_errors():
            async with self._pool.acquire() as conn, conn.transaction():
                await quotas.reserve(conn, tenant, "qr_codes", 1)
                for _ in range(_TRIES):
                    code = new_code()
                    try:
                        async with conn.transaction():  # a savepoint: a taken code tries again
                            row = await conn.fetchrow(
                                "INSERT INTO qr_codes (tenant_id, code, display_name, campaign,"
                                " place, start_at, end_at, target_kind, target, target_url,"
                                " trigger_phrase, phrase_key, reference, created_by)"
                                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11,"
                                f" lower(btrim($11)), $12, $13) RETURNING {_COLUMNS}",
                                tenant,
                                code,
                                *_row_args(draft, code),
                                by,
                            )
                    except asyncpg.UniqueViolationError as exc:
                        conflict = _clash(exc, draft)
                        if conflict is not None:
                            raise conflict from exc
                        continue
                    assert row is not None
                    return _stored(row)
        raise RuntimeError(f"no free code after {_TRIES} tries")  # pragma: no cover

    async def get(self, tenant: str, code: str) -> StoredQrCode | None:
        if not CODE.fullmatch(code):
            return None
        with translated_errors():
            row = await self._pool.fetchrow(
                f"SELECT {_COLUMNS} FROM qr_codes WHERE tenant_id = $1 AND code = $2",
                tenant,
                code,
            )
        return None if row is None else _stored(row)

    async def page(
        self,
        tenant: str,
        *,
        listed: Listed,
        campaign: str,
        after: tuple[dt.datetime, str] | None,
        size: int,
        now: dt.datetime,
    ) -> list[StoredQrCode]:
        """Up to ``size`` codes, newest first, after the (created_at, code) of ``after``."""
        where = ["tenant_id = $1"]
        args: list[Any] = [tenant]
        if listed is not Listed.ALL:
            args.append(now)
            live = f"active AND (end_at IS NULL OR end_at > ${len(args)})"
            where.append(live if listed is Listed.ACTIVE else f"NOT ({live})")
        if campaign:
            args.append(campaign)
            where.append(f"campaign = ${len(args)}")
        if after is not None:
            args.extend(after)
            where.append(f"(created_at, code) < (${len(args) - 1}, ${len(args)})")
        args.append(size)
        with translated_errors():
            rows = await self._pool.fetch(
                f"SELECT {_COLUMNS} FROM qr_codes WHERE {' AND '.join(where)}"
                f" ORDER BY created_at DESC, code DESC LIMIT ${len(args)}",
                *args,
            )
        return [_stored(r) for r in rows]

    async def update(self, tenant: str, code: str, draft: QrDraft) -> StoredQrCode | None:
        """Write ``draft`` over the code (its code stays); None if there is none; ``Violations``,
        ``Conflict``."""
        problems = check_draft(draft)
        if problems:
            raise Violations(problems)
        if not CODE.fullmatch(code):
            return None
        with translated_errors():
            try:
                row = await self._pool.fetchrow(
                    "UPDATE qr_codes SET display_name = $3, campaign = $4, place = $5,"
                    " start_at = $6, end_at = $7, target_kind = $8, target = $9::jsonb,"
                    " target_url = $10, trigger_phrase = $11, phrase_key = lower(btrim($11)),"
                    " reference = $12, updated_at = now()"
                    f" WHERE tenant_id = $1 AND code = $2 RETURNING {_COLUMNS}",
                    tenant,
                    code,
                    *_row_args(draft, code),
                )
            except asyncpg.UniqueViolationError as exc:
                conflict = _clash(exc, draft)
                if conflict is None:
                    raise
                raise conflict from exc
        return None if row is None else _stored(row)

    async def set_active(self, tenant: str, code: str, active: bool) -> StoredQrCode | None:
        """Activate or deactivate the code (no change when it already is); None if none."""
        if not CODE.fullmatch(code):
            return None
        with translated_errors():
            row = await self._pool.fetchrow(
                "UPDATE qr_codes SET active = $3,"
                " updated_at = CASE WHEN active = $3 THEN updated_at ELSE now() END"
                f" WHERE tenant_id = $1 AND code = $2 RETURNING {_COLUMNS}",
                tenant,
                code,
                active,
            )
        return None if row is None else _stored(row)

    async def delete(self, tenant: str, code: str) -> bool:
        """Remove the code with its counts; False if there was none."""
        if not CODE.fullmatch(code):
            return False
        with translated_errors():
            done: str = await self._pool.execute(
                "DELETE FROM qr_codes WHERE tenant_id = $1 AND code = $2", tenant, code
            )
        return done.endswith(" 1")


async def resolve(pool: asyncpg.Pool, code: str) -> Link | None:
    """The code behind a tracking link, whichever tenant's it is; None if there is none."""
    if not CODE.fullmatch(code):
        return None
    with translated_errors():
        row = await pool.fetchrow(
            "SELECT tenant_id, code, display_name, target_url, active, start_at, end_at"
            " FROM qr_codes WHERE code = $1",
            code,
        )
    if row is None:
        return None
    return Link(
        tenant=row["tenant_id"],
        code=row["code"],
        display_name=row["display_name"],
        target_url=row["target_url"],
        active=row["active"],
        start_at=row["start_at"],
        end_at=row["end_at"],
    )
