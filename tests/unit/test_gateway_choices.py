"""How each channel shows a message's choices, and how a typed answer maps back: WhatsApp's
buttons, list and numbered fallback; LINE's quick replies; the numbered text of SMS and e-mail;
the offer log that survives a restart and forgets ended or stale offers."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from usher.v1 import conversation_pb2
from usher.v1 import conversation_service_pb2 as pb

from gateways.common.choices import KEEP, Offer, OfferLog, Option, numbered_text
from gateways.line import render
from gateways.whatsapp import compose

Style = conversation_pb2.ChoiceStyle


def choices(count: int, *, style: int = 0, **fields: str) -> conversation_pb2.MessageChoices:
    return conversation_pb2.MessageChoices(
        style=style,  # type: ignore[arg-type]
        options=[
            conversation_pb2.MessageOption(id=f"o{i}", title=f"Option {i}")
            for i in range(1, count + 1)
        ],
        **fields,
    )


def test_whatsapp_uses_buttons_up_to_three_then_a_list_then_numbered_text() -> None:
    style = compose.Style()
    shown = compose.interactive("Pick", choices(3), style)
    assert shown is not None and shown["type"] == "button"
    shown = compose.interactive("Pick", choices(4, style=Style.CHOICE_STYLE_BUTTONS), style)
    assert shown is not None and shown["type"] == "list"
    assert shown["action"]["button"] == "Options"
    assert len(shown["action"]["sections"][0]["rows"]) == 4
    assert compose.interactive("x" * 4097, choices(2), style) is None
    message = conversation_pb2.Message(text="x" * 4097, choices=choices(2))
    sent = compose.message("85291234567", message, style, lambda a: a.uri)
    assert [p["type"] for p in sent] == ["text", "text"]
    assert sent[-1]["text"]["body"].endswith("\n\n1. Option 1\n2. Option 2")


def test_whatsapp_shortens_titles_and_falls_back_when_shortening_makes_twins() -> None:
    twins = conversation_pb2.MessageChoices(
        options=[
            conversation_pb2.MessageOption(id="a", title="Delivery to my home address"),
            conversation_pb2.MessageOption(id="b", title="Delivery to my home office"),
        ]
    )
    shown = compose.interactive("Where?", twins, compose.Style())
    assert shown is not None and shown["type"] == "list"  # 20-character buttons would clash
    rows = shown["action"]["sections"][0]["rows"]
    assert [r["title"] for r in rows] == ["Delivery to my home add…", "Delivery to my home off…"]


def test_line_puts_quick_replies_on_the_last_message_object() -> None:
    image = conversation_pb2.Attachment(name="a.png", content_type="image/png", uri="https://x/a")
    messages = render.outbound("Pick", [image], lambda a: a.uri, choices(2))
    assert [m["type"] for m in messages] == ["text", "image"]
    assert "quickReply" not in messages[0]
    items = messages[-1]["quickReply"]["items"]
    assert [i["action"]["data"] for i in items] == ["usher_choice=o1", "usher_choice=o2"]
    assert render.picked_option("usher_choice=o2") == "o2"
    assert render.picked_option("action=track&order=42") is None


def test_numbered_text_and_typed_answers() -> None:
    offered = choices(2, header="Orders", footer="Reply with a number")
    assert numbered_text("What about?", offered) == (
        "Orders\n\nWhat about?\n\n1. Option 1\n2. Option 2\n\nReply with a number"
    )
    offer = Offer("c", "m", (Option("refund", "Refund"), Option("late", "Late parcel")), True)
    assert [offer.pick(t) for t in ("2", "２", "2.", " LATE   parcel ", "refund")] == [
        offer.options[1],
        offer.options[1],
        offer.options[1],
        offer.options[1],
        offer.options[0],
    ]
    assert offer.pick("3") is None and offer.pick("0") is None and offer.pick("") is None
    unnumbered = Offer("c", "m", offer.options, False)
    assert unnumbered.pick("1") is None and unnumbered.pick("Refund") == offer.options[0]


def item(**fields: object) -> pb.OutboundItem:
    return pb.OutboundItem(conversation="conversations/c", external_id="+85291234567", **fields)  # type: ignore[arg-type]


def test_the_offer_log_survives_a_restart_and_forgets_ended_or_stale_offers(
    tmp_path: Path,
) -> None:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    clock = [now]
    path = tmp_path / "choices.sqlite3"
    log = OfferLog(path, clock=lambda: clock[0])
    agent = conversation_pb2.SENDER_AGENT
    offered = conversation_pb2.Message(name="m1", sender=agent, text="Pick", choices=choices(2))
    log.note("acme", "sms", item(message=offered), numbered=True)
    log.close()

    log = OfferLog(path, clock=lambda: clock[0])
    assert log.pick("acme", "sms", "+85291234567", "2") == Option("o2", "Option 2")
    assert log.pick("acme", "sms", "+85290000000", "2") is None  # someone else
    clock[0] = now + KEEP + dt.timedelta(seconds=1)
    assert log.last("acme", "sms", "+85291234567") is None
    clock[0] = now

    closed = conversation_pb2.StateChange(state=conversation_pb2.CONVERSATION_STATE_CLOSED)
    log.note("acme", "sms", item(state_change=closed), numbered=True)
    assert log.last("acme", "sms", "+85291234567") is None

    log.note("acme", "sms", item(message=offered), numbered=True)
    plain = conversation_pb2.Message(name="m2", sender=agent, text="How many?")
    log.note("acme", "sms", item(message=plain), numbered=True)
    assert log.last("acme", "sms", "+85291234567") is None
    log.close()
