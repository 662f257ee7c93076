"""Who may call which RPC, and read or change which conversation: one table, pure.

Two questions, answered here and nowhere else:

- **May this role call this RPC at all?** (``may_call``; the ``Authenticator`` asks it before
  any servicer runs.) Each service has its roles (``SERVICE_ROLES``); some read methods are open
  to more roles (``READ_ROLES``).
- **May this caller read or change this conversation?** (``decide``.) Gateways (on
  ConversationService), supervisors and admins act on their whole tenant. An agent acts on a
  conversation only through a ``Relation`` the RPC's ``Rule`` lists (``CONVERSATION_RULES``).
  Anything else is ``NOT_FOUND`` for a read (existence is not revealed) and
  ``PERMISSION_DENIED`` for a change; a refused change changes nothing.

The facts (the agent's relations to one conversation) come from ``core.store.access``. Where the
engine already refuses a stranger's command atomically (``Rule.engine_checked``: it requires the
owner, the offer's recipient, the transfer's party, or queue eligibility), the door does not
read the facts first; it reads them only when the engine refuses, so that a stranger is told
``PERMISSION_DENIED`` rather than why the conversation's state would not allow it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from core.store.access import AgentFacts


class Role(StrEnum):
    GATEWAY = "gateway"
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


class Relation(StrEnum):
    """How an agent relates to one conversation (several may hold at once)."""

    OWNER = "owner"
    """Owns it now (ACTIVE or WRAP_UP)."""
    OFFERED = "offered"
    """Has an open offer for it."""
    OFFERED_BEFORE = "offered_before"
    """Was offered it before (any outcome)."""
    SERVED = "served"
    """Was its owner before: its last agent, a transfer's sender or accepting target, or wrote
    in it."""
    TRANSFER_PARTY = "transfer_party"
    """Sender or target of its pending transfer."""
    MONITOR = "monitor"
    """Monitors it by a supervisor's grant. Extension point: nothing grants an agent
    monitoring yet (supervisors monitor as themselves), so ``core.store.access`` never reports
    it; the table already says what it allows."""
    QUEUE_MEMBER = "queue_member"
    """Its queue is one the agent serves (some step of the queue's plan admits the agent),
    whatever its state: the engine decides whether it still waits."""
    QUEUE_VISIBLE = "queue_visible"
    """It waits in a queue the agent serves (or the bot holds it there), or ended there with no
    agent ever owning it (a left message): what the queue's agents may look at."""
    TEAM = "team"
    """Its owner or last agent is another agent who shares a department with this one, and the
    tenant allows team reads (``TenantSettings.agents_see_team_conversations``): read only, so
    only the read rules list it."""


class Kind(StrEnum):
    READ = "read"
    CHANGE = "change"


class Verdict(StrEnum):
    ALLOW = "ALLOW"
    NOT_FOUND = "NOT_FOUND"
    PERMISSION_DENIED = "PERMISSION_DENIED"


@dataclass(frozen=True, slots=True)
class Rule:
    """What an RPC does to a conversation and which relations let an agent do it."""

    kind: Kind
    agent: frozenset[Relation]
    engine_checked: bool = False
    """The engine refuses a caller without these relations by itself (atomically, at the
    shard): the door checks only to choose the answer after a refusal."""


SERVICE_ROLES: Final[Mapping[str, frozenset[Role]]] = {
    "ConversationService": frozenset({Role.GATEWAY}),
    "AgentService": frozenset({Role.AGENT}),
    "SupervisorService": frozenset({Role.SUPERVISOR, Role.ADMIN}),
    "AdminService": frozenset({Role.ADMIN}),
    "RecordService": frozenset({Role.AGENT, Role.SUPERVISOR, Role.ADMIN}),
    "BlocklistService": frozenset({Role.SUPERVISOR, Role.ADMIN}),
    "FollowUpService": frozenset({Role.AGENT, Role.SUPERVISOR, Role.ADMIN}),
    "CustomerService": frozenset({Role.SUPERVISOR, Role.ADMIN}),
    "KnowledgeService": frozenset({Role.SUPERVISOR, Role.ADMIN}),
    "BotService": frozenset({Role.SUPERVISOR, Role.ADMIN}),
    "ReportService": frozenset({Role.SUPERVISOR, Role.ADMIN}),
    "QrCodeService": frozenset({Role.SUPERVISOR, Role.ADMIN}),
    # but the gateways' two methods (claim and report sends): ONLY_ROLES
    "BroadcastService": frozenset({Role.SUPERVISOR, Role.ADMIN}),
    # read only: the limits are the installation's (``usher admin quota set``)
    "QuotaService": frozenset({Role.SUPERVISOR, Role.ADMIN}),
    # which reply or category each may read or change: ``canned_reply_access``
    "CannedReplyService": frozenset({Role.AGENT, Role.SUPERVISOR, Role.ADMIN}),
    # console sessions (SignIn needs no credential: ANONYMOUS; ListLogins: ONLY_ROLES)
    "AuthService": frozenset({Role.AGENT, Role.SUPERVISOR, Role.ADMIN}),
    # as the agent the credential names (the servicer refuses a credential naming none)
    "TeamChatService": frozenset({Role.AGENT, Role.SUPERVISOR, Role.ADMIN}),
}
"""The roles that may call every method of a service."""

ANONYMOUS: Final = frozenset({"AuthService.SignIn"})
"""Methods callable without a credential (``Service.Method``): the ``Authenticator`` lets them
through unauthenticated; they limit their own callers."""

METHOD_ROLES: Final[Mapping[str, frozenset[Role]]] = {
    # agents read and search the knowledge base; supervisors and admins edit it
    **{
        f"KnowledgeService.{method}": frozenset({Role.AGENT})
        for method in (
            "GetKnowledgeCategory",
            "ListKnowledgeCategories",
            "GetArticle",
            "ListArticles",
            "SearchArticles",
        )
    },
    # an agent may block the customer of a conversation they own (CONVERSATION_RULES), as a
    # console's "move to blacklist"; listing and unblocking stay the supervisors'
    "BlocklistService.CreateBlock": frozenset({Role.AGENT}),
    # agents read and edit customers as their visibility allows (``customer_access``); the
    # rest of CustomerService (delete, merge, fields, groups, import, export) is supervisors'
    **{
        f"CustomerService.{method}": frozenset({Role.AGENT})
        for method in (
            "GetCustomer",
            "ListCustomers",
            "UpdateCustomer",
            "AddCustomerNote",
            "ListCustomerNotes",
            "ListCustomFields",
            "ListCustomerGroups",
            "GetUsage",
        )
    },
    # an agent's console reads the tenant's custom statuses (with their auto-replies) for its
    # status menu, and the queues and departments it may transfer to (their display names)
    **{
        f"AdminService.{method}": frozenset({Role.AGENT})
        for method in ("GetTenantSettings", "ListQueues", "ListDepartments")
    },
}
"""Roles that may also call one method (``Service.Method``)."""

ONLY_ROLES: Final[Mapping[str, frozenset[Role]]] = {
    # the channel gateways send broadcasts: they claim sends and report what became of them
    "BroadcastService.ClaimBroadcastSends": frozenset({Role.GATEWAY}),
    "BroadcastService.ReportBroadcastSends": frozenset({Role.GATEWAY}),
    # the sign-in log is the supervisors' and admins'
    "AuthService.ListLogins": frozenset({Role.SUPERVISOR, Role.ADMIN}),
}
"""Methods that only these roles may call, whatever their service allows (``Service.Method``)."""

READ_ROLES: Final[Mapping[str, frozenset[Role]]] = {
    "AdminService": frozenset({Role.SUPERVISOR}),
    "AgentService": frozenset({Role.SUPERVISOR, Role.ADMIN}),
}
"""Roles that may also call a service's read methods (``is_read_method``)."""

AGENT_READS: Final = frozenset({"GetConversation", "ListMessages", "ListNotes"})


def is_read_method(service: str, method: str) -> bool:
    if service == "AdminService":
        return method.startswith(("Get", "List"))
    return service == "AgentService" and method in AGENT_READS


def anonymous(service: str, method: str) -> bool:
    """Whether ``method`` of ``service`` may be called without a credential (``ANONYMOUS``)."""
    return f"{service}.{method}" in ANONYMOUS


def may_call(service: str, method: str, role: str) -> bool:
    """Whether ``role`` may call ``method`` of ``service`` (short names, e.g. ``AdminService``)."""
    only = ONLY_ROLES.get(f"{service}.{method}")
    if only is not None:
        return role in only
    if role in SERVICE_ROLES.get(service, frozenset()):
        return True
    if role in METHOD_ROLES.get(f"{service}.{method}", frozenset()):
        return True
    return is_read_method(service, method) and role in READ_ROLES.get(service, frozenset())


_SEEN: Final = frozenset(
    {
        Relation.OWNER,
        Relation.OFFERED,
        Relation.OFFERED_BEFORE,
        Relation.SERVED,
        Relation.TRANSFER_PARTY,
        Relation.MONITOR,
        Relation.TEAM,
        Relation.QUEUE_VISIBLE,
    }
)
"""The relations that let an agent read a conversation and its transcript."""

_OWNER: Final = frozenset({Relation.OWNER})
_WAITING: Final = frozenset({Relation.OFFERED, Relation.QUEUE_MEMBER})

CONVERSATION_RULES: Final[Mapping[str, Rule]] = {
    # reads
    "AgentService.GetConversation": Rule(Kind.READ, _SEEN),
    "AgentService.ListMessages": Rule(Kind.READ, _SEEN),
    "AgentService.ListNotes": Rule(Kind.READ, _SEEN),
    # the owner's work (the engine requires the owner)
    "AgentService.SendMessage": Rule(Kind.CHANGE, _OWNER, engine_checked=True),
    "AgentService.EndConversation": Rule(Kind.CHANGE, _OWNER, engine_checked=True),
    "AgentService.FinishWrapUp": Rule(Kind.CHANGE, _OWNER, engine_checked=True),
    "AgentService.RequestTransfer": Rule(Kind.CHANGE, _OWNER, engine_checked=True),
    "AgentService.NotifyTyping": Rule(Kind.CHANGE, _OWNER, engine_checked=True),
    "AgentService.MarkRead": Rule(Kind.CHANGE, _OWNER, engine_checked=True),
    # taking a waiting conversation (the engine requires queue eligibility or the offer)
    "AgentService.TakeConversation": Rule(Kind.CHANGE, _WAITING, engine_checked=True),
    # records kept beside the conversation: the door checks
    "AgentService.AddNote": Rule(
        Kind.CHANGE,
        frozenset({Relation.OWNER, Relation.SERVED, Relation.TRANSFER_PARTY, Relation.MONITOR}),
    ),
    "AgentService.UpdateTags": Rule(Kind.CHANGE, frozenset({Relation.OWNER, Relation.SERVED})),
    # console modes, one rule each (``mode_rule``); the engine also requires the owner of an
    # ACTIVE conversation for AUTO and END
    "AgentService.SetConversationMode.AUTO": Rule(Kind.CHANGE, _OWNER | _WAITING),
    "AgentService.SetConversationMode.SILENT": Rule(Kind.CHANGE, frozenset()),
    "AgentService.SetConversationMode.LIVE": Rule(Kind.CHANGE, _OWNER | _WAITING),
    "AgentService.SetConversationMode.END": Rule(Kind.CHANGE, _OWNER | _WAITING),
    # offers and transfers name no conversation: the engine holds their recipients and parties
    "AgentService.AcceptOffer": Rule(Kind.CHANGE, frozenset({Relation.OFFERED}), True),
    "AgentService.RejectOffer": Rule(Kind.CHANGE, frozenset({Relation.OFFERED}), True),
    "AgentService.AnswerTransfer": Rule(Kind.CHANGE, frozenset({Relation.TRANSFER_PARTY}), True),
    "AgentService.CancelTransfer": Rule(Kind.CHANGE, frozenset({Relation.TRANSFER_PARTY}), True),
    # records: a pin is the caller's own mark, so pinning is a read of the conversation (an
    # unseen one is NOT_FOUND); lists apply these relations in SQL (conversation_lists.py)
    "RecordService.GetConversationActivity": Rule(Kind.READ, _SEEN),
    "RecordService.PinConversation": Rule(Kind.READ, _SEEN),
    "RecordService.UnpinConversation": Rule(Kind.READ, _SEEN),
    # supervisors' and admins' (the whole tenant; no agent may call these)
    "SupervisorService.MonitorConversation": Rule(Kind.CHANGE, frozenset()),
    "SupervisorService.StopMonitoring": Rule(Kind.CHANGE, frozenset()),
    "SupervisorService.ForceAssign": Rule(Kind.CHANGE, frozenset()),
    "SupervisorService.ExplainRouting": Rule(Kind.READ, frozenset()),
    "SupervisorService.StreamConversation": Rule(Kind.READ, frozenset()),
    # the blocklist and follow-ups (records beside the conversation: the door checks)
    "BlocklistService.CreateBlock": Rule(Kind.CHANGE, _OWNER),
    "FollowUpService.MarkLeftMessageHandled": Rule(Kind.CHANGE, frozenset({Relation.QUEUE_MEMBER})),
    "FollowUpService.AnswerLeftMessage": Rule(Kind.CHANGE, frozenset({Relation.QUEUE_MEMBER})),
    # a canned reply's preview fills in the customer of a conversation the caller may read
    "CannedReplyService.RenderCannedReply": Rule(Kind.READ, _SEEN),
}
"""Per RPC on one conversation: its kind and the relations that let an agent call it. SILENT
is monitoring, which is the supervisors' (``SupervisorService.MonitorConversation``): no
relation lets an agent set it."""

TENANT_WIDE: Final[frozenset[Role]] = frozenset({Role.GATEWAY, Role.SUPERVISOR, Role.ADMIN})
"""Roles that act on every conversation of their tenant (once ``may_call`` let them in)."""


def relations_of(facts: AgentFacts) -> frozenset[Relation]:
    """The relations the stored facts establish (``MONITOR`` is never among them: see
    ``Relation``)."""
    found = {
        Relation.OWNER: facts.owner,
        Relation.SERVED: facts.served,
        Relation.OFFERED: facts.offered,
        Relation.OFFERED_BEFORE: facts.offered_before,
        Relation.TRANSFER_PARTY: facts.transfer_party,
        Relation.QUEUE_MEMBER: facts.queue_member,
        Relation.QUEUE_VISIBLE: facts.queue_member and facts.waiting_or_unserved,
        Relation.TEAM: facts.team,
    }
    return frozenset(relation for relation, holds in found.items() if holds)


def mode_rule(mode: str) -> str:
    """The ``CONVERSATION_RULES`` key of ``SetConversationMode`` with ``mode`` (AUTO, ...)."""
    return f"AgentService.SetConversationMode.{mode.upper()}"


def decide(role: str, rpc: str, relations: frozenset[Relation]) -> Verdict:
    """Whether ``role``, related to an existing conversation by ``relations`` (an agent's; empty
    for other roles), may call ``rpc`` on it (a ``CONVERSATION_RULES`` key). A role that may not
    call the RPC at all (``may_call``) is ``PERMISSION_DENIED``, as the ``Authenticator`` says."""
    rule = CONVERSATION_RULES[rpc]
    service, method = rpc.split(".")[:2]
    if not may_call(service, method, role):
        return Verdict.PERMISSION_DENIED
    if role in TENANT_WIDE or (role == Role.AGENT and relations & rule.agent):
        return Verdict.ALLOW
    return Verdict.NOT_FOUND if rule.kind is Kind.READ else Verdict.PERMISSION_DENIED


def customer_access(
    role: str, agent_id: str | None, owner: str | None, visibility: str, kind: Kind
) -> Verdict:
    """Whether a caller may read or change a customer (``CustomerService``, once ``may_call``
    let it in). Supervisors and admins: every customer. An agent reads PUBLIC and SHARED
    customers and the PRIVATE ones it owns, and changes PUBLIC ones and those it owns; a PRIVATE
    customer of another is ``NOT_FOUND``, a SHARED one of another ``PERMISSION_DENIED`` to
    change. (``core.store.customer_records.CustomerQuery.viewer_agent`` is the read rule in
    SQL.)"""
    if role in (Role.SUPERVISOR, Role.ADMIN):
        return Verdict.ALLOW
    if role != Role.AGENT or agent_id is None:
        return Verdict.PERMISSION_DENIED
    own = owner is not None and owner == agent_id
    if visibility == "private" and not own:
        return Verdict.NOT_FOUND
    if kind is Kind.CHANGE and visibility == "shared" and not own:
        return Verdict.PERMISSION_DENIED
    return Verdict.ALLOW


def canned_reply_access(role: str, agent_id: str | None, owner: str | None, kind: Kind) -> Verdict:
    """Whether a caller may read or change a canned reply or category that is ``owner``'s
    personal one (None: shared), once ``may_call`` let it in. Supervisors and admins: every
    one. An agent reads the shared ones and its own, and changes only its own: another agent's
    is ``NOT_FOUND``, a shared one ``PERMISSION_DENIED`` to change.
    (``core.store.canned_replies.Viewer`` is the read rule in SQL.)"""
    if role in (Role.SUPERVISOR, Role.ADMIN):
        return Verdict.ALLOW
    if role != Role.AGENT or agent_id is None:
        return Verdict.PERMISSION_DENIED
    if owner is not None and owner != agent_id:
        return Verdict.NOT_FOUND
    if kind is Kind.CHANGE and owner is None:
        return Verdict.PERMISSION_DENIED
    return Verdict.ALLOW
