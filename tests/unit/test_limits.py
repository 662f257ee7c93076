"""The limits table and the descriptor walk (``core.api.validation``), without a server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from google.protobuf import descriptor_pool, duration_pb2, field_mask_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from hypothesis import given
from hypothesis import strategies as st
from usher.v1 import (
    admin_service_pb2,
    agent_pb2,
    agent_service_pb2,
    auth_service_pb2,
    blocklist_service_pb2,
    bot_service_pb2,
    broadcast_service_pb2,
    canned_reply_service_pb2,
    conversation_service_pb2,
    customer_service_pb2,
    follow_up_service_pb2,
    knowledge_service_pb2,
    qr_code_service_pb2,
    quota_service_pb2,
    record_service_pb2,
    report_service_pb2,
    supervisor_service_pb2,
    team_chat_service_pb2,
)

from core.api.validation import LIMITS, violations
from core.api.validation import forms as f
from core.api.validation.walk import MAX_VIOLATIONS, limit_of

SERVICES = (
    admin_service_pb2,
    agent_service_pb2,
    auth_service_pb2,
    blocklist_service_pb2,
    bot_service_pb2,
    broadcast_service_pb2,
    canned_reply_service_pb2,
    conversation_service_pb2,
    customer_service_pb2,
    follow_up_service_pb2,
    knowledge_service_pb2,
    qr_code_service_pb2,
    quota_service_pb2,
    record_service_pb2,
    report_service_pb2,
    supervisor_service_pb2,
    team_chat_service_pb2,
)


def request_types() -> list[Descriptor]:
    return [
        method.input_type
        for module in SERVICES
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    ]


def reachable_fields() -> Iterator[FieldDescriptor]:
    seen: set[str] = set()
    todo = list(request_types())
    while todo:
        message = todo.pop()
        if message.full_name in seen or message.full_name.startswith("google."):
            continue
        seen.add(message.full_name)
        for field in message.fields:
            yield field
            if field.message_type is not None:
                todo.append(field.message_type)


def test_every_declared_limit_names_a_request_field() -> None:
    reachable = {field.full_name for field in reachable_fields()}
    pool = descriptor_pool.Default()
    for name in LIMITS:
        message, _, field = name.rpartition(".")
        assert field in pool.FindMessageTypeByName(message).fields_by_name, name
        assert name in reachable, f"{name} is in no request"


RESOURCE_FIELDS = {
    "conversation",
    "agent",
    "queue",
    "offer",
    "transfer",
    "department",
    "message",
    "parent",
    "overflow_queue",
    "default_queue",
    "skill",
    "designated_agents",
    "designated_departments",
    "departments",
    "queues",
}


def test_every_resource_name_field_declares_its_syntax() -> None:
    for field in reachable_fields():
        if field.type == FieldDescriptor.TYPE_STRING and (
            field.name in RESOURCE_FIELDS
            or (field.name == "name" and field.full_name.split(".")[-2].endswith("Request"))
            or (
                field.name.endswith("_id")
                and field.name not in ("request_id", "provider_message_id", "external_id")
            )
        ):
            assert limit_of(field).form is not None, field.full_name


def fields_of(request: object) -> dict[str, str]:
    return {v.field: v.description for v in violations(request)}  # type: ignore[arg-type]


def test_a_valid_request_passes() -> None:
    request = conversation_service_pb2.StartConversationRequest(
        channel="sms",
        queue="queues/sales",
        language="en-GB",
        region="eu",
        priority=10,
        tags=["vip"],
    )
    request.customer.external_id = "kim"
    request.customer.phone = "+85291234567"
    request.customer.email = "kim@example.com"
    request.first_message.text = "hello"
    request.first_message.send_time.GetCurrentTime()
    request.first_message.attachments.add(
        sha256="a" * 64, name="a.png", content_type="image/png", size=10, uri="https://x.test/a"
    )
    assert violations(request) == []


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (conversation_service_pb2.StartConversationRequest(tags=["ok", "a\x00"]), "tags[1]"),
        (conversation_service_pb2.StartConversationRequest(priority=-1001), "priority"),
        (conversation_service_pb2.MarkReadRequest(status=42), "status"),  # type: ignore[arg-type]
        (agent_service_pb2.AcceptOfferRequest(offer="offers/a/b"), "offer"),
        (
            agent_service_pb2.StreamEventsRequest(resume_after_event_id=2**63),
            "resume_after_event_id",
        ),
        (
            admin_service_pb2.CreateAgentRequest(agent=agent_pb2.Agent(capacity=-1)),
            "agent.capacity",
        ),
        (
            admin_service_pb2.UpdateAgentRequest(
                update_mask=field_mask_pb2.FieldMask(paths=["Display Name"])
            ),
            "update_mask.paths[0]",
        ),
        (
            supervisor_service_pb2.StreamDashboardRequest(
                min_interval=duration_pb2.Duration(seconds=-1)
            ),
            "min_interval",
        ),
        (
            supervisor_service_pb2.StreamDashboardRequest(
                min_interval=duration_pb2.Duration(seconds=1, nanos=-1)
            ),
            "min_interval",
        ),
    ],
)
def test_bad_values_name_their_field(request_: object, field: str) -> None:
    assert field in fields_of(request_)


def test_map_entries_are_checked_key_and_value() -> None:
    request = admin_service_pb2.UpdateTenantSettingsRequest()
    request.settings.region_queues["eu"] = "not a queue"
    request.settings.region_queues["k" * 100] = "queues/a"
    request.settings.channel_weights["sms"] = float("nan")
    found = fields_of(request)
    assert "settings.region_queues[eu]" in found
    assert "settings.region_queues.key" in found
    assert "settings.channel_weights[sms]" in found


def test_counts_are_checked_before_entries() -> None:
    request = conversation_service_pb2.StartConversationRequest(tags=["\x00"] * 10_000)
    assert list(fields_of(request)) == ["tags"]


def test_the_walk_stops_after_max_violations() -> None:
    request = conversation_service_pb2.StartConversationRequest(tags=["\x00"] * 50)
    assert len(violations(request)) == MAX_VIOLATIONS


@given(st.text(max_size=300))
def test_descriptions_never_quote_the_value(text: str) -> None:
    marker = "Zq9" + text
    request = conversation_service_pb2.StartConversationRequest(
        region=marker, language=marker, tags=[marker], queue=marker, channel=marker
    )
    for violation in violations(request):
        assert marker not in violation.description


@pytest.mark.parametrize(
    ("form", "good", "bad"),
    [
        (f.LANGUAGE, ["en", "en-US", "zh-Hant-HK", "de-CH-1996"], ["en_US", "xx-yy", "e n"]),
        (f.PHONE, ["+85291234567", "+14155552671"], ["85291234567", "+0123", "+1 415"]),
        (f.EMAIL, ["kim@example.com"], ["kim", "kim@", "@example.com", "a b@example.com"]),
        (f.MESSAGE_NAME, ["conversations/c1/messages/7"], ["conversations/c1/messages/0"]),
        (f.resource("queues"), ["queues/sales-1"], ["queues/", "queue/x", "queues/a/b"]),
        (f.TIME_OF_DAY, ["00:00", "23:59", "24:00"], ["24:01", "7:00"]),
    ],
)
def test_forms(form: f.Form, good: list[str], bad: list[str]) -> None:
    assert all(form.accepts(text) for text in good)
    assert not any(form.accepts(text) for text in bad)
