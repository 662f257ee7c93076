"""One console's live lists: counts from a snapshot, then the changes the event log makes.

A ``ListWatch`` starts from a ``core.store.list_watch.WatchStart`` (the counts as of an event
position) and folds each later event into the ``Facts`` of its conversation
(``core.api.list_facts``): the lists a conversation is in before and after a batch of events
are compared, and the differences are the changes, which also move the counts. Conversations
the watch has not seen since it started are folded once from their stored events up to the
position before the one at hand (``histories``), so what it says is a function of the event
log alone, whenever it is asked. Folds are kept for the most recently touched conversations
(``cache_size``); a dropped one is folded again from the store when next needed.

Configuration events (agents, queues, the tenant's team setting) change the viewer; when that
changes what the caller may see (``Viewer.scope``), the watch cannot say which conversations
came into view without reading them all, so it asks for a reset (``RESET``): the caller reads a
new start and the console reads its lists again.

Pins are per-caller rows, not events: ``PinSignals`` carries this front door's pins and unpins
to the caller's open watches, which show them as changes at the current position.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, Literal

from core.api.list_facts import (
    CONFIG,
    FOLDED,
    Directory,
    Facts,
    ListName,
    Viewer,
    fold,
    lists_of,
    may_change_lists,
    viewer_of,
    visible,
)
from core.routing import events as ev
from core.runtime.feed import Subscription
from core.store.list_watch import WatchStart

Load = Callable[[Mapping[str, int]], Awaitable[Mapping[str, Sequence[ev.Event]]]]
"""(conversation id -> last position to include) -> each one's folded events, in order."""

CACHE_SIZE: Final = 20_000
MAX_WATCH_BATCH: Final = 500
"""Feed items folded into one update when several are ready at once."""
FOLDED_KINDS: Final = tuple(sorted(kind.__name__ for kind in FOLDED))
"""The stored event types ``histories`` reads."""


class ChangeKind(StrEnum):
    ENTERED = "entered"
    LEFT = "left"
    UPDATED = "updated"


@dataclass(frozen=True, slots=True)
class Change:
    list: ListName
    kind: ChangeKind
    facts: Facts
    """As the list shows it (for LEFT out of the caller's sight, as they last saw it)."""
    pinned: bool


@dataclass(frozen=True, slots=True)
class Update:
    """What a watch message says: the lists as of ``position``."""

    position: int
    reset: bool
    counts: Mapping[ListName, int]
    changes: tuple[Change, ...] = ()


RESET: Final = "reset"
"""``advance``'s answer when what the caller may see changed: read a new start."""

Item = tuple[int, ev.Event]
"""An event with its position in the tenant's log."""


def _counts_of(start: WatchStart, watched: Iterable[ListName]) -> dict[ListName, int]:
    return {name: int(getattr(start.counts, name.value)) for name in watched}


class ListWatch:
    """See the module docstring. One coroutine drives it."""

    def __init__(
        self,
        *,
        watched: Sequence[ListName],
        agent_id: str | None,
        departments: Sequence[str],
        closed_since: float,
        load: Load,
        cache_size: int = CACHE_SIZE,
    ) -> None:
        self.watched = tuple(dict.fromkeys(watched))
        self._agent_id = agent_id
        self._departments = tuple(departments)
        self._closed_since = closed_since
        self._load = load
        self._cache_size = cache_size
        self._folds: dict[str, tuple[Facts | None, int]] = {}
        """Conversation -> (its facts, the position they are as of)."""
        self.position = 0
        self.counts: dict[ListName, int] = {}
        self.pins: set[str] = set()
        self.directory = Directory()
        self.viewer = Viewer()

    # --- starting ----------------------------------------------------------------------------

    def begin(self, start: WatchStart) -> Update:
        """Start (or start again) from ``start``; the opening message (a reset)."""
        configuration = start.configuration
        self.directory = Directory(
            agents=dict(configuration.agents),
            queues=dict(configuration.queues),
            team_reads=configuration.team_reads,
        )
        self.viewer = self._viewer()
        self.position = start.position
        self.counts = _counts_of(start, self.watched)
        self.pins = set(start.pins)
        self._folds.clear()
        return Update(start.position, True, dict(self.counts))

    def _viewer(self) -> Viewer:
        return viewer_of(self.directory, self._agent_id, self._departments, self._closed_since)

    async def resume(self, after: int, missed: Sequence[Item], start: WatchStart) -> Update:
        """Begin at ``start`` for a console whose lists are as of position ``after``, which
        missed the events ``missed`` (those after it up to the start): the first message says
        what changed meanwhile, net, with the start's counts; or a reset if the configuration
        changed meanwhile in a way that may matter to the caller."""
        opening = self.begin(start)
        follows_configuration = self._agent_id is not None or bool(self._departments)
        if follows_configuration and any(type(e) in CONFIG for _, e in missed):
            return opening
        self.position = after
        found = await self._advance([(i, e) for i, e in missed if type(e) not in CONFIG])
        assert found != RESET
        self.position = start.position
        self.counts = _counts_of(start, self.watched)
        changes = found.changes if isinstance(found, Update) else ()
        return Update(start.position, False, dict(self.counts), changes)

    # --- following the log -------------------------------------------------------------------

    async def advance(self, items: Sequence[Item]) -> Update | Literal["reset"] | None:
        """The changes ``items`` make (None: none for this caller), or ``RESET``."""
        return await self._advance(items)

    async def _advance(self, items: Sequence[Item]) -> Update | Literal["reset"] | None:
        fresh = [(i, e) for i, e in items if i > self.position and may_change_lists(e)]
        if not fresh:
            return None
        await self._fold_unseen(fresh)
        before: dict[str, tuple[Facts | None, frozenset[ListName]]] = {}
        for position, event in fresh:
            if type(event) in CONFIG:
                self.directory.apply(event)
                viewer = self._viewer()
                if viewer.scope != self.viewer.scope:
                    return RESET
                self.viewer = viewer
                continue
            conversation_id: str = event.conversation_id  # type: ignore[attr-defined]
            found = self._folds.get(conversation_id)
            if found is None and not isinstance(event, ev.ConversationStarted):
                continue  # an agent's message on a conversation not followed: nothing to show
            facts, at = found if found is not None else (None, 0)
            if position <= at:
                continue  # folded already, from its stored history
            if conversation_id not in before:
                before[conversation_id] = (facts, self._lists(conversation_id, facts))
            self._folds.pop(conversation_id, None)  # the most recently touched go last
            self._folds[conversation_id] = (fold(facts, event), position)
        self.position = fresh[-1][0]
        changes = self._changes(before)
        self._trim()
        if not changes:
            return None
        return Update(self.position, False, dict(self.counts), tuple(changes))

    async def _fold_unseen(self, fresh: Sequence[Item]) -> None:
        """Fold, from the store, the conversations these events touch that the watch does not
        follow yet (up to the position before each one's first event here)."""
        bounds: dict[str, int] = {}
        new: set[str] = set()
        for position, event in fresh:
            conversation_id = getattr(event, "conversation_id", None)
            if conversation_id is None or type(event) not in FOLDED:
                continue
            if conversation_id in self._folds or conversation_id in bounds:
                continue
            if conversation_id in new or isinstance(event, ev.ConversationStarted):
                new.add(conversation_id)
            elif not isinstance(event, ev.MessageRecorded):
                bounds[conversation_id] = position - 1
        if bounds:
            await self._fold_from_store(bounds)

    async def _fold_from_store(self, bounds: Mapping[str, int]) -> None:
        histories = await self._load(bounds)
        for conversation_id, bound in bounds.items():
            facts: Facts | None = None
            for event in histories.get(conversation_id, ()):
                facts = fold(facts, event)
            self._folds[conversation_id] = (facts, bound)

    def _lists(self, conversation_id: str, facts: Facts | None) -> frozenset[ListName]:
        return lists_of(facts, self.viewer, pinned=conversation_id in self.pins)

    def _changes(
        self, before: Mapping[str, tuple[Facts | None, frozenset[ListName]]]
    ) -> list[Change]:
        changes: list[Change] = []
        for conversation_id, (was_facts, was) in before.items():
            facts = self._folds[conversation_id][0]
            now = self._lists(conversation_id, facts)
            pinned = conversation_id in self.pins
            for name in self.watched:
                if name in now and name not in was:
                    assert facts is not None
                    changes.append(Change(name, ChangeKind.ENTERED, facts, pinned))
                    self.counts[name] += 1
                elif name in was and name not in now:
                    assert was_facts is not None
                    seen = facts is not None and visible(facts, self.viewer)
                    shown = facts if seen and facts is not None else was_facts
                    changes.append(Change(name, ChangeKind.LEFT, shown, pinned))
                    self.counts[name] -= 1
                elif (
                    name in now
                    and facts is not None
                    and was_facts is not None
                    and facts.view() != was_facts.view()
                ):
                    changes.append(Change(name, ChangeKind.UPDATED, facts, pinned))
        return changes

    def _trim(self) -> None:
        excess = len(self._folds) - self._cache_size
        if excess > 0:
            for conversation_id in list(self._folds)[:excess]:
                del self._folds[conversation_id]

    # --- pins --------------------------------------------------------------------------------

    async def pin(self, conversation_id: str, pinned: bool) -> Update | None:
        """The caller pinned (or unpinned) a conversation through this front door."""
        if (conversation_id in self.pins) == pinned:
            return None
        if conversation_id not in self._folds:
            await self._fold_from_store({conversation_id: self.position})
        facts = self._folds[conversation_id][0]
        before = {conversation_id: (facts, self._lists(conversation_id, facts))}
        if pinned:
            self.pins.add(conversation_id)
        else:
            self.pins.discard(conversation_id)
        changes = self._changes(before)
        if not changes:
            return None
        return Update(self.position, False, dict(self.counts), tuple(changes))


class PinSignals:
    """This front door's pins and unpins, for the pinner's open watches (per tenant and
    pinner); a watch that is not reading them drops the oldest past ``limit``."""

    def __init__(self, *, limit: int = 1_000) -> None:
        self._limit = limit
        self._inboxes: defaultdict[tuple[str, str], set[asyncio.Queue[tuple[str, bool]]]] = (
            defaultdict(set)
        )

    def subscribe(self, tenant: str, pinner: str) -> asyncio.Queue[tuple[str, bool]]:
        inbox: asyncio.Queue[tuple[str, bool]] = asyncio.Queue()
        self._inboxes[tenant, pinner].add(inbox)
        return inbox

    def unsubscribe(self, tenant: str, pinner: str, inbox: asyncio.Queue[tuple[str, bool]]) -> None:
        found = self._inboxes.get((tenant, pinner))
        if found is not None:
            found.discard(inbox)
            if not found:
                del self._inboxes[tenant, pinner]

    def watching(self) -> int:
        """Watches subscribed now."""
        return sum(len(inboxes) for inboxes in self._inboxes.values())

    def publish(self, tenant: str, pinner: str, conversation_id: str, pinned: bool) -> None:
        for inbox in self._inboxes.get((tenant, pinner), ()):
            if inbox.qsize() >= self._limit:
                inbox.get_nowait()
            inbox.put_nowait((conversation_id, pinned))


async def follow(
    watch: ListWatch,
    subscription: Subscription,
    inbox: asyncio.Queue[tuple[str, bool]],
    start: Callable[[], Awaitable[WatchStart]],
) -> AsyncIterator[Update]:
    """The watch's updates from its feed subscription and the caller's pins, as they come; on a
    reset, the opening of a new ``start``. Feed items ready together make one update."""
    items = aiter(subscription)
    next_item: asyncio.Future[Any] | None = None
    next_pin: asyncio.Future[tuple[str, bool]] | None = None
    try:
        while True:
            if next_item is None:
                next_item = asyncio.ensure_future(anext(items))
            if next_pin is None:
                next_pin = asyncio.ensure_future(inbox.get())
            await asyncio.wait((next_item, next_pin), return_when=asyncio.FIRST_COMPLETED)
            if next_pin.done():
                conversation_id, pinned = next_pin.result()
                next_pin = None
                pin = await watch.pin(conversation_id, pinned)
                if pin is not None:
                    yield pin
            if not next_item.done():
                continue
            first = next_item.result()
            next_item = None
            batch = [(first.event_id, first.event)]
            while subscription.ready() and len(batch) < MAX_WATCH_BATCH:
                item = await anext(items)
                batch.append((item.event_id, item.event))
            found = await watch.advance(batch)
            if found == RESET:
                yield watch.begin(await start())
                found = await watch.advance(batch)
            if isinstance(found, Update):
                yield found
    finally:
        for waiting in (next_item, next_pin):
            if waiting is not None and not waiting.done():
                waiting.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await waiting
