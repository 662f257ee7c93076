"""BroadcastService's protos to and from the store's values (``core.store.broadcast*``).

Parsing raises ``Violations`` naming the request's field (``broadcast.audience.groups[2]``),
so a bad request is answered with every problem at once, as the store's checks are.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Final

from usher.v1 import broadcast_service_pb2 as pb
from usher.v1 import customer_service_pb2 as cspb

from core.api import customer_values
from core.api.convert import timestamp
from core.broadcasts.content import Content
from core.store.broadcast_audience import Sample, Tally
from core.store.broadcast_sends import Outcome, Recipient, Result, Send
from core.store.broadcasts import Audience, Broadcast, Draft, Stats
from core.store.customer_fields import Violations

_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_RECIPIENT: Final = re.compile(
    r"broadcasts/([A-Za-z0-9][A-Za-z0-9_.-]{0,63})/recipients/([1-9][0-9]{0,8})"
)
FILE_FORMATS: Final = {cspb.FILE_FORMAT_CSV: "csv", cspb.FILE_FORMAT_XLSX: "xlsx"}
_FORMAT_OF: Final = {v: k for k, v in FILE_FORMATS.items()}
STATE_TO_PROTO: Final = {
    "draft": pb.BROADCAST_STATE_DRAFT,
    "scheduled": pb.BROADCAST_STATE_SCHEDULED,
    "sending": pb.BROADCAST_STATE_SENDING,
    "paused": pb.BROADCAST_STATE_PAUSED,
    "completed": pb.BROADCAST_STATE_COMPLETED,
    "cancelled": pb.BROADCAST_STATE_CANCELLED,
}
STATE_FROM_PROTO: Final = {v: k for k, v in STATE_TO_PROTO.items()}
RECIPIENT_STATE_TO_PROTO: Final = {
    "queued": pb.BROADCAST_RECIPIENT_STATE_QUEUED,
    "sending": pb.BROADCAST_RECIPIENT_STATE_SENDING,
    "sent": pb.BROADCAST_RECIPIENT_STATE_SENT,
    "delivered": pb.BROADCAST_RECIPIENT_STATE_DELIVERED,
    "read": pb.BROADCAST_RECIPIENT_STATE_READ,
    "failed": pb.BROADCAST_RECIPIENT_STATE_FAILED,
    "skipped_opted_out": pb.BROADCAST_RECIPIENT_STATE_SKIPPED_OPTED_OUT,
    "skipped_blocked": pb.BROADCAST_RECIPIENT_STATE_SKIPPED_BLOCKED,
    "cancelled": pb.BROADCAST_RECIPIENT_STATE_CANCELLED,
}
RECIPIENT_STATE_FROM_PROTO: Final = {v: k for k, v in RECIPIENT_STATE_TO_PROTO.items()}
OUTCOME_FROM_PROTO: Final[dict[int, Outcome]] = {
    pb.BROADCAST_SEND_OUTCOME_SENT: "sent",
    pb.BROADCAST_SEND_OUTCOME_FAILED: "failed",
    pb.BROADCAST_SEND_OUTCOME_RELEASED: "released",
    pb.BROADCAST_SEND_OUTCOME_DELIVERED: "delivered",
    pb.BROADCAST_SEND_OUTCOME_READ: "read",
}


def parse_id(name: str, collection: str, field: str, problems: dict[str, str]) -> str:
    """The id of ``{collection}/{id}``; a problem under ``field`` otherwise ('' returned)."""
    found = name.removeprefix(f"{collection}/")
    if found == name or _ID.fullmatch(found) is None:
        problems[field] = f"a {collection}/{{id}} name"
        return ""
    return found


def broadcast_id(name: str, field: str = "name") -> str:
    problems: dict[str, str] = {}
    found = parse_id(name, "broadcasts", field, problems)
    if problems:
        raise Violations(problems)
    return found


def recipient_key(name: str, field: str) -> tuple[str, int]:
    """(broadcast id, recipient id) of ``broadcasts/{b}/recipients/{n}``."""
    match = _RECIPIENT.fullmatch(name)
    if match is None:
        raise Violations({field: "a broadcasts/{b}/recipients/{n} name"})
    return match[1], int(match[2])


def recipient_name(broadcast: str, recipient: int) -> str:
    return f"broadcasts/{broadcast}/recipients/{recipient}"


def draft_from_proto(p: pb.Broadcast, prefix: str = "broadcast.") -> Draft:
    """A create request's broadcast; ``Violations`` naming each malformed field."""
    problems: dict[str, str] = {}
    channel = parse_id(p.channel, "channels", f"{prefix}channel", problems)
    a = p.audience
    groups = tuple(
        parse_id(g, "customerGroups", f"{prefix}audience.groups[{i}]", problems)
        for i, g in enumerate(a.groups)
    )
    customers = tuple(
        parse_id(c, "customers", f"{prefix}audience.customers[{i}]", problems)
        for i, c in enumerate(a.customers)
    )
    file_format = ""
    if a.HasField("file"):
        file_format = FILE_FORMATS.get(a.file.format, "")
        if not file_format:
            problems[f"{prefix}audience.file.format"] = "CSV or XLSX"
        if not a.file.content:
            problems[f"{prefix}audience.file.content"] = "required"
    query = customer_values.query_from_proto(a.filter) if a.HasField("filter") else None
    if problems:
        raise Violations(problems)
    t = p.content.whatsapp_template
    return Draft(
        display_name=p.display_name,
        channel_id=channel,
        content=Content(
            text=p.content.text,
            subject=p.content.subject,
            template_name=t.name,
            template_language=t.language,
            parameters=tuple(t.parameters),
            link=p.content.link,
        ),
        audience=Audience(
            groups=groups,
            tags=tuple(a.tags),
            filter=query,
            customers=customers,
            file_format=file_format,
            file_region=a.file.default_region.upper(),
        ),
        file=a.file.content,
    )


def _stats(s: Stats) -> pb.BroadcastStats:
    by = s.by_state
    return pb.BroadcastStats(
        recipients=s.recipients,
        queued=by.get("queued", 0),
        sending=by.get("sending", 0),
        sent=by.get("sent", 0),
        delivered=by.get("delivered", 0),
        read=by.get("read", 0),
        failed=by.get("failed", 0),
        skipped_opted_out=by.get("skipped_opted_out", 0),
        skipped_blocked=by.get("skipped_blocked", 0),
        cancelled=by.get("cancelled", 0),
        left_out=s.left_out,
    )


def quota_uses(quota: dict[str, int]) -> list[pb.QuotaUse]:
    return [pb.QuotaUse(metric=k, amount=v) for k, v in sorted(quota.items())]


def broadcast_to_proto(b: Broadcast, stats: Stats | None = None) -> pb.Broadcast:
    a = b.audience
    audience = pb.BroadcastAudience(
        groups=[f"customerGroups/{g}" for g in a.groups],
        tags=list(a.tags),
        customers=[f"customers/{c}" for c in a.customers],
    )
    if a.filter is not None:
        audience.filter.CopyFrom(customer_values.query_to_proto(a.filter))
    if a.file_format:
        audience.file.CopyFrom(
            pb.BroadcastFile(
                format=_FORMAT_OF[a.file_format], default_region=a.file_region, rows=a.file_rows
            )
        )
    c = b.content
    content = pb.BroadcastContent(text=c.text, subject=c.subject, link=c.link)
    if c.template_name or c.template_language or c.parameters:
        content.whatsapp_template.CopyFrom(
            pb.WhatsAppTemplateContent(
                name=c.template_name, language=c.template_language, parameters=list(c.parameters)
            )
        )
    return pb.Broadcast(
        name=f"broadcasts/{b.broadcast_id}",
        display_name=b.display_name,
        channel=f"channels/{b.channel_id}",
        content=content,
        audience=audience,
        state=STATE_TO_PROTO[b.state],
        schedule_time=timestamp(b.schedule_at),
        time_zone=b.time_zone if b.state != "draft" else "",
        stats=None if stats is None else _stats(stats),
        quota_usage=quota_uses(dict(b.quota)),
        create_time=timestamp(b.created_at),
        update_time=timestamp(b.updated_at),
        submit_time=timestamp(b.submitted_at),
        end_time=timestamp(b.ended_at),
        creator=b.created_by,
    )


def _sample(s: Sample) -> pb.BroadcastSample:
    return pb.BroadcastSample(
        customer=f"customers/{s.customer_id}" if s.customer_id else "",
        address=s.address,
        text=s.rendered.shown,
        subject=s.rendered.subject,
        missing_variables=list(s.rendered.missing),
    )


def preview_to_proto(t: Tally, channel_type: str) -> pb.PreviewBroadcastResponse:
    return pb.PreviewBroadcastResponse(
        recipients=t.recipients,
        opted_out=t.opted_out,
        blocked=t.blocked,
        no_address=t.no_address,
        duplicates=t.duplicates,
        quota_usage=quota_uses(t.quota(channel_type)),
        samples=[_sample(s) for s in t.samples],
    )


def recipient_to_proto(r: Recipient) -> pb.BroadcastRecipient:
    return pb.BroadcastRecipient(
        name=recipient_name(r.broadcast_id, r.recipient_id),
        customer=f"customers/{r.customer_id}" if r.customer_id else "",
        address=r.address,
        state=RECIPIENT_STATE_TO_PROTO[r.state],
        error=r.error,
        provider_message_id=r.provider_id or "",
        text=r.text if not r.parameters else "\n".join(r.parameters),
        queue_time=timestamp(r.queued_at),
        send_time=timestamp(r.sent_at),
        deliver_time=timestamp(r.delivered_at),
        read_time=timestamp(r.read_at),
        reply_conversation=f"conversations/{r.reply_conversation}" if r.reply_conversation else "",
    )


def send_to_proto(s: Send) -> pb.BroadcastSend:
    return pb.BroadcastSend(
        recipient=recipient_name(s.broadcast_id, s.recipient_id),
        address=s.address,
        text=s.text,
        subject=s.subject,
        template_name=s.template_name,
        template_language=s.template_language,
        template_parameters=list(s.parameters),
        idempotency_key=s.key,
        previous_claims=s.previous_claims,
        queue_time=timestamp(s.queued_at),
        claim_time=timestamp(s.claimed_at),
        first_claim_time=timestamp(s.first_claimed_at),
    )


def results_from_proto(results: list[pb.BroadcastSendResult]) -> list[Result]:
    """A report's results; ``Violations`` naming each malformed one."""
    problems: dict[str, str] = {}
    found: list[Result] = []
    for i, r in enumerate(results):
        outcome = OUTCOME_FROM_PROTO.get(r.outcome)
        if outcome is None:
            problems[f"results[{i}].outcome"] = "required"
            continue
        broadcast, recipient = "", 0
        if r.recipient:
            try:
                broadcast, recipient = recipient_key(r.recipient, f"results[{i}].recipient")
            except Violations as exc:
                problems.update(exc.violations)
                continue
        elif outcome in ("sent", "released") or not r.provider_message_id:
            problems[f"results[{i}].recipient"] = "required (statuses may name the provider id)"
            continue
        if outcome in ("sent", "failed", "released") and r.recipient and not r.session:
            problems[f"results[{i}].session"] = "required"
            continue
        found.append(
            Result(outcome, broadcast, recipient, r.provider_message_id, r.error, r.session)
        )
    if problems:
        raise Violations(problems)
    return found


_LOCAL: Final = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?")


def local_time(text: str, zone: dt.tzinfo, field: str) -> dt.datetime:
    """A wall-clock ``YYYY-MM-DDTHH:MM[:SS]`` in ``zone`` as an instant; ``Violations`` when
    malformed or skipped by the zone's clock (a daylight-saving gap). An ambiguous time (the
    hour repeated in autumn) is its first occurrence."""
    if _LOCAL.fullmatch(text) is None:
        raise Violations({field: "YYYY-MM-DDTHH:MM or YYYY-MM-DDTHH:MM:SS, without an offset"})
    try:
        naive = dt.datetime.fromisoformat(text)
    except ValueError:
        raise Violations({field: "not a calendar date and time"}) from None
    aware = naive.replace(tzinfo=zone, fold=0)
    back = aware.astimezone(dt.UTC).astimezone(zone).replace(tzinfo=None)
    if back != naive:
        raise Violations({field: "this time does not exist in the tenant's time zone (skipped)"})
    return aware.astimezone(dt.UTC)
