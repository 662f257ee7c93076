"""``AdminService.SetAgentPassword``: an agent's console password and console role.

The password is checked (``core.store.passwords.problem``: 10 to 128 characters, not the
agent's id or display name), stored as an argon2id hash, and the agent's console sessions end
(``core.store.sessions.Sessions.end_agent``), so a changed password takes effect at once.
Refusals are raised as ``core.routing.errors`` (the servicer's guard answers them).
"""

from __future__ import annotations

from usher.v1 import admin_service_pb2 as pb
from usher.v1 import credential_pb2

from core.api import convert as cv
from core.api.admin_values import ROLE_OF, ROLES
from core.routing.errors import InvalidArgument, NotFound
from core.store.admin import AdminStore
from core.store.passwords import Passwords, problem
from core.store.sessions import Sessions


async def set_agent_password(
    store: AdminStore,
    passwords: Passwords,
    sessions: Sessions,
    tenant: str,
    request: pb.SetAgentPasswordRequest,
) -> pb.SetAgentPasswordResponse:
    """Set the password (and, unless unspecified, the console role) of the agent named."""
    agent_id = cv.parse_agent(request.agent)
    role: str | None = None
    if request.console_role != credential_pb2.ROLE_UNSPECIFIED:
        role = ROLE_OF.get(request.console_role)
        if role not in ("agent", "supervisor", "admin"):
            raise InvalidArgument(
                "a console role is ROLE_AGENT, ROLE_SUPERVISOR or ROLE_ADMIN",
                field="console_role",
            )
    found = await store.agent(tenant, agent_id)
    if found is None:
        raise NotFound(f"agent {agent_id!r} not found", agent=agent_id)
    why = problem(request.password, agent_id, found.profile.name)
    if why is not None:
        raise InvalidArgument(why, field="password")
    role_now, updated_at = await passwords.set(tenant, agent_id, request.password, role)
    ended = await sessions.end_agent(tenant, agent_id)
    return pb.SetAgentPasswordResponse(
        agent=cv.agent_name(agent_id),
        console_role=ROLES[role_now],
        update_time=cv.timestamp(updated_at),
        sessions_ended=ended,
    )
