"""How failures from below become ``google.rpc.Status`` answers: the details each code
promises (BadRequest, ResourceInfo), and no internal text or oversized input in them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2, status_pb2
from structlog.testing import capture_logs

from core.api.convert import (
    Refused,
    guarded,
    guarded_stream,
    parse_agent,
    parse_conversation,
    parse_message,
    parse_offer,
    parse_queue,
    parse_transfer,
)
from core.api.errors import (
    INTERNAL_MESSAGE,
    MAX_MESSAGE,
    MAX_QUOTED,
    UNAVAILABLE_MESSAGE,
    fail_from,
    resource,
    shown,
    status,
)
from core.routing.errors import InvalidArgument, NotFound
from core.runtime.feed import ResumeTooOld, SlowConsumer
from core.runtime.shard import Failure
from core.store.errors import StoreUnavailable


class Context:
    """Records the status a servicer aborts with."""

    def __init__(self) -> None:
        self.status: status_pb2.Status | None = None

    async def abort_with_status(self, status: Any) -> None:
        details = dict(status.trailing_metadata)["grpc-status-details-bin"]
        self.status = status_pb2.Status.FromString(details)
        raise RuntimeError("aborted")


def detail(status: status_pb2.Status, kind: type[Any]) -> Any:
    for packed in status.details:
        found = kind()
        if packed.Unpack(found):
            return found
    return None


async def test_a_slow_consumer_is_told_to_resume_soon() -> None:
    context = Context()
    with pytest.raises(RuntimeError):
        await fail_from(context, SlowConsumer("fell 1000 events behind"))  # type: ignore[arg-type]
    assert context.status is not None
    assert detail(context.status, error_details_pb2.ErrorInfo).reason == "SLOW_CONSUMER"
    assert detail(context.status, error_details_pb2.RetryInfo) is not None


async def test_a_resume_too_old_is_final() -> None:
    context = Context()
    with pytest.raises(RuntimeError):
        await fail_from(context, ResumeTooOld("too far back"))  # type: ignore[arg-type]
    assert context.status is not None
    assert detail(context.status, error_details_pb2.RetryInfo) is None


# --- BadRequest for INVALID_ARGUMENT ---------------------------------------------------------


def violations(status: status_pb2.Status) -> list[tuple[str, str]]:
    bad = detail(status, error_details_pb2.BadRequest)
    assert bad is not None, "INVALID_ARGUMENT without a BadRequest"
    return [(v.field, v.description) for v in bad.field_violations]


async def failed(exc: Any) -> status_pb2.Status:
    """The status ``fail_from`` answers ``exc`` with."""
    context = Context()
    with pytest.raises(RuntimeError, match="aborted"):
        await fail_from(context, exc)  # type: ignore[arg-type]
    assert context.status is not None
    return context.status


async def test_an_invalid_argument_naming_a_field_is_a_field_violation() -> None:
    got = await failed(
        InvalidArgument("customer.external_id is required", field="customer.external_id")
    )
    assert got.code == code_pb2.INVALID_ARGUMENT
    assert violations(got) == [("customer.external_id", "customer.external_id is required")]
    assert detail(got, error_details_pb2.ErrorInfo).reason == "INVALID_ARGUMENT"


async def test_a_shard_refusal_naming_a_field_is_a_field_violation() -> None:
    got = await failed(
        Failure("INVALID_ARGUMENT", "capacity must be positive", {"field": "agent.capacity"})
    )
    assert violations(got) == [("agent.capacity", "capacity must be positive")]


async def test_an_invalid_argument_naming_no_field_is_about_the_whole_request() -> None:
    got = await failed(InvalidArgument("a queue cannot overflow into itself"))
    assert violations(got) == [("", "a queue cannot overflow into itself")]


def test_explicit_violations_are_kept() -> None:
    got = status(
        "INVALID_ARGUMENT", "bad", violations={"a.b": "x", "c": "y"}, details={"field": "z"}
    )
    assert violations(got) == [("a.b", "x"), ("c", "y")]


def test_other_codes_carry_no_bad_request() -> None:
    got = status("FAILED_PRECONDITION", "closed", details={"field": "x"})
    assert detail(got, error_details_pb2.BadRequest) is None


# --- ResourceInfo for NOT_FOUND ----------------------------------------------------------------


def resource_of(status: status_pb2.Status) -> tuple[str, str]:
    info = detail(status, error_details_pb2.ResourceInfo)
    assert info is not None, "no ResourceInfo"
    return info.resource_type, info.resource_name


@pytest.mark.parametrize(
    ("details", "expected"),
    [
        ({"conversation": "abc"}, ("usher.v1.Conversation", "conversations/abc")),
        ({"conversation_id": "abc"}, ("usher.v1.Conversation", "conversations/abc")),
        ({"agent": "ann"}, ("usher.v1.Agent", "agents/ann")),
        ({"agent_id": "ann"}, ("usher.v1.Agent", "agents/ann")),
        ({"queue": "q"}, ("usher.v1.Queue", "queues/q")),
        ({"queue_id": "q"}, ("usher.v1.Queue", "queues/q")),
        ({"offer": "o1"}, ("usher.v1.Offer", "offers/o1")),
        ({"transfer": "t1"}, ("usher.v1.Transfer", "transfers/t1")),
        ({"skill": "billing"}, ("usher.v1.Skill", "skills/billing")),
        ({"department": "sales"}, ("usher.v1.Department", "departments/sales")),
        ({"channel": "wa"}, ("usher.v1.Channel", "channels/wa")),
        ({"credential": "c1"}, ("usher.v1.Credential", "credentials/c1")),
        ({"tenant": "acme"}, ("usher.v1.TenantSettings", "settings")),
        (
            {"message": "7", "conversation": "abc"},
            ("usher.v1.Message", "conversations/abc/messages/7"),
        ),
        ({"message_id": "7"}, ("usher.v1.Message", "conversations/-/messages/7")),
        ({"agent": "agents/ann"}, ("usher.v1.Agent", "agents/ann")),
    ],
)
async def test_a_not_found_names_the_missing_resource(
    details: dict[str, str], expected: tuple[str, str]
) -> None:
    refusal = NotFound("not found")
    refusal.details.update(details)  # (``message`` is also the error's own argument)
    got = await failed(refusal)
    assert got.code == code_pb2.NOT_FOUND
    assert resource_of(got) == expected
    shard = await failed(Failure("NOT_FOUND", "not found", details))
    assert resource_of(shard) == expected


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("department 'sales' not found", ("usher.v1.Department", "departments/sales")),
        ("unknown custom status 'lunch'", ("usher.v1.CustomStatus", "lunch")),
        ("message 7 not found", ("usher.v1.Message", "conversations/-/messages/7")),
        (
            "message 'conversations/abc/messages/7' not found",
            ("usher.v1.Message", "conversations/abc/messages/7"),
        ),
    ],
)
async def test_a_not_found_without_details_is_named_from_its_message(
    message: str, expected: tuple[str, str]
) -> None:
    assert resource_of(await failed(NotFound(message))) == expected


async def test_an_open_conversation_is_the_resource_that_exists() -> None:
    got = await failed(Failure("ALREADY_EXISTS", "open", {"open_conversation": "c9"}))
    assert resource_of(got) == ("usher.v1.Conversation", "conversations/c9")


def test_an_explicit_resource_is_kept() -> None:
    got = status("NOT_FOUND", "gone", details=resource("channel", "channels/wa"))
    assert resource_of(got) == ("usher.v1.Channel", "channels/wa")


# --- no internal text --------------------------------------------------------------------------


def text_of(status: status_pb2.Status) -> bytes:
    return status.SerializeToString()


async def test_an_unexpected_exception_is_internal_and_opaque() -> None:
    got = await failed(RuntimeError("password=hunter2 at /srv/usher/core.py"))
    assert got.code == code_pb2.INTERNAL
    assert got.message == INTERNAL_MESSAGE
    assert b"hunter2" not in text_of(got) and b"RuntimeError" not in text_of(got)


async def test_internal_and_unavailable_text_from_below_stays_in_the_log() -> None:
    with capture_logs() as logs:
        internal = await failed(Failure("INTERNAL", "KeyError('x') in projection"))
        down = await failed(
            StoreUnavailable("PostgreSQL is unavailable: ConnectionRefusedError(111)")
        )
    assert internal.message == INTERNAL_MESSAGE and b"KeyError" not in text_of(internal)
    assert down.code == code_pb2.UNAVAILABLE and down.message == UNAVAILABLE_MESSAGE
    assert b"ConnectionRefused" not in text_of(down)
    assert detail(down, error_details_pb2.RetryInfo) is not None
    incident = detail(internal, error_details_pb2.ErrorInfo).metadata["error_id"]
    assert any(e.get("error_id") == incident and "KeyError" in e["error"] for e in logs)


def test_a_long_message_is_cut() -> None:
    got = status("FAILED_PRECONDITION", "x" * 10_000)
    assert len(got.message) == MAX_MESSAGE and got.message.endswith("\u2026")


# --- guarded servicer methods --------------------------------------------------------------------


class Servicer:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    @guarded
    async def Unary(self, request: object, context: Any) -> str:
        raise self.exc

    @guarded_stream
    async def Stream(self, request: object, context: Any) -> AsyncIterator[str]:
        yield "first"
        raise self.exc


async def test_guarded_answers_a_bug_with_internal_and_logs_it() -> None:
    context = Context()
    with capture_logs() as logs, pytest.raises(RuntimeError, match="aborted"):
        await Servicer(ZeroDivisionError("secret")).Unary(None, cast(Any, context))
    assert context.status is not None and context.status.code == code_pb2.INTERNAL
    assert b"secret" not in text_of(context.status)
    incident = detail(context.status, error_details_pb2.ErrorInfo).metadata["error_id"]
    [entry] = [e for e in logs if e.get("error_id") == incident]
    assert isinstance(entry["exc_info"], ZeroDivisionError)
    assert entry["method"].endswith("Servicer.Unary")


async def test_guarded_stream_answers_a_bug_with_internal() -> None:
    context = Context()
    got = []
    with pytest.raises(RuntimeError, match="aborted"):
        async for item in Servicer(KeyError("secret")).Stream(None, cast(Any, context)):
            got.append(item)
    assert got == ["first"]
    assert context.status is not None and context.status.code == code_pb2.INTERNAL


async def test_guarded_lets_an_abort_through() -> None:
    context = Context()
    with pytest.raises(grpc.aio.AbortError):
        await Servicer(grpc.aio.AbortError()).Unary(None, cast(Any, context))
    assert context.status is None


async def test_guarded_answers_a_refusal_with_its_status() -> None:
    context = Context()
    refused = Refused(Failure("NOT_FOUND", "offer 'o' not found", {"offer": "o"}))
    with pytest.raises(RuntimeError, match="aborted"):
        await Servicer(refused).Unary(None, cast(Any, context))
    assert context.status is not None and resource_of(context.status) == (
        "usher.v1.Offer",
        "offers/o",
    )


# --- parse helpers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parse", "value", "field"),
    [
        (lambda v: parse_conversation(v), "", "conversation"),
        (lambda v: parse_conversation(v), "c1", "conversation"),
        (lambda v: parse_conversation(v, "name"), "agents/ann", "name"),
        (lambda v: parse_agent(v), "agents/", "agent"),
        (lambda v: parse_offer(v), "offers/a/b", "offer"),
        (lambda v: parse_queue(v, "queues"), "queues/a b", "queues"),
        (lambda v: parse_transfer(v), "transfers/\x00", "transfer"),
        (lambda v: parse_message(v), "", "message"),
        (lambda v: parse_message(v), "conversations/c/messages/x", "message"),
        (lambda v: parse_message(v), "conversations/c/messages/" + "9" * 5000, "message"),
        (lambda v: parse_message(v, "parent"), "conversations/c/messages/\u00b2", "parent"),
    ],
)
def test_a_parse_helper_names_its_field(
    parse: Callable[[str], object], value: str, field: str
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        parse(value)
    assert refused.value.details == {"field": field}


def test_a_parse_helper_does_not_echo_oversized_input() -> None:
    with pytest.raises(InvalidArgument) as refused:
        parse_conversation("x" * 100_000)
    assert len(refused.value.message) < 200
    assert "x" * MAX_QUOTED not in refused.value.message
    assert "\u2026" in refused.value.message


def test_shown_cuts_long_values() -> None:
    assert shown("short") == "'short'"
    assert shown("y" * 1000) == repr("y" * (MAX_QUOTED - 1) + "\u2026")
