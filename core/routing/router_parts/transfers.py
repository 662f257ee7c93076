"""Transfers between agents and queues: request, answer, cancel and resolve."""

from __future__ import annotations

from core.routing import commands as c
from core.routing import events as ev
from core.routing.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from core.routing.model import (
    QueueReason,
    TransferOutcome,
    TransferTarget,
)
from core.routing.pools import GroupKey
from core.routing.router_parts.base import (
    RouterBase,
    S,
)
from core.routing.state import (
    Conversation,
    TransferRecord,
)
from core.routing.timers import TimerKind


class TransfersMixin(RouterBase):
    """Transfers between agents and queues: request, answer, cancel and resolve."""

    def _request_transfer(self, cmd: c.RequestTransfer) -> None:
        conv = self._conversation(cmd.conversation_id)
        sender = self._agent(cmd.agent_id)
        self._require_state(conv, S.ACTIVE)
        self._require_owner(conv, sender.agent_id)
        if conv.transfer is not None:
            raise FailedPrecondition(
                f"conversation {conv.conversation_id!r} already has a pending transfer",
                transfer_id=conv.transfer,
            )
        now = self.clock.now()
        transfer_id = f"t{self._counters['transfer'] + 1}"
        if cmd.target is TransferTarget.AGENT:
            target = self._agent(cmd.target_id)
            if target is sender:
                raise InvalidArgument("an agent cannot transfer a conversation to themself")
            self._require_online(target)
            self._require_room(target, conv)
            self._emit(
                ev.TransferRequested(
                    tenant=self.tenant,
                    at=now,
                    transfer_id=transfer_id,
                    conversation_id=conv.conversation_id,
                    from_agent=sender.agent_id,
                    to_agent=target.agent_id,
                    note=cmd.note,
                    deadline=now + self.settings.transfer_timeout,
                )
            )
            return
        if cmd.target is TransferTarget.QUEUE:
            self._queue(cmd.target_id)
            queue_id = cmd.target_id
            plan: tuple[GroupKey, ...] | None = None
        else:
            if cmd.target_id not in self.departments:
                raise NotFound(f"department {cmd.target_id!r} not found")
            assert conv.queue_id is not None
            queue_id = conv.queue_id
            plan = (GroupKey(departments=frozenset({cmd.target_id})),)
        self._emit(
            ev.ConversationTransferred(
                tenant=self.tenant,
                at=now,
                transfer_id=transfer_id,
                conversation_id=conv.conversation_id,
                from_agent=sender.agent_id,
                target=cmd.target,
                target_id=cmd.target_id,
                note=cmd.note,
            )
        )
        self._enqueue(conv, queue_id, QueueReason.TRANSFER, plan=plan, exclude=(sender.agent_id,))
        self._pull(sender)

    def _rescind_transfer(self, conv: Conversation) -> None:
        if conv.transfer is not None:
            self._resolve_transfer(
                conv, self.transfers[conv.transfer][1], TransferOutcome.RESCINDED
            )

    def _answer_transfer(self, cmd: c.AnswerTransfer) -> None:
        conv, record = self._pending_transfer(cmd.transfer_id)
        if record.target_id != cmd.agent_id:
            raise PermissionDenied(f"transfer {cmd.transfer_id!r} is not addressed to you")
        if cmd.accept:
            self._resolve_transfer(conv, record, TransferOutcome.ACCEPTED)
        else:
            self._resolve_transfer(conv, record, TransferOutcome.REJECTED)

    def _cancel_transfer(self, cmd: c.CancelTransfer) -> None:
        conv, record = self._pending_transfer(cmd.transfer_id)
        if record.from_agent != cmd.agent_id:
            raise PermissionDenied(f"only {record.from_agent!r} may cancel this transfer")
        self._resolve_transfer(conv, record, TransferOutcome.CANCELLED)

    def _resolve_transfer(
        self, conv: Conversation, record: TransferRecord, outcome: TransferOutcome
    ) -> None:
        sender = self.agents[record.from_agent]
        target = self.agents[record.target_id]
        self._emit(
            ev.TransferResolved(
                tenant=self.tenant,
                at=self.clock.now(),
                transfer_id=record.transfer_id,
                conversation_id=conv.conversation_id,
                outcome=outcome,
                from_agent=record.from_agent,
                to_agent=record.target_id,
                note=record.note,
                requested_at=record.at,
                deadline=record.deadline,
            )
        )
        if outcome is TransferOutcome.ACCEPTED:
            self._joined(conv, target)
            self._pull(sender)
        else:
            self._pull(target)

    def _on_transfer_requested(self, e: ev.TransferRequested) -> None:
        conv = self.conversations[e.conversation_id]
        target = self.agents[e.to_agent]
        record = TransferRecord(
            e.transfer_id, e.from_agent, TransferTarget.AGENT, e.to_agent, e.note, e.at, e.deadline
        )
        record.reserved = target.cost_of(conv.cost)
        self._next("transfer")
        conv.transfer = e.transfer_id
        conv.transfers.append(record)
        self.transfers[e.transfer_id] = (conv, record)
        target.load += record.reserved
        target.transfers_in.add(e.transfer_id)
        self._arm(TimerKind.TRANSFER, e.transfer_id, e.deadline)

    def _on_transfer_resolved(self, e: ev.TransferResolved) -> None:
        conv, record = self.transfers.pop(e.transfer_id)
        target = self.agents[record.target_id]
        record.outcome = e.outcome
        record.resolved_at = e.at
        conv.transfer = None
        target.transfers_in.discard(e.transfer_id)
        if e.outcome is TransferOutcome.ACCEPTED:
            # The reservation becomes the new owner's load. The plan now names the new owner:
            # the sender chose them, so the queue's skill steps no longer apply.
            self._release_owner(conv)
            for key in conv.plan:
                self._unref(key)
            conv.plan = (GroupKey(agents=frozenset({target.agent_id})),)
            conv.plan_offsets = (0.0,)
            conv.step = 0
            self._ref(conv.plan[0])
            self._own(conv, target, e.at, record.reserved)
        else:
            self._free(target, record.reserved)

    def _on_transferred(self, e: ev.ConversationTransferred) -> None:
        conv = self.conversations[e.conversation_id]
        record = TransferRecord(
            e.transfer_id, e.from_agent, e.target, e.target_id, e.note, e.at, None
        )
        record.outcome = TransferOutcome.ACCEPTED
        record.resolved_at = e.at
        self._next("transfer")
        conv.transfers.append(record)
