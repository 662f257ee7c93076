"""The bots' effects: the I/O a flow waits for, performed outside the engine after the commit
that asked for it, and answered with ``AnswerBotEffect``, which moves the flow on.

- A webhook (``WebhookCall``): ``POST`` the interpreter's JSON body signed with the bot's
  secret (``core.bots.webhook``), within the step's timeout; the answer is read by
  ``webhook.parse_response``. A refused connection, a timeout, a non-2xx status, a malformed
  answer: ``ok`` false, and the flow takes the step's fallback.
- A knowledge-base search (``KnowledgeSearch``): the tenant's cached index
  (``core.store.knowledge``); the first article's body and whether it is confident.

One effect is in flight per conversation: an effect issued again while it is in flight (the
shard issues a tenant's pending effects again when it loads the tenant) is not performed twice
in this process. An answer that cannot be submitted is retried a few times; should the tenant
be reloaded meanwhile, its pending effects are issued again, so an answer is never lost for
good, and an answer the flow no longer awaits changes nothing. A webhook is therefore called at
least once per effect: its body carries the conversation and the effect's number, for a
receiver to tell a repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final

import asyncpg
import httpx
import structlog

from core.bots import webhook
from core.bots.interpreter import KnowledgeSearch, WebhookCall
from core.routing import commands as c
from core.routing.effects import BotEffectRequested, Effect
from core.store.bots import Bots
from core.store.errors import StoreError
from core.store.knowledge import KnowledgeBase

log = structlog.get_logger(__name__)

Submit = Callable[[Sequence[c.Command]], Awaitable[Sequence[object]]]
"""``Shard.submit``: the outcomes of the commands, in order."""

MAX_ANSWER: Final = 4_096
"""Characters of a knowledge-base answer the bot says at most."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EffectSettings:
    max_in_flight: int = 64
    """Effects performed at once in this process; more wait their turn."""
    knowledge_timeout: float = 5.0
    """Seconds a knowledge-base search may take before it counts as failed."""
    submit_attempts: int = 5
    """Tries to submit an answer before leaving it to the next load of the tenant."""
    secret_ttl: float = 30.0
    """Seconds a bot's webhook secret is kept before it is read again."""


@dataclass(frozen=True, slots=True)
class EffectStatistics:
    issued: int
    performed: int
    repeated: int
    """Issued while the same effect was in flight: not performed again."""
    failed: int
    """Performed with ``ok`` false (a webhook's fallback, a failed search)."""
    in_flight: int


@dataclass(frozen=True, slots=True)
class Answer:
    ok: bool
    text: str = ""
    next_step: str = ""
    confident: bool = False
    article: str = ""


class BotEffects:
    """Performs ``BotEffectRequested`` effects and submits their answers (module docstring)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        submit: Submit,
        *,
        settings: EffectSettings | None = None,
        http: httpx.AsyncClient | None = None,
        knowledge: KnowledgeBase | None = None,
    ) -> None:
        self._settings = settings or EffectSettings()
        self._submit = submit
        self._bots = Bots(pool)
        self._knowledge = knowledge or KnowledgeBase(pool)
        self._http = http
        self._own_http = http is None
        self._limit = asyncio.Semaphore(self._settings.max_in_flight)
        self._in_flight: dict[tuple[str, str], tuple[int, asyncio.Task[None]]] = {}
        self._secrets: dict[tuple[str, str], tuple[str | None, float]] = {}
        self._issued = self._performed = self._repeated = self._failed = 0

    def issue_all(self, effects: Sequence[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, BotEffectRequested):
                self.issue(effect)

    def issue(self, effect: BotEffectRequested) -> None:
        """Perform ``effect`` in the background, unless it is in flight already."""
        self._issued += 1
        key = (effect.tenant, effect.conversation_id)
        current = self._in_flight.get(key)
        if current is not None and current[0] == effect.effect and not current[1].done():
            self._repeated += 1
            return
        task = asyncio.create_task(self._run(key, effect), name=f"bot-effect:{key[1]}")
        self._in_flight[key] = (effect.effect, task)

    async def close(self) -> None:
        """Stop what is in flight (its flows wait; the next load of their tenants issues them
        again) and release the HTTP client."""
        tasks = [task for _, task in self._in_flight.values()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._in_flight.clear()
        if self._http is not None and self._own_http:
            await self._http.aclose()
            self._http = None

    def statistics(self) -> EffectStatistics:
        return EffectStatistics(
            self._issued, self._performed, self._repeated, self._failed, len(self._in_flight)
        )

    def __repr__(self) -> str:
        s = self.statistics()
        return f"<BotEffects {s.in_flight} in flight, {s.performed} performed, {s.failed} failed>"

    # --- performing ----------------------------------------------------------------------------

    async def _run(self, key: tuple[str, str], effect: BotEffectRequested) -> None:
        try:
            async with self._limit:
                answer = await self._perform(effect)
            self._performed += 1
            if not answer.ok:
                self._failed += 1
            await self._answer(effect, answer)
        except asyncio.CancelledError:
            raise
        except Exception:  # never let one effect take the runtime down; the flow waits
            log.exception("bot effect failed", tenant=effect.tenant, effect=effect.effect)
        finally:
            current = self._in_flight.get(key)
            if current is not None and current[1] is asyncio.current_task():
                del self._in_flight[key]

    async def _perform(self, effect: BotEffectRequested) -> Answer:
        if effect.webhook is not None:
            return await self._call(effect, effect.webhook)
        if effect.knowledge is not None:
            return await self._search(effect.tenant, effect.knowledge)
        return Answer(ok=False)

    async def _call(self, effect: BotEffectRequested, call: WebhookCall) -> Answer:
        secret = await self._secret(effect.tenant, effect.bot_id)
        if secret is None:  # the bot was deleted meanwhile: nothing to sign with
            return Answer(ok=False)
        request = webhook.signed_request(call, secret)
        if self._http is None:
            self._http = httpx.AsyncClient(follow_redirects=False, trust_env=False)
        try:
            async with asyncio.timeout(request.timeout):  # the whole exchange, not each read
                status, body = await _post(self._http, request)
        except (TimeoutError, httpx.HTTPError, OSError, TooLarge) as exc:
            log.info("bot webhook failed", url=request.url, error=type(exc).__name__)
            return Answer(ok=False)
        result = webhook.parse_response(call.effect, status, body)
        return Answer(ok=result.ok, text=result.text, next_step=result.next_step)

    async def _search(self, tenant: str, search: KnowledgeSearch) -> Answer:
        try:
            async with asyncio.timeout(self._settings.knowledge_timeout):
                hits = await self._knowledge.search(
                    tenant, search.query, search.language or None, limit=1
                )
        except (TimeoutError, StoreError, OSError, asyncpg.PostgresError) as exc:
            log.info("bot knowledge search failed", tenant=tenant, error=type(exc).__name__)
            return Answer(ok=False)
        if not hits:
            return Answer(ok=True)
        best = hits[0]
        article = best.article
        return Answer(
            ok=True,
            text=(article.body or article.title)[:MAX_ANSWER],
            confident=best.confident,
            article=article.article_id,
        )

    async def _secret(self, tenant: str, bot_id: str) -> str | None:
        now = time.monotonic()
        cached = self._secrets.get((tenant, bot_id))
        if cached is not None and now - cached[1] < self._settings.secret_ttl:
            return cached[0]
        secret = await self._bots.secret(tenant, bot_id)
        self._secrets[tenant, bot_id] = (secret, now)
        return secret

    async def _answer(self, effect: BotEffectRequested, answer: Answer) -> None:
        command = c.AnswerBotEffect(
            tenant=effect.tenant,
            conversation_id=effect.conversation_id,
            effect=effect.effect,
            ok=answer.ok,
            text=answer.text,
            next_step=answer.next_step,
            confident=answer.confident,
            article=answer.article,
        )
        delay = 0.05
        for attempt in range(self._settings.submit_attempts):
            (outcome,) = await self._submit([command])
            failure = getattr(outcome, "failure", None)
            if failure is None or failure.code != "UNAVAILABLE":
                if failure is not None:
                    log.info("bot effect answer refused", code=failure.code, effect=effect.effect)
                return
            if attempt + 1 < self._settings.submit_attempts:
                await asyncio.sleep(delay)
                delay *= 4
        log.warning("bot effect answer not submitted", conversation=effect.conversation_id)


class TooLarge(Exception):
    """A webhook answered with more than ``webhook.MAX_RESPONSE_BYTES``."""


async def _post(http: httpx.AsyncClient, request: webhook.SignedRequest) -> tuple[int, bytes]:
    """(status, body) of the signed request; ``TooLarge`` past ``webhook.MAX_RESPONSE_BYTES``
    (read no further)."""
    async with http.stream(
        "POST",
        request.url,
        content=request.body,
        headers=dict(request.headers),
        timeout=request.timeout,
    ) as response:
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > webhook.MAX_RESPONSE_BYTES:
                raise TooLarge
        return response.status_code, bytes(body)
