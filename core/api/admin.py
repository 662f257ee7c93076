"""AdminService: the caller's tenant's agents, queues, skills, departments, settings, credentials.

Writes go through the engine (``ctx.submit``), which validates them whole and changes nothing
when it refuses; reads come from the record tables, which are current because ``submit``
returns after its events (and their rows) committed. Before the first write of a tenant whose
routing state was never configured, the servicer configures it with the default settings.

Deleting a skill, department or queue still in use answers FAILED_PRECONDITION naming the users.
A skill's display name is not routing state: the engine defines and removes skills (the
projection writes their rows), and this servicer writes the display name alone, through
``AdminStore.name_skill``, after the skill's definition committed (so one writer per column).
Credentials, agents' console passwords (``core.api.agent_passwords``) and channels are written
to the store directly (they are not routing state);
channel secrets are never read back through this service (``Channel.blanked``). The servicer
holds no SQL: it authenticates, validates, submits and translates; ``core.store.admin`` reads.
Every method is ``guarded``: a refusal from below ends the call with its status, anything else
with INTERNAL.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn, TypeVar

import asyncpg
import structlog
from google.protobuf import field_mask_pb2, message
from usher.v1 import admin_service_pb2 as pb
from usher.v1 import admin_service_pb2_grpc as pb_grpc
from usher.v1 import agent_pb2, queue_pb2, tenant_pb2

from core.api.admin_values import (
    ROLE_OF,
    BadValue,
    agent_to_proto,
    channel_from_proto,
    channel_to_proto,
    check_id,
    credential_to_proto,
    parse_name,
    profile_from_proto,
    queue_from_proto,
    queue_to_proto,
    settings_from_proto,
    settings_to_proto,
)
from core.api.agent_passwords import set_agent_password
from core.api.auth import caller
from core.api.context import ApiContext
from core.api.convert import guarded, timestamp
from core.api.errors import abort, fail_from, resource, shown
from core.routing import commands as c
from core.routing import model as m
from core.store import credentials
from core.store.admin import (
    AdminStore,
    StoredAgent,
    StoredCredential,
    StoredDepartment,
    StoredQueue,
    StoredSkill,
)
from core.store.channels import Channels
from core.store.errors import InvalidInput
from core.store.passwords import Passwords
from core.store.sessions import Sessions

log = structlog.get_logger(__name__)

Ctx = Any  # grpc.aio.ServicerContext
T = TypeVar("T")
Msg = TypeVar("Msg", bound=message.Message)

DEFAULT_PAGE = 100
MAX_PAGE = 500

AGENT_FIELDS = ("display_name", "skills", "capacity", "departments")
CHANNEL_FIELDS = ("display_name", "settings", "secrets")
QUEUE_FIELDS = tuple(
    f.name
    for f in queue_pb2.Queue.DESCRIPTOR.fields
    if f.name not in ("name", "create_time", "update_time")
)
DEPARTMENT_FIELDS = ("display_name",)
SKILL_FIELDS = ("display_name",)
SETTINGS_FIELDS = tuple(
    f.name
    for f in tenant_pb2.TenantSettings.DESCRIPTOR.fields
    if f.name not in ("name", "update_time")
)


# --- paging ------------------------------------------------------------------------------------


async def page_size(context: Ctx, size: int) -> int:
    if size == 0:
        return DEFAULT_PAGE
    if not 1 <= size <= MAX_PAGE:
        await abort(
            context,
            "INVALID_ARGUMENT",
            f"page_size must be 1 to {MAX_PAGE} (0: {DEFAULT_PAGE})",
            violations={"page_size": f"{size} is outside 0..{MAX_PAGE}"},
        )
    return size


def encode_token(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode()


async def decode_token(context: Ctx, token: str) -> str:
    """The key after which the page starts ('' for the first page)."""
    if not token:
        return ""
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        await abort(
            context,
            "INVALID_ARGUMENT",
            "page_token is not one this server issued",
            violations={"page_token": "malformed"},
        )


# --- field masks -------------------------------------------------------------------------------


async def merged(
    context: Ctx,
    current: Msg,
    patch: Msg,
    mask: field_mask_pb2.FieldMask,
    writable: Sequence[str],
) -> Msg:
    """``current`` with the fields of ``patch`` named in ``mask`` (``*`` or empty: every
    ``writable`` field); repeated fields, maps and messages are replaced whole."""
    paths = list(mask.paths)
    if not paths or paths == ["*"]:
        paths = list(writable)
    for path in paths:
        if path.split(".")[0] not in writable:
            await abort(
                context,
                "INVALID_ARGUMENT",
                f"update_mask names {shown(path)}, which cannot be written",
                violations={"update_mask": f"{shown(path)} is not one of {', '.join(writable)}"},
            )
    out = type(current)()
    out.CopyFrom(current)
    field_mask_pb2.FieldMask(paths=paths).MergeMessage(
        patch, out, replace_message_field=True, replace_repeated_field=True
    )
    return out


class AdminServicer(pb_grpc.AdminServiceServicer):
    """See the module docstring."""

    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx
        self._configured: set[str] = set()
        self._channels = Channels(ctx.pool)
        self._store = AdminStore(ctx.pool)
        self._passwords = Passwords(ctx.pool)

    @property
    def _pool(self) -> asyncpg.Pool:
        return self.ctx.pool

    # --- shared steps ------------------------------------------------------------------------

    async def _submit(self, context: Ctx, command: c.Command) -> None:
        """Run ``command``; abort with its failure if refused."""
        await self._ensure_tenant(context, command.tenant)
        outcome = await self.ctx.submit(command)
        if outcome.failure is not None:
            await fail_from(context, outcome.failure)

    async def _ensure_tenant(self, context: Ctx, tenant: str) -> None:
        if tenant in self._configured:
            return
        if await self._store.tenant_settings(tenant) is None:
            outcome = await self.ctx.submit(c.ConfigureTenant(tenant=tenant))
            if outcome.failure is not None:
                await fail_from(context, outcome.failure)
        self._configured.add(tenant)

    async def _value(self, context: Ctx, build: Callable[[], T]) -> T:
        """``build()``, turning a ``BadValue`` into INVALID_ARGUMENT with a BadRequest."""
        try:
            return build()
        except BadValue as exc:
            await abort(
                context, "INVALID_ARGUMENT", exc.message, violations={exc.field: exc.message}
            )

    async def _name(self, context: Ctx, field: str, name: str, collection: str) -> str:
        return await self._value(context, lambda: parse_name(field, name, collection))

    async def _new_id(self, context: Ctx, field: str, value: str) -> str:
        return await self._value(context, lambda: check_id(field, value))

    @staticmethod
    async def _not_found(context: Ctx, what: str, name: str) -> NoReturn:
        """NOT_FOUND for ``name`` (``agents/ann``), a resource of kind ``what`` (``agent``)."""
        await abort(
            context, "NOT_FOUND", f"{what} {name!r} not found", details=resource(what, name)
        )

    @staticmethod
    async def _exists(context: Ctx, what: str, name: str) -> NoReturn:
        await abort(
            context,
            "ALREADY_EXISTS",
            f"{what} {name!r} already exists",
            details=resource(what, name),
        )

    # --- agents --------------------------------------------------------------------------------

    @staticmethod
    def _agent(found: StoredAgent, loads: Mapping[str, float]) -> agent_pb2.Agent:
        return agent_to_proto(
            found.profile,
            found.status,
            found.custom_status,
            found.updated_at,
            loads.get(found.profile.agent_id, 0.0),
        )

    async def _loads(self, tenant: str) -> Mapping[str, float]:
        """Each agent's load now, from the shard that owns the tenant ({} when unknown)."""
        if self.ctx.live is None:
            return {}
        try:
            live = await self.ctx.live(tenant)
        except Exception as exc:  # the shard is restarting: show the records without load
            log.warning("live figures unavailable", tenant=tenant, error=repr(exc))
            return {}
        return {a.agent_id: a.load for a in live.agents}

    async def _load_agent(self, context: Ctx, tenant: str, agent_id: str) -> agent_pb2.Agent:
        found = await self._store.agent(tenant, agent_id)
        if found is None:
            await self._not_found(context, "agent", f"agents/{agent_id}")
        return self._agent(found, await self._loads(tenant))

    @guarded
    async def GetAgent(self, request: pb.GetAgentRequest, context: Ctx) -> pb.GetAgentResponse:
        agent_id = await self._name(context, "name", request.name, "agents")
        return pb.GetAgentResponse(
            agent=await self._load_agent(context, caller(context).tenant, agent_id)
        )

    @guarded
    async def ListAgents(
        self, request: pb.ListAgentsRequest, context: Ctx
    ) -> pb.ListAgentsResponse:
        size = await page_size(context, request.page_size)
        after = await decode_token(context, request.page_token)
        tenant = caller(context).tenant
        found = await self._store.agents(tenant, after, size + 1)
        more = len(found) > size
        found = found[:size]
        loads = await self._loads(tenant)
        return pb.ListAgentsResponse(
            agents=[self._agent(a, loads) for a in found],
            next_page_token=encode_token(found[-1].agent_id) if more else "",
        )

    @guarded
    async def CreateAgent(
        self, request: pb.CreateAgentRequest, context: Ctx
    ) -> pb.CreateAgentResponse:
        tenant = caller(context).tenant
        agent_id = await self._new_id(context, "agent_id", request.agent_id)
        profile = await self._value(context, lambda: profile_from_proto(agent_id, request.agent))
        if await self._store.agent(tenant, agent_id) is not None:
            await self._exists(context, "agent", f"agents/{agent_id}")
        await self._submit(context, c.ConfigureAgent(tenant=tenant, profile=profile))
        return pb.CreateAgentResponse(agent=await self._load_agent(context, tenant, agent_id))

    @guarded
    async def UpdateAgent(
        self, request: pb.UpdateAgentRequest, context: Ctx
    ) -> pb.UpdateAgentResponse:
        tenant = caller(context).tenant
        agent_id = await self._name(context, "agent.name", request.agent.name, "agents")
        current = await self._load_agent(context, tenant, agent_id)
        new = await merged(context, current, request.agent, request.update_mask, AGENT_FIELDS)
        profile = await self._value(context, lambda: profile_from_proto(agent_id, new))
        await self._submit(context, c.ConfigureAgent(tenant=tenant, profile=profile))
        return pb.UpdateAgentResponse(agent=await self._load_agent(context, tenant, agent_id))

    @guarded
    async def DeleteAgent(
        self, request: pb.DeleteAgentRequest, context: Ctx
    ) -> pb.DeleteAgentResponse:
        tenant = caller(context).tenant
        agent_id = await self._name(context, "name", request.name, "agents")
        await self._load_agent(context, tenant, agent_id)
        await self._submit(context, c.RemoveAgent(tenant=tenant, agent_id=agent_id))
        return pb.DeleteAgentResponse()

    # --- queues --------------------------------------------------------------------------------

    async def _load_queue(
        self, context: Ctx, tenant: str, queue_id: str, *, missing_ok: bool = False
    ) -> queue_pb2.Queue | None:
        found = await self._store.queue(tenant, queue_id)
        if found is None:
            if missing_ok:
                return None
            await self._not_found(context, "queue", f"queues/{queue_id}")
        return self._queue(found)

    @staticmethod
    def _queue(found: StoredQueue) -> queue_pb2.Queue:
        return queue_to_proto(found.settings, found.updated_at)

    async def _queue_or_abort(self, context: Ctx, tenant: str, queue_id: str) -> queue_pb2.Queue:
        found = await self._load_queue(context, tenant, queue_id)
        assert found is not None
        return found

    @guarded
    async def GetQueue(self, request: pb.GetQueueRequest, context: Ctx) -> pb.GetQueueResponse:
        queue_id = await self._name(context, "name", request.name, "queues")
        return pb.GetQueueResponse(
            queue=await self._queue_or_abort(context, caller(context).tenant, queue_id)
        )

    @guarded
    async def ListQueues(
        self, request: pb.ListQueuesRequest, context: Ctx
    ) -> pb.ListQueuesResponse:
        size = await page_size(context, request.page_size)
        after = await decode_token(context, request.page_token)
        found = await self._store.queues(caller(context).tenant, after, size + 1)
        more = len(found) > size
        found = found[:size]
        return pb.ListQueuesResponse(
            queues=[self._queue(q) for q in found],
            next_page_token=encode_token(found[-1].queue_id) if more else "",
        )

    @guarded
    async def CreateQueue(
        self, request: pb.CreateQueueRequest, context: Ctx
    ) -> pb.CreateQueueResponse:
        tenant = caller(context).tenant
        queue_id = await self._new_id(context, "queue_id", request.queue_id)
        settings = await self._value(context, lambda: queue_from_proto(queue_id, request.queue))
        if await self._load_queue(context, tenant, queue_id, missing_ok=True) is not None:
            await self._exists(context, "queue", f"queues/{queue_id}")
        await self._submit(context, c.ConfigureQueue(tenant=tenant, settings=settings))
        return pb.CreateQueueResponse(queue=await self._queue_or_abort(context, tenant, queue_id))

    @guarded
    async def UpdateQueue(
        self, request: pb.UpdateQueueRequest, context: Ctx
    ) -> pb.UpdateQueueResponse:
        tenant = caller(context).tenant
        queue_id = await self._name(context, "queue.name", request.queue.name, "queues")
        current = await self._queue_or_abort(context, tenant, queue_id)
        new = await merged(context, current, request.queue, request.update_mask, QUEUE_FIELDS)
        settings = await self._value(context, lambda: queue_from_proto(queue_id, new))
        await self._submit(context, c.ConfigureQueue(tenant=tenant, settings=settings))
        return pb.UpdateQueueResponse(queue=await self._queue_or_abort(context, tenant, queue_id))

    @guarded
    async def DeleteQueue(
        self, request: pb.DeleteQueueRequest, context: Ctx
    ) -> pb.DeleteQueueResponse:
        queue_id = await self._name(context, "name", request.name, "queues")
        tenant = caller(context).tenant
        await self._queue_or_abort(context, tenant, queue_id)
        await self._submit(context, c.RemoveQueue(tenant=tenant, queue_id=queue_id))
        return pb.DeleteQueueResponse()

    # --- skills --------------------------------------------------------------------------------

    async def _has_skill(self, tenant: str, skill: str) -> bool:
        return await self._store.has_skill(tenant, skill)

    @staticmethod
    def _skill(found: StoredSkill) -> tenant_pb2.Skill:
        """A skill as the API shows it: without a display name, its id stands for one."""
        return tenant_pb2.Skill(
            name=f"skills/{found.skill}",
            display_name=found.display_name or found.skill,
            create_time=timestamp(found.created_at),
        )

    async def _skill_or_abort(self, context: Ctx, tenant: str, skill: str) -> tenant_pb2.Skill:
        found = await self._store.skill(tenant, skill)
        if found is None:
            await self._not_found(context, "skill", f"skills/{skill}")
        return self._skill(found)

    async def _name_skill(self, context: Ctx, tenant: str, skill: str, display_name: str) -> None:
        if not await self._store.name_skill(tenant, skill, display_name):
            await self._not_found(context, "skill", f"skills/{skill}")  # deleted meanwhile

    @guarded
    async def GetSkill(self, request: pb.GetSkillRequest, context: Ctx) -> pb.GetSkillResponse:
        skill = await self._name(context, "name", request.name, "skills")
        return pb.GetSkillResponse(
            skill=await self._skill_or_abort(context, caller(context).tenant, skill)
        )

    @guarded
    async def ListSkills(
        self, request: pb.ListSkillsRequest, context: Ctx
    ) -> pb.ListSkillsResponse:
        size = await page_size(context, request.page_size)
        after = await decode_token(context, request.page_token)
        found = await self._store.skills(caller(context).tenant, after, size + 1)
        more = len(found) > size
        found = found[:size]
        return pb.ListSkillsResponse(
            skills=[self._skill(skill) for skill in found],
            next_page_token=encode_token(found[-1].skill) if more else "",
        )

    @guarded
    async def CreateSkill(
        self, request: pb.CreateSkillRequest, context: Ctx
    ) -> pb.CreateSkillResponse:
        tenant = caller(context).tenant
        skill = await self._new_id(context, "skill_id", request.skill_id)
        if await self._has_skill(tenant, skill):
            await self._exists(context, "skill", f"skills/{skill}")
        await self._submit(context, c.DefineSkill(tenant=tenant, skill=skill))
        if request.skill.display_name:
            await self._name_skill(context, tenant, skill, request.skill.display_name)
        return pb.CreateSkillResponse(skill=await self._skill_or_abort(context, tenant, skill))

    @guarded
    async def UpdateSkill(
        self, request: pb.UpdateSkillRequest, context: Ctx
    ) -> pb.UpdateSkillResponse:
        tenant = caller(context).tenant
        skill = await self._name(context, "skill.name", request.skill.name, "skills")
        found = await self._store.skill(tenant, skill)
        if found is None:
            await self._not_found(context, "skill", f"skills/{skill}")
        current = tenant_pb2.Skill(name=f"skills/{skill}", display_name=found.display_name)
        new = await merged(context, current, request.skill, request.update_mask, SKILL_FIELDS)
        await self._name_skill(context, tenant, skill, new.display_name)
        return pb.UpdateSkillResponse(skill=await self._skill_or_abort(context, tenant, skill))

    @guarded
    async def DeleteSkill(
        self, request: pb.DeleteSkillRequest, context: Ctx
    ) -> pb.DeleteSkillResponse:
        tenant = caller(context).tenant
        skill = await self._name(context, "name", request.name, "skills")
        if not await self._has_skill(tenant, skill):
            await self._not_found(context, "skill", request.name)
        await self._submit(context, c.RemoveSkill(tenant=tenant, skill=skill))
        return pb.DeleteSkillResponse()

    # --- departments ---------------------------------------------------------------------------

    @staticmethod
    def _department_proto(found: StoredDepartment) -> tenant_pb2.Department:
        return tenant_pb2.Department(
            name=f"departments/{found.department_id}",
            display_name=found.name,
            create_time=timestamp(found.created_at),
        )

    async def _department(self, tenant: str, department_id: str) -> tenant_pb2.Department | None:
        found = await self._store.department(tenant, department_id)
        return None if found is None else self._department_proto(found)

    async def _department_or_abort(
        self, context: Ctx, tenant: str, department_id: str
    ) -> tenant_pb2.Department:
        found = await self._department(tenant, department_id)
        if found is None:
            await self._not_found(context, "department", f"departments/{department_id}")
        return found

    @guarded
    async def GetDepartment(
        self, request: pb.GetDepartmentRequest, context: Ctx
    ) -> pb.GetDepartmentResponse:
        department_id = await self._name(context, "name", request.name, "departments")
        return pb.GetDepartmentResponse(
            department=await self._department_or_abort(
                context, caller(context).tenant, department_id
            )
        )

    @guarded
    async def ListDepartments(
        self, request: pb.ListDepartmentsRequest, context: Ctx
    ) -> pb.ListDepartmentsResponse:
        size = await page_size(context, request.page_size)
        after = await decode_token(context, request.page_token)
        found = await self._store.departments(caller(context).tenant, after, size + 1)
        more = len(found) > size
        found = found[:size]
        return pb.ListDepartmentsResponse(
            departments=[self._department_proto(d) for d in found],
            next_page_token=encode_token(found[-1].department_id) if more else "",
        )

    @guarded
    async def CreateDepartment(
        self, request: pb.CreateDepartmentRequest, context: Ctx
    ) -> pb.CreateDepartmentResponse:
        tenant = caller(context).tenant
        department_id = await self._new_id(context, "department_id", request.department_id)
        if await self._department(tenant, department_id) is not None:
            await self._exists(context, "department", f"departments/{department_id}")
        command = c.DefineDepartment(
            tenant=tenant, department=department_id, name=request.department.display_name
        )
        await self._submit(context, command)
        return pb.CreateDepartmentResponse(
            department=await self._department_or_abort(context, tenant, department_id)
        )

    @guarded
    async def UpdateDepartment(
        self, request: pb.UpdateDepartmentRequest, context: Ctx
    ) -> pb.UpdateDepartmentResponse:
        tenant = caller(context).tenant
        department_id = await self._name(
            context, "department.name", request.department.name, "departments"
        )
        current = await self._department_or_abort(context, tenant, department_id)
        new = await merged(
            context,
            current,
            request.department,
            request.update_mask,
            DEPARTMENT_FIELDS,
        )
        command = c.DefineDepartment(tenant=tenant, department=department_id, name=new.display_name)
        await self._submit(context, command)
        return pb.UpdateDepartmentResponse(
            department=await self._department_or_abort(context, tenant, department_id)
        )

    @guarded
    async def DeleteDepartment(
        self, request: pb.DeleteDepartmentRequest, context: Ctx
    ) -> pb.DeleteDepartmentResponse:
        department_id = await self._name(context, "name", request.name, "departments")
        tenant = caller(context).tenant
        await self._department_or_abort(context, tenant, department_id)
        await self._submit(context, c.RemoveDepartment(tenant=tenant, department=department_id))
        return pb.DeleteDepartmentResponse()

    # --- tenant settings -----------------------------------------------------------------------

    async def _settings(self, tenant: str) -> m.TenantSettings:
        found = await self._store.tenant_settings(tenant)
        return m.TenantSettings() if found is None else found

    @guarded
    async def GetTenantSettings(
        self, request: pb.GetTenantSettingsRequest, context: Ctx
    ) -> pb.GetTenantSettingsResponse:
        settings = await self._settings(caller(context).tenant)
        return pb.GetTenantSettingsResponse(settings=settings_to_proto(settings))

    @guarded
    async def UpdateTenantSettings(
        self, request: pb.UpdateTenantSettingsRequest, context: Ctx
    ) -> pb.UpdateTenantSettingsResponse:
        tenant = caller(context).tenant
        current = settings_to_proto(await self._settings(tenant))
        new = await merged(context, current, request.settings, request.update_mask, SETTINGS_FIELDS)
        settings = await self._value(context, lambda: settings_from_proto(new))
        await self._submit(context, c.ConfigureTenant(tenant=tenant, settings=settings))
        return pb.UpdateTenantSettingsResponse(
            settings=settings_to_proto(await self._settings(tenant))
        )

    # --- credentials ---------------------------------------------------------------------------

    @guarded
    async def CreateCredential(
        self, request: pb.CreateCredentialRequest, context: Ctx
    ) -> pb.CreateCredentialResponse:
        tenant = caller(context).tenant
        wanted = request.credential
        role = ROLE_OF.get(wanted.role)
        if role is None:
            await abort(
                context,
                "INVALID_ARGUMENT",
                "a credential needs a role",
                violations={"credential.role": "required"},
            )
        agent_id: str | None = None
        if wanted.agent:
            agent_id = await self._name(context, "credential.agent", wanted.agent, "agents")
        if (role == "agent") != (agent_id is not None):
            await abort(
                context,
                "INVALID_ARGUMENT",
                "an AGENT credential names its agent, and only it does",
                violations={"credential.agent": "required for ROLE_AGENT only"},
            )
        if agent_id is not None and await self._store.agent(tenant, agent_id) is None:
            await self._not_found(context, "agent", f"agents/{agent_id}")
        credential, token = await credentials.create(
            self._pool, tenant, role, agent_id, display_name=wanted.display_name
        )
        stored = await self._store.credential(tenant, credential.credential_id)
        assert stored is not None
        return pb.CreateCredentialResponse(credential=self._credential(stored), token=token)

    @staticmethod
    def _credential(found: StoredCredential) -> Any:
        out = credential_to_proto(
            found.credential_id, found.role, found.agent_id, found.created_at, found.revoked_at
        )
        out.display_name = found.display_name
        return out

    @guarded
    async def ListCredentials(
        self, request: pb.ListCredentialsRequest, context: Ctx
    ) -> pb.ListCredentialsResponse:
        size = await page_size(context, request.page_size)
        token = await decode_token(context, request.page_token)
        try:
            offset = int(token or "0")
        except ValueError:
            offset = -1
        if offset < 0:
            await abort(
                context,
                "INVALID_ARGUMENT",
                "page_token is not one this server issued",
                violations={"page_token": "malformed"},
            )
        found = await self._store.credentials(caller(context).tenant, offset, size + 1)
        more = len(found) > size
        return pb.ListCredentialsResponse(
            credentials=[self._credential(f) for f in found[:size]],
            next_page_token=encode_token(str(offset + size)) if more else "",
        )

    @guarded
    async def RevokeCredential(
        self, request: pb.RevokeCredentialRequest, context: Ctx
    ) -> pb.RevokeCredentialResponse:
        tenant = caller(context).tenant
        credential_id = await self._name(context, "name", request.name, "credentials")
        if await self._store.credential(tenant, credential_id) is None:
            await self._not_found(context, "credential", request.name)
        await credentials.revoke(self._pool, credential_id)
        revoked = await self._store.credential(tenant, credential_id)
        assert revoked is not None
        return pb.RevokeCredentialResponse(credential=self._credential(revoked))

    @guarded
    async def SetAgentPassword(
        self, request: pb.SetAgentPasswordRequest, context: Ctx
    ) -> pb.SetAgentPasswordResponse:
        """See ``core.api.agent_passwords``."""
        return await set_agent_password(
            self._store, self._passwords, Sessions(self._pool), caller(context).tenant, request
        )

    # --- channels ------------------------------------------------------------------------------

    async def _channel(self, context: Ctx, tenant: str, channel_id: str) -> Any:
        found = await self._channels.get(tenant, channel_id)
        if found is None:
            await self._not_found(context, "channel", f"channels/{channel_id}")
        return found

    @staticmethod
    async def _invalid(context: Ctx, exc: InvalidInput) -> NoReturn:
        await abort(context, "INVALID_ARGUMENT", str(exc), violations={"channel": str(exc)})

    @guarded
    async def GetChannel(
        self, request: pb.GetChannelRequest, context: Ctx
    ) -> pb.GetChannelResponse:
        channel_id = await self._name(context, "name", request.name, "channels")
        found = await self._channel(context, caller(context).tenant, channel_id)
        return pb.GetChannelResponse(channel=channel_to_proto(found.blanked()))

    @guarded
    async def ListChannels(
        self, request: pb.ListChannelsRequest, context: Ctx
    ) -> pb.ListChannelsResponse:
        size = await page_size(context, request.page_size)
        after = await decode_token(context, request.page_token)
        found = await self._channels.page(caller(context).tenant, after, size + 1)
        more = len(found) > size
        found = found[:size]
        return pb.ListChannelsResponse(
            channels=[channel_to_proto(ch.blanked()) for ch in found],
            next_page_token=encode_token(found[-1].channel_id) if more else "",
        )

    @guarded
    async def CreateChannel(
        self, request: pb.CreateChannelRequest, context: Ctx
    ) -> pb.CreateChannelResponse:
        tenant = caller(context).tenant
        channel_id = await self._new_id(context, "channel_id", request.channel_id)
        wanted = await self._value(context, lambda: channel_from_proto(channel_id, request.channel))
        try:
            await self._ensure_tenant(context, tenant)
            created = await self._channels.create(tenant, wanted)
        except InvalidInput as exc:
            await self._invalid(context, exc)
        if created is None:
            await self._exists(context, "channel", f"channels/{channel_id}")
        return pb.CreateChannelResponse(channel=channel_to_proto(created.blanked()))

    @guarded
    async def UpdateChannel(
        self, request: pb.UpdateChannelRequest, context: Ctx
    ) -> pb.UpdateChannelResponse:
        tenant = caller(context).tenant
        channel_id = await self._name(context, "channel.name", request.channel.name, "channels")
        current = await self._channel(context, tenant, channel_id)
        patch = channel_to_proto(current)
        patch.type = request.channel.type or patch.type
        if patch.type != channel_to_proto(current).type:
            await abort(
                context,
                "INVALID_ARGUMENT",
                "a channel's type cannot change",
                violations={"channel.type": "fixed at creation"},
            )
        new = await merged(context, patch, request.channel, request.update_mask, CHANNEL_FIELDS)
        wanted = await self._value(context, lambda: channel_from_proto(channel_id, new))
        try:
            updated = await self._channels.update(tenant, wanted)
        except InvalidInput as exc:
            await self._invalid(context, exc)
        if updated is None:
            await self._not_found(context, "channel", f"channels/{channel_id}")
        return pb.UpdateChannelResponse(channel=channel_to_proto(updated.blanked()))

    @guarded
    async def DeleteChannel(
        self, request: pb.DeleteChannelRequest, context: Ctx
    ) -> pb.DeleteChannelResponse:
        channel_id = await self._name(context, "name", request.name, "channels")
        if not await self._channels.delete(caller(context).tenant, channel_id):
            await self._not_found(context, "channel", f"channels/{channel_id}")
        return pb.DeleteChannelResponse()
