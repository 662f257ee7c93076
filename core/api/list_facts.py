"""Console lists as a pure function of the event log: what each conversation's events make of
it (``Facts``, by ``fold``), who looks (``Viewer``, from the tenant's configuration as its own
events leave it: ``Directory``), and which lists it is in for them (``lists_of``).

The rules mirror ``core.store.conversation_lists`` exactly, so a count read from the store at
an event-log position plus the changes folded from the events after it is the count the store
holds at any later position:

- the fields that decide membership (state, queue, owner, last agent, the open offer's
  recipients, the close reason and time, the latest transfer) change as the engine's appliers
  change them, which is what the shard's projection writes;
- an agent sees a conversation they own or served last, one offered to them now, one waiting
  (or never served) in a queue they serve, and, where the tenant allows team reads, one owned
  or served last by a department colleague (``core.api.policy``'s read relations, as SQL);
- a departments filter keeps a conversation whose owner is a member, whose queue designates
  one, or that waits after a transfer to one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Final

from core.routing import events as ev
from core.routing import model as m
from core.routing.views import ConversationView
from core.store.conversation_lists import agent_scope_of

S = m.ConversationState
WAITING: Final = frozenset({S.QUEUED, S.OFFERED})
UNSERVED_VISIBLE: Final = frozenset({S.BOT, S.QUEUED, S.OFFERED})


class ListName(StrEnum):
    """A console's list (tab), as ``CountConversations`` counts it."""

    BOT = "bot"
    WAITING = "waiting"
    MINE = "mine"
    ACTIVE = "active"
    WRAP_UP = "wrap_up"
    CLOSED_TODAY = "closed_today"
    PINNED = "pinned"
    LEFT_MESSAGES = "left_messages"
    TEAM = "team"


@dataclass(frozen=True, slots=True, kw_only=True)
class Facts:
    """What a conversation's events so far make of it, as far as lists care."""

    conversation_id: str
    channel: str
    customer_id: str
    customer: m.CustomerCard
    """The customer as the conversation started with them (identity only)."""
    region: str
    language: str
    priority: int
    tags: frozenset[str]
    state: m.ConversationState
    queue_id: str | None
    created_at: float
    owner: str | None = None
    last_agent: str | None = None
    offered_to: tuple[str, ...] = ()
    """The recipients of its open offer."""
    outcome: m.Outcome | None = None
    close_reason: m.CloseReason | None = None
    first_queued_at: float | None = None
    assigned_at: float | None = None
    first_response_at: float | None = None
    ended_at: float | None = None
    closed_at: float | None = None
    transfer: tuple[str, str] | None = None
    """Its latest transfer's target kind (``agent``, ``queue``, ``department``) and id."""

    def view(self) -> ConversationView:
        """As the API shows a conversation."""
        return ConversationView(
            conversation_id=self.conversation_id,
            channel=self.channel,
            customer_id=self.customer_id,
            customer=self.customer,
            state=self.state,
            queue_id=self.queue_id,
            owner=self.owner,
            last_agent=self.last_agent,
            priority=self.priority,
            tags=tuple(sorted(self.tags)),
            region=self.region,
            language=self.language,
            outcome=self.outcome,
            close_reason=self.close_reason,
            created_at=self.created_at,
            queued_at=self.first_queued_at,
            assigned_at=self.assigned_at,
            first_response_at=self.first_response_at,
            ended_at=self.ended_at,
            closed_at=self.closed_at,
        )


def _owned(f: Facts, agent_id: str, at: float) -> Facts:
    return replace(
        f,
        state=S.ACTIVE,
        owner=agent_id,
        last_agent=agent_id,
        assigned_at=f.assigned_at if f.assigned_at is not None else at,
    )


def _started(e: ev.ConversationStarted) -> Facts:
    card = e.customer
    return Facts(
        conversation_id=e.conversation_id,
        channel=e.channel,
        customer_id=e.customer_id,
        customer=m.CustomerCard(
            external_id=card.external_id, name=card.name, phone=card.phone, email=card.email
        ),
        region=e.region,
        language=e.language,
        priority=e.priority,
        tags=e.tags,
        state=S.BOT,
        queue_id=e.queue_id,
        created_at=e.at,
    )


def fold(f: Facts | None, e: ev.Event) -> Facts | None:
    """``f`` after ``e`` (one of ``FOLDED``; None: the conversation is unknown so far)."""
    if isinstance(e, ev.ConversationStarted):
        return _started(e)
    if f is None:
        return None
    match e:
        case ev.ConversationQueued():
            return replace(
                f,
                state=S.QUEUED,
                queue_id=e.queue_id,
                priority=e.priority,
                owner=None,
                first_queued_at=f.first_queued_at
                if f.first_queued_at is not None
                else e.enqueued_at,
                closed_at=None,
                close_reason=None,
            )
        case ev.OfferMade():
            return replace(f, state=S.OFFERED, offered_to=e.agent_ids)
        case ev.OfferAccepted():
            return replace(_owned(f, e.agent_id, e.at), offered_to=())
        case ev.OfferDeclined():
            return replace(f, state=S.QUEUED, offered_to=())
        case ev.ConversationAssigned():
            return _owned(f, e.agent_id, e.at)
        case ev.TransferResolved() if e.outcome is m.TransferOutcome.ACCEPTED:
            return _owned(f, e.to_agent, e.at)
        case ev.TransferRequested():
            return replace(f, transfer=("agent", e.to_agent))
        case ev.ConversationTransferred():
            return replace(f, transfer=(e.target.value, e.target_id))
        case ev.ConversationEnded():
            ended = replace(f, ended_at=e.at, outcome=e.outcome, close_reason=e.reason)
            if e.wrap_up_until is not None:
                return replace(ended, state=S.WRAP_UP)
            return replace(ended, state=S.CLOSED, owner=None, closed_at=e.at)
        case ev.WrapUpFinished():
            return replace(f, state=S.CLOSED, owner=None, closed_at=e.at)
        case ev.ConversationAbandoned():
            return replace(f, state=S.ABANDONED, closed_at=e.at)
        case ev.ConversationReturnedToBot():
            return replace(f, state=S.BOT, owner=None)
        case ev.TagsChanged():
            return replace(f, tags=e.tags)
        case ev.MessageRecorded() if e.sender is m.Sender.AGENT and f.first_response_at is None:
            return replace(f, first_response_at=e.at)
    return f


FOLDED: Final[frozenset[type[ev.Event]]] = frozenset(
    {
        ev.ConversationStarted,
        ev.ConversationQueued,
        ev.OfferMade,
        ev.OfferAccepted,
        ev.OfferDeclined,
        ev.ConversationAssigned,
        ev.TransferResolved,
        ev.TransferRequested,
        ev.ConversationTransferred,
        ev.ConversationEnded,
        ev.WrapUpFinished,
        ev.ConversationAbandoned,
        ev.ConversationReturnedToBot,
        ev.TagsChanged,
        ev.MessageRecorded,
    }
)
"""The events that may change a conversation's ``Facts`` (of ``MessageRecorded``, only an
agent's: the first response)."""

CONFIG: Final[frozenset[type[ev.Event]]] = frozenset(
    {
        ev.TenantConfigured,
        ev.AgentConfigured,
        ev.AgentRemoved,
        ev.QueueConfigured,
        ev.QueueRemoved,
    }
)
"""The events that may change who sees what (``Directory``)."""


def may_change_lists(e: ev.Event) -> bool:
    """A feed subscription's prefilter: the events a list watch folds or follows."""
    kind = type(e)
    if kind is ev.MessageRecorded:
        return e.sender is m.Sender.AGENT  # type: ignore[attr-defined]
    return kind in FOLDED or kind in CONFIG


# --- who looks ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Directory:
    """The tenant's configuration that decides visibility, kept up by its events."""

    agents: dict[str, m.AgentProfile] = field(default_factory=dict)
    """Agents not removed."""
    queues: dict[str, m.QueueSettings] = field(default_factory=dict)
    team_reads: bool = False
    """``TenantSettings.agents_see_team_conversations``."""

    def apply(self, e: ev.Event) -> None:
        match e:
            case ev.TenantConfigured():
                self.team_reads = e.settings.agents_see_team_conversations
            case ev.AgentConfigured():
                self.agents[e.profile.agent_id] = e.profile
            case ev.AgentRemoved():
                self.agents.pop(e.agent_id, None)
            case ev.QueueConfigured():
                self.queues[e.settings.queue_id] = e.settings
            case ev.QueueRemoved():
                self.queues.pop(e.queue_id, None)


@dataclass(frozen=True, slots=True, kw_only=True)
class Care:
    """A departments filter in terms of the directory (see ``ListFilter.departments``)."""

    departments: frozenset[str]
    members: frozenset[str]
    queues: frozenset[str]


@dataclass(frozen=True, slots=True, kw_only=True)
class Viewer:
    """Whose lists: ``agent_id`` None is the whole tenant (supervisors, admins)."""

    agent_id: str | None = None
    queues: frozenset[str] = frozenset()
    """The queues the agent serves."""
    team: frozenset[str] = frozenset()
    """The agent's department colleagues, where the tenant allows team reads."""
    care: Care | None = None
    closed_since: float = 0.0

    @property
    def scope(self) -> tuple[object, ...]:
        """What decides visibility; a change means the lists must be read again."""
        return (self.queues, self.team, self.care)


def viewer_of(
    directory: Directory,
    agent_id: str | None,
    departments: Iterable[str],
    closed_since: float,
) -> Viewer:
    """The viewer ``agent_id`` (None: tenant-wide) is in ``directory``."""
    wanted = frozenset(departments)
    care = None
    if wanted:
        care = Care(
            departments=wanted,
            members=frozenset(a for a, p in directory.agents.items() if p.departments & wanted),
            queues=frozenset(
                q for q, s in directory.queues.items() if s.designated_departments & wanted
            ),
        )
    if agent_id is None:
        return Viewer(care=care, closed_since=closed_since)
    scope = agent_scope_of(
        agent_id, directory.agents, directory.queues.values(), directory.team_reads
    )
    return Viewer(
        agent_id=agent_id,
        queues=frozenset(scope.queues),
        team=frozenset(scope.team),
        care=care,
        closed_since=closed_since,
    )


def visible(f: Facts, v: Viewer) -> bool:
    """Whether the viewer may read the conversation."""
    me = v.agent_id
    if me is None:
        return True
    return (
        f.owner == me
        or f.last_agent == me
        or (f.queue_id in v.queues and (f.state in UNSERVED_VISIBLE or f.last_agent is None))
        or me in f.offered_to
        or (f.owner is not None and f.owner in v.team)
        or (f.last_agent is not None and f.last_agent in v.team)
    )


def in_care(f: Facts, care: Care | None) -> bool:
    if care is None:
        return True
    return (
        (f.owner is not None and f.owner in care.members)
        or (f.queue_id is not None and f.queue_id in care.queues)
        or (
            f.state in WAITING
            and f.transfer is not None
            and f.transfer[0] == "department"
            and f.transfer[1] in care.departments
        )
    )


_BY_STATE: Final[Mapping[m.ConversationState, ListName]] = {
    S.BOT: ListName.BOT,
    S.QUEUED: ListName.WAITING,
    S.OFFERED: ListName.WAITING,
    S.ACTIVE: ListName.ACTIVE,
    S.WRAP_UP: ListName.WRAP_UP,
}


def lists_of(f: Facts | None, v: Viewer, *, pinned: bool) -> frozenset[ListName]:
    """The lists the conversation is in for the viewer (none if they may not read it)."""
    if f is None or not visible(f, v) or not in_care(f, v.care):
        return frozenset()
    found = set()
    by_state = _BY_STATE.get(f.state)
    if by_state is not None:
        found.add(by_state)
    if v.agent_id is not None and f.owner == v.agent_id:
        found.add(ListName.MINE)
    if f.state is S.CLOSED and f.closed_at is not None and f.closed_at >= v.closed_since:
        found.add(ListName.CLOSED_TODAY)
    if pinned:
        found.add(ListName.PINNED)
    if f.close_reason is m.CloseReason.LEFT_MESSAGE:
        found.add(ListName.LEFT_MESSAGES)
    if f.owner is not None and f.owner in v.team:
        found.add(ListName.TEAM)
    return frozenset(found)
