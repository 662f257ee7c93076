"""BotService: the tenant's bots (``core.store.bots``), for supervisors and admins, and previews
of their flows through the pure interpreter (``core.bots.interpreter``), with no conversation.

Every write reads the bot (``core.bots.codec``, structural problems at once), validates it whole
(``core.bots.validate``: INVALID_ARGUMENT with one field violation per problem, paths in the
request) and only then stores it; warnings (an unreachable step of a draft) come back beside
the stored bot. The tenant's customer fields and channels are read first so that steps naming
fields get their types and choices get their channels' limits. The servicer holds no SQL.

The PostgreSQL rows are the editing copy; the engine holds the running copy: activating a bot
(or editing an active one) publishes its version to the tenant's shard (``PublishBot``), pausing
and deleting it submit ``PauseBot`` / ``RemoveBot``, each after the row is written. A repeated
activation publishes again, so a publish lost to an outage is made good by retrying; the engine
ignores a version it holds already. ``GetBotStats`` counts the flows the shard projected
(``core.store.bot_runs``).

Webhook URLs must be https; ``http`` to this machine is allowed only when the server is started
with ``USHER_BOT_INSECURE_WEBHOOKS=1`` (tests), or the servicer is built with
``allow_insecure_webhooks``.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final, NoReturn

from usher.v1 import bot_pb2
from usher.v1 import bot_service_pb2 as pb
from usher.v1 import bot_service_pb2_grpc as pb_grpc

from core.api import convert as cv
from core.api.admin import decode_token, encode_token, page_size
from core.api.auth import caller
from core.api.context import ApiContext, Caller
from core.api.errors import abort
from core.bots import codec, webhook
from core.bots import fields as bot_fields
from core.bots import interpreter as it
from core.bots.flow import Bot, BotStatus, FieldSpec
from core.bots.validate import Problem, Severity, errors, validate
from core.routing import commands as c
from core.routing.errors import AlreadyExists, InvalidArgument, NotFound
from core.store import bot_runs, customer_fields
from core.store.admin import AdminStore
from core.store.bots import Bots, StoredBot
from core.store.channels import Channels

Ctx = Any  # grpc.aio.ServicerContext

INSECURE_ENV: Final = "USHER_BOT_INSECURE_WEBHOOKS"
WRITABLE: Final = ("display_name", "channels", "triggers", "flow")
MAX_VIOLATIONS: Final = 50
MAX_CHANNELS_READ: Final = 10_000
MAX_PREVIEW_TURNS: Final = 1_000
"""A preview stops after this many turns (a validated flow never gets near)."""
_CAUSE: Final = {
    "start": pb.PREVIEW_TURN_CAUSE_START,
    "input": pb.PREVIEW_TURN_CAUSE_INPUT,
    "answer": pb.PREVIEW_TURN_CAUSE_EFFECT_ANSWER,
    "skipped": pb.PREVIEW_TURN_CAUSE_EFFECT_SKIPPED,
}


def _from_env() -> bool:
    return os.environ.get(INSECURE_ENV, "").strip().lower() in ("1", "true", "yes")


def _who(who: Caller) -> str:
    return f"agents/{who.agent_id}" if who.agent_id else f"credentials/{who.credential_id}"


def bot_to_proto(stored: StoredBot, *, with_secret: bool = False) -> bot_pb2.Bot:
    out = codec.bot_to_proto(stored.bot)
    out.create_time.FromDatetime(stored.created_at)
    out.update_time.FromDatetime(stored.updated_at)
    if with_secret:
        out.webhook_secret = stored.webhook_secret
    return out


def _not_found(bot_id: str, version: int = 0) -> NotFound:
    shown = f"bots/{bot_id}" + (f" version {version}" if version else "")
    return NotFound(
        f"{shown} not found", resource_type="usher.v1.Bot", resource_name=f"bots/{bot_id}"
    )


async def _refuse(context: Ctx, violations: Mapping[str, str]) -> NoReturn:
    items = list(violations.items())
    first_field, first = items[0]
    more = f" (and {len(items) - 1} more)" if len(items) > 1 else ""
    await abort(
        context,
        "INVALID_ARGUMENT",
        f"{first_field or 'bot'}: {first}{more}",
        violations=dict(items[:MAX_VIOLATIONS]),
    )


def _warnings(problems: Sequence[Problem], prefix: str) -> list[pb.BotWarning]:
    return [
        pb.BotWarning(field=prefix + p.field, description=p.description)
        for p in problems
        if p.severity is Severity.WARNING
    ]


class BotServicer(pb_grpc.BotServiceServicer):
    """BotService over an ``ApiContext``."""

    def __init__(self, api: ApiContext, *, allow_insecure_webhooks: bool | None = None) -> None:
        self._api = api
        self._bots = Bots(api.pool)
        self._channels = Channels(api.pool)
        self._admin = AdminStore(api.pool)
        self._insecure = _from_env() if allow_insecure_webhooks is None else allow_insecure_webhooks

    # --- the tenant's facts -------------------------------------------------------------------

    async def _fields(self, tenant: str) -> dict[str, FieldSpec]:
        defined = await customer_fields.definitions(self._api.pool, tenant)
        return bot_fields.specs((d.key, d.type, d.choices) for d in defined.values() if d.enabled)

    async def _channel_types(self, tenant: str) -> dict[str, str]:
        found = await self._channels.page(tenant, "", MAX_CHANNELS_READ)
        return {c.channel_id: c.type for c in found}

    async def _read(
        self, context: Ctx, p: bot_pb2.Bot, bot_id: str, specs: Mapping[str, FieldSpec], prefix: str
    ) -> Bot:
        try:
            return codec.bot_from_proto(p, bot_id=bot_id, fields=specs, prefix=prefix)
        except codec.Malformed as exc:
            await _refuse(context, exc.violations)

    async def _checked(
        self, context: Ctx, tenant: str, bot: Bot, *, strict: bool, prefix: str
    ) -> list[Problem]:
        """The bot's warnings, or the call refused with its errors."""
        problems = validate(
            bot,
            channel_types=await self._channel_types(tenant),
            strict=strict,
            allow_insecure_webhooks=self._insecure,
        )
        refused = errors(problems)
        if refused:
            await _refuse(context, {prefix + k: v for k, v in refused.items()})
        return problems

    async def _to_engine(self, command: c.Command) -> None:
        """Submit ``command`` to the tenant's shard, configuring a tenant the engine has never
        held (with default settings, as ``AdminService`` does) first."""
        outcome = await self._api.submit(command)
        failure = outcome.failure
        if failure is not None and failure.code == "NOT_FOUND" and "tenant" in failure.details:
            if await self._admin.tenant_settings(command.tenant) is None:
                cv.check(await self._api.submit(c.ConfigureTenant(tenant=command.tenant)))
            outcome = await self._api.submit(command)
        cv.check(outcome)

    async def _publish(self, tenant: str, stored: StoredBot) -> None:
        """Serve ``stored`` if the bot is active (its newest version is then published)."""
        if stored.bot.status is BotStatus.ACTIVE:
            await self._to_engine(c.PublishBot(tenant=tenant, bot=codec.bot_to_json(stored.bot)))

    async def _get(self, tenant: str, bot_id: str, version: int = 0) -> StoredBot:
        found = await self._bots.get(tenant, bot_id, version or None)
        if found is None:
            raise _not_found(bot_id, version)
        return found

    # --- RPCs ---------------------------------------------------------------------------------

    @cv.guarded
    async def CreateBot(self, request: pb.CreateBotRequest, context: Ctx) -> pb.CreateBotResponse:
        who = caller(context)
        if not request.bot_id:
            raise InvalidArgument("bot_id is required", field="bot_id")
        bot = await self._read(
            context, request.bot, request.bot_id, await self._fields(who.tenant), "bot."
        )
        problems = await self._checked(context, who.tenant, bot, strict=False, prefix="bot.")
        stored = await self._bots.create(who.tenant, bot, by=_who(who))
        if stored is None:
            raise AlreadyExists(
                f"bots/{request.bot_id} already exists",
                resource_type="usher.v1.Bot",
                resource_name=f"bots/{request.bot_id}",
            )
        return pb.CreateBotResponse(
            bot=bot_to_proto(stored, with_secret=True), warnings=_warnings(problems, "bot.")
        )

    @cv.guarded
    async def GetBot(self, request: pb.GetBotRequest, context: Ctx) -> pb.GetBotResponse:
        tenant = caller(context).tenant
        bot_id = cv.parse_name("bots", request.name, field="name")
        return pb.GetBotResponse(bot=bot_to_proto(await self._get(tenant, bot_id, request.version)))

    @cv.guarded
    async def ListBots(self, request: pb.ListBotsRequest, context: Ctx) -> pb.ListBotsResponse:
        tenant = caller(context).tenant
        size = await page_size(context, request.page_size)
        after = await decode_token(context, request.page_token)
        found = await self._bots.page(tenant, after, size + 1)
        more = len(found) > size
        found = found[:size]
        return pb.ListBotsResponse(
            bots=[bot_to_proto(s) for s in found],
            next_page_token=encode_token(found[-1].bot.id) if more else "",
        )

    @cv.guarded
    async def UpdateBot(self, request: pb.UpdateBotRequest, context: Ctx) -> pb.UpdateBotResponse:
        who = caller(context)
        bot_id = cv.parse_name("bots", request.bot.name, field="bot.name")
        paths = list(request.update_mask.paths) or list(WRITABLE)
        unknown = [p for p in paths if p not in WRITABLE]
        if unknown:
            raise InvalidArgument(
                f"update_mask may name {', '.join(WRITABLE)}", field="update_mask"
            )
        current = await self._get(who.tenant, bot_id)
        given = await self._read(
            context, request.bot, bot_id, await self._fields(who.tenant), "bot."
        )
        changes: dict[str, Any] = {}
        if "display_name" in paths:
            changes["name"] = given.name
        for name in ("channels", "triggers", "flow"):
            if name in paths:
                changes[name] = getattr(given, name)
        bot = dataclasses.replace(current.bot, **changes)
        strict = current.bot.status is BotStatus.ACTIVE
        problems = await self._checked(context, who.tenant, bot, strict=strict, prefix="bot.")
        stored = await self._bots.save(who.tenant, bot, expected=current.bot.version, by=_who(who))
        if stored is None:
            raise _not_found(bot_id)
        await self._publish(who.tenant, stored)
        return pb.UpdateBotResponse(bot=bot_to_proto(stored), warnings=_warnings(problems, "bot."))

    @cv.guarded
    async def ActivateBot(
        self, request: pb.ActivateBotRequest, context: Ctx
    ) -> pb.ActivateBotResponse:
        tenant = caller(context).tenant
        bot_id = cv.parse_name("bots", request.name, field="name")
        current = await self._get(tenant, bot_id)
        if current.bot.status is BotStatus.ACTIVE:  # served already: publish again (idempotent)
            await self._publish(tenant, current)
            return pb.ActivateBotResponse(bot=bot_to_proto(current))
        # the fields its steps name, as the tenant defines them now (one may have gone)
        fresh = await self._read(
            context,
            codec.bot_to_proto(current.bot),
            bot_id,
            await self._fields(tenant),
            "",
        )
        await self._checked(context, tenant, fresh, strict=True, prefix="")
        stored = await self._bots.activate(tenant, bot_id, expected=current.bot.version)
        if stored is None:
            raise _not_found(bot_id)
        await self._publish(tenant, stored)
        return pb.ActivateBotResponse(bot=bot_to_proto(stored))

    @cv.guarded
    async def PauseBot(self, request: pb.PauseBotRequest, context: Ctx) -> pb.PauseBotResponse:
        tenant = caller(context).tenant
        bot_id = cv.parse_name("bots", request.name, field="name")
        stored = await self._bots.pause(tenant, bot_id)
        if stored is None:
            raise _not_found(bot_id)
        await self._to_engine(c.PauseBot(tenant=tenant, bot_id=bot_id))
        return pb.PauseBotResponse(bot=bot_to_proto(stored))

    @cv.guarded
    async def DeleteBot(self, request: pb.DeleteBotRequest, context: Ctx) -> pb.DeleteBotResponse:
        tenant = caller(context).tenant
        bot_id = cv.parse_name("bots", request.name, field="name")
        if not await self._bots.delete(tenant, bot_id):
            raise _not_found(bot_id)
        await self._to_engine(c.RemoveBot(tenant=tenant, bot_id=bot_id))
        return pb.DeleteBotResponse()

    @cv.guarded
    async def GetBotStats(
        self, request: pb.GetBotStatsRequest, context: Ctx
    ) -> pb.GetBotStatsResponse:
        tenant = caller(context).tenant
        bot_id = cv.parse_name("bots", request.name, field="name")
        await self._get(tenant, bot_id)
        since = until = None
        if request.HasField("interval"):
            given = request.interval
            since = cv.from_timestamp(given.start_time) if given.HasField("start_time") else None
            until = cv.from_timestamp(given.end_time) if given.HasField("end_time") else None
            if since is not None and until is not None and until < since:
                raise InvalidArgument(
                    "the interval ends before it starts", field="interval.end_time"
                )
        found = await bot_runs.stats(self._api.pool, tenant, bot_id, since, until)
        return pb.GetBotStatsResponse(
            stats=pb.BotStats(
                conversations=found.conversations,
                triggered_by_message=found.by_message,
                triggered_by_reference=found.by_reference,
                customers_reached=found.customers,
                finished_in_bot=found.finished,
                handed_off=found.handed_off,
                could_not_answer=found.not_answered,
            )
        )

    @cv.guarded
    async def PreviewBot(
        self, request: pb.PreviewBotRequest, context: Ctx
    ) -> pb.PreviewBotResponse:
        tenant = caller(context).tenant
        bot_id = cv.parse_name("bots", request.name, field="name")
        bot = (await self._get(tenant, bot_id, request.version)).bot
        if request.start_step and bot.flow.step(request.start_step) is None:
            raise InvalidArgument("no such step in the bot's flow", field="start_step")
        for i, given in enumerate(request.inputs):
            if given.WhichOneof("kind") is None:
                raise InvalidArgument("a text or an option_id", field=f"inputs[{i}]")
        preview = _Preview(bot, _context(request, bot), request.effect_answers)
        preview.run(request)
        return pb.PreviewBotResponse(turns=preview.turns)


def _context(request: pb.PreviewBotRequest, bot: Bot) -> it.Context:
    given = request.context
    channel = given.channel.removeprefix("channels/") if given.channel else ""
    values = {}
    for key, value in given.fields.items():
        found = codec.value_from_proto(value)
        if found is not None:
            values[key] = found
    return it.Context(
        channel=channel or (bot.channels[0] if bot.channels else ""),
        language=given.language,
        open=not given.out_of_hours,
        tags=frozenset(given.tags),
        fields=values,
        conversation_id="preview",
        customer_id="preview",
        now=round(time.time(), 3),
    )


class _Preview:
    """Runs a flow over scripted inputs, answering its effects from the given answers."""

    def __init__(
        self,
        bot: Bot,
        context: it.Context,
        answers: Sequence[pb.PreviewEffectAnswer],
    ) -> None:
        self.bot = bot
        self.context = context
        self.answers = list(answers)
        self.used = 0
        self.turns: list[pb.PreviewTurn] = []

    def run(self, request: pb.PreviewBotRequest) -> None:
        turn = it.start(self.bot, self.context, step=request.start_step, text=request.first_text)
        state = self.record(turn, "start", 0)
        for i, given in enumerate(request.inputs):
            if len(self.turns) >= MAX_PREVIEW_TURNS:
                return
            move: it.Input = (
                it.CustomerText(given.text)
                if given.WhichOneof("kind") == "text"
                else it.OptionPick(given.option_id)
            )
            state = self.record(it.advance(self.bot, state, move, self.context), "input", i)

    def record(self, turn: it.Turn, cause: str, index: int) -> it.BotState:
        """Keep ``turn``, then answer the effects it (and its sequels) asks for."""
        while True:
            state = turn.state
            self.turns.append(
                pb.PreviewTurn(
                    cause=_CAUSE[cause],
                    index=index,
                    outputs=[codec.output_to_proto(o) for o in turn.outputs],
                    step=state.step,
                    waiting=codec.WAITING_TO_PROTO[state.waiting],
                    misses=state.misses,
                )
            )
            effect = turn.effect
            if effect is None or len(self.turns) >= MAX_PREVIEW_TURNS:
                return state
            result, cause, index = self.answer(effect)
            turn = it.advance(self.bot, state, result, self.context)

    def answer(self, effect: it.Effect) -> tuple[it.WebhookResult | it.KnowledgeResult, str, int]:
        if self.used >= len(self.answers):
            skipped: it.WebhookResult | it.KnowledgeResult = (
                webhook.failed(effect.effect)
                if isinstance(effect, it.WebhookCall)
                else it.KnowledgeResult(effect=effect.effect, ok=False)
            )
            return skipped, "skipped", 0
        index = self.used
        given = self.answers[index]
        self.used += 1
        kind = given.WhichOneof("kind")
        if isinstance(effect, it.WebhookCall):
            if kind != "webhook":
                raise InvalidArgument(
                    f"the flow asked step {effect.step!r} for a webhook answer",
                    field=f"effect_answers[{index}]",
                )
            hook = given.webhook
            if hook.timeout:
                return webhook.failed(effect.effect), "answer", index
            parsed = webhook.parse_response(effect.effect, hook.status_code, hook.body.encode())
            return parsed, "answer", index
        if kind != "knowledge":
            raise InvalidArgument(
                f"the flow asked step {effect.step!r} for a knowledge answer",
                field=f"effect_answers[{index}]",
            )
        found = given.knowledge
        return (
            it.KnowledgeResult(
                effect=effect.effect,
                ok=not found.failed,
                answer=found.answer,
                confident=found.confident,
                article=found.article,
            ),
            "answer",
            index,
        )
