"""Timers firing: deadlines, maximum waits, queue hours, idle reminders and retention."""

from __future__ import annotations

from core.routing import events as ev
from core.routing.hours import HoursStatus, status_at
from core.routing.model import (
    CloseReason,
    DeclineReason,
    QueueReason,
    SystemMessage,
    TransferOutcome,
)
from core.routing.router_parts.base import RouterBase
from core.routing.state import (
    Conversation,
    QueueRuntime,
)
from core.routing.timers import TimerKind


class TimersMixin(RouterBase):
    """Timers firing: deadlines, maximum waits, queue hours, idle reminders and retention."""

    def _fire(self, deadline: float, kind: TimerKind, subject: str) -> None:
        if kind is TimerKind.OFFER:
            offer = self.offers.get(subject)
            if offer is not None and offer.deadline == deadline:
                missed = () if offer.broadcast else offer.agent_ids
                self._decline(offer, DeclineReason.EXPIRED, declined_by=missed, missed_by=missed)
            return
        if kind is TimerKind.TRANSFER:
            found = self.transfers.get(subject)
            if found is not None and found[1].deadline == deadline:
                self._resolve_transfer(found[0], found[1], TransferOutcome.EXPIRED)
            return
        if kind is TimerKind.HOURS:
            self._queue_hours_edge(subject, deadline)
            return
        conv = self.conversations.get(subject)
        if conv is None or conv.deadlines.get(kind) != deadline:
            return
        if kind is TimerKind.STEP:
            self._emit(
                ev.ConversationStepped(
                    tenant=self.tenant,
                    at=self.clock.now(),
                    conversation_id=subject,
                    step=conv.step + 1,
                )
            )
            self._route(conv)
        elif kind is TimerKind.MAX_WAIT:
            self._max_wait(conv)
        elif kind is TimerKind.CUSTOMER_IDLE:
            if conv.reminded:
                self._finish(conv, CloseReason.CUSTOMER_IDLE, None)
            else:
                self._emit(
                    ev.CustomerIdleReminded(
                        tenant=self.tenant, at=self.clock.now(), conversation_id=subject
                    )
                )
                self._say(conv, SystemMessage.IDLE_REMINDER)
        elif kind is TimerKind.AGENT_IDLE:
            owner = self.agents[conv.owner] if conv.owner else None
            assert owner is not None
            self._emit(
                ev.AgentIdleNotified(
                    tenant=self.tenant,
                    at=self.clock.now(),
                    conversation_id=subject,
                    agent_id=owner.agent_id,
                )
            )
            if self.settings.agent_idle_tell_customer:
                self._say(conv, SystemMessage.AGENT_BUSY)
            if self.settings.agent_idle_requeue and conv.queue_id in self.queues:
                assert conv.queue_id is not None
                self._rescind_transfer(conv)
                self._enqueue(
                    conv, conv.queue_id, QueueReason.AGENT_IDLE, exclude=(owner.agent_id,)
                )
                self._pull(owner)
        elif kind is TimerKind.WRAP_UP:
            self._close_wrap_up(conv)
        elif kind is TimerKind.RETENTION:
            self._emit(
                ev.ConversationForgotten(
                    tenant=self.tenant, at=self.clock.now(), conversation_id=subject
                )
            )

    def _max_wait(self, conv: Conversation) -> None:
        assert conv.queue_id is not None
        overflow = self.queues[conv.queue_id].settings.overflow_queue
        displaced = self._rescind_offer(conv)
        if overflow is not None and overflow in self.queues:
            self._enqueue(conv, overflow, QueueReason.OVERFLOW)
        else:
            self._invite_message(conv)
        for agent in displaced:
            self._pull(agent)

    def _queue_hours_edge(self, queue_id: str, deadline: float) -> None:
        queue = self.queues.get(queue_id)
        if queue is None or queue.hours_deadline != deadline:
            return
        now = self.clock.now()
        status = status_at(queue.settings.hours, now)
        self._emit(
            ev.QueueHoursChanged(tenant=self.tenant, at=now, queue_id=queue_id, status=status)
        )
        self._release_held(queue)

    def _release_held(self, queue: QueueRuntime) -> None:
        """Route the conversations a break held, at the step their wait has reached."""
        now = self.clock.now()
        if status_at(queue.settings.hours, now) is HoursStatus.BREAK:
            return
        for conversation_id in list(queue.held):
            conv = self.conversations[conversation_id]
            elapsed = now - conv.plan_started_at
            step = sum(1 for offset in conv.plan_offsets[1:] if offset <= elapsed)
            self._emit(
                ev.ConversationStepped(
                    tenant=self.tenant, at=now, conversation_id=conversation_id, step=step
                )
            )
            self._route(conv)
