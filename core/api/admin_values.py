"""AdminService values: ``usher.v1`` messages to and from ``core.routing.model`` values.

``*_from_proto`` functions check what the engine cannot see (resource-name syntax, dates,
times of day, enum values) and raise ``BadValue`` naming the offending field (a value they quote
is cut to ``core.api.errors.MAX_QUOTED`` characters); the engine checks
the rest (levels, capacities, time zones, references) when the command runs. ``*_to_proto``
functions never fail. Unset durations take the defaults documented in the protos.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping

from google.protobuf import duration_pb2, timestamp_pb2
from usher.v1 import (
    agent_pb2,
    channel_pb2,
    conversation_pb2,
    credential_pb2,
    queue_pb2,
    tenant_pb2,
)

from core.api.errors import shown
from core.api.validation.forms import ID_PATTERN
from core.reports.calendar import valid_zone
from core.routing import model as m
from core.store.channels import Channel

ID = re.compile(f"^{ID_PATTERN}$")
"""A resource id, as the edge's limits declare it (``core.api.validation.forms``)."""


class BadValue(ValueError):
    """A field of the request is malformed: ``field`` is its path, the message says why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def check_id(field: str, value: str) -> str:
    """``value`` if it is a valid resource id (1 to 64 of ``A-Za-z0-9_.-``, starting with a
    letter or digit)."""
    if not ID.match(value):
        raise BadValue(field, f"{shown(value)} is not a valid id: 1 to 64 of A-Za-z0-9_.-")
    return value


def parse_name(field: str, name: str, collection: str) -> str:
    """The id of ``{collection}/{id}``."""
    prefix, slash, rest = name.partition("/")
    if prefix != collection or not slash:
        raise BadValue(field, f"{shown(name)} is not a {collection}/{{id}} name")
    return check_id(field, rest)


def seconds(value: duration_pb2.Duration) -> float:
    return value.seconds + value.nanos / 1e9


def duration(value: float) -> duration_pb2.Duration:
    out = duration_pb2.Duration()
    out.FromNanoseconds(round(value * 1e9))
    return out


def timestamp(value: dt.datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(value)
    return out


# --- agents ------------------------------------------------------------------------------------

STATUSES: Mapping[m.AgentStatus, agent_pb2.AgentStatus.ValueType] = {
    m.AgentStatus.ONLINE: agent_pb2.AGENT_STATUS_ONLINE,
    m.AgentStatus.AWAY: agent_pb2.AGENT_STATUS_AWAY,
    m.AgentStatus.BREAK: agent_pb2.AGENT_STATUS_BREAK,
    m.AgentStatus.OFFLINE: agent_pb2.AGENT_STATUS_OFFLINE,
}
STATUS_OF = {v: k for k, v in STATUSES.items()}


def profile_from_proto(agent_id: str, agent: agent_pb2.Agent) -> m.AgentProfile:
    skills: dict[str, int] = {}
    for i, skill in enumerate(agent.skills):
        skills[parse_name(f"agent.skills[{i}].skill", skill.skill, "skills")] = skill.level
    departments = frozenset(
        parse_name(f"agent.departments[{i}]", d, "departments")
        for i, d in enumerate(agent.departments)
    )
    return m.AgentProfile(
        agent_id, agent.display_name, skills, agent.capacity, departments=departments
    )


def agent_to_proto(
    profile: m.AgentProfile,
    status: m.AgentStatus = m.AgentStatus.OFFLINE,
    custom_status: str | None = None,
    updated_at: dt.datetime | None = None,
    load: float = 0.0,
) -> agent_pb2.Agent:
    """The agent as the API shows it; ``load`` comes from the shard's live state."""
    return agent_pb2.Agent(
        name=f"agents/{profile.agent_id}",
        display_name=profile.name,
        skills=[
            agent_pb2.SkillLevel(skill=f"skills/{s}", level=level)
            for s, level in sorted(profile.skills.items())
        ],
        capacity=profile.capacity,
        departments=[f"departments/{d}" for d in sorted(profile.departments)],
        status=STATUSES[status],
        custom_status=custom_status or "",
        load=load,
        update_time=timestamp(updated_at),
    )


# --- queues ------------------------------------------------------------------------------------

STRATEGIES: Mapping[m.Strategy, queue_pb2.Strategy.ValueType] = {
    m.Strategy.LONGEST_IDLE: queue_pb2.STRATEGY_LONGEST_IDLE,
    m.Strategy.LEAST_BUSY: queue_pb2.STRATEGY_LEAST_BUSY,
    m.Strategy.ROUND_ROBIN: queue_pb2.STRATEGY_ROUND_ROBIN,
    m.Strategy.BROADCAST: queue_pb2.STRATEGY_BROADCAST,
}
STRATEGY_OF = {v: k for k, v in STRATEGIES.items()}


def _time_of_day(field: str, text: str) -> dt.time:
    match = re.fullmatch(r"([01][0-9]|2[0-4]):([0-5][0-9])", text)
    if match is None or (match[1] == "24" and match[2] != "00"):
        raise BadValue(field, f"{shown(text)} is not an HH:MM time of day")
    hour = int(match[1])
    return dt.time(0, 0) if hour == 24 else dt.time(hour, int(match[2]))


def _days(field: str, days: Iterable[queue_pb2.DayHours]) -> dict[int, tuple[m.TimeRange, ...]]:
    out: dict[int, tuple[m.TimeRange, ...]] = {}
    for i, day in enumerate(days):
        if not 1 <= day.day <= 7:
            raise BadValue(f"{field}[{i}].day", "a day of the week is required")
        ranges = tuple(
            m.TimeRange(
                _time_of_day(f"{field}[{i}].ranges[{j}].start", r.start),
                _time_of_day(f"{field}[{i}].ranges[{j}].end", r.end),
            )
            for j, r in enumerate(day.ranges)
        )
        out[day.day - 1] = out.get(day.day - 1, ()) + ranges
    return out


def hours_from_proto(hours: queue_pb2.BusinessHours) -> m.BusinessHours:
    field = "queue.business_hours"
    holidays = set()
    for i, text in enumerate(hours.holidays):
        try:
            holidays.add(dt.date.fromisoformat(text))
        except ValueError:
            raise BadValue(f"{field}.holidays[{i}]", f"{shown(text)} is not YYYY-MM-DD") from None
    return m.BusinessHours(
        hours.time_zone or "UTC",
        _days(f"{field}.weekly", hours.weekly),
        _days(f"{field}.breaks", hours.breaks),
        frozenset(holidays),
    )


def _hhmm(value: dt.time) -> str:
    return f"{value.hour:02d}:{value.minute:02d}"


def _days_to_proto(table: Mapping[int, tuple[m.TimeRange, ...]]) -> list[queue_pb2.DayHours]:
    return [
        queue_pb2.DayHours(
            day=day + 1,  # type: ignore[arg-type]
            ranges=[queue_pb2.TimeRange(start=_hhmm(r.start), end=_hhmm(r.end)) for r in ranges],
        )
        for day, ranges in sorted(table.items())
    ]


def hours_to_proto(hours: m.BusinessHours) -> queue_pb2.BusinessHours:
    return queue_pb2.BusinessHours(
        time_zone=hours.timezone,
        weekly=_days_to_proto(hours.weekly),
        breaks=_days_to_proto(hours.breaks),
        holidays=sorted(d.isoformat() for d in hours.holidays),
    )


def queue_from_proto(queue_id: str, q: queue_pb2.Queue) -> m.QueueSettings:
    if q.strategy not in (0, *STRATEGY_OF):
        raise BadValue("queue.strategy", f"unknown strategy {q.strategy}")
    return m.QueueSettings(
        queue_id=queue_id,
        name=q.display_name,
        requirements=tuple(
            m.SkillRequirement(
                parse_name(f"queue.requirements[{i}].skill", r.skill, "skills"), r.min_level or 1
            )
            for i, r in enumerate(q.requirements)
        ),
        priority=q.priority,
        strategy=STRATEGY_OF.get(q.strategy, m.Strategy.LONGEST_IDLE),
        offer_timeout=seconds(q.offer_timeout) if q.HasField("offer_timeout") else 30.0,
        relaxation=tuple(
            m.RelaxationStep(seconds(s.after), s.level_drop, s.any_agent)
            for s in q.relaxation_steps
        ),
        max_wait=seconds(q.max_wait) if q.HasField("max_wait") else None,
        overflow_queue=(
            parse_name("queue.overflow_queue", q.overflow_queue, "queues")
            if q.overflow_queue
            else None
        ),
        hours=hours_from_proto(q.business_hours) if q.HasField("business_hours") else None,
        route_out_of_hours=q.route_out_of_hours,
        designated_agents=frozenset(
            parse_name(f"queue.designated_agents[{i}]", a, "agents")
            for i, a in enumerate(q.designated_agents)
        ),
        designated_departments=frozenset(
            parse_name(f"queue.designated_departments[{i}]", d, "departments")
            for i, d in enumerate(q.designated_departments)
        ),
        sticky_window=seconds(q.sticky_window) if q.HasField("sticky_window") else None,
        sticky_timeout=seconds(q.sticky_timeout) if q.HasField("sticky_timeout") else 30.0,
        relax_when_none_online=q.relax_when_none_online,
        service_level_seconds=(
            seconds(q.service_level_threshold) if q.HasField("service_level_threshold") else 20.0
        ),
    )


def queue_to_proto(s: m.QueueSettings, updated_at: dt.datetime | None = None) -> queue_pb2.Queue:
    return queue_pb2.Queue(
        name=f"queues/{s.queue_id}",
        display_name=s.name,
        requirements=[
            queue_pb2.SkillRequirement(skill=f"skills/{r.skill}", min_level=r.min_level)
            for r in s.requirements
        ],
        priority=s.priority,
        strategy=STRATEGIES[s.strategy],
        offer_timeout=duration(s.offer_timeout),
        relaxation_steps=[
            queue_pb2.RelaxationStep(
                after=duration(r.after_seconds), level_drop=r.level_drop, any_agent=r.any_agent
            )
            for r in s.relaxation
        ],
        max_wait=None if s.max_wait is None else duration(s.max_wait),
        overflow_queue=f"queues/{s.overflow_queue}" if s.overflow_queue else "",
        business_hours=None if s.hours is None else hours_to_proto(s.hours),
        route_out_of_hours=s.route_out_of_hours,
        designated_agents=[f"agents/{a}" for a in sorted(s.designated_agents)],
        designated_departments=[f"departments/{d}" for d in sorted(s.designated_departments)],
        sticky_window=None if s.sticky_window is None else duration(s.sticky_window),
        sticky_timeout=duration(s.sticky_timeout),
        relax_when_none_online=s.relax_when_none_online,
        service_level_threshold=duration(s.service_level_seconds),
        update_time=timestamp(updated_at),
    )


# --- tenant settings ---------------------------------------------------------------------------

KINDS: Mapping[m.SystemMessage, conversation_pb2.SystemMessageKind.ValueType] = {
    kind: conversation_pb2.SystemMessageKind.Value(f"SYSTEM_MESSAGE_KIND_{kind.name}")
    for kind in m.SystemMessage
}
KIND_OF = {v: k for k, v in KINDS.items()}
SIGN_OUT_POLICIES: Mapping[m.SignOutPolicy, tenant_pb2.SignOutPolicy.ValueType] = {
    m.SignOutPolicy.REFUSE: tenant_pb2.SIGN_OUT_POLICY_REFUSE,
    m.SignOutPolicy.REQUEUE: tenant_pb2.SIGN_OUT_POLICY_REQUEUE,
}
SIGN_OUT_POLICY_OF = {
    tenant_pb2.SIGN_OUT_POLICY_UNSPECIFIED: m.SignOutPolicy.REFUSE,
    **{v: k for k, v in SIGN_OUT_POLICIES.items()},
}


def _optional(message: tenant_pb2.TenantSettings, field: str) -> float | None:
    return seconds(getattr(message, field)) if message.HasField(field) else None  # type: ignore[arg-type]


def settings_from_proto(s: tenant_pb2.TenantSettings) -> m.TenantSettings:
    texts: dict[str, dict[m.SystemMessage, str]] = {}
    for i, t in enumerate(s.system_messages):
        if t.kind not in KIND_OF:
            raise BadValue(f"settings.system_messages[{i}].kind", "a message kind is required")
        if not t.language:
            raise BadValue(f"settings.system_messages[{i}].language", "a language is required")
        texts.setdefault(t.language, {})[KIND_OF[t.kind]] = t.text
    statuses = []
    for i, cs in enumerate(s.custom_statuses):
        if cs.base not in STATUS_OF:
            raise BadValue(f"settings.custom_statuses[{i}].base", "a base status is required")
        statuses.append(m.CustomStatus(cs.name, STATUS_OF[cs.base], cs.auto_reply))
    if s.sign_out_with_conversations not in SIGN_OUT_POLICY_OF:
        raise BadValue("settings.sign_out_with_conversations", "unknown sign-out policy")
    if s.time_zone and not valid_zone(s.time_zone):
        raise BadValue("settings.time_zone", "unknown time zone")

    def given(field: str, default: float) -> float:
        value = _optional(s, field)
        return default if value is None else value

    return m.TenantSettings(
        channel_weights=dict(s.channel_weights),
        exclusive_channels=frozenset(s.exclusive_channels),
        head_start_seconds=given("head_start", 60.0),
        misses_before_away=s.misses_before_away,
        transfer_timeout=given("transfer_timeout", 60.0),
        customer_idle_remind=_optional(s, "customer_idle_remind"),
        customer_idle_close=_optional(s, "customer_idle_close"),
        agent_idle_notify=_optional(s, "agent_idle_notify"),
        agent_idle_requeue=s.agent_idle_requeue,
        agent_idle_tell_customer=s.agent_idle_tell_customer,
        sign_out_with_conversations=SIGN_OUT_POLICY_OF[s.sign_out_with_conversations],
        wrap_up_seconds=given("wrap_up", 0.0),
        default_queue=(
            parse_name("settings.default_queue", s.default_queue, "queues")
            if s.default_queue
            else None
        ),
        region_queues={
            region: parse_name(f"settings.region_queues[{region}]", q, "queues")
            for region, q in s.region_queues.items()
        },
        custom_statuses=tuple(statuses),
        default_language=s.default_language or "en",
        texts=texts,
        closed_retention_seconds=given("closed_retention", 300.0),
        assumed_handle_seconds=given("assumed_handle_time", 180.0),
        agents_see_team_conversations=s.agents_see_team_conversations,
        time_zone=s.time_zone,
    )


def settings_to_proto(s: m.TenantSettings) -> tenant_pb2.TenantSettings:
    def maybe(value: float | None) -> duration_pb2.Duration | None:
        return None if value is None else duration(value)

    return tenant_pb2.TenantSettings(
        name="settings",
        channel_weights=dict(s.channel_weights),
        exclusive_channels=sorted(s.exclusive_channels),
        head_start=duration(s.head_start_seconds),
        misses_before_away=s.misses_before_away,
        transfer_timeout=duration(s.transfer_timeout),
        customer_idle_remind=maybe(s.customer_idle_remind),
        customer_idle_close=maybe(s.customer_idle_close),
        agent_idle_notify=maybe(s.agent_idle_notify),
        agent_idle_requeue=s.agent_idle_requeue,
        agent_idle_tell_customer=s.agent_idle_tell_customer,
        sign_out_with_conversations=SIGN_OUT_POLICIES[s.sign_out_with_conversations],
        wrap_up=duration(s.wrap_up_seconds) if s.wrap_up_seconds else None,
        default_queue=f"queues/{s.default_queue}" if s.default_queue else "",
        region_queues={r: f"queues/{q}" for r, q in s.region_queues.items()},
        custom_statuses=[
            tenant_pb2.CustomStatus(name=c.name, base=STATUSES[c.base], auto_reply=c.auto_reply)
            for c in s.custom_statuses
        ],
        default_language=s.default_language,
        system_messages=[
            tenant_pb2.SystemMessageText(language=lang, kind=KINDS[kind], text=text)
            for lang, kinds in sorted(s.texts.items())
            for kind, text in sorted(kinds.items())
        ],
        closed_retention=duration(s.closed_retention_seconds),
        assumed_handle_time=duration(s.assumed_handle_seconds),
        agents_see_team_conversations=s.agents_see_team_conversations,
        time_zone=s.time_zone,
    )


# --- credentials -------------------------------------------------------------------------------

ROLES: Mapping[str, credential_pb2.Role.ValueType] = {
    "gateway": credential_pb2.ROLE_GATEWAY,
    "agent": credential_pb2.ROLE_AGENT,
    "supervisor": credential_pb2.ROLE_SUPERVISOR,
    "admin": credential_pb2.ROLE_ADMIN,
}
ROLE_OF = {v: k for k, v in ROLES.items()}


def credential_to_proto(
    credential_id: str,
    role: str,
    agent_id: str | None,
    created_at: dt.datetime | None = None,
    revoked_at: dt.datetime | None = None,
) -> credential_pb2.Credential:
    """The credential as the API shows it (``display_name`` is not stored and reads empty)."""
    return credential_pb2.Credential(
        name=f"credentials/{credential_id}",
        role=ROLES[role],
        agent=f"agents/{agent_id}" if agent_id else "",
        create_time=timestamp(created_at),
        revoke_time=timestamp(revoked_at),
    )


CHANNEL_TYPES: Mapping[str, channel_pb2.ChannelType.ValueType] = {
    "web_chat": channel_pb2.CHANNEL_TYPE_WEB_CHAT,
    "whatsapp": channel_pb2.CHANNEL_TYPE_WHATSAPP,
    "line": channel_pb2.CHANNEL_TYPE_LINE,
    "sms": channel_pb2.CHANNEL_TYPE_SMS,
    "email": channel_pb2.CHANNEL_TYPE_EMAIL,
}
CHANNEL_TYPE_OF = {number: name for name, number in CHANNEL_TYPES.items()}


def channel_type(field: str, value: channel_pb2.ChannelType.ValueType) -> str:
    """The stored name of a channel type; ``BadValue`` when unspecified or unknown."""
    if value not in CHANNEL_TYPE_OF:
        raise BadValue(field, "a channel needs a type")
    return CHANNEL_TYPE_OF[value]


def channel_from_proto(channel_id: str, ch: channel_pb2.Channel) -> Channel:
    return Channel(
        channel_id,
        channel_type("channel.type", ch.type),
        ch.display_name,
        dict(ch.settings),
        dict(ch.secrets),
    )


def channel_to_proto(ch: Channel) -> channel_pb2.Channel:
    return channel_pb2.Channel(
        name=f"channels/{ch.channel_id}",
        type=CHANNEL_TYPES[ch.type],
        display_name=ch.display_name,
        settings=dict(ch.settings),
        secrets=dict(ch.secrets),
        create_time=timestamp(ch.created_at),
        update_time=timestamp(ch.updated_at),
    )
