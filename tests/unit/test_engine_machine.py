"""A Hypothesis state machine over the whole engine, checking invariants 1-8 after every step.

Agents sign in, out (refused while holding conversations, or handing them back, as the tenant
switches its policy) and change status, custom ones named alone; a queue relaxes its skills
when none of its skilled agents is online; conversations arrive, wait, are offered, accepted,
rejected, time out, are taken, force-assigned, transferred, ended and reopened; customers
write, go idle and leave; customers' profiles are refreshed and blocks stop their messages;
a bot is published, paused and removed, its flows answer, wait for effects and hand off;
the clock advances and timers fire. A refused command must leave the state exactly as it was.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from core.bots import codec
from core.bots.flow import (
    ActionsStep,
    Bot,
    BotStatus,
    ChoiceStep,
    Content,
    EndAction,
    Flow,
    HandOffAction,
    KeywordTrigger,
    NewConversationTrigger,
    Option,
    SkillNeed,
    WebhookStep,
)
from core.bots.interpreter import Waiting
from core.routing import Engine, ManualClock, RoutingError
from core.routing import commands as c
from core.routing import events as ev
from core.routing import model as m
from core.routing.invariants import check_invariants, snapshot

T = "acme"
AGENTS = ("a0", "a1", "a2", "a3", "a4")
CHANNELS = ("webchat", "webchat", "email", "voice")
QUEUES = ("basic", "open", "bcast", "sticky", "presence")
S = m.ConversationState
START = ManualClock().now()
PROFILES = (
    None,
    m.CustomerProfile(customer_id="k", tags=("vip",), previous_conversations=2, last_agent="a1"),
    m.CustomerProfile(
        customer_id="k",
        fields=(m.ProfileField(key="tier", label="Tier", value="gold"),),
        groups=(m.ProfileGroup(group_id="g1", name="Gold"),),
    ),
    m.CustomerProfile(customer_id="k", block=m.StandingBlock(block_id=1, reason="spam")),
    m.CustomerProfile(customer_id="k", block=m.StandingBlock(block_id=2, until=START + 20.0)),
    m.CustomerProfile(customer_id="k", tags=("x" * (m.MAX_PROFILE_TEXT + 1),)),  # out of bounds
)


def _bot(version: int, status: BotStatus) -> Bot:
    """A webchat bot: a menu whose first option calls a webhook (falling back to a hand-off
    wanting a skill) and whose second ends it, closing the conversation."""
    steps = (
        ChoiceStep(
            id="menu",
            content=Content(body=f"menu v{version}"),
            options=(Option(id="a", title="A", next="hook"), Option(id="b", title="B", next="bye")),
        ),
        WebhookStep(id="hook", url="https://hooks.example.com/a", fallback="human", next="menu"),
        ActionsStep(
            id="human",
            actions=(
                HandOffAction(
                    queue="basic", skills=(SkillNeed(skill="s2", min_level=2),), priority=1
                ),
            ),
        ),
        ActionsStep(id="bye", actions=(EndAction(close=True),)),
    )
    return Bot(
        id="bot",
        version=version,
        status=status,
        channels=("webchat",),
        triggers=(NewConversationTrigger(), KeywordTrigger(keywords=("help",))),
        flow=Flow(start="menu", steps=steps, default_reply="pick", max_misses=2),
    )


def _setup_commands() -> list[c.Command]:
    settings = m.TenantSettings(
        misses_before_away=2,
        wrap_up_seconds=5.0,
        transfer_timeout=15.0,
        customer_idle_remind=30.0,
        customer_idle_close=30.0,
        agent_idle_notify=25.0,
        agent_idle_requeue=True,
        agent_idle_tell_customer=True,
        head_start_seconds=30.0,
        custom_statuses=(
            m.CustomStatus("lunch", m.AgentStatus.BREAK, "Back at 2pm"),
            m.CustomStatus("desk", m.AgentStatus.ONLINE),
            m.CustomStatus("home", m.AgentStatus.OFFLINE),
        ),
    )
    skill = m.SkillRequirement
    commands: list[c.Command] = [
        c.ConfigureTenant(tenant=T, settings=settings),
        c.DefineSkill(tenant=T, skill="s1"),
        c.DefineSkill(tenant=T, skill="s2"),
        c.DefineDepartment(tenant=T, department="d1"),
        c.ConfigureQueue(tenant=T, settings=m.QueueSettings(queue_id="open")),
        c.ConfigureQueue(
            tenant=T,
            settings=m.QueueSettings(
                queue_id="basic",
                requirements=(skill("s1", 6),),
                offer_timeout=10.0,
                relaxation=(
                    m.RelaxationStep(20.0, level_drop=3),
                    m.RelaxationStep(40.0, any_agent=True),
                ),
                max_wait=120.0,
                overflow_queue="open",
            ),
        ),
        c.ConfigureQueue(
            tenant=T,
            settings=m.QueueSettings(
                queue_id="bcast",
                requirements=(skill("s2", 1),),
                strategy=m.Strategy.BROADCAST,
                offer_timeout=15.0,
            ),
        ),
        c.ConfigureQueue(
            tenant=T,
            settings=m.QueueSettings(
                queue_id="sticky",
                requirements=(skill("s1", 1),),
                strategy=m.Strategy.ROUND_ROBIN,
                sticky_window=600.0,
                sticky_timeout=15.0,
                max_wait=90.0,
                priority=1,
            ),
        ),
        c.ConfigureQueue(
            tenant=T,
            settings=m.QueueSettings(
                queue_id="presence",
                requirements=(skill("s2", 4),),
                relax_when_none_online=True,
                offer_timeout=10.0,
                relaxation=(m.RelaxationStep(30.0, level_drop=2),),
            ),
        ),
    ]
    profiles = [
        m.AgentProfile("a0", skills={"s1": 8, "s2": 3}, capacity=2.0),
        m.AgentProfile("a1", skills={"s1": 4}, capacity=1.0, departments=frozenset({"d1"})),
        m.AgentProfile("a2", skills={"s2": 5}, capacity=1.5, departments=frozenset({"d1"})),
        m.AgentProfile("a3", skills={"s1": 6, "s2": 1}, capacity=3.0),
        m.AgentProfile("a4", skills={}, capacity=1.0),
    ]
    commands += [c.ConfigureAgent(tenant=T, profile=p) for p in profiles]
    commands += [
        c.SetAgentStatus(tenant=T, agent_id=a, status=m.AgentStatus.ONLINE) for a in AGENTS[:4]
    ]
    commands.append(c.PublishBot(tenant=T, bot=codec.bot_to_json(_bot(1, BotStatus.ACTIVE))))
    return commands


class EngineMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock()
        self.engine = Engine(self.clock)
        self.log: list[ev.Event] = []
        for command in _setup_commands():
            self._run(command)
        self.refused = 0

    @property
    def router(self) -> Any:
        return self.engine.router(T)

    def _run(self, command: c.Command) -> None:
        before = snapshot(self.router) if self.engine.tenants else None
        try:
            result = self.engine.execute(command)
        except RoutingError:
            self.refused += 1
            assert snapshot(self.router) == before, f"refused {command} changed state"
            return
        self.log.extend(result.events)

    def _pick(self, data: st.DataObject) -> str:
        """An existing conversation, or now and then one that does not exist."""
        known = [*sorted(self.router.conversations), "nope"]
        return data.draw(st.sampled_from(known))

    def _conversations(self, *states: m.ConversationState) -> list[str]:
        return sorted(
            cid for cid, conv in self.router.conversations.items() if conv.state in states
        )

    # --- agents --------------------------------------------------------------------------------

    @rule(
        agent=st.sampled_from(AGENTS),
        status=st.sampled_from(
            [m.AgentStatus.ONLINE] * 4 + [m.AgentStatus.AWAY, m.AgentStatus.OFFLINE]
        ),
    )
    def set_status(self, agent: str, status: m.AgentStatus) -> None:
        self._run(c.SetAgentStatus(tenant=T, agent_id=agent, status=status))

    @rule(agent=st.sampled_from(AGENTS))
    def go_to_lunch(self, agent: str) -> None:
        self._run(
            c.SetAgentStatus(
                tenant=T, agent_id=agent, status=m.AgentStatus.BREAK, custom_status="lunch"
            )
        )

    @rule(agent=st.sampled_from(AGENTS), custom=st.sampled_from(["lunch", "desk", "home"]))
    def custom_status_alone(self, agent: str, custom: str) -> None:
        """A custom status named without its base status takes its base."""
        self._run(c.SetAgentStatus(tenant=T, agent_id=agent, status=None, custom_status=custom))

    @rule(data=st.data())
    def sign_out_holding(self, data: st.DataObject) -> None:
        """An agent who owns an active conversation signs out (refused, or handed back)."""
        owners = sorted({conv.owner for conv in self.router.conversations.values() if conv.owner})
        if owners:
            agent = data.draw(st.sampled_from(owners))
            self._run(c.SetAgentStatus(tenant=T, agent_id=agent, status=m.AgentStatus.OFFLINE))

    @rule(policy=st.sampled_from(m.SignOutPolicy))
    def sign_out_policy(self, policy: m.SignOutPolicy) -> None:
        settings = replace(self.router.settings, sign_out_with_conversations=policy)
        self._run(c.ConfigureTenant(tenant=T, settings=settings))

    @rule(agent=st.sampled_from(AGENTS), capacity=st.sampled_from([0.5, 1.0, 2.0, 3.0]))
    def resize(self, agent: str, capacity: float) -> None:
        profile = self.router.agents[agent].profile
        self._run(
            c.ConfigureAgent(
                tenant=T,
                profile=m.AgentProfile(
                    agent, skills=profile.skills, capacity=capacity, departments=profile.departments
                ),
            )
        )

    # --- conversations arrive and leave -------------------------------------------------------

    @rule(
        fresh=st.booleans(),
        queue=st.sampled_from(QUEUES),
        channel=st.sampled_from(CHANNELS),
        customer=st.sampled_from(["k1", "k2", "k3"]),
        priority=st.integers(0, 2),
        with_bot=st.booleans(),
        first=st.sampled_from([None, "", "m1", "m5"]),
        profile=st.sampled_from(PROFILES[:3] * 3 + PROFILES[3:]),
    )
    def start(
        self,
        fresh: bool,
        queue: str,
        channel: str,
        customer: str,
        priority: int,
        with_bot: bool,
        first: str | None,
        profile: m.CustomerProfile | None,
    ) -> None:
        known = len(self.router.conversations)
        conversation = f"c{known if fresh or not known else known - 1}"
        self._run(
            c.StartConversation(
                tenant=T,
                conversation_id=conversation,
                channel=channel,
                customer_id=customer,
                queue_id=queue,
                priority=priority,
                with_bot=with_bot,
                customer=m.CustomerCard(external_id=customer, profile=profile),
                first_message=None
                if first is None
                else m.MessageBody(text="hello", provider_message_id=first or None),
            )
        )

    @rule(
        queue=st.sampled_from(QUEUES),
        channel=st.sampled_from(CHANNELS),
        customer=st.sampled_from(["k1", "k2", "k3"]),
        key=st.sampled_from([None, "m1", "m2", "m3"]),
        text=st.sampled_from(["hi", ""]),
        profile=st.sampled_from(PROFILES[:4]),
        require_profile=st.booleans(),
    )
    def receive(
        self,
        queue: str,
        channel: str,
        customer: str,
        key: str | None,
        text: str,
        profile: m.CustomerProfile | None,
        require_profile: bool,
    ) -> None:
        """A customer writes: into their open conversation on the channel, or a new one (the
        door submits once without a profile, and with one when the engine asks for it)."""
        open_before = (customer, channel) in self.router.open_conversations
        before = len(self.log)
        self._run(
            c.ReceiveMessage(
                tenant=T,
                conversation_id=f"r{len(self.log)}",
                channel=channel,
                customer_id=customer,
                queue_id=queue,
                message=m.MessageBody(text=text, provider_message_id=key),
                customer=m.CustomerCard(external_id=customer, profile=profile),
                require_profile=require_profile,
            )
        )
        if require_profile and profile is None and not open_before:
            assert len(self.log) == before, "a start without the profile it needs changed nothing"

    @rule(customer=st.sampled_from(["k1", "k2", "k3", "k9"]), profile=st.sampled_from(PROFILES[1:]))
    def refresh_profile(self, customer: str, profile: m.CustomerProfile) -> None:
        """The customer's record changed: their conversations that are not over show it."""
        before = len(self.log)
        self._run(c.RefreshCustomerProfile(tenant=T, customer_id=customer, profile=profile))
        if profile.problem() is not None:
            assert len(self.log) == before, "an out-of-bounds profile is refused"
            return
        for conv in self.router.conversations.values():
            if conv.customer_id == customer and not conv.state.is_terminal:
                assert conv.customer.profile == profile
        for event in self.log[before:]:
            assert isinstance(event, ev.CustomerProfileChanged)
            conv = self.router.conversations[event.conversation_id]
            assert conv.owner is None or conv.owner in event.agent_ids

    # Arrivals drive everything else, so they come twice as often as other steps.
    start_another = start

    @rule(data=st.data())
    def request_agent(self, data: st.DataObject) -> None:
        bots = self._conversations(S.BOT)
        if bots:
            self._run(c.RequestAgent(tenant=T, conversation_id=data.draw(st.sampled_from(bots))))

    @rule(data=st.data())
    def customer_leaves(self, data: st.DataObject) -> None:
        self._run(c.CustomerLeft(tenant=T, conversation_id=self._pick(data)))

    @rule(data=st.data(), queue=st.sampled_from(QUEUES))
    def reopen(self, data: st.DataObject, queue: str) -> None:
        self._run(c.ReopenConversation(tenant=T, conversation_id=self._pick(data), queue_id=queue))

    @rule(
        data=st.data(),
        agent=st.sampled_from(AGENTS),
        fresh=st.booleans(),
        queue=st.sampled_from([None, *QUEUES]),
        channel=st.sampled_from(CHANNELS),
        customer=st.sampled_from(["k1", "k2", "k3"]),
    )
    def open_for_agent(
        self,
        data: st.DataObject,
        agent: str,
        fresh: bool,
        queue: str | None,
        channel: str,
        customer: str,
    ) -> None:
        """A left message answered, or a conversation an agent starts: the agent's at once,
        offered to no one."""
        conversation = f"f{len(self.log)}" if fresh else self._pick(data)
        before = len(self.log)
        self._run(
            c.OpenForAgent(
                tenant=T,
                conversation_id=conversation,
                agent_id=agent,
                by=agent,
                channel=channel,
                customer_id=customer,
                queue_id=queue,
            )
        )
        if len(self.log) > before:
            conv = self.router.conversations[conversation]
            assert conv.state is S.ACTIVE and conv.owner == agent
            assert not any(isinstance(e, ev.OfferMade) for e in self.log[before:])

    @rule(data=st.data(), sender=st.sampled_from([m.Sender.CUSTOMER, m.Sender.AGENT]))
    def message(self, data: st.DataObject, sender: m.Sender) -> None:
        conversation = self._pick(data)
        conv = self.router.conversations.get(conversation)
        agent = conv.owner if conv is not None and sender is m.Sender.AGENT else None
        profile = conv.customer.profile if conv is not None else None
        blocked = (
            sender is m.Sender.CUSTOMER
            and profile is not None
            and profile.block is not None
            and profile.block.holds_at(self.clock.now())
        )
        before = len(self.log)
        self._run(
            c.RecordMessage(
                message=m.MessageBody(text="hi"),
                tenant=T,
                conversation_id=conversation,
                sender=sender,
                agent_id=agent or "a0",
            )
        )
        if blocked:
            assert len(self.log) == before, "a blocked customer's message is not recorded"

    # --- bots ------------------------------------------------------------------------------------

    @rule(version=st.integers(1, 3), paused=st.booleans())
    def publish_bot(self, version: int, paused: bool) -> None:
        status = BotStatus.PAUSED if paused else BotStatus.ACTIVE
        self._run(c.PublishBot(tenant=T, bot=codec.bot_to_json(_bot(version, status))))

    @rule(remove=st.booleans())
    def pause_or_remove_bot(self, remove: bool) -> None:
        command = c.RemoveBot if remove else c.PauseBot
        self._run(command(tenant=T, bot_id="bot"))

    @rule(data=st.data(), text=st.sampled_from(["a", "b", "help", "zzz"]), pick=st.booleans())
    def customer_answers_bot(self, data: st.DataObject, text: str, pick: bool) -> None:
        running = sorted(
            cid
            for cid, conv in self.router.conversations.items()
            if conv.bot is not None and conv.bot.running
        )
        conversation = data.draw(st.sampled_from(running)) if running else self._pick(data)
        self._run(
            c.RecordMessage(
                tenant=T,
                conversation_id=conversation,
                sender=m.Sender.CUSTOMER,
                message=m.MessageBody(text=text, selected_option_id=text if pick else ""),
            )
        )

    @rule(data=st.data(), ok=st.booleans(), stale=st.booleans())
    def effect_answered(self, data: st.DataObject, ok: bool, stale: bool) -> None:
        waiting = sorted(
            cid
            for cid, conv in self.router.conversations.items()
            if conv.bot is not None and conv.bot.state.waiting is Waiting.EFFECT
        )
        if not waiting:
            return
        conv = self.router.conversations[data.draw(st.sampled_from(waiting))]
        assert conv.bot is not None
        effect = conv.bot.state.effect + (1 if stale else 0)
        before = len(self.log)
        self._run(
            c.AnswerBotEffect(
                tenant=T, conversation_id=conv.conversation_id, effect=effect, ok=ok, text="ok"
            )
        )
        if stale:
            assert len(self.log) == before, "an answer not awaited changes nothing"

    # --- offers ----------------------------------------------------------------------------------

    @rule(data=st.data(), accept=st.sampled_from([True, True, True, False]))
    def answer_offer(self, data: st.DataObject, accept: bool) -> None:
        offers = sorted(self.router.offers)
        if not offers:
            return
        offer = self.router.offers[data.draw(st.sampled_from(offers))]
        agent = data.draw(st.sampled_from(offer.agent_ids))
        command: c.Command = (
            c.AcceptOffer(tenant=T, offer_id=offer.offer_id, agent_id=agent)
            if accept
            else c.RejectOffer(tenant=T, offer_id=offer.offer_id, agent_id=agent)
        )
        self._run(command)

    @rule(offer=st.sampled_from([f"o{i}" for i in range(1, 6)]), agent=st.sampled_from(AGENTS))
    def accept_stale_offer(self, offer: str, agent: str) -> None:
        self._run(c.AcceptOffer(tenant=T, offer_id=offer, agent_id=agent))

    @rule(data=st.data(), agent=st.sampled_from(AGENTS))
    def take(self, data: st.DataObject, agent: str) -> None:
        self._run(c.TakeConversation(tenant=T, agent_id=agent, conversation_id=self._pick(data)))

    @rule(data=st.data(), agent=st.sampled_from(AGENTS), override=st.booleans())
    def force_assign(self, data: st.DataObject, agent: str, override: bool) -> None:
        self._run(
            c.ForceAssign(
                tenant=T,
                supervisor_id="sup",
                conversation_id=self._pick(data),
                agent_id=agent,
                override_capacity=override,
            )
        )

    # --- live conversations -----------------------------------------------------------------

    @rule(data=st.data(), outcome=st.sampled_from(m.Outcome))
    def end(self, data: st.DataObject, outcome: m.Outcome) -> None:
        live = self._conversations(S.ACTIVE)
        if live:
            conv = self.router.conversations[data.draw(st.sampled_from(live))]
            self._run(
                c.EndConversation(
                    tenant=T,
                    agent_id=conv.owner,
                    conversation_id=conv.conversation_id,
                    outcome=outcome,
                )
            )

    @rule(data=st.data())
    def finish_wrap_up(self, data: st.DataObject) -> None:
        wrapping = self._conversations(S.WRAP_UP)
        if wrapping:
            conv = self.router.conversations[data.draw(st.sampled_from(wrapping))]
            self._run(
                c.FinishWrapUp(tenant=T, agent_id=conv.owner, conversation_id=conv.conversation_id)
            )

    @rule(
        data=st.data(),
        destination=st.sampled_from(
            [(m.TransferTarget.AGENT, a) for a in AGENTS]
            + [(m.TransferTarget.QUEUE, q) for q in QUEUES]
            + [(m.TransferTarget.DEPARTMENT, "d1")]
        ),
    )
    def transfer(self, data: st.DataObject, destination: tuple[m.TransferTarget, str]) -> None:
        live = self._conversations(S.ACTIVE)
        if live:
            conv = self.router.conversations[data.draw(st.sampled_from(live))]
            self._run(
                c.RequestTransfer(
                    tenant=T,
                    agent_id=conv.owner,
                    conversation_id=conv.conversation_id,
                    target=destination[0],
                    target_id=destination[1],
                    note="over to you",
                )
            )

    @rule(data=st.data(), answer=st.sampled_from(["accept", "reject", "cancel"]))
    def answer_transfer(self, data: st.DataObject, answer: str) -> None:
        pending = sorted(self.router.transfers)
        if not pending:
            return
        transfer_id = data.draw(st.sampled_from(pending))
        record = self.router.transfers[transfer_id][1]
        command: c.Command
        if answer == "cancel":
            command = c.CancelTransfer(
                tenant=T, agent_id=record.from_agent, transfer_id=transfer_id
            )
        else:
            command = c.AnswerTransfer(
                tenant=T,
                agent_id=record.target_id,
                transfer_id=transfer_id,
                accept=answer == "accept",
            )
        self._run(command)

    @rule(data=st.data(), agent=st.sampled_from(AGENTS), mode=st.sampled_from(m.Mode))
    def set_mode(self, data: st.DataObject, agent: str, mode: m.Mode) -> None:
        conversation = self._pick(data)
        self._run(c.SetMode(tenant=T, agent_id=agent, conversation_id=conversation, mode=mode))

    @rule(data=st.data(), stop=st.booleans())
    def monitor(self, data: st.DataObject, stop: bool) -> None:
        conversation = self._pick(data)
        self._run(c.Monitor(tenant=T, supervisor_id="sup", conversation_id=conversation, stop=stop))

    # --- time -------------------------------------------------------------------------------------

    @rule(seconds=st.sampled_from([0.5, 3.0, 9.0, 11.0, 16.0, 26.0, 45.0, 130.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.log.extend(self.engine.tick().events)

    # --- invariants ------------------------------------------------------------------------------

    @invariant()
    def invariants_hold(self) -> None:
        check_invariants(self.router)

    @invariant()
    def no_live_timer_is_overdue(self) -> None:
        now = self.clock.now()
        assert all(deadline > now for deadline, _, _ in snapshot(self.router)["timers"])

    @precondition(lambda self: len(self.log) % 7 == 0)
    @invariant()
    def replay_rebuilds_an_equal_engine(self) -> None:
        self._check_replay()

    def _check_replay(self) -> None:
        rebuilt = Engine(ManualClock())
        rebuilt.replay(self.log)
        assert snapshot(rebuilt.router(T)) == snapshot(self.router)

    def teardown(self) -> None:
        self._check_replay()


EngineMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestEngineMachine = EngineMachine.TestCase
