"""Resources as protos, built from what the engine said (events, a command's views) or, for
reads, from stored records. No I/O here."""

from __future__ import annotations

from typing import Any

import asyncpg
from usher.v1 import agent_pb2, conversation_pb2, routing_pb2

from core.api import choices
from core.api import convert as cv
from core.api.profile_values import set_profile
from core.bots.fields import as_text
from core.routing import events as ev
from core.routing import model as m
from core.routing.views import AgentView, ConversationView
from core.store.bot_runs import HandOff
from core.store.reads import AgentRow, OpenOffer, TransferRow
from core.store.records import Attachment as StoredAttachment
from core.store.records import MessageRecord

_TIMES = (
    ("create_time", "created_at"),
    ("queue_time", "queued_at"),
    ("assign_time", "assigned_at"),
    ("first_response_time", "first_response_at"),
    ("end_time", "ended_at"),
    ("close_time", "closed_at"),
)


def _stamp(out: Any, field: str, at: object) -> None:
    stamp = cv.timestamp(at)  # type: ignore[arg-type]
    if stamp is not None:
        getattr(out, field).CopyFrom(stamp)


def customer_identity(card: m.CustomerCard) -> conversation_pb2.CustomerIdentity:
    return conversation_pb2.CustomerIdentity(
        external_id=card.external_id, name=card.name, phone=card.phone, email=card.email
    )


# --- conversations -------------------------------------------------------------------------------


def conversation_from_view(v: ConversationView) -> conversation_pb2.Conversation:
    out = conversation_pb2.Conversation(
        name=cv.conversation_name(v.conversation_id),
        channel=v.channel,
        customer=customer_identity(v.customer),
        state=cv.state_to_proto(v.state),
        queue=cv.queue_name(v.queue_id),
        owner=cv.agent_name(v.owner),
        last_agent=cv.agent_name(v.last_agent),
        region=v.region,
        language=v.language,
        priority=v.priority,
        tags=list(v.tags),
        outcome=cv.outcome_to_proto(v.outcome.value if v.outcome else None),
        close_reason=v.close_reason.value if v.close_reason else "",
    )
    for field, attribute in _TIMES:
        _stamp(out, field, getattr(v, attribute))
    set_profile(out, v.customer.profile)
    return out


def bot_hand_off(h: HandOff) -> conversation_pb2.BotHandOffSummary:
    out = conversation_pb2.BotHandOffSummary(
        bot=f"bots/{h.bot_id}",
        bot_version=h.version,
        reason=h.reason,
        fields={key: as_text(value) for key, value in h.fields.items()},
    )
    _stamp(out, "hand_off_time", h.at)
    return out


def hand_off_card(h: HandOff) -> m.HandOffCard:
    """A stored hand-off as the engine's offers carry it (bounded)."""
    return m.HandOffCard.card(
        bot_id=h.bot_id,
        version=h.version,
        reason=h.reason,
        fields=tuple(h.fields.items()),
        at=h.at.timestamp(),
    )


def hand_off_from_card(card: m.HandOffCard) -> conversation_pb2.BotHandOffSummary:
    """An offer's hand-off: the card's fields as text, each at most ``MAX_PROFILE_TEXT``."""
    out = conversation_pb2.BotHandOffSummary(
        bot=f"bots/{card.bot_id}",
        bot_version=card.version,
        reason=card.reason,
        fields={key: as_text(value)[: m.MAX_PROFILE_TEXT] for key, value in card.fields},
    )
    _stamp(out, "hand_off_time", card.at)
    return out


def conversation_from_row(r: asyncpg.Record) -> conversation_pb2.Conversation:
    """From a row of ``core.store.reads.CONVERSATION_SQL``."""
    out = conversation_pb2.Conversation(
        name=cv.conversation_name(r["conversation_id"]),
        channel=r["channel"],
        customer=conversation_pb2.CustomerIdentity(
            external_id=r["external_id"] or "",
            name=r["customer_name"] or "",
            phone=r["customer_phone"] or "",
            email=r["customer_email"] or "",
        ),
        state=cv.state_to_proto(r["state"]),
        queue=cv.queue_name(r["queue_id"]),
        owner=cv.agent_name(r["owner_agent_id"]),
        last_agent=cv.agent_name(r["last_agent_id"]),
        region=r["region"],
        language=r["language"],
        priority=r["priority"],
        tags=list(r["tags"]),
        outcome=cv.outcome_to_proto(r["outcome"]),
        close_reason=r["close_reason"] or "",
    )
    for field, column in _TIMES:
        _stamp(out, field, r[column])
    return out


# --- messages ------------------------------------------------------------------------------------


def message_from_record(r: MessageRecord) -> conversation_pb2.Message:
    out = conversation_pb2.Message(
        name=cv.message_name(r.conversation_id, r.message_id),
        sender=cv.sender_to_proto(r.sender),
        agent=cv.agent_name(r.agent_id),
        text=r.content,
        attachments=[
            conversation_pb2.Attachment(
                sha256=a.sha256, name=a.name, content_type=a.type, size=a.size, uri=a.uri
            )
            for a in r.attachments
        ],
        provider_message_id=r.provider_message_id or "",
        choices=None if r.choices is None else choices.to_proto(r.choices),
        selected_option_id=r.selected_option_id,
        canned_reply_id=r.canned_reply_id or "",
    )
    _stamp(out, "create_time", r.created_at)
    return out


def message_from_event(e: ev.MessageRecorded) -> conversation_pb2.Message:
    body = e.body
    out = conversation_pb2.Message(
        name=cv.message_name(e.conversation_id, e.message_id),
        sender=cv.sender_to_proto(e.sender),
        agent=cv.agent_name(e.agent_id),
        text=body.text,
        attachments=[
            conversation_pb2.Attachment(
                sha256=a.sha256, name=a.name, content_type=a.content_type, size=a.size, uri=a.uri
            )
            for a in body.attachments
        ],
        provider_message_id=body.provider_message_id or "",
        choices=None if body.choices is None else choices.to_proto(body.choices),
        selected_option_id=body.selected_option_id,
        canned_reply_id=body.canned_reply_id or "",
    )
    _stamp(out, "create_time", body.sent_at if body.sent_at is not None else e.at)
    return out


def body_from_proto(
    text: str,
    attachments: Any,
    provider_message_id: str = "",
    sent_at: float | None = None,
    *,
    offered: m.MessageChoices | None = None,
    selected_option_id: str = "",
) -> m.MessageBody:
    return m.MessageBody(
        text=text,
        attachments=tuple(
            m.Attachment(
                sha256=a.sha256, name=a.name, content_type=a.content_type, size=a.size, uri=a.uri
            )
            for a in attachments
        ),
        provider_message_id=provider_message_id or None,
        sent_at=sent_at,
        choices=offered,
        selected_option_id=selected_option_id,
    )


def stored_attachments(body: m.MessageBody) -> tuple[StoredAttachment, ...]:
    return tuple(
        StoredAttachment(sha256=a.sha256, name=a.name, type=a.content_type, size=a.size, uri=a.uri)
        for a in body.attachments
    )


# --- agents, offers, transfers ------------------------------------------------------------------


def agent_from_view(v: AgentView) -> agent_pb2.Agent:
    p = v.profile
    return agent_pb2.Agent(
        name=cv.agent_name(p.agent_id),
        display_name=p.name,
        skills=[
            agent_pb2.SkillLevel(skill=f"skills/{skill}", level=int(level))
            for skill, level in sorted(p.skills.items())
        ],
        capacity=p.capacity,
        departments=[f"departments/{d}" for d in sorted(p.departments)],
        status=cv.status_to_proto(v.status),
        custom_status=v.custom_status or "",
        load=v.load,
    )


def agent_from_row(row: AgentRow, load: float = 0.0) -> agent_pb2.Agent:
    profile = row.profile
    out = agent_pb2.Agent(
        name=cv.agent_name(row.agent_id),
        display_name=str(profile.get("name", "")),
        skills=[
            agent_pb2.SkillLevel(skill=f"skills/{skill}", level=int(level))
            for skill, level in sorted(dict(profile.get("skills", {})).items())
        ],
        capacity=float(profile.get("capacity", 0.0)),
        departments=[f"departments/{d}" for d in sorted(profile.get("departments", []))],
        status=cv.status_to_proto(row.status),
        custom_status=row.custom_status or "",
        load=load,
    )
    _stamp(out, "update_time", row.updated_at)
    return out


def offer_from_event(e: ev.OfferMade) -> routing_pb2.Offer:
    out = routing_pb2.Offer(
        name=cv.offer_name(e.offer_id),
        conversation=cv.conversation_name(e.conversation_id),
        broadcast=e.broadcast,
        queue=cv.queue_name(e.queue_id or None),
        channel=e.channel,
        customer=customer_identity(e.customer),
        preview=e.preview,
    )
    _stamp(out, "deadline", e.deadline)
    set_profile(out, e.customer.profile)
    if e.hand_off is not None:
        out.bot_hand_off.CopyFrom(hand_off_from_card(e.hand_off))
    return out


def offer_from_stored(
    offer: OpenOffer, conversation: conversation_pb2.Conversation | None
) -> routing_pb2.Offer:
    out = routing_pb2.Offer(
        name=cv.offer_name(offer.offer_id),
        conversation=cv.conversation_name(offer.conversation_id),
        broadcast=offer.broadcast,
    )
    if conversation is not None:
        out.queue = conversation.queue
        out.channel = conversation.channel
        out.customer.CopyFrom(conversation.customer)
    _stamp(out, "deadline", offer.deadline)
    return out


def _transfer(
    transfer_id: str,
    conversation_id: str,
    from_agent: str,
    target: str,
    target_id: str,
    note: str,
    outcome: str | None,
    requested_at: object,
    deadline: object,
) -> routing_pb2.Transfer:
    out = routing_pb2.Transfer(
        name=cv.transfer_name(transfer_id),
        conversation=cv.conversation_name(conversation_id),
        from_agent=cv.agent_name(from_agent),
        note=note,
        state=cv.transfer_state_to_proto(outcome, target),
    )
    if target == "agent":
        out.agent = cv.agent_name(target_id)
    elif target == "queue":
        out.queue = cv.queue_name(target_id)
    else:
        out.department = f"departments/{target_id}"
    _stamp(out, "deadline", deadline)
    _stamp(out, "create_time", requested_at)
    return out


def transfer_from_event(
    e: ev.TransferRequested | ev.TransferResolved | ev.ConversationTransferred,
) -> routing_pb2.Transfer:
    match e:
        case ev.TransferRequested():
            return _transfer(
                e.transfer_id, e.conversation_id, e.from_agent, "agent", e.to_agent, e.note,
                None, e.at, e.deadline,
            )  # fmt: skip
        case ev.TransferResolved():
            return _transfer(
                e.transfer_id, e.conversation_id, e.from_agent, "agent", e.to_agent, e.note,
                e.outcome.value, e.requested_at or None, e.deadline,
            )  # fmt: skip
        case ev.ConversationTransferred():
            return _transfer(
                e.transfer_id, e.conversation_id, e.from_agent, e.target.value, e.target_id,
                e.note, "accepted", e.at, None,
            )  # fmt: skip


def transfer_from_row(r: TransferRow) -> routing_pb2.Transfer:
    return _transfer(
        r.transfer_id, r.conversation_id, r.from_agent, r.target, r.target_id, r.note,
        r.outcome, r.requested_at, r.deadline,
    )  # fmt: skip
