"""``AgentService.SendMessage`` with ``canned_reply_id``: the front door renders the reply and
counts its use.

- ``body``: the reply (one the agent may read, else NOT_FOUND) rendered for the conversation
  (its customer, the sending agent; ``core.store.canned_replies.values_for``), then the
  agent's ``text`` on a new line when given; the reply's attachments, then the request's. The
  whole is checked as any message is (INVALID_ARGUMENT when it renders empty or is over the
  limits) and carries ``canned_reply_id``, so the shard stores it on the message.
- ``count``: after the message is recorded (or a repeat returned the original), one use of the
  reply the stored message names, keyed by the message id: a retried call counts nothing more,
  and a retry after a count that failed writes it then. A failed count is logged, never turned
  into a failed send (the message is already stored).
"""

from __future__ import annotations

import dataclasses

import structlog
from usher.v1 import agent_service_pb2, conversation_pb2

from core.api import convert as cv
from core.api import policy
from core.api import resources as res
from core.api.canned_reply_service import attachments_to_proto
from core.api.conversations import validate_text
from core.routing import model as m
from core.routing.errors import InvalidArgument, NotFound
from core.store import canned_templates as templates
from core.store.canned_replies import CannedReplies
from core.store.errors import StoreError

log = structlog.get_logger(__name__)

SEPARATOR = "\n"
"""Between the rendered reply and the agent's own text."""


class CannedMessages:
    """Canned replies on the send path, over the store (``core.store.canned_replies``)."""

    def __init__(self, store: CannedReplies) -> None:
        self._store = store

    async def body(
        self,
        tenant: str,
        agent_id: str,
        conversation_id: str,
        request: agent_service_pb2.SendMessageRequest,
        key: str,
        offered: m.MessageChoices | None,
    ) -> m.MessageBody:
        """The message to send: the request's canned reply rendered, with the request's text and
        attachments after it (see the module docstring)."""
        reply_id = request.canned_reply_id
        reply = await self._store.get(tenant, reply_id)
        verdict = (
            policy.Verdict.NOT_FOUND
            if reply is None
            else policy.canned_reply_access(
                policy.Role.AGENT, agent_id, reply.owner, policy.Kind.READ
            )
        )
        if reply is None or verdict is not policy.Verdict.ALLOW:
            raise NotFound(
                f"canned reply {reply_id!r} not found",
                resource_type="usher.v1.CannedReply",
                resource_name=f"cannedReplies/{reply_id}",
            )
        values = await self._store.values_for(tenant, conversation_id, agent_id)
        rendered = templates.render(templates.parse(reply.text, None), values.values).text
        text = SEPARATOR.join(part for part in (rendered, request.text) if part)
        attachments = [*attachments_to_proto(reply.attachments), *request.attachments]
        if not text and not attachments:
            raise InvalidArgument(
                "the canned reply renders empty for this conversation", field="canned_reply_id"
            )
        validate_text(text, attachments)
        body = res.body_from_proto(text, attachments, key, offered=offered)
        return dataclasses.replace(body, canned_reply_id=reply.reply_id)

    async def count(
        self, tenant: str, conversation_id: str, message: conversation_pb2.Message
    ) -> None:
        """Count the use of the canned reply ``message`` (as stored) was sent from, once."""
        if not message.canned_reply_id or not message.agent:
            return
        _, message_id = cv.parse_message(message.name)
        try:
            await self._store.record_use(
                tenant,
                message_id=message_id,
                reply_id=message.canned_reply_id,
                agent_id=message.agent.removeprefix("agents/"),
                conversation_id=conversation_id,
                at=cv.from_timestamp(message.create_time),
            )
        except StoreError as exc:
            log.warning(
                "canned reply use not counted",
                tenant=tenant,
                message_id=message_id,
                reply_id=message.canned_reply_id,
                error=repr(exc),
            )
