"""Tenant administration: settings, skills, departments, agents' profiles and queues."""

from __future__ import annotations

from core.routing import commands as c
from core.routing import events as ev
from core.routing.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from core.routing.hours import next_change, status_at, validate_hours, validate_zone
from core.routing.model import AgentStatus
from core.routing.router_parts.base import RouterBase
from core.routing.router_parts.plans import queue_plan
from core.routing.state import (
    UNIT,
    Agent,
    QueueRuntime,
    to_units,
)
from core.routing.timers import TimerKind


class ConfigMixin(RouterBase):
    """Tenant administration: settings, skills, departments, agents' profiles and queues."""

    def _configure_tenant(self, cmd: c.ConfigureTenant) -> None:
        s = cmd.settings
        if any(w <= 0 for w in s.channel_weights.values()):
            raise InvalidArgument("channel weights must be positive")
        if s.misses_before_away < 0:
            raise InvalidArgument("misses_before_away must be >= 0")
        if s.head_start_seconds < 0 or s.wrap_up_seconds < 0 or s.transfer_timeout <= 0:
            raise InvalidArgument("head start and wrap-up must be >= 0, transfer timeout > 0")
        for name in ("customer_idle_remind", "customer_idle_close", "agent_idle_notify"):
            value = getattr(s, name)
            if value is not None and value <= 0:
                raise InvalidArgument(f"{name} must be positive when set")
        names = [cs.name for cs in s.custom_statuses]
        if len(names) != len(set(names)) or any(not n for n in names):
            raise InvalidArgument("custom status names must be unique and non-empty")
        if s.time_zone:
            validate_zone(s.time_zone)
        self._emit(ev.TenantConfigured(tenant=self.tenant, at=self.clock.now(), settings=s))

    def _define_skill(self, cmd: c.DefineSkill) -> None:
        if not cmd.skill:
            raise InvalidArgument("a skill needs a name")
        self._emit(ev.SkillDefined(tenant=self.tenant, at=self.clock.now(), skill=cmd.skill))

    def _define_department(self, cmd: c.DefineDepartment) -> None:
        if not cmd.department:
            raise InvalidArgument("a department needs an id")
        self._emit(
            ev.DepartmentDefined(
                tenant=self.tenant, at=self.clock.now(), department=cmd.department, name=cmd.name
            )
        )

    def _remove_skill(self, cmd: c.RemoveSkill) -> None:
        if cmd.skill not in self.skills:
            raise NotFound(f"unknown skill {cmd.skill!r}", skill=cmd.skill)
        holders = sorted(a.agent_id for a in self.agents.values() if cmd.skill in a.profile.skills)
        queues = sorted(
            q.settings.queue_id
            for q in self.queues.values()
            if any(r.skill == cmd.skill for r in q.settings.requirements)
        )
        if holders or queues:
            raise FailedPrecondition(
                f"skill {cmd.skill!r} is in use", agents=",".join(holders), queues=",".join(queues)
            )
        self._emit(ev.SkillRemoved(tenant=self.tenant, at=self.clock.now(), skill=cmd.skill))

    def _remove_department(self, cmd: c.RemoveDepartment) -> None:
        department = cmd.department
        if department not in self.departments:
            raise NotFound(f"unknown department {department!r}", department=department)
        members = sorted(
            a.agent_id for a in self.agents.values() if department in a.profile.departments
        )
        queues = sorted(
            q.settings.queue_id
            for q in self.queues.values()
            if department in q.settings.designated_departments
        )
        if members or queues:
            raise FailedPrecondition(
                f"department {department!r} is in use",
                agents=",".join(members),
                queues=",".join(queues),
            )
        self._emit(
            ev.DepartmentRemoved(tenant=self.tenant, at=self.clock.now(), department=department)
        )

    def _remove_queue(self, cmd: c.RemoveQueue) -> None:
        queue_id = self._queue(cmd.queue_id).settings.queue_id
        s = self.settings
        if s.default_queue == queue_id or queue_id in s.region_queues.values():
            raise FailedPrecondition(
                f"queue {queue_id!r} is the tenant's default or a region's queue"
            )
        overflowing = sorted(
            q.settings.queue_id
            for q in self.queues.values()
            if q.settings.overflow_queue == queue_id
        )
        if overflowing:
            raise FailedPrecondition(
                f"queues overflow into {queue_id!r}", queues=",".join(overflowing)
            )
        if any(
            conv.queue_id == queue_id and not conv.state.is_terminal
            for conv in self.conversations.values()
        ):
            raise FailedPrecondition(f"queue {queue_id!r} has conversations that are not over")
        self._emit(ev.QueueRemoved(tenant=self.tenant, at=self.clock.now(), queue_id=queue_id))

    def _configure_agent(self, cmd: c.ConfigureAgent) -> None:
        p = cmd.profile
        if not p.agent_id:
            raise InvalidArgument("an agent needs an id")
        if p.capacity <= 0 or to_units(p.capacity) <= 0:
            raise InvalidArgument(f"capacity must be positive, got {p.capacity}")
        self._validate_levels(p.skills.items(), f"agent {p.agent_id!r}")
        for department in p.departments:
            if department not in self.departments:
                raise NotFound(f"unknown department {department!r}", department=department)
        existing = self.agents.get(p.agent_id)
        if existing is not None and existing.load - existing.override > to_units(p.capacity):
            raise FailedPrecondition(
                f"agent {p.agent_id!r} holds {existing.load / UNIT:g} units; "
                f"capacity {p.capacity:g} is too small until some are released"
            )
        skilled_in = self._presence_queues(existing) if existing is not None else []
        self._emit(ev.AgentConfigured(tenant=self.tenant, at=self.clock.now(), profile=p))
        self._relax_stranded(skilled_in)
        self._pull(self.agents[p.agent_id])

    def _remove_agent(self, cmd: c.RemoveAgent) -> None:
        agent = self._agent(cmd.agent_id)
        if agent.status is not AgentStatus.OFFLINE or agent.load or agent.conversations:
            raise FailedPrecondition(
                f"agent {cmd.agent_id!r} must be signed out and hold nothing to be removed"
            )
        self._emit(
            ev.AgentRemoved(tenant=self.tenant, at=self.clock.now(), agent_id=agent.agent_id)
        )

    def _configure_queue(self, cmd: c.ConfigureQueue) -> None:
        s = cmd.settings
        if not s.queue_id:
            raise InvalidArgument("a queue needs an id")
        self._validate_levels(
            [(r.skill, r.min_level) for r in s.requirements], f"queue {s.queue_id!r}"
        )
        if s.offer_timeout <= 0:
            raise InvalidArgument("offer_timeout must be positive")
        if s.max_wait is not None and s.max_wait <= 0:
            raise InvalidArgument("max_wait must be positive when set")
        if s.sticky_window is not None and (s.sticky_window <= 0 or s.sticky_timeout <= 0):
            raise InvalidArgument("sticky window and timeout must be positive")
        previous = 0.0
        for step in s.relaxation:
            if step.after_seconds <= previous or step.level_drop < 0:
                raise InvalidArgument(
                    "relaxation steps need increasing positive times and level drops >= 0"
                )
            previous = step.after_seconds
        if s.overflow_queue is not None:
            if s.overflow_queue == s.queue_id:
                raise InvalidArgument("a queue cannot overflow into itself")
            self._queue(s.overflow_queue)
        for department in s.designated_departments:
            if department not in self.departments:
                raise NotFound(f"unknown department {department!r}", department=department)
        for agent_id in s.designated_agents:
            self._agent(agent_id)
        if s.hours is not None:
            validate_hours(s.hours)
        self._emit(ev.QueueConfigured(tenant=self.tenant, at=self.clock.now(), settings=s))
        self._release_held(self.queues[s.queue_id])
        self._relax_stranded([s.queue_id])

    def _on_tenant_configured(self, e: ev.TenantConfigured) -> None:
        self.settings = e.settings

    def _on_skill_defined(self, e: ev.SkillDefined) -> None:
        self.skills.add(e.skill)

    def _on_department_defined(self, e: ev.DepartmentDefined) -> None:
        self.departments[e.department] = e.name

    def _on_skill_removed(self, e: ev.SkillRemoved) -> None:
        self.skills.discard(e.skill)

    def _on_department_removed(self, e: ev.DepartmentRemoved) -> None:
        del self.departments[e.department]

    def _on_queue_removed(self, e: ev.QueueRemoved) -> None:
        queue = self.queues.pop(e.queue_id)
        for key in set(queue.plan):
            self._unref(key)
        horizons = [q.settings.sticky_window or 0.0 for q in self.queues.values()]
        self._sticky_horizon = max(horizons, default=0.0)

    def _on_agent_configured(self, e: ev.AgentConfigured) -> None:
        agent = self.agents.get(e.profile.agent_id)
        if agent is None:
            agent = Agent(e.profile, self._next("agent"), e.at)
            self.agents[agent.agent_id] = agent
        agent.reconfigure(e.profile)
        for group in self.groups.values():
            admitted = group.key.admits(e.profile)
            if admitted and agent.agent_id not in group.members:
                group.add_member(agent)
                agent.groups.append(group)
            elif not admitted and agent.agent_id in group.members:
                group.remove_member(agent)
                agent.groups.remove(group)
        self._reindex(agent)

    def _on_agent_removed(self, e: ev.AgentRemoved) -> None:
        agent = self.agents.pop(e.agent_id)
        for group in agent.groups:
            group.remove_member(agent)
        agent.groups.clear()
        agent.version += 1

    def _on_queue_configured(self, e: ev.QueueConfigured) -> None:
        plan, offsets = queue_plan(e.settings)
        queue = self.queues.get(e.settings.queue_id)
        if queue is None:
            queue = QueueRuntime(e.settings, plan, offsets, self.settings.assumed_handle_seconds)
            self.queues[e.settings.queue_id] = queue
        else:
            for key in set(queue.plan):
                self._unref(key)
            queue.settings, queue.plan, queue.offsets = e.settings, plan, offsets
        for key in set(plan):
            self._ref(key)
        self._sticky_horizon = max(q.settings.sticky_window or 0.0 for q in self.queues.values())
        queue.hours_status = status_at(e.settings.hours, e.at)
        self._arm_hours(queue, e.at)

    def _arm_hours(self, queue: QueueRuntime, at: float) -> None:
        queue.hours_deadline = next_change(queue.settings.hours, at)
        if queue.hours_deadline is not None:
            self._arm(TimerKind.HOURS, queue.settings.queue_id, queue.hours_deadline)

    def _on_queue_hours_changed(self, e: ev.QueueHoursChanged) -> None:
        queue = self.queues[e.queue_id]
        queue.hours_status = e.status
        self._arm_hours(queue, e.at)
