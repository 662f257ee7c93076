"""The wire contract and the SDK: the generated stubs import, every service carries its
documented RPCs, names follow buf STANDARD and AIP, and the client maps errors, retries only what
is idempotent, and resumes a dropped stream with no gap and no duplicate."""

from __future__ import annotations

import asyncio
import importlib
import pkgutil
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Never

import grpc
import pytest
import usher.v1
from google.protobuf import any_pb2
from google.protobuf.descriptor import (
    Descriptor,
    EnumDescriptor,
    FieldDescriptor,
    ServiceDescriptor,
)
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from usher.client import (
    AgentClient,
    FailedPrecondition,
    OutOfRange,
    RetryPolicy,
    Unavailable,
    UsherError,
)
from usher.client.errors import ERRORS
from usher.v1 import agent_service_pb2 as pb
from usher.v1 import agent_service_pb2_grpc as pb_grpc

PROTOS = Path(__file__).resolve().parents[2] / "protos/usher/v1"

SERVICES: dict[str, set[str]] = {
    "ConversationService": {
        "StartConversation",
        "PostCustomerMessage",
        "ReceiveCustomerMessage",
        "PostBotMessage",
        "RequestAgent",
        "LeaveConversation",
        "FetchGatewayChannels",
        "NotifyTyping",
        "MarkRead",
        "RateConversation",
        "ListRatings",
        "StreamOutbound",
    },
    "AgentService": {
        "SetStatus",
        "StreamEvents",
        "AcceptOffer",
        "RejectOffer",
        "TakeConversation",
        "SendMessage",
        "RequestTransfer",
        "AnswerTransfer",
        "CancelTransfer",
        "SetConversationMode",
        "EndConversation",
        "FinishWrapUp",
        "AddNote",
        "UpdateTags",
        "ListMyConversations",
        "GetConversation",
        "ListMessages",
        "ListNotes",
        "NotifyTyping",
        "MarkRead",
    },
    "SupervisorService": {
        "StreamDashboard",
        "MonitorConversation",
        "StopMonitoring",
        "StreamConversation",
        "ForceAssign",
        "ExplainRouting",
    },
    "AdminService": {
        *(
            f"{verb}{kind}"
            for kind in ("Agent", "Queue", "Skill", "Department", "Channel")
            for verb in ("Get", "Create", "Update", "Delete")
        ),
        *(f"List{kinds}" for kinds in ("Agents", "Queues", "Skills", "Departments", "Channels")),
        "GetTenantSettings",
        "UpdateTenantSettings",
        "SetAgentPassword",
        "CreateCredential",
        "ListCredentials",
        "RevokeCredential",
    },
    "CustomerService": {
        "CreateCustomer",
        "GetCustomer",
        "UpdateCustomer",
        "DeleteCustomer",
        "UndeleteCustomer",
        "ListCustomers",
        "MergeCustomers",
        "AddCustomerNote",
        "ListCustomerNotes",
        "CreateCustomField",
        "ListCustomFields",
        "UpdateCustomField",
        "DeleteCustomField",
        "CreateCustomerGroup",
        "ListCustomerGroups",
        "DeleteCustomerGroup",
        "AddCustomerGroupMembers",
        "RemoveCustomerGroupMembers",
        "ImportCustomers",
        "GetImportTemplate",
        "ExportCustomers",
        "GetUsage",
    },
    "BroadcastService": {
        "CreateBroadcast",
        "GetBroadcast",
        "ListBroadcasts",
        "DeleteBroadcast",
        "PreviewBroadcast",
        "SendBroadcast",
        "PauseBroadcast",
        "ResumeBroadcast",
        "CancelBroadcast",
        "ListBroadcastRecipients",
        "ClaimBroadcastSends",
        "ReportBroadcastSends",
    },
    "QrCodeService": {
        *(
            f"{verb}QrCode"
            for verb in ("Create", "Get", "Update", "Activate", "Deactivate", "Delete")
        ),
        "ListQrCodes",
        "GetQrCodeImage",
        "GetQrCodeStats",
        "ExportQrCodes",
    },
    "QuotaService": {"GetQuotas"},
    "KnowledgeService": {
        *(
            f"{verb}{kind}"
            for kind in ("KnowledgeCategory", "Article")
            for verb in ("Create", "Get", "Update", "Delete")
        ),
        "ListKnowledgeCategories",
        "ListArticles",
        "SearchArticles",
    },
    "BlocklistService": {"CreateBlock", "GetBlock", "ListBlocks", "Unblock", "WatchBlocks"},
    "BotService": {
        "CreateBot",
        "GetBot",
        "ListBots",
        "UpdateBot",
        "ActivateBot",
        "PauseBot",
        "DeleteBot",
        "PreviewBot",
        "GetBotStats",
    },
    "RecordService": {
        "ListConversations",
        "CountConversations",
        "PinConversation",
        "UnpinConversation",
        "GetConversationActivity",
        "ListCustomerConversations",
        "ExportConversations",
        "WatchConversationLists",
    },
    "FollowUpService": {
        "ListLeftMessages",
        "MarkLeftMessageHandled",
        "AnswerLeftMessage",
        "StartConversationWithCustomer",
    },
    "CannedReplyService": {
        *(
            f"{verb}{kind}"
            for kind in ("CannedReply", "CannedReplyCategory")
            for verb in ("Get", "Create", "Update", "Delete")
        ),
        "ListCannedReplies",
        "ListCannedReplyCategories",
        "SearchCannedReplies",
        "RenderCannedReply",
    },
    "ReportService": {
        "GetOverviewReport",
        "GetAgentReport",
        "GetQueueReport",
        "GetChannelReport",
        "ListAgentLogins",
        "ExportReport",
        "GetReportChart",
        "GetVisitorReport",
        "GetBotReport",
    },
    "AuthService": {"SignIn", "RefreshSession", "SignOut", "ListLogins"},
    "TeamChatService": {
        "CreateThread",
        "ListThreads",
        "SendTeamMessage",
        "ListTeamMessages",
        "StreamTeamChat",
        "ListColleagues",
    },
}
SHARED_RESPONSES = {("AuthService", "RefreshSession"): "SignInResponse"}
"""RPCs answering another RPC's response (both issue a session's token)."""
ANONYMOUS_TENANT = {"SignInRequest"}
"""Requests that name their tenant: those made before there is a credential (signing in)."""
STREAMING = {
    "StreamOutbound",
    "StreamEvents",
    "StreamDashboard",
    "StreamConversation",
    "ExportCustomers",
    "ExportConversations",
    "WatchBlocks",
    "ExportReport",
    "WatchConversationLists",
    "ExportQrCodes",
    "StreamTeamChat",
}
RESOURCES = {
    "Conversation": "conversations/{conversation}",
    "Message": "conversations/{conversation}/messages/{message}",
    "Note": "conversations/{conversation}/notes/{note}",
    "Agent": "agents/{agent}",
    "Queue": "queues/{queue}",
    "Skill": "skills/{skill}",
    "Department": "departments/{department}",
    "Offer": "offers/{offer}",
    "Transfer": "transfers/{transfer}",
    "Credential": "credentials/{credential}",
    "Channel": "channels/{channel}",
    "TenantSettings": "settings",
    "Bot": "bots/{bot}",
    "CannedReply": "cannedReplies/{canned_reply}",
    "CannedReplyCategory": "cannedReplyCategories/{category}",
    "QrCode": "qrCodes/{qr_code}",
    "TeamThread": "teamThreads/{thread}",
    "TeamMessage": "teamThreads/{thread}/messages/{message}",
    "LoginRecord": "logins/{login}",
}


def _modules() -> list[ModuleType]:
    names = sorted(m.name for m in pkgutil.iter_modules(usher.v1.__path__))
    return [importlib.import_module(f"usher.v1.{name}") for name in names]


def _pb2_modules() -> list[ModuleType]:
    return [m for m in _modules() if m.__name__.endswith("_pb2")]


def _messages() -> Iterator[Descriptor]:
    def walk(message: Descriptor) -> Iterator[Descriptor]:
        yield message
        for nested in message.nested_types:
            if not nested.GetOptions().map_entry:
                yield from walk(nested)

    for module in _pb2_modules():
        for message in module.DESCRIPTOR.message_types_by_name.values():
            yield from walk(message)


def _enums() -> Iterator[EnumDescriptor]:
    for module in _pb2_modules():
        yield from module.DESCRIPTOR.enum_types_by_name.values()
    for message in _messages():
        yield from message.enum_types


def _services() -> dict[str, ServiceDescriptor]:
    found: dict[str, ServiceDescriptor] = {}
    for module in _pb2_modules():
        found.update(module.DESCRIPTOR.services_by_name)
    return found


def _upper_snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()


# --- the stubs ---------------------------------------------------------------------------------


def test_every_proto_has_stubs_that_import() -> None:
    protos = {p.stem for p in PROTOS.glob("*.proto")}
    assert protos, PROTOS
    assert {m.__name__.split(".")[-1].removesuffix("_pb2") for m in _pb2_modules()} == protos
    for module in _pb2_modules():
        assert module.DESCRIPTOR.package == "usher.v1"
        assert module.DESCRIPTOR.name == f"usher/v1/{module.__name__.split('.')[-1][:-4]}.proto"


def test_every_service_has_the_documented_rpcs() -> None:
    services = _services()
    assert set(services) == set(SERVICES)
    for name, expected in SERVICES.items():
        service = services[name]
        methods = service.methods_by_name
        assert set(methods) == expected, name
        for rpc, method in methods.items():
            assert not method.client_streaming, f"{name}.{rpc}: browsers cannot client-stream"
            assert method.server_streaming == (rpc in STREAMING), f"{name}.{rpc}"
            assert method.input_type.name in (f"{rpc}Request", f"{name}{rpc}Request")
            assert method.output_type.name in (
                f"{rpc}Response",
                f"{name}{rpc}Response",
                SHARED_RESPONSES.get((name, rpc)),
            )
        stub = getattr(importlib.import_module(f"usher.v1.{_snake(name)}_pb2_grpc"), f"{name}Stub")
        assert stub.__name__ == f"{name}Stub"


def _snake(name: str) -> str:
    return _upper_snake(name).lower()


def test_fields_and_enums_follow_the_naming_rules() -> None:
    for message in _messages():
        assert re.fullmatch(r"[A-Z][A-Za-z0-9]*", message.name), message.full_name
        for field in message.fields:
            assert re.fullmatch(r"[a-z][a-z0-9_]*", field.name), field.full_name
            if message.name not in ANONYMOUS_TENANT:
                assert field.name not in ("tenant", "tenant_id"), "the credential names the tenant"
    enums = list(_enums())
    assert enums
    for enum in enums:
        prefix = _upper_snake(enum.name) + "_"
        assert enum.values[0].number == 0
        assert enum.values[0].name == prefix + "UNSPECIFIED", enum.full_name
        for value in enum.values:
            assert value.name.startswith(prefix), value.name


def test_resources_are_named_first_and_relative_to_the_tenant() -> None:
    messages = {m.name: m for m in _messages()}
    for resource in RESOURCES:
        field = messages[resource].fields_by_number[1]
        assert (field.name, field.type) == ("name", FieldDescriptor.TYPE_STRING), resource


def test_feeds_resume_by_uint64_event_ids() -> None:
    messages = {m.name: m for m in _messages()}
    for item in ("OutboundItem", "AgentEvent", "ConversationEvent", "BlockEvent"):
        assert messages[item].fields_by_name["event_id"].type == FieldDescriptor.TYPE_UINT64
    assert messages["TeamMessage"].fields_by_name["message_id"].type == FieldDescriptor.TYPE_UINT64
    resume = messages["StreamTeamChatRequest"].fields_by_name["resume_after_message_id"]
    assert resume.type == FieldDescriptor.TYPE_UINT64
    for request in (
        "StreamOutboundRequest",
        "StreamEventsRequest",
        "StreamConversationRequest",
        "WatchBlocksRequest",
    ):
        field = messages[request].fields_by_name["resume_after_event_id"]
        assert field.type == FieldDescriptor.TYPE_UINT64


def test_standard_methods_page_and_mask() -> None:
    messages = {m.name: m for m in _messages()}
    for name, message in messages.items():
        if name.startswith("List") and name.endswith("Request"):
            assert {"page_size", "page_token"} <= set(message.fields_by_name), name
            response = messages[name.removesuffix("Request") + "Response"]
            assert "next_page_token" in response.fields_by_name, name
        if name.startswith("Update") and name.endswith("Request") and name != "UpdateTagsRequest":
            mask = message.fields_by_name["update_mask"].message_type
            assert mask is not None and mask.full_name == "google.protobuf.FieldMask", name


def test_every_status_code_has_an_error_class() -> None:
    assert set(ERRORS) == set(grpc.StatusCode) - {grpc.StatusCode.OK}
    assert all(issubclass(cls, UsherError) for cls in ERRORS.values())


# --- the client against an in-process server ---------------------------------------------------

TOKEN = "ush_test_secret"
FAST = RetryPolicy(initial_backoff=0.001, max_backoff=0.01, max_stream_reconnects=5)
if TYPE_CHECKING:
    Context = grpc.aio.ServicerContext[Any, Any]


def _event(event_id: int) -> pb.AgentEvent:
    return pb.AgentEvent(event_id=event_id, conversation=f"conversations/c{event_id}")


def _packed(detail: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(detail)
    return packed


class FakeAgentService(pb_grpc.AgentServiceServicer):
    """AcceptOffer refuses with a rich status; StreamEvents drops its first connection after
    three events and replays the last one on the next (which the client must drop)."""

    def __init__(self) -> None:
        self.authorization: list[str] = []
        self.resume_points: list[int] = []
        self.calls: dict[str, int] = {}
        self.request_ids: list[str] = []
        self.too_old = False

    def _count(self, name: str, context: Context) -> int:
        metadata = dict(context.invocation_metadata() or ())
        self.authorization.append(str(metadata["authorization"]))
        self.calls[name] = self.calls.get(name, 0) + 1
        return self.calls[name]

    async def AcceptOffer(self, request: pb.AcceptOfferRequest, context: Context) -> Never:
        self._count("AcceptOffer", context)
        status = status_pb2.Status(
            code=code_pb2.FAILED_PRECONDITION,
            message="the offer is gone",
            details=[
                _packed(error_details_pb2.ErrorInfo(reason="OFFER_GONE", domain="usher.v1")),
                _packed(error_details_pb2.ResourceInfo(resource_name=request.offer)),
            ],
        )
        await context.abort_with_status(rpc_status.to_status(status))

    async def GetConversation(
        self, request: pb.GetConversationRequest, context: Context
    ) -> pb.GetConversationResponse:
        if self._count("GetConversation", context) < 3:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "store away")
        return pb.GetConversationResponse()

    async def TakeConversation(
        self, request: pb.TakeConversationRequest, context: Context
    ) -> Never:
        self._count("TakeConversation", context)
        await context.abort(grpc.StatusCode.UNAVAILABLE, "store away")

    async def SendMessage(
        self, request: pb.SendMessageRequest, context: Context
    ) -> pb.SendMessageResponse:
        self.request_ids.append(request.request_id)
        if self._count("SendMessage", context) < 2:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "store away")
        return pb.SendMessageResponse()

    async def StreamEvents(
        self, request: pb.StreamEventsRequest, context: Context
    ) -> AsyncIterator[pb.StreamEventsResponse]:
        self._count("StreamEvents", context)
        after = request.resume_after_event_id
        self.resume_points.append(after)
        if len(self.resume_points) == 1:
            yield pb.StreamEventsResponse(events=[_event(10), _event(20)])
            yield pb.StreamEventsResponse(events=[_event(30)])
            await context.abort(grpc.StatusCode.UNAVAILABLE, "shard moved")
        if self.too_old:
            await context.abort(grpc.StatusCode.OUT_OF_RANGE, "resume point too old")
        # Replays the resume point itself (a duplicate the client drops), then continues.
        yield pb.StreamEventsResponse(events=[_event(after), _event(after + 10)])
        yield pb.StreamEventsResponse(events=[_event(after + 20), _event(after + 30)])
        await asyncio.Event().wait()  # stays open until the client cancels


Served = tuple[FakeAgentService, AgentClient]


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    fake = FakeAgentService()  # type: ignore[abstract]  # implements only what the tests call
    server = grpc.aio.server()
    pb_grpc.add_AgentServiceServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    client = AgentClient(f"127.0.0.1:{port}", TOKEN, retry=FAST, timeout=5.0)
    try:
        yield fake, client
    finally:
        await client.close()
        await server.stop(None)


async def test_an_error_status_becomes_a_typed_exception_with_its_details(served: Served) -> None:
    fake, client = served
    with pytest.raises(FailedPrecondition) as raised:
        await client.accept_offer(pb.AcceptOfferRequest(offer="offers/o1"))
    error = raised.value
    assert error.code == grpc.StatusCode.FAILED_PRECONDITION
    assert error.message == "the offer is gone"
    assert error.reason == "OFFER_GONE"
    resource = error.detail(error_details_pb2.ResourceInfo)
    assert resource is not None and resource.resource_name == "offers/o1"
    assert error.status is not None and len(error.details) == 2
    assert not error.retryable
    assert fake.calls["AcceptOffer"] == 1, "a write without an idempotency key is never retried"
    assert fake.authorization == [f"Bearer {TOKEN}"]


async def test_only_idempotent_calls_are_retried(served: Served) -> None:
    fake, client = served
    await client.get_conversation(pb.GetConversationRequest(name="conversations/c1"))
    assert fake.calls["GetConversation"] == 3

    with pytest.raises(Unavailable):
        await client.take_conversation(pb.TakeConversationRequest(conversation="conversations/c1"))
    assert fake.calls["TakeConversation"] == 1

    await client.send_message(pb.SendMessageRequest(conversation="conversations/c1", text="hi"))
    assert fake.calls["SendMessage"] == 2
    first, second = fake.request_ids
    assert first and first == second, "the retry carries the same idempotency key"


async def test_a_dropped_stream_resumes_with_no_gap_and_no_duplicate(served: Served) -> None:
    fake, client = served
    stream = client.events()
    seen = []
    async for event in stream:
        seen.append(event.event_id)
        if len(seen) == 6:
            break
    await stream.aclose()
    assert seen == [10, 20, 30, 40, 50, 60]
    assert fake.resume_points == [0, 30]
    assert stream.last_event_id == 60 and stream.reconnects == 1
    assert set(fake.authorization) == {f"Bearer {TOKEN}"}


async def test_a_stream_whose_resume_point_is_gone_raises(served: Served) -> None:
    fake, client = served
    fake.too_old = True
    seen = []
    with pytest.raises(OutOfRange):
        async for event in client.events(resume_after_event_id=5):
            seen.append(event.event_id)
    assert seen == [10, 20, 30]
    assert fake.resume_points == [5, 30]
