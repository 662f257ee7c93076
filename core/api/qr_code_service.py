"""QrCodeService: the tenant's QR codes (``core.store.qr_codes``), their counts
(``core.store.qr_scans``), images (``core.qr.images``) and export (``core.store.qr_export``), for
supervisors and admins. The servicer holds no SQL.

Refusals: the store's ``Violations`` become INVALID_ARGUMENT with one violation per field under
``qr_code.``; ``Conflict`` ALREADY_EXISTS naming the target's field; ``QuotaExceeded``
RESOURCE_EXHAUSTED with a QuotaFailure (``core.api.errors``). Tracking links are
``{ApiContext.public_url}/q/{code}``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final, NoReturn, TypeVar

from usher.v1 import customer_service_pb2 as cs
from usher.v1 import qr_code_service_pb2 as pb
from usher.v1 import qr_code_service_pb2_grpc as pb_grpc

from core.api import convert as cv
from core.api import qr_values as qv
from core.api.admin import decode_token, encode_token, page_size
from core.api.auth import caller
from core.api.context import DEFAULT_PUBLIC_URL, ApiContext, Caller
from core.api.errors import abort
from core.qr import images
from core.routing.errors import InvalidArgument, NotFound
from core.store import qr_export, qr_scans
from core.store.customer_fields import Conflict, Violations
from core.store.qr_codes import QrCodes, QrDraft, StoredQrCode

Ctx = Any  # grpc.aio.ServicerContext
T = TypeVar("T")

WRITABLE: Final = ("display_name", "campaign", "place", "start_time", "end_time", "target")
FORMATS: Final = {cs.FILE_FORMAT_CSV: "csv", cs.FILE_FORMAT_XLSX: "xlsx"}
IMAGES: Final = {
    pb.QR_CODE_IMAGE_FORMAT_PNG: (images.png, images.PNG),
    pb.QR_CODE_IMAGE_FORMAT_SVG: (images.svg, images.SVG),
}
MAX_STATS_DAYS: Final = 366
DEFAULT_STATS_DAYS: Final = 30


def _who(who: Caller) -> str:
    return f"agents/{who.agent_id}" if who.agent_id else f"credentials/{who.credential_id}"


def _not_found(code: str) -> NotFound:
    return NotFound(
        f"{qv.name_of(code)} not found",
        resource_type="usher.v1.QrCode",
        resource_name=qv.name_of(code),
    )


async def _refused(context: Ctx, exc: Violations | Conflict) -> NoReturn:
    if isinstance(exc, Conflict):
        await abort(
            context, "ALREADY_EXISTS", str(exc), violations={f"qr_code.{exc.field}": str(exc)}
        )
    items = {f"qr_code.{k}": v for k, v in exc.violations.items()}
    first = next(iter(items))
    await abort(context, "INVALID_ARGUMENT", f"{first}: {items[first]}", violations=items)


async def _written(context: Ctx, write: Callable[[], Awaitable[T]]) -> T:
    """``write()``, its ``Violations`` and ``Conflict`` answered with their fields."""
    try:
        return await write()
    except (Violations, Conflict) as exc:
        await _refused(context, exc)


def _date(text: str, field: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InvalidArgument("a YYYY-MM-DD date", field=field) from None


class QrCodeServicer(pb_grpc.QrCodeServiceServicer):
    """QrCodeService over an ``ApiContext``."""

    def __init__(self, api: ApiContext) -> None:
        self._api = api
        self._codes = QrCodes(api.pool)

    @property
    def _base(self) -> str:
        return self._api.public_url or DEFAULT_PUBLIC_URL

    async def _answer(self, tenant: str, stored: StoredQrCode) -> pb.QrCode:
        counts = await qr_scans.totals(self._api.pool, tenant, [stored.code])
        now = dt.datetime.now(dt.UTC)
        return qv.qr_code_to_proto(stored, counts[stored.code], self._base, now)

    async def _get(self, tenant: str, name: str, field: str = "name") -> StoredQrCode:
        code = cv.parse_name(qv.COLLECTION, name, field=field)
        found = await self._codes.get(tenant, code)
        if found is None:
            raise _not_found(code)
        return found

    # --- RPCs ---------------------------------------------------------------------------------

    @cv.guarded
    async def CreateQrCode(
        self, request: pb.CreateQrCodeRequest, context: Ctx
    ) -> pb.CreateQrCodeResponse:
        who = caller(context)
        target = qv.target_from_proto(request.qr_code.target)
        if target is None:
            raise InvalidArgument("a target of one kind is required", field="qr_code.target")
        draft = qv.draft_from_proto(request.qr_code, target)
        stored = await _written(
            context, lambda: self._codes.create(who.tenant, draft, by=_who(who))
        )
        return pb.CreateQrCodeResponse(qr_code=await self._answer(who.tenant, stored))

    @cv.guarded
    async def GetQrCode(self, request: pb.GetQrCodeRequest, context: Ctx) -> pb.GetQrCodeResponse:
        tenant = caller(context).tenant
        stored = await self._get(tenant, request.name)
        return pb.GetQrCodeResponse(qr_code=await self._answer(tenant, stored))

    @cv.guarded
    async def ListQrCodes(
        self, request: pb.ListQrCodesRequest, context: Ctx
    ) -> pb.ListQrCodesResponse:
        tenant = caller(context).tenant
        size = await page_size(context, request.page_size)
        token = await decode_token(context, request.page_token)
        after = None
        if token:
            at, _, code = token.partition("|")
            try:
                after = dt.datetime.fromisoformat(at), code
            except ValueError:
                raise InvalidArgument(
                    "not a token this server issued", field="page_token"
                ) from None
        now = dt.datetime.now(dt.UTC)
        found = await self._codes.page(
            tenant,
            listed=qv.LISTED[request.filter],
            campaign=request.campaign,
            after=after,
            size=size + 1,
            now=now,
        )
        more = len(found) > size
        found = found[:size]
        counts = await qr_scans.totals(self._api.pool, tenant, [c.code for c in found])
        last = found[-1] if found else None
        return pb.ListQrCodesResponse(
            qr_codes=[qv.qr_code_to_proto(c, counts[c.code], self._base, now) for c in found],
            next_page_token=(
                encode_token(f"{last.created_at.isoformat()}|{last.code}") if more and last else ""
            ),
        )

    @cv.guarded
    async def UpdateQrCode(
        self, request: pb.UpdateQrCodeRequest, context: Ctx
    ) -> pb.UpdateQrCodeResponse:
        tenant = caller(context).tenant
        current = await self._get(tenant, request.qr_code.name, "qr_code.name")
        paths = list(request.update_mask.paths) or list(WRITABLE)
        if any(p not in WRITABLE for p in paths):
            raise InvalidArgument(
                f"update_mask may name {', '.join(WRITABLE)}", field="update_mask"
            )
        given = request.qr_code
        target = current.draft.target
        if "target" in paths:
            chosen = qv.target_from_proto(given.target)
            if chosen is None:
                raise InvalidArgument("a target of one kind is required", field="qr_code.target")
            target = chosen
        old = current.draft
        new = qv.draft_from_proto(given, target)
        draft = QrDraft(
            display_name=new.display_name if "display_name" in paths else old.display_name,
            target=target,
            campaign=new.campaign if "campaign" in paths else old.campaign,
            place=new.place if "place" in paths else old.place,
            start_at=new.start_at if "start_time" in paths else old.start_at,
            end_at=new.end_at if "end_time" in paths else old.end_at,
        )
        stored = await _written(context, lambda: self._codes.update(tenant, current.code, draft))
        if stored is None:
            raise _not_found(current.code)
        return pb.UpdateQrCodeResponse(qr_code=await self._answer(tenant, stored))

    async def _set_active(self, context: Ctx, name: str, active: bool) -> pb.QrCode:
        tenant = caller(context).tenant
        code = cv.parse_name(qv.COLLECTION, name, field="name")
        stored = await self._codes.set_active(tenant, code, active)
        if stored is None:
            raise _not_found(code)
        return await self._answer(tenant, stored)

    @cv.guarded
    async def ActivateQrCode(
        self, request: pb.ActivateQrCodeRequest, context: Ctx
    ) -> pb.ActivateQrCodeResponse:
        return pb.ActivateQrCodeResponse(
            qr_code=await self._set_active(context, request.name, True)
        )

    @cv.guarded
    async def DeactivateQrCode(
        self, request: pb.DeactivateQrCodeRequest, context: Ctx
    ) -> pb.DeactivateQrCodeResponse:
        return pb.DeactivateQrCodeResponse(
            qr_code=await self._set_active(context, request.name, False)
        )

    @cv.guarded
    async def DeleteQrCode(
        self, request: pb.DeleteQrCodeRequest, context: Ctx
    ) -> pb.DeleteQrCodeResponse:
        tenant = caller(context).tenant
        code = cv.parse_name(qv.COLLECTION, request.name, field="name")
        if not await self._codes.delete(tenant, code):
            raise _not_found(code)
        return pb.DeleteQrCodeResponse()

    @cv.guarded
    async def GetQrCodeImage(
        self, request: pb.GetQrCodeImageRequest, context: Ctx
    ) -> pb.GetQrCodeImageResponse:
        tenant = caller(context).tenant
        chosen = IMAGES.get(request.format)
        if chosen is None:
            raise InvalidArgument("format must be PNG or SVG", field="format")
        size = request.size or images.DEFAULT_SIZE
        if not images.MIN_SIZE <= size <= images.MAX_SIZE:
            raise InvalidArgument(
                f"size must be {images.MIN_SIZE} to {images.MAX_SIZE} (0: 512)", field="size"
            )
        stored = await self._get(tenant, request.name)
        url = f"{self._base}/q/{stored.code}"
        draw, content_type = chosen
        data = await asyncio.to_thread(draw, url, size)
        return pb.GetQrCodeImageResponse(data=data, content_type=content_type, tracking_url=url)

    @cv.guarded
    async def GetQrCodeStats(
        self, request: pb.GetQrCodeStatsRequest, context: Ctx
    ) -> pb.GetQrCodeStatsResponse:
        tenant = caller(context).tenant
        stored = await self._get(tenant, request.name)
        last = (
            _date(request.end_date, "end_date")
            if request.end_date
            else await qr_scans.today(self._api.pool, tenant)
        )
        first = (
            _date(request.start_date, "start_date")
            if request.start_date
            else last - dt.timedelta(days=DEFAULT_STATS_DAYS - 1)
        )
        if last < first:
            raise InvalidArgument("the end comes before the start", field="end_date")
        if (last - first).days >= MAX_STATS_DAYS:
            raise InvalidArgument(f"at most {MAX_STATS_DAYS} days", field="end_date")
        days = await qr_scans.per_day(self._api.pool, tenant, stored.code, first, last)
        total = qr_scans.Counts(
            scans=sum(d.counts.scans for d in days),
            unique_scans=sum(d.counts.unique_scans for d in days),
            conversations=sum(d.counts.conversations for d in days),
        )
        return pb.GetQrCodeStatsResponse(
            days=[
                pb.QrCodeDay(date=d.day.isoformat(), counts=qv.counts_to_proto(d.counts))
                for d in days
            ],
            total=qv.counts_to_proto(total),
        )

    @cv.guarded_stream
    async def ExportQrCodes(
        self, request: pb.ExportQrCodesRequest, context: Ctx
    ) -> AsyncIterator[pb.ExportQrCodesResponse]:
        tenant = caller(context).tenant
        fmt = FORMATS.get(request.format)
        if fmt is None:
            raise InvalidArgument("format must be CSV or XLSX", field="format")
        chunks = qr_export.chunks(
            self._api.pool,
            tenant,
            listed=qv.LISTED[request.filter],
            fmt=fmt,
            tracking_base=self._base,
            now=dt.datetime.now(dt.UTC),
        )
        async for chunk in chunks:
            yield pb.ExportQrCodesResponse(chunk=chunk)
