"""QR codes' pure parts: each target's link and checks, the visitor hash, the image's layout,
and the month a monthly quota counts in the tenant's zone."""

from __future__ import annotations

import datetime as dt
import io

import pytest
import zxingcpp
from PIL import Image

from core.qr import images, targets, visits
from core.store.quotas import QuotaUsage, month_of


@pytest.mark.parametrize(
    ("target", "link"),
    [
        (
            targets.WhatsApp("+85291234567", "Hi 你好 & more"),
            "https://wa.me/85291234567?text=Hi%20%E4%BD%A0%E5%A5%BD%20%26%20more",
        ),
        (targets.WhatsApp("+85291234567"), "https://wa.me/85291234567"),
        (
            targets.Line("@shop", "menu please"),
            "https://line.me/R/oaMessage/%40shop/?menu%20please",
        ),
        (targets.Line("@shop"), "https://line.me/R/ti/p/%40shop"),
        (
            targets.WebChat("https://x.test/chat?ref=old&a=1"),
            "https://x.test/chat?a=1&ref=code1234",
        ),
        (targets.WebChat("https://x.test/chat", "spring_mk"), "https://x.test/chat?ref=spring_mk"),
        (targets.Url("https://x.test/a?b=c"), "https://x.test/a?b=c"),
    ],
)
def test_each_target_builds_its_link(target: targets.Target, link: str) -> None:
    assert targets.problems(target) == {}
    assert targets.link(target, "code1234") == link
    assert targets.from_document(targets.kind_of(target), targets.to_document(target)) == target


def test_bad_targets_name_their_fields() -> None:
    assert set(targets.problems(targets.WhatsApp("85291234567", "a\x00"))) == {
        "whatsapp.phone_number",
        "whatsapp.trigger_phrase",
    }
    assert set(targets.problems(targets.Line("shop"))) == {"line.basic_id"}
    assert set(targets.problems(targets.WebChat("ftp://x", "bad ref"))) == {
        "web_chat.page_url",
        "web_chat.reference",
    }
    assert set(targets.problems(targets.Url("http://x.test"))) == {"url.url"}  # https only
    assert targets.tie(targets.WhatsApp("+85291234567", "  Hi  "), "c").phrase == "Hi"
    assert targets.tie(targets.WebChat("https://x.test"), "c").reference == "c"


def test_a_visitor_is_the_same_within_a_day_and_not_across_salts() -> None:
    one = visits.visitor(b"s" * 32, "acme", "code", "10.0.0.1", "phone")
    assert one == visits.visitor(b"s" * 32, "acme", "code", "10.0.0.1", "phone")
    assert len(one) == visits.VISITOR_BYTES
    assert one != visits.visitor(b"t" * 32, "acme", "code", "10.0.0.1", "phone")
    assert one != visits.visitor(b"s" * 32, "acme", "code", "10.0.0.2", "phone")


@pytest.mark.parametrize("size", [64, 123, 512, 1000])
def test_the_png_is_the_size_asked_and_decodes(size: int) -> None:
    text = "https://usher.example.com/q/abcd2345"
    image = Image.open(io.BytesIO(images.png(text, size)))
    assert image.size == (size, size)
    assert [r.text for r in zxingcpp.read_barcodes(image)] == [text]
    svg = images.svg(text, size).decode()
    assert f'width="{size}" height="{size}"' in svg


def test_a_month_is_the_tenants_calendar_month() -> None:
    # 2026-01-31 20:00 UTC is already February 1st in Hong Kong
    late = dt.datetime(2026, 1, 31, 20, tzinfo=dt.UTC)
    assert month_of(late, "Asia/Hong_Kong") == (dt.date(2026, 2, 1), dt.date(2026, 3, 1))
    assert month_of(late, "UTC") == (dt.date(2026, 1, 1), dt.date(2026, 2, 1))
    assert month_of(late, "Not/AZone") == (dt.date(2026, 1, 1), dt.date(2026, 2, 1))
    assert month_of(dt.datetime(2026, 12, 15, tzinfo=dt.UTC), "UTC")[1] == dt.date(2027, 1, 1)
    assert str(QuotaUsage("qr_codes", 16, 1500)) == "16 / 1500"
    assert str(QuotaUsage("bots", 3, None)) == "3 / unlimited"
