"""Conversation modes (auto, silent, live, end), return to the bot, tags and monitoring."""

from __future__ import annotations

from core.routing import commands as c
from core.routing import events as ev
from core.routing.errors import (
    FailedPrecondition,
    InvalidArgument,
)
from core.routing.model import (
    CloseReason,
    Mode,
    Outcome,
    QueueReason,
)
from core.routing.pools import GroupKey
from core.routing.router_parts.base import (
    RouterBase,
    S,
)
from core.routing.state import (
    Agent,
    Conversation,
)


class ModesMixin(RouterBase):
    """Conversation modes (auto, silent, live, end), return to the bot, tags and monitoring."""

    def _set_mode(self, cmd: c.SetMode) -> None:
        conv = self._conversation(cmd.conversation_id)
        agent = self._agent(cmd.agent_id)
        {
            Mode.AUTO: self._mode_auto,
            Mode.SILENT: self._mode_silent,
            Mode.LIVE: self._mode_live,
            Mode.END: self._mode_end,
        }[cmd.mode](conv, agent)

    def _mode_auto(self, conv: Conversation, agent: Agent) -> None:
        """Hand the conversation (back) to the bot."""
        self._require_state(conv, S.QUEUED, S.OFFERED, S.ACTIVE)
        if conv.state is S.ACTIVE:
            self._require_owner(conv, agent.agent_id)
        self._to_bot(conv, by=agent.agent_id)

    def _mode_silent(self, conv: Conversation, agent: Agent) -> None:
        """Watch silently; a conversation the bot was answering goes to its queue instead."""
        self._require_state(conv, S.BOT, S.QUEUED, S.OFFERED, S.ACTIVE, S.WRAP_UP)
        queue_id = None
        if conv.state is S.BOT:
            queue_id = self._resolve_queue(conv.queue_id, conv.region)
            if queue_id is None:
                raise FailedPrecondition("no queue to hand the conversation to")
        if agent.agent_id not in conv.monitors:
            self._emit(
                ev.MonitorChanged(
                    tenant=self.tenant,
                    at=self.clock.now(),
                    conversation_id=conv.conversation_id,
                    supervisor_id=agent.agent_id,
                    monitoring=True,
                )
            )
        if queue_id is not None:
            self._enqueue(conv, queue_id, QueueReason.SILENT_MODE)

    def _mode_live(self, conv: Conversation, agent: Agent) -> None:
        """Chat with the customer: take it from the queue, or over from the bot."""
        self._require_state(conv, S.BOT, S.QUEUED, S.OFFERED)
        self._require_online(agent)
        if conv.state is not S.BOT:
            command = c.TakeConversation(
                tenant=self.tenant, agent_id=agent.agent_id, conversation_id=conv.conversation_id
            )
            self._take(command)
            return
        self._require_room(agent, conv)
        queue_id = self._resolve_queue(conv.queue_id, conv.region)
        if queue_id is None:
            raise FailedPrecondition("no queue to account the conversation to")
        # The agent chose this conversation themself: its plan names them alone.
        only_them = (GroupKey(agents=frozenset({agent.agent_id})),)
        self._enqueue(conv, queue_id, QueueReason.REQUESTED, plan=only_them, route=False)
        self._assign(conv, agent, via="live", by=agent.agent_id, override=False)

    def _mode_end(self, conv: Conversation, agent: Agent) -> None:
        """Complete the conversation as resolved."""
        self._require_state(conv, S.BOT, S.QUEUED, S.OFFERED, S.ACTIVE)
        if conv.state is S.ACTIVE:
            self._require_owner(conv, agent.agent_id)
            self._finish(conv, CloseReason.AGENT_ENDED, Outcome.RESOLVED, by=agent.agent_id)
        else:
            self._close_waiting(conv, CloseReason.AGENT_ENDED, Outcome.RESOLVED, by=agent.agent_id)

    def _to_bot(self, conv: Conversation, by: str) -> None:
        owner = self.agents.get(conv.owner) if conv.owner else None
        self._rescind_transfer(conv)
        displaced = self._rescind_offer(conv)
        self._emit(
            ev.ConversationReturnedToBot(
                tenant=self.tenant,
                at=self.clock.now(),
                conversation_id=conv.conversation_id,
                by=by,
                previous_owner=conv.owner,
            )
        )
        for agent in (*displaced, *([owner] if owner else [])):
            self._pull(agent)
        self._bot_returns(conv)

    def _tag(self, cmd: c.TagConversation) -> None:
        conv = self._conversation(cmd.conversation_id)
        if cmd.add & cmd.remove:
            raise InvalidArgument("a tag cannot be both added and removed")
        tags = (conv.tags | cmd.add) - cmd.remove
        self._emit(
            ev.TagsChanged(
                tenant=self.tenant,
                at=self.clock.now(),
                conversation_id=conv.conversation_id,
                tags=frozenset(tags),
            )
        )

    def _monitor(self, cmd: c.Monitor) -> None:
        conv = self._conversation(cmd.conversation_id)
        if cmd.stop:
            if cmd.supervisor_id not in conv.monitors:
                raise FailedPrecondition(f"{cmd.supervisor_id!r} is not monitoring it")
        else:
            if conv.state.is_terminal:
                raise FailedPrecondition("a closed conversation cannot be monitored")
            if cmd.supervisor_id in conv.monitors:
                raise FailedPrecondition(f"{cmd.supervisor_id!r} is already monitoring it")
        self._emit(
            ev.MonitorChanged(
                tenant=self.tenant,
                at=self.clock.now(),
                conversation_id=conv.conversation_id,
                supervisor_id=cmd.supervisor_id,
                monitoring=not cmd.stop,
            )
        )

    def _on_returned_to_bot(self, e: ev.ConversationReturnedToBot) -> None:
        conv = self.conversations[e.conversation_id]
        self._leave_queue(conv)
        self._release_owner(conv)
        conv.deadlines.clear()
        conv.state = S.BOT

    def _on_monitor_changed(self, e: ev.MonitorChanged) -> None:
        monitors = self.conversations[e.conversation_id].monitors
        if e.monitoring:
            monitors.add(e.supervisor_id)
        else:
            monitors.discard(e.supervisor_id)

    def _on_tags_changed(self, e: ev.TagsChanged) -> None:
        self.conversations[e.conversation_id].tags = e.tags
