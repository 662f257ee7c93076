"""Satisfaction ratings at the front door: ``RateConversation`` and ``ListRatings``.

The door reads what the store recorded of the conversation (NOT_FOUND if nothing), submits
``RateConversation`` with it, and answers from the command's ``ConversationRated`` event; a
repeat of the same rating (no event) is answered from ``conversation_ratings`` with
``duplicate`` set. The engine decides everything else (the window, once per conversation).
"""

from __future__ import annotations

import base64
import datetime as dt

from usher.v1 import conversation_service_pb2 as pb

from core.api import convert as cv
from core.api import door
from core.api.context import ApiContext
from core.routing import commands as c
from core.routing import events as ev
from core.routing.errors import InvalidArgument, NotFound
from core.store import ratings
from core.store.ratings import StoredRating

DEFAULT_PAGE_SIZE = 100


def rating_proto(r: StoredRating) -> pb.Rating:
    return pb.Rating(
        conversation=cv.conversation_name(r.conversation_id),
        channel=r.channel,
        score=r.score,
        comment=r.comment,
        queue=f"queues/{r.queue_id}" if r.queue_id else "",
        agent=f"agents/{r.agent_id}" if r.agent_id else "",
        rate_time=cv.timestamp(r.rated_at),
    )


def _stored(e: ev.ConversationRated) -> StoredRating:
    return StoredRating(
        e.conversation_id,
        e.channel,
        e.queue_id,
        e.agent_id,
        e.score,
        e.comment,
        dt.datetime.fromtimestamp(e.at, dt.UTC),
    )


async def rate(
    api: ApiContext, tenant: str, request: pb.RateConversationRequest
) -> pb.RateConversationResponse:
    conversation_id = cv.parse_conversation(request.conversation)
    if not 1 <= request.score <= 5:
        raise InvalidArgument("a rating is a score from 1 to 5", field="score")
    row = await api.reads.conversation(tenant, conversation_id)
    if row is None:
        raise NotFound(
            f"conversation {request.conversation!r} not found", conversation_id=conversation_id
        )
    ended = row["ended_at"] or row["closed_at"]
    command = c.RateConversation(
        tenant=tenant,
        conversation_id=conversation_id,
        score=request.score,
        comment=request.comment,
        ended_at=ended.timestamp() if ended is not None else None,
        channel=row["channel"],
        queue_id=row["queue_id"] or "",
        agent_id=row["last_agent_id"] or "",
        tags=tuple(row["tags"] or ()),
    )
    outcome = await door.run(api, command)
    given = next((e for e in outcome.events if isinstance(e, ev.ConversationRated)), None)
    if given is not None:
        return pb.RateConversationResponse(rating=rating_proto(_stored(given)))
    stored = await ratings.of(api.pool, tenant, conversation_id)
    assert stored is not None, "a repeated rating was stored with the first"
    return pb.RateConversationResponse(rating=rating_proto(stored), duplicate=True)


def _token(r: StoredRating) -> str:
    raw = f"{r.rated_at.isoformat()}|{r.conversation_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _after(token: str) -> tuple[dt.datetime, str] | None:
    if not token:
        return None
    try:
        when, conversation_id = base64.urlsafe_b64decode(token.encode()).decode().split("|", 1)
        return dt.datetime.fromisoformat(when), conversation_id
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgument("page_token is not one this server gave", field="page_token") from exc


async def listed(
    api: ApiContext, tenant: str, request: pb.ListRatingsRequest
) -> pb.ListRatingsResponse:
    size = request.page_size or DEFAULT_PAGE_SIZE
    found = await ratings.listed(
        api.pool,
        tenant,
        channel=request.channel,
        limit=size + 1,
        after=_after(request.page_token),
    )
    page, more = found[:size], len(found) > size
    return pb.ListRatingsResponse(
        ratings=[rating_proto(r) for r in page], next_page_token=_token(page[-1]) if more else ""
    )
