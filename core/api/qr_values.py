"""QR codes between protos and the store's values (``core.store.qr_codes``, ``core.qr``)."""

from __future__ import annotations

import datetime as dt
from typing import Final

from usher.v1 import qr_code_service_pb2 as pb

from core.api import convert as cv
from core.qr import targets
from core.store import qr_scans
from core.store.qr_codes import Listed, QrDraft, State, StoredQrCode

STATES: Final = {
    State.ACTIVE: pb.QR_CODE_STATE_ACTIVE,
    State.SCHEDULED: pb.QR_CODE_STATE_SCHEDULED,
    State.EXPIRED: pb.QR_CODE_STATE_EXPIRED,
    State.INACTIVE: pb.QR_CODE_STATE_INACTIVE,
}
LISTED: Final = {
    pb.QR_CODE_LIST_FILTER_UNSPECIFIED: Listed.ALL,
    pb.QR_CODE_LIST_FILTER_ACTIVE: Listed.ACTIVE,
    pb.QR_CODE_LIST_FILTER_INACTIVE: Listed.INACTIVE,
}
COLLECTION: Final = "qrCodes"


def name_of(code: str) -> str:
    return f"{COLLECTION}/{code}"


def target_from_proto(given: pb.QrCodeTarget) -> targets.Target | None:
    """The target ``given`` sets; None when it sets no kind."""
    kind = given.WhichOneof("kind")
    if kind == "whatsapp":
        return targets.WhatsApp(given.whatsapp.phone_number, given.whatsapp.trigger_phrase)
    if kind == "line":
        return targets.Line(given.line.basic_id, given.line.trigger_phrase)
    if kind == "web_chat":
        return targets.WebChat(given.web_chat.page_url, given.web_chat.reference)
    if kind == "url":
        return targets.Url(given.url.url)
    return None


def target_to_proto(target: targets.Target) -> pb.QrCodeTarget:
    if isinstance(target, targets.WhatsApp):
        return pb.QrCodeTarget(
            whatsapp=pb.WhatsAppTarget(
                phone_number=target.phone_number, trigger_phrase=target.trigger_phrase
            )
        )
    if isinstance(target, targets.Line):
        return pb.QrCodeTarget(
            line=pb.LineTarget(basic_id=target.basic_id, trigger_phrase=target.trigger_phrase)
        )
    if isinstance(target, targets.WebChat):
        return pb.QrCodeTarget(
            web_chat=pb.WebChatTarget(page_url=target.page_url, reference=target.reference)
        )
    return pb.QrCodeTarget(url=pb.UrlTarget(url=target.url))


def draft_from_proto(given: pb.QrCode, target: targets.Target) -> QrDraft:
    return QrDraft(
        display_name=given.display_name,
        target=target,
        campaign=given.campaign,
        place=given.place,
        start_at=cv.from_timestamp(given.start_time) if given.HasField("start_time") else None,
        end_at=cv.from_timestamp(given.end_time) if given.HasField("end_time") else None,
    )


def counts_to_proto(counts: qr_scans.Counts) -> pb.QrCodeCounts:
    return pb.QrCodeCounts(
        scans=counts.scans, unique_scans=counts.unique_scans, conversations=counts.conversations
    )


def qr_code_to_proto(
    stored: StoredQrCode, counts: qr_scans.Counts, tracking_base: str, now: dt.datetime
) -> pb.QrCode:
    draft = stored.draft
    return pb.QrCode(
        name=name_of(stored.code),
        display_name=draft.display_name,
        campaign=draft.campaign,
        place=draft.place,
        start_time=cv.timestamp(draft.start_at),
        end_time=cv.timestamp(draft.end_at),
        target=target_to_proto(draft.target),
        state=STATES[stored.state(now)],
        tracking_url=f"{tracking_base}/q/{stored.code}",
        target_url=stored.target_url,
        counts=counts_to_proto(counts),
        create_time=cv.timestamp(stored.created_at),
        update_time=cv.timestamp(stored.updated_at),
    )
