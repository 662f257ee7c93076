"""Broadcasts' pure parts: content checked per channel and rendered (the link, WhatsApp's
one-line parameters, SMS message counts), addresses in their canonical forms, recipient files
(phones normalised, every bad row named), opt-out keywords, and the token bucket on a manual
clock."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.broadcasts import addresses, recipient_file, stop
from core.broadcasts.content import Content, compile_content, render, sms_messages
from core.store.customer_fields import Violations
from gateways.common.bucket import TokenBucket

VALUES = {"customer.name": "Chan Tai Man", "customer.fields.city": "Sha Tin"}


def test_sms_text_renders_with_the_link_on_its_own_line() -> None:
    compiled = compile_content(
        Content(text="Hi {customer.name} ({customer.fields.city})", link="https://x.test/b"),
        "sms",
        {"city"},
    )
    done = render(compiled, VALUES)
    assert done.text == "Hi Chan Tai Man (Sha Tin)\nhttps://x.test/b"
    assert done.missing == ()
    inline = compile_content(Content(text="Go: {broadcast.link}!", link="L"), "line", ())
    assert render(inline, {}).text == "Go: L!"  # used in the text: not added again


def test_missing_values_render_empty_and_are_named() -> None:
    compiled = compile_content(Content(text="Hi {customer.name}{customer.email}"), "sms", ())
    assert render(compiled, {}).missing == ("customer.name", "customer.email")


def test_whatsapp_parameters_are_one_line_and_never_empty() -> None:
    compiled = compile_content(
        Content(
            template_name="promo",
            template_language="en",
            parameters=("{customer.name}", "a\n\tb     c", "{customer.phone}"),
        ),
        "whatsapp",
        (),
    )
    done = render(compiled, {"customer.name": "Ann\nLee"})
    assert done.parameters == ("Ann Lee", "a b c", "-")
    assert done.shown == "Ann Lee\na b c\n-"


def test_email_needs_a_subject_and_every_problem_is_named() -> None:
    with pytest.raises(Violations) as refused:
        compile_content(
            Content(text="{customer.fields.nope}", parameters=("x",)), "email", {"city"}, "c."
        )
    assert set(refused.value.violations) == {"c.text", "c.subject", "c.whatsapp_template"}
    with pytest.raises(Violations) as refused:
        compile_content(Content(text="hi", subject="Hi"), "sms", ())
    assert set(refused.value.violations) == {"subject"}


def test_sms_messages_count_the_gateways_pieces() -> None:
    assert sms_messages("x") == 1
    assert sms_messages("x" * 1600) == 1
    assert sms_messages("x" * 1601) == 2


def test_addresses() -> None:
    assert addresses.phone("9123 4567", "hk") == "+85291234567"
    assert addresses.phone("+852 9123-4567") == "+85291234567"
    with pytest.raises(addresses.InvalidAddress, match="region"):
        addresses.phone("91234567")
    assert addresses.email(" Ann@Example.COM ") == "ann@example.com"
    assert addresses.from_external_id("whatsapp", "85291234567") == "+85291234567"
    assert addresses.from_external_id("email", "Ann@X.test") == "ann@x.test"
    line = "U" + "a" * 32
    assert addresses.line_user(line) == line
    assert (
        addresses.customer_address(
            "line", identity=None, phone_number="+85291234567", email_address=None
        )
        is None
    )
    assert (
        addresses.customer_address(
            "sms", identity="85291234567", phone_number="+85299999999", email_address=None
        )
        == "+85291234567"
    )


def test_recipient_files_read_whole_or_not_at_all() -> None:
    good = "Name,PHONE,city,notes\nAnn,9123 4567,Sha Tin,x\nBo,+44 20 7946 0958,,\n"
    found = recipient_file.read(good.encode(), "csv", "sms", "HK")
    assert [(r.row, r.address) for r in found] == [(2, "+85291234567"), (3, "+442079460958")]
    assert found[0].values["customer.fields.city"] == "Sha Tin"
    assert found[0].values["customer.name"] == "Ann"
    with pytest.raises(Violations) as refused:
        recipient_file.read(b"name,phone\nA,12\nB,\nC,+85291234567\n", "csv", "sms")
    assert refused.value.violations == {
        "rows[2].phone": "not a phone number (start it with + or give a region)",
        "rows[3].phone": "required",
    }
    with pytest.raises(Violations) as refused:
        recipient_file.read(b"name,phone\nA,+85291234567\n", "csv", "email")
    assert refused.value.violations == {
        "content": "no 'email' column (the header row names the columns)"
    }


@pytest.mark.parametrize(
    ("text", "action"),
    [
        ("STOP", "stop"),
        (" stop! ", "stop"),
        ("Ｓｔｏｐ", "stop"),
        ("Unsubscribe.", "stop"),
        ("opt out", "stop"),
        ("退訂", "stop"),
        ("取消订阅。", "stop"),
        ("START", "start"),
        ("please stop calling me", None),
        ("cancel", None),
        ("", None),
    ],
)
def test_keywords(text: str, action: str | None) -> None:
    found = stop.keyword(text)
    assert (found.action if found else None) == action


@given(st.text(max_size=60))
def test_a_keyword_is_a_whole_message(text: str) -> None:
    found = stop.keyword(text)
    if found is not None:
        assert stop.normalized(text) in stop.STOP_WORDS | stop.START_WORDS


class ManualClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_the_bucket_allows_its_burst_then_its_rate() -> None:
    clock = ManualClock()
    bucket = TokenBucket(10.0, burst=3, clock=clock, sleep=clock.sleep)

    async def take(n: int) -> None:
        for _ in range(n):
            await bucket.acquire()

    asyncio.run(take(3))
    assert clock.slept == []  # the burst
    asyncio.run(take(5))
    assert clock.now == pytest.approx(0.5)  # then 10 a second
    assert not bucket.try_acquire()
    clock.now += 0.1
    assert bucket.try_acquire()
