"""Customers' profiles on their conversations: their bounds, the refresh when a customer's
record changes (or a bot's turn writes to it), and the block a profile carries (a blocked
customer's messages reach no one)."""

from __future__ import annotations

import dataclasses

from core.bots.flow import FieldValue
from core.routing import commands as c
from core.routing import events as ev
from core.routing.errors import Blocked, InvalidArgument
from core.routing.model import CustomerCard, CustomerProfile, TransferTarget
from core.routing.profile_writes import written
from core.routing.router_parts.base import RouterBase
from core.routing.state import Conversation


class CustomersMixin(RouterBase):
    """Customers' profiles on their conversations."""

    def _check_profile(self, profile: CustomerProfile | None) -> None:
        if profile is None:
            return
        problem = profile.problem()
        if problem is not None:
            raise InvalidArgument(problem, field="profile")

    def _require_not_blocked(
        self, card: CustomerCard, channel: str, customer_id: str, conversation_id: str = ""
    ) -> None:
        """Refuse a customer's message (or start) while their profile's block holds."""
        block = card.profile.block if card.profile is not None else None
        if block is not None and block.holds_at(self.clock.now()):
            raise Blocked(
                f"customer {customer_id!r} is blocked",
                block_id=block.block_id,
                channel=channel,
                customer_id=customer_id,
                external_id=card.external_id,
                conversation_id=conversation_id,
            )

    def _refresh_profile(self, cmd: c.RefreshCustomerProfile) -> None:
        if not cmd.customer_id:
            raise InvalidArgument("name the customer", field="customer_id")
        self._check_profile(cmd.profile)
        for conversation_id in sorted(self.customer_conversations.get(cmd.customer_id, ())):
            conv = self.conversations[conversation_id]
            if not conv.state.is_terminal and conv.customer.profile != cmd.profile:
                self._show_profile(conv, cmd.profile)

    def _bot_wrote(
        self,
        conv: Conversation,
        fields: tuple[tuple[str, FieldValue], ...],
        added: tuple[str, ...],
        removed: tuple[str, ...],
    ) -> None:
        """A bot's turn wrote to the customer's record: each open conversation of the customer
        that shows a profile shows the values now (``core.routing.profile_writes``), as a
        ``RefreshCustomerProfile`` would."""
        for conversation_id in sorted(self.customer_conversations.get(conv.customer_id, ())):
            other = self.conversations[conversation_id]
            profile = other.customer.profile
            if profile is None or other.state.is_terminal:
                continue
            changed = written(profile, fields, added, removed)
            if changed != profile:
                self._show_profile(other, changed)

    def _show_profile(self, conv: Conversation, profile: CustomerProfile) -> None:
        self._emit(
            ev.CustomerProfileChanged(
                tenant=self.tenant,
                at=self.clock.now(),
                conversation_id=conv.conversation_id,
                customer_id=conv.customer_id,
                profile=profile,
                agent_ids=self._viewers(conv),
            )
        )

    def _viewers(self, conv: Conversation) -> tuple[str, ...]:
        """The agents whose consoles show ``conv``: owner, offer recipients, transfer target."""
        found: list[str] = []
        if conv.owner is not None:
            found.append(conv.owner)
        if conv.offer is not None:
            found.extend(self.offers[conv.offer].agent_ids)
        pending = self.transfers.get(conv.transfer) if conv.transfer is not None else None
        if pending is not None and pending[1].target is TransferTarget.AGENT:
            found.append(pending[1].target_id)
        return tuple(dict.fromkeys(found))

    def _on_profile_changed(self, e: ev.CustomerProfileChanged) -> None:
        conv = self.conversations[e.conversation_id]
        conv.customer = dataclasses.replace(conv.customer, profile=e.profile)
