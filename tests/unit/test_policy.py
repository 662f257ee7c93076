"""The authorization policy as a table: for each role, RPC and relation of the caller to the
conversation, the expected verdict (``core.api.policy``)."""

from __future__ import annotations

import pytest
from usher.v1 import agent_service_pb2, supervisor_service_pb2

from core.api import policy
from core.api.policy import Kind, Relation, Role, Verdict
from core.routing.model import Mode
from core.store.access import AgentFacts

R = Relation
A, N, D = Verdict.ALLOW, Verdict.NOT_FOUND, Verdict.PERMISSION_DENIED

AGENT_EXPECTED: dict[str, dict[Relation | None, Verdict]] = {}
"""Per RPC: the agent's verdict for each single relation (None: no relation at all)."""


def _row(rpc: str, allowed: set[Relation], otherwise: Verdict) -> None:
    AGENT_EXPECTED[rpc] = {r: A if r in allowed else otherwise for r in [*Relation, None]}


SEEN = {
    R.OWNER,
    R.OFFERED,
    R.OFFERED_BEFORE,
    R.SERVED,
    R.TRANSFER_PARTY,
    R.MONITOR,
    R.TEAM,
    R.QUEUE_VISIBLE,
}
for _read in ("GetConversation", "ListMessages", "ListNotes"):
    _row(f"AgentService.{_read}", SEEN, N)
for _record in ("GetConversationActivity", "PinConversation", "UnpinConversation"):
    _row(f"RecordService.{_record}", SEEN, N)
for _owned in (
    "SendMessage",
    "EndConversation",
    "FinishWrapUp",
    "RequestTransfer",
    "NotifyTyping",
    "MarkRead",
):
    _row(f"AgentService.{_owned}", {R.OWNER}, D)
_row("AgentService.TakeConversation", {R.OFFERED, R.QUEUE_MEMBER}, D)
_row("AgentService.AddNote", {R.OWNER, R.SERVED, R.TRANSFER_PARTY, R.MONITOR}, D)
_row("AgentService.UpdateTags", {R.OWNER, R.SERVED}, D)
_row("AgentService.SetConversationMode.AUTO", {R.OWNER, R.OFFERED, R.QUEUE_MEMBER}, D)
_row("AgentService.SetConversationMode.SILENT", set(), D)
_row("AgentService.SetConversationMode.LIVE", {R.OWNER, R.OFFERED, R.QUEUE_MEMBER}, D)
_row("AgentService.SetConversationMode.END", {R.OWNER, R.OFFERED, R.QUEUE_MEMBER}, D)
_row("AgentService.AcceptOffer", {R.OFFERED}, D)
_row("AgentService.RejectOffer", {R.OFFERED}, D)
_row("AgentService.AnswerTransfer", {R.TRANSFER_PARTY}, D)
_row("AgentService.CancelTransfer", {R.TRANSFER_PARTY}, D)
_row("BlocklistService.CreateBlock", {R.OWNER}, D)
_row("FollowUpService.MarkLeftMessageHandled", {R.QUEUE_MEMBER}, D)
_row("FollowUpService.AnswerLeftMessage", {R.QUEUE_MEMBER}, D)
_row("CannedReplyService.RenderCannedReply", SEEN, N)
for _supervised in (
    "MonitorConversation",
    "StopMonitoring",
    "ForceAssign",
    "ExplainRouting",
    "StreamConversation",
):
    _row(f"SupervisorService.{_supervised}", set(), D)  # agents may not call it at all


def _other_role(role: Role, rpc: str) -> Verdict:
    """Supervisors and admins: the whole tenant wherever their role may call; gateways never
    call AgentService or SupervisorService."""
    service = rpc.split(".")[0]
    if role is Role.GATEWAY:
        return D
    if service in (
        "SupervisorService",
        "RecordService",
        "BlocklistService",
        "FollowUpService",
        "CannedReplyService",
    ):
        return A
    # AgentService: supervisors and admins read any conversation and change none
    return A if rpc.split(".")[1] in ("GetConversation", "ListMessages", "ListNotes") else D


CASES = [
    pytest.param(Role.AGENT, rpc, relation, verdict, id=f"agent-{rpc}-{relation}")
    for rpc, row in AGENT_EXPECTED.items()
    for relation, verdict in row.items()
] + [
    pytest.param(role, rpc, relation, _other_role(role, rpc), id=f"{role}-{rpc}-{relation}")
    for role in (Role.GATEWAY, Role.SUPERVISOR, Role.ADMIN)
    for rpc in AGENT_EXPECTED
    for relation in (None, R.OWNER)
]


@pytest.mark.parametrize(("role", "rpc", "relation", "expected"), CASES)
def test_the_table(role: Role, rpc: str, relation: Relation | None, expected: Verdict) -> None:
    relations = frozenset() if relation is None else frozenset({relation})
    assert policy.decide(role, rpc, relations) is expected


def test_every_rule_is_in_the_table() -> None:
    assert set(AGENT_EXPECTED) == set(policy.CONVERSATION_RULES)


def _rpcs_naming_a_conversation(service: object) -> set[str]:
    """Methods whose request names a conversation, an offer or a transfer."""
    names = set()
    for method in service.methods:  # type: ignore[attr-defined]
        fields = {f.name for f in method.input_type.fields}
        if fields & {"conversation", "name", "parent", "offer", "transfer", "message"}:
            names.add(method.name)
    return names


def test_every_rpc_on_a_conversation_has_a_rule() -> None:
    agent = agent_service_pb2.DESCRIPTOR.services_by_name["AgentService"]
    supervisor = supervisor_service_pb2.DESCRIPTOR.services_by_name["SupervisorService"]
    ruled = {rpc.split(".")[1] for rpc in policy.CONVERSATION_RULES}
    assert _rpcs_naming_a_conversation(agent) <= ruled
    assert _rpcs_naming_a_conversation(supervisor) <= ruled
    for mode in Mode:
        assert policy.mode_rule(mode.value) in policy.CONVERSATION_RULES


def test_relations_held_together_allow_what_any_of_them_allows() -> None:
    both = frozenset({R.QUEUE_MEMBER, R.OFFERED_BEFORE})
    assert policy.decide("agent", "AgentService.GetConversation", both) is A
    assert policy.decide("agent", "AgentService.UpdateTags", both) is D


@pytest.mark.parametrize(
    ("service", "method", "role", "expected"),
    [
        ("AgentService", "GetConversation", "admin", True),  # admins read on AgentService
        ("AgentService", "ListMessages", "supervisor", True),
        ("AgentService", "SendMessage", "admin", False),
        ("AgentService", "SendMessage", "supervisor", False),
        ("AgentService", "GetConversation", "gateway", False),
        ("AdminService", "ListAgents", "supervisor", True),
        ("AdminService", "CreateAgent", "supervisor", False),
        # an agent's console: custom statuses, transfer targets; nothing else of AdminService
        ("AdminService", "GetTenantSettings", "agent", True),
        ("AdminService", "ListQueues", "agent", True),
        ("AdminService", "ListDepartments", "agent", True),
        ("AdminService", "ListAgents", "agent", False),
        ("AdminService", "UpdateTenantSettings", "agent", False),
        ("AdminService", "ListCredentials", "agent", False),
        ("SupervisorService", "MonitorConversation", "agent", False),
        ("SupervisorService", "MonitorConversation", "admin", True),
        ("ConversationService", "StartConversation", "agent", False),
        ("ConversationService", "StartConversation", "gateway", True),
        ("NoSuchService", "Get", "admin", False),
        ("CustomerService", "GetUsage", "supervisor", True),
        ("QuotaService", "GetQuotas", "supervisor", True),  # read only: no RPC sets limits
        ("QuotaService", "GetQuotas", "agent", False),
        ("QrCodeService", "CreateQrCode", "admin", True),
        ("QrCodeService", "ListQrCodes", "agent", False),
    ],
)
def test_who_may_call_what(service: str, method: str, role: str, expected: bool) -> None:
    assert policy.may_call(service, method, role) is expected


@pytest.mark.parametrize(
    ("service", "method", "role", "expected"),
    [
        ("AuthService", "RefreshSession", "agent", True),
        ("AuthService", "SignOut", "supervisor", True),
        ("AuthService", "SignOut", "gateway", False),
        ("AuthService", "ListLogins", "agent", False),  # the log is the supervisors'
        ("AuthService", "ListLogins", "supervisor", True),
        ("AuthService", "ListLogins", "admin", True),
        ("AdminService", "SetAgentPassword", "admin", True),
        ("AdminService", "SetAgentPassword", "supervisor", False),
        ("TeamChatService", "SendTeamMessage", "agent", True),
        ("TeamChatService", "StreamTeamChat", "supervisor", True),
        ("TeamChatService", "ListColleagues", "gateway", False),
    ],
)
def test_who_may_sign_in_and_chat(service: str, method: str, role: str, expected: bool) -> None:
    assert policy.may_call(service, method, role) is expected


def test_only_signing_in_needs_no_credential() -> None:
    assert policy.anonymous("AuthService", "SignIn")
    assert not policy.anonymous("AuthService", "RefreshSession")
    assert not policy.anonymous("AdminService", "ListAgents")


def test_stored_facts_become_relations() -> None:
    facts = AgentFacts(
        owner=False,
        served=True,
        offered=False,
        offered_before=True,
        transfer_party=False,
        queue_member=True,
        waiting_or_unserved=False,
    )
    assert policy.relations_of(facts) == {R.SERVED, R.OFFERED_BEFORE, R.QUEUE_MEMBER}
    waiting = AgentFacts(
        owner=False,
        served=False,
        offered=False,
        offered_before=False,
        transfer_party=False,
        queue_member=True,
        waiting_or_unserved=True,
    )
    assert policy.relations_of(waiting) == {R.QUEUE_MEMBER, R.QUEUE_VISIBLE}
    elsewhere = AgentFacts(
        owner=False,
        served=False,
        offered=False,
        offered_before=False,
        transfer_party=False,
        queue_member=False,
        waiting_or_unserved=True,
    )
    assert policy.relations_of(elsewhere) == frozenset()


def test_a_team_fact_is_the_team_relation_and_lets_an_agent_read_only() -> None:
    colleague = AgentFacts(
        owner=False,
        served=False,
        offered=False,
        offered_before=False,
        transfer_party=False,
        queue_member=False,
        waiting_or_unserved=False,
        team=True,
    )
    relations = policy.relations_of(colleague)
    assert relations == {R.TEAM}
    assert policy.decide("agent", "AgentService.GetConversation", relations) is A
    assert policy.decide("agent", "RecordService.GetConversationActivity", relations) is A
    assert policy.decide("agent", "AgentService.SendMessage", relations) is D
    assert policy.decide("agent", "AgentService.UpdateTags", relations) is D


@pytest.mark.parametrize(
    ("role", "agent", "owner", "kind", "expected"),
    [
        ("agent", "ann", None, Kind.READ, A),  # shared: read
        ("agent", "ann", None, Kind.CHANGE, D),  # shared: not to change
        ("agent", "ann", "ann", Kind.CHANGE, A),  # her own
        ("agent", "ann", "bob", Kind.READ, N),  # another's personal one is not there
        ("agent", "ann", "bob", Kind.CHANGE, N),
        ("agent", None, None, Kind.READ, D),  # an agent credential without an agent
        ("supervisor", None, "bob", Kind.CHANGE, A),
        ("admin", None, None, Kind.CHANGE, A),
        ("gateway", None, None, Kind.READ, D),
    ],
)
def test_canned_replies_are_shared_or_their_owners(
    role: str, agent: str | None, owner: str | None, kind: Kind, expected: Verdict
) -> None:
    assert policy.canned_reply_access(role, agent, owner, kind) is expected
