"""Queue plans: the eligibility group of each relaxation step of a queue."""

from __future__ import annotations

from core.routing.model import (
    MIN_SKILL_LEVEL,
    QueueSettings,
)
from core.routing.pools import GroupKey
from core.routing.state import QueueRuntime


def queue_plan(s: QueueSettings) -> tuple[tuple[GroupKey, ...], tuple[float, ...]]:
    """A queue's eligibility group per step: its requirements and designations, then each
    relaxation step (lowered levels, or any agent of the tenant)."""
    requirements = frozenset((r.skill, r.min_level) for r in s.requirements)
    agents = s.designated_agents or None
    departments = s.designated_departments or None
    steps: list[tuple[float, GroupKey]] = [(0.0, GroupKey(requirements, agents, departments))]
    for step in s.relaxation:
        if step.any_agent:
            key = GroupKey()
        else:
            lowered = frozenset(
                (skill, max(MIN_SKILL_LEVEL, level - step.level_drop))
                for skill, level in requirements
            )
            key = GroupKey(lowered, agents, departments)
        steps.append((step.after_seconds, key))
    return _squash(steps)


def relaxed_key(s: QueueSettings) -> GroupKey:
    """The group of the relaxed skill mode by presence: the queue's designations, no skills."""
    return GroupKey(
        agents=s.designated_agents or None, departments=s.designated_departments or None
    )


def eligibility_keys(s: QueueSettings) -> tuple[GroupKey, ...]:
    """Every group a queue's conversations may be offered to: its timed steps, and the relaxed
    group by presence when the queue has that option."""
    keys, _ = queue_plan(s)
    return (*keys, relaxed_key(s)) if s.relax_when_none_online else keys


def _steps(queue: QueueRuntime) -> list[tuple[float, GroupKey]]:
    return list(zip(queue.offsets, queue.plan, strict=True))


def _squash(
    steps: list[tuple[float, GroupKey]],
) -> tuple[tuple[GroupKey, ...], tuple[float, ...]]:
    """Drop steps that change nothing; a step starting no later than the one before replaces it."""
    plan: list[GroupKey] = []
    offsets: list[float] = []
    for offset, key in steps:
        if plan and plan[-1] == key:
            continue
        if offsets and offset <= offsets[-1]:
            plan[-1] = key
            continue
        plan.append(key)
        offsets.append(offset)
    return tuple(plan), tuple(offsets)
