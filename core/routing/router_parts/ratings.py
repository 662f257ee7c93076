"""Satisfaction ratings: once per conversation, from its end until ``RATING_WINDOW`` later.

The router remembers the ratings given (``ratings``: conversation -> (score, comment, when),
oldest first) as long as a second one could arrive: a rating given at ``t`` is kept until
``t + RATING_WINDOW``, which is past the end of its conversation's window, so every repeat
within the window is found here, whether or not the conversation is still in memory.
"""

from __future__ import annotations

from typing import Final

from core.routing import commands as c
from core.routing import events as ev
from core.routing.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from core.routing.router_parts.base import RouterBase, S

RATING_WINDOW: Final = 7 * 86400.0
"""Seconds after a conversation's end during which its customer may rate it."""
MAX_RATING_COMMENT: Final = 2000
SCORES: Final = range(1, 6)


class RatingsMixin(RouterBase):
    """``RateConversation`` and the ratings remembered against repeats."""

    ratings: dict[str, tuple[int, str, float]]

    def _rate(self, cmd: c.RateConversation) -> None:
        if cmd.score not in SCORES:
            raise InvalidArgument("a rating is a score from 1 to 5", field="score")
        if len(cmd.comment) > MAX_RATING_COMMENT or "\x00" in cmd.comment:
            raise InvalidArgument(
                f"a comment has at most {MAX_RATING_COMMENT} characters", field="comment"
            )
        given = self.ratings.get(cmd.conversation_id)
        if given is not None:
            if given[:2] == (cmd.score, cmd.comment):
                return  # the same rating again: nothing changes
            raise AlreadyExists(
                "the conversation is rated already", conversation_id=cmd.conversation_id
            )
        conv = self.conversations.get(cmd.conversation_id)
        if conv is not None:
            if conv.state not in (S.WRAP_UP, S.CLOSED, S.ABANDONED) or conv.ended_at is None:
                raise FailedPrecondition(
                    "a conversation is rated after it ends", conversation_id=cmd.conversation_id
                )
            ended_at, channel = conv.ended_at, conv.channel
            queue_id, agent_id = conv.queue_id or "", conv.last_agent or ""
            tags = tuple(sorted(conv.tags))
        else:
            if cmd.ended_at is None:
                raise FailedPrecondition(
                    "a conversation is rated after it ends", conversation_id=cmd.conversation_id
                )
            ended_at, channel, queue_id = cmd.ended_at, cmd.channel, cmd.queue_id
            agent_id, tags = cmd.agent_id, tuple(sorted(cmd.tags))
        now = self.clock.now()
        if now > ended_at + RATING_WINDOW:
            raise FailedPrecondition(
                "the conversation ended too long ago to be rated (7 days)",
                conversation_id=cmd.conversation_id,
            )
        self._emit(
            ev.ConversationRated(
                tenant=self.tenant,
                at=now,
                conversation_id=cmd.conversation_id,
                score=cmd.score,
                comment=cmd.comment,
                channel=channel,
                queue_id=queue_id,
                agent_id=agent_id,
                tags=tags,
            )
        )

    def _on_rated(self, e: ev.ConversationRated) -> None:
        ratings = self.ratings
        while ratings:  # the oldest first: drop those no repeat can reach any more
            oldest = next(iter(ratings))
            if ratings[oldest][2] + RATING_WINDOW >= e.at:
                break
            del ratings[oldest]
        ratings[e.conversation_id] = (e.score, e.comment, e.at)
