"""Console sign-in through the SDK over real gRPC, PostgreSQL and Redis (and the web port over
real HTTP): sign-in by agent number and by name, one answer for every wrong login, the failure
limit, refresh, sign-out ending streams, the sign-in log with client addresses, passwords."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from google.rpc import error_details_pb2
from usher.client import (
    AdminClient,
    AgentClient,
    AuthClient,
    FailedPrecondition,
    InvalidArgument,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    UsherError,
)
from usher.v1 import admin_service_pb2 as admin_pb
from usher.v1 import agent_pb2, credential_pb2
from usher.v1 import agent_service_pb2 as agent_svc
from usher.v1 import auth_service_pb2 as pb

from core.api.auth_service import AuthServicer
from core.api.web import WebOptions
from core.store.sign_in_limits import SignInLimiter
from tests.integration.api_kit import Running, running

ANN_PASSWORD = "correct horse battery"
SUE_PASSWORD = "supervising-since-2020"


@dataclass
class World:
    api: Running
    tenant: str
    admin: AdminClient
    auth: AuthClient
    """Without a token: for signing in."""

    def client(self, token: str) -> AuthClient:
        return self.auth.with_token(token)

    async def sign_in(self, login: str, password: str) -> pb.SignInResponse:
        return await self.auth.sign_in(
            pb.SignInRequest(tenant=self.tenant, login=login, password=password)
        )


def auth_servicer(api: Running) -> AuthServicer:
    (found,) = [s.servicer for s in api.server.servicers if isinstance(s.servicer, AuthServicer)]
    return found


@pytest.fixture
async def api(pool: asyncpg.Pool, redis_url: str) -> AsyncIterator[Running]:
    async with running(pool, redis_url, with_core=True, web=WebOptions(port=0)) as served:
        yield served


@pytest.fixture
async def world(api: Running, redis: aioredis.Redis, key_prefix: str) -> AsyncIterator[World]:
    # failures are counted in Redis: a prefix of this test's own, so runs do not meet
    auth_servicer(api).limiter = SignInLimiter(redis, prefix=key_prefix)
    tenant = f"auth{uuid.uuid4().hex[:8]}"
    async with (
        AdminClient(api.target, await api.token(tenant, "admin")) as admin,
        AuthClient(api.target, "") as auth,
    ):
        for agent_id, name in (("ann", "Ann Lee"), ("sue", "Sue"), ("nopw", "No Password")):
            await admin.create_agent(
                admin_pb.CreateAgentRequest(
                    agent_id=agent_id, agent=agent_pb2.Agent(display_name=name, capacity=2)
                )
            )
        await admin.set_agent_password(
            admin_pb.SetAgentPasswordRequest(agent="agents/ann", password=ANN_PASSWORD)
        )
        set_sue = await admin.set_agent_password(
            admin_pb.SetAgentPasswordRequest(
                agent="agents/sue",
                password=SUE_PASSWORD,
                console_role=credential_pb2.ROLE_SUPERVISOR,
            )
        )
        assert set_sue.console_role == credential_pb2.ROLE_SUPERVISOR
        yield World(api, tenant, admin, auth)


async def test_an_agent_signs_in_by_number_or_by_name_and_works_with_the_token(
    world: World,
) -> None:
    by_number = await world.sign_in("ann", ANN_PASSWORD)
    by_name = await world.sign_in("  ann lee ", ANN_PASSWORD)  # any case, spaces around

    for session in (by_number, by_name):
        assert (session.agent, session.display_name) == ("agents/ann", "Ann Lee")
        assert session.role == credential_pb2.ROLE_AGENT
        assert session.access_token.startswith("ush_")
        assert session.expire_time.ToDatetime() < session.session_expire_time.ToDatetime()
    assert by_number.access_token != by_name.access_token
    async with AgentClient(world.api.target, by_name.access_token) as ann:
        changed = await ann.set_status(
            agent_svc.SetStatusRequest(status=agent_pb2.AGENT_STATUS_ONLINE)
        )
    assert changed.agent.status == agent_pb2.AGENT_STATUS_ONLINE


async def test_a_supervisor_signs_in_to_a_supervisor_token_naming_their_agent(
    world: World,
) -> None:
    sue = await world.sign_in("SUE", SUE_PASSWORD)

    assert (sue.role, sue.agent) == (credential_pb2.ROLE_SUPERVISOR, "agents/sue")
    async with AdminClient(world.api.target, sue.access_token) as supervisor:
        agents = await supervisor.list_agents(admin_pb.ListAgentsRequest())  # a supervisor's read
        with pytest.raises(PermissionDenied):  # and not an admin's change
            await supervisor.create_skill(admin_pb.CreateSkillRequest(skill_id="x"))
    assert [a.name for a in agents.agents] == ["agents/ann", "agents/nopw", "agents/sue"]
    listed = await world.client(sue.access_token).list_logins(pb.ListLoginsRequest())
    assert [entry.kind for entry in listed.logins] == [pb.LOGIN_KIND_SIGN_IN]


async def _refusal(call: Awaitable[object]) -> UsherError:
    with pytest.raises(UsherError) as caught:
        await call
    return caught.value


def _violations(error: UsherError) -> dict[str, str]:
    bad = error.detail(error_details_pb2.BadRequest)
    return {} if bad is None else {v.field: v.description for v in bad.field_violations}


async def test_every_wrong_login_gets_the_same_answer(world: World) -> None:
    wrong_password = await _refusal(world.sign_in("ann", "not her password"))
    unknown_login = await _refusal(world.sign_in("nobody", "not her password"))
    no_password = await _refusal(world.sign_in("nopw", "not her password"))
    unknown_tenant = await _refusal(
        world.auth.sign_in(
            pb.SignInRequest(tenant="no-such-tenant", login="ann", password=ANN_PASSWORD)
        )
    )

    answers = {(type(e), str(e), e.reason) for e in (wrong_password, unknown_login, no_password)}
    answers.add((type(unknown_tenant), str(unknown_tenant), unknown_tenant.reason))
    assert answers == {(Unauthenticated, str(wrong_password), "INVALID_LOGIN")}
    logged = world.client((await world.sign_in("sue", SUE_PASSWORD)).access_token)
    entries = (await logged.list_logins(pb.ListLoginsRequest())).logins
    failures = [(e.login, e.failure) for e in entries if e.kind == pb.LOGIN_KIND_SIGN_IN_FAILED]
    assert failures == [
        ("nopw", pb.LOGIN_FAILURE_NO_PASSWORD),
        ("nobody", pb.LOGIN_FAILURE_UNKNOWN_LOGIN),
        ("ann", pb.LOGIN_FAILURE_WRONG_PASSWORD),
    ]


async def test_repeated_failures_are_refused_for_a_while_even_with_the_right_password(
    world: World,
) -> None:
    for attempt in range(5):
        login = "ann" if attempt % 2 else "Ann Lee"  # one agent, however it is named
        with pytest.raises(Unauthenticated):
            await world.sign_in(login, f"guess number {attempt}")

    with pytest.raises(ResourceExhausted) as caught:
        await world.sign_in("ann", ANN_PASSWORD)

    refused = caught.value
    assert refused.reason == "TOO_MANY_FAILED_SIGN_INS"
    assert refused.retry_delay is not None and 0 < refused.retry_delay <= 300
    quota = refused.detail(error_details_pb2.QuotaFailure)
    assert quota is not None and quota.violations[0].subject == "login"
    # another agent is not locked out by ann's failures
    assert (await world.sign_in("sue", SUE_PASSWORD)).agent == "agents/sue"


async def test_a_refresh_issues_a_new_token_and_the_old_one_goes_after_the_grace(
    world: World, pool: asyncpg.Pool
) -> None:
    first = await world.sign_in("ann", ANN_PASSWORD)
    session = world.client(first.access_token)

    second = await session.refresh_session()

    assert second.access_token != first.access_token
    assert second.session_expire_time == first.session_expire_time
    assert second.agent == "agents/ann"
    # the old token still works within the grace (30 s), and the new one works
    async with (
        AgentClient(world.api.target, first.access_token) as old,
        AgentClient(world.api.target, second.access_token) as new,
    ):
        await old.set_status(agent_svc.SetStatusRequest(status=agent_pb2.AGENT_STATUS_AWAY))
        await new.set_status(agent_svc.SetStatusRequest(status=agent_pb2.AGENT_STATUS_ONLINE))
    grace = await pool.fetchval(
        "SELECT expires_at - now() FROM api_credentials WHERE credential_id = $1",
        first.credential.removeprefix("credentials/"),
    )
    assert grace.total_seconds() <= 30
    # a session that began more than 12 hours ago is over
    await pool.execute(
        "UPDATE api_credentials SET session_started_at = now() - interval '13 hours'"
        " WHERE credential_id = $1",
        second.credential.removeprefix("credentials/"),
    )
    with pytest.raises(Unauthenticated) as caught:
        await world.client(second.access_token).refresh_session()
    assert caught.value.reason == "SESSION_ENDED"


async def test_an_api_token_is_no_session(world: World) -> None:
    token = await world.api.token(world.tenant, "agent", "ann")
    with pytest.raises(FailedPrecondition) as caught:
        await world.client(token).refresh_session()
    assert caught.value.reason == "NOT_A_SESSION"
    async with AgentClient(world.api.target, token) as ann:  # and keeps working
        await ann.set_status(agent_svc.SetStatusRequest(status=agent_pb2.AGENT_STATUS_ONLINE))


async def test_signing_out_ends_the_sessions_streams_and_tokens(world: World) -> None:
    signed_in = await world.sign_in("ann", ANN_PASSWORD)
    refreshed = await world.client(signed_in.access_token).refresh_session()

    async with AgentClient(world.api.target, signed_in.access_token) as ann:
        stream = ann.events()
        started = asyncio.Event()

        async def follow() -> None:
            started.set()
            async for _ in stream:
                pass

        following = asyncio.create_task(follow())
        await started.wait()
        await ann.set_status(agent_svc.SetStatusRequest(status=agent_pb2.AGENT_STATUS_ONLINE))
        await world.client(refreshed.access_token).sign_out()
        with pytest.raises(Unauthenticated) as caught:
            await asyncio.wait_for(following, 30)
    assert caught.value.reason == "CREDENTIAL_REVOKED"
    for token in (signed_in.access_token, refreshed.access_token):  # the whole session
        async with AgentClient(world.api.target, token) as gone:
            with pytest.raises(Unauthenticated):
                await gone.set_status(
                    agent_svc.SetStatusRequest(status=agent_pb2.AGENT_STATUS_AWAY)
                )


async def test_the_login_log_shows_it_all_with_client_addresses(
    world: World, pool: asyncpg.Pool
) -> None:
    with pytest.raises(Unauthenticated):
        await world.sign_in("ann", "a wrong password")
    first = await world.sign_in("ann", ANN_PASSWORD)
    second = await world.client(first.access_token).refresh_session()
    await world.client(second.access_token).sign_out()
    # and a browser through the web port: Connect's JSON, its address and user agent
    assert world.api.server.web is not None
    base = world.api.server.web.url
    async with httpx.AsyncClient() as http:
        answer = await http.post(
            f"{base}/usher.v1.AuthService/SignIn",
            json={"tenant": world.tenant, "login": "Ann Lee", "password": ANN_PASSWORD},
            headers={"user-agent": "Mozilla/5.0 (console test)"},
        )
        assert answer.status_code == 200, answer.text
        browser = answer.json()
        status = await http.post(
            f"{base}/usher.v1.AgentService/SetStatus",
            json={"status": "AGENT_STATUS_ONLINE"},
            headers={"authorization": f"Bearer {browser['accessToken']}"},
        )
        assert status.status_code == 200, status.text

    sue = world.client((await world.sign_in("sue", SUE_PASSWORD)).access_token)
    entries = (await sue.list_logins(pb.ListLoginsRequest(agent="agents/ann"))).logins

    assert [e.kind for e in entries] == [
        pb.LOGIN_KIND_SIGN_IN,
        pb.LOGIN_KIND_SIGN_OUT,
        pb.LOGIN_KIND_REFRESH,
        pb.LOGIN_KIND_SIGN_IN,
        pb.LOGIN_KIND_SIGN_IN_FAILED,
    ]
    assert {e.client_address for e in entries} == {"127.0.0.1"}
    assert entries[0].user_agent == "Mozilla/5.0 (console test)"
    assert entries[0].credential == browser["credential"]
    assert all("grpc" in e.user_agent or "usher-client" in e.user_agent for e in entries[1:])
    assert entries[1].credential == second.credential
    assert entries[3].credential == first.credential
    # the status change through the web port recorded the browser's address, not the bridge's
    address = await pool.fetchval(
        "SELECT client_address FROM agent_sessions WHERE tenant_id = $1 AND agent_id = 'ann'"
        " ORDER BY started_at DESC LIMIT 1",
        world.tenant,
    )
    assert address == "127.0.0.1"
    # pages, newest first
    page = await sue.list_logins(pb.ListLoginsRequest(agent="agents/ann", page_size=2))
    rest = await sue.list_logins(
        pb.ListLoginsRequest(agent="agents/ann", page_token=page.next_page_token)
    )
    assert [e.name for e in [*page.logins, *rest.logins]] == [e.name for e in entries]
    ann = await world.sign_in("ann", ANN_PASSWORD)
    with pytest.raises(PermissionDenied):  # the log is not an agent's to read
        await world.client(ann.access_token).list_logins(pb.ListLoginsRequest())


async def test_passwords_are_checked_and_setting_one_ends_the_agents_sessions(
    world: World,
) -> None:
    for password, why in (
        ("short", "at least 10"),
        ("x" * 129, "128 characters"),
        ("ANN LEE", "at least 10"),
        ("Ann Lee   ", "id or display name"),
    ):
        with pytest.raises(InvalidArgument) as caught:
            await world.admin.set_agent_password(
                admin_pb.SetAgentPasswordRequest(agent="agents/ann", password=password)
            )
        violations = _violations(caught.value)
        assert violations.keys() == {"password"}, password
        assert why in violations["password"], password
    session = await world.sign_in("ann", ANN_PASSWORD)

    changed = await world.admin.set_agent_password(
        admin_pb.SetAgentPasswordRequest(agent="agents/ann", password="a brand new secret")
    )

    assert changed.sessions_ended == 1
    assert changed.console_role == credential_pb2.ROLE_AGENT  # kept
    with pytest.raises(Unauthenticated):
        await world.client(session.access_token).refresh_session()
    with pytest.raises(Unauthenticated):
        await world.sign_in("ann", ANN_PASSWORD)
    assert (await world.sign_in("ann", "a brand new secret")).agent == "agents/ann"
    sue = await world.sign_in("sue", SUE_PASSWORD)
    async with AdminClient(world.api.target, sue.access_token) as supervisor:
        with pytest.raises(PermissionDenied):
            await supervisor.set_agent_password(
                admin_pb.SetAgentPasswordRequest(agent="agents/ann", password="not allowed!")
            )
