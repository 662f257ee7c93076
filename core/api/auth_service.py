"""AuthService: console sign-in by agent number or name and password, sessions, the login log.

Contracts (the proto's comments are the reference):

- ``SignIn`` runs without a credential (``policy.ANONYMOUS``). Every refusal that concerns the
  login or the password is the same UNAUTHENTICATED answer (``INVALID_LOGIN``), after the same
  work (one password hash: ``core.store.passwords``), whether the tenant, the agent or the
  password was wrong: nothing tells which logins exist. Failures are counted in Redis per login
  and per client address (``core.store.sign_in_limits``); past the limit the sign-in is refused
  RESOURCE_EXHAUSTED with ``RetryInfo`` and ``QuotaFailure`` before any password is looked at.
  Without Redis nobody signs in (UNAVAILABLE) rather than without a limit.
- A session's tokens are credentials (``core.store.sessions``), so the ``Authenticator``, the
  role table and the revocation check apply to them unchanged; ``SignOut`` revokes them and
  the revocation check ends their streams (``CREDENTIAL_REVOKED``) within about a second.
- Every sign-in, refresh, sign-out and refused attempt is appended to the sign-in log
  (``core.store.sign_in_log``) with the client's address and user agent
  (``core.api.client_info``: the browser's, through the web port).
"""

from __future__ import annotations

from typing import Any, Final, NoReturn

import grpc
import structlog
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from usher.v1 import auth_service_pb2 as pb
from usher.v1 import auth_service_pb2_grpc as pb_grpc

from core.api import convert as cv
from core.api.admin_values import ROLES
from core.api.auth import caller
from core.api.client_info import client_of
from core.api.context import ApiContext
from core.api.errors import abort, status
from core.routing.errors import FailedPrecondition, InvalidArgument
from core.store.errors import StoreError
from core.store.passwords import Account, Outcome, Passwords
from core.store.sessions import Issued, Sessions
from core.store.sign_in_limits import FailureLimits, Refusal, SignInLimiter
from core.store.sign_in_log import Client, Entry, Failure, Kind, SignInLog

log = structlog.get_logger(__name__)

Ctx = grpc.aio.ServicerContext[Any, Any]

INVALID_LOGIN: Final = "wrong login or password"
DEFAULT_PAGE: Final = 100

_FAILURES: Final = {
    Outcome.UNKNOWN_LOGIN: Failure.UNKNOWN_LOGIN,
    Outcome.WRONG_PASSWORD: Failure.WRONG_PASSWORD,
    Outcome.NO_PASSWORD: Failure.NO_PASSWORD,
}
_KINDS: Final = {
    Kind.SIGN_IN: pb.LOGIN_KIND_SIGN_IN,
    Kind.REFRESH: pb.LOGIN_KIND_REFRESH,
    Kind.SIGN_OUT: pb.LOGIN_KIND_SIGN_OUT,
    Kind.FAILED: pb.LOGIN_KIND_SIGN_IN_FAILED,
}
_FAILURE_PB: Final = {
    Failure.UNKNOWN_LOGIN: pb.LOGIN_FAILURE_UNKNOWN_LOGIN,
    Failure.WRONG_PASSWORD: pb.LOGIN_FAILURE_WRONG_PASSWORD,
    Failure.NO_PASSWORD: pb.LOGIN_FAILURE_NO_PASSWORD,
    Failure.RATE_LIMITED: pb.LOGIN_FAILURE_RATE_LIMITED,
}


def session_to_proto(issued: Issued, display_name: str) -> pb.SignInResponse:
    return pb.SignInResponse(
        access_token=issued.token,
        expire_time=cv.timestamp(issued.expires_at),
        agent=cv.agent_name(issued.agent_id),
        display_name=display_name,
        role=ROLES[issued.role],
        session_expire_time=cv.timestamp(issued.session_ends_at),
        credential=f"credentials/{issued.credential_id}",
    )


def entry_to_proto(entry: Entry) -> pb.LoginRecord:
    return pb.LoginRecord(
        name=f"logins/{entry.login_id}",
        kind=_KINDS[entry.kind],
        time=cv.timestamp(entry.at),
        agent=cv.agent_name(entry.agent_id) if entry.agent_id else "",
        login=entry.login,
        client_address=entry.client.address,
        user_agent=entry.client.user_agent,
        failure=_FAILURE_PB[entry.failure] if entry.failure else pb.LOGIN_FAILURE_UNSPECIFIED,
        credential=f"credentials/{entry.credential_id}" if entry.credential_id else "",
    )


def _page(size: int) -> int:
    return size or DEFAULT_PAGE


def _before(token: str) -> int | None:
    if not token:
        return None
    if not token.isdigit():
        raise InvalidArgument("page_token is not one this server issued", field="page_token")
    return int(token)


class AuthServicer(pb_grpc.AuthServiceServicer):
    """See the module docstring."""

    def __init__(self, ctx: ApiContext, *, limits: FailureLimits | None = None) -> None:
        self.ctx = ctx
        self.passwords = Passwords(ctx.pool)
        self.sessions = Sessions(ctx.pool)
        self.log = SignInLog(ctx.pool)
        self.limiter = None if ctx.redis is None else SignInLimiter(ctx.redis, limits)

    async def _record(self, tenant: str, kind: Kind, client: Client, **fields: Any) -> None:
        """Append to the sign-in log; a failure to is logged, never the caller's problem."""
        try:
            await self.log.record(tenant, kind, client, **fields)
        except StoreError as exc:
            log.warning("sign-in log not written", tenant=tenant, kind=kind, error=repr(exc))

    @cv.guarded
    async def SignIn(self, request: pb.SignInRequest, context: Ctx) -> pb.SignInResponse:
        client = client_of(context)
        tenant, login = request.tenant, request.login.strip()
        if self.limiter is None:
            await abort(context, "UNAVAILABLE", "sign-in is unavailable now", retry_after=5.0)
        account = await self.passwords.account(tenant, login) if tenant and login else None
        counted_as = account.agent_id if account is not None else login
        try:
            refused = await self.limiter.refusal(tenant, counted_as, client.address)
        except StoreError as exc:
            log.warning("sign-in limiter unavailable", error=repr(exc))
            await abort(context, "UNAVAILABLE", "sign-in is unavailable now", retry_after=1.0)
        agent_id = account.agent_id if account is not None else None
        if refused is not None:
            await self._record(
                tenant,
                Kind.FAILED,
                client,
                agent_id=agent_id,
                login=login,
                failure=Failure.RATE_LIMITED,
            )
            await _too_many(context, refused)
        check = await self.passwords.verify(account, request.password)
        if check.outcome is not Outcome.OK:
            try:
                await self.limiter.failed(tenant, counted_as, client.address)
            except StoreError as exc:
                log.warning("sign-in failure not counted", error=repr(exc))
            await self._record(
                tenant,
                Kind.FAILED,
                client,
                agent_id=agent_id,
                login=login,
                failure=_FAILURES[check.outcome],
            )
            await abort(context, "UNAUTHENTICATED", INVALID_LOGIN, reason="INVALID_LOGIN")
        assert account is not None
        try:
            await self.limiter.succeeded(tenant, counted_as)
        except StoreError as exc:
            log.warning("sign-in failures not cleared", error=repr(exc))
        issued = await self.sessions.start(tenant, account.agent_id, account.console_role)
        await self._record(
            tenant,
            Kind.SIGN_IN,
            client,
            agent_id=account.agent_id,
            login=login,
            credential_id=issued.credential_id,
        )
        return session_to_proto(issued, account.display_name)

    @cv.guarded
    async def RefreshSession(
        self, request: pb.RefreshSessionRequest, context: Ctx
    ) -> pb.SignInResponse:
        who = caller(context)
        if not who.agent_id or not await self.sessions.is_session(who.credential_id):
            raise FailedPrecondition(
                "only a token from SignIn or RefreshSession can be refreshed",
                reason="NOT_A_SESSION",
            )
        account: Account | None = await self.passwords.agent(who.tenant, who.agent_id)
        issued = None
        if account is not None and account.password_hash is not None:
            issued = await self.sessions.refresh(who.credential_id, account.console_role)
        if account is None or issued is None:
            await self.sessions.end(who.credential_id)
            await abort(
                context,
                "UNAUTHENTICATED",
                "the session has ended: sign in again",
                reason="SESSION_ENDED",
            )
        await self._record(
            who.tenant,
            Kind.REFRESH,
            client_of(context),
            agent_id=who.agent_id,
            credential_id=issued.credential_id,
        )
        return session_to_proto(issued, account.display_name)

    @cv.guarded
    async def SignOut(self, request: pb.SignOutRequest, context: Ctx) -> pb.SignOutResponse:
        who = caller(context)
        ended = await self.sessions.end(who.credential_id)
        if ended:
            await self._record(
                who.tenant,
                Kind.SIGN_OUT,
                client_of(context),
                agent_id=who.agent_id,
                credential_id=who.credential_id,
            )
        return pb.SignOutResponse()

    @cv.guarded
    async def ListLogins(
        self, request: pb.ListLoginsRequest, context: Ctx
    ) -> pb.ListLoginsResponse:
        who = caller(context)
        agent_id = cv.parse_agent(request.agent) if request.agent else None
        size = _page(request.page_size)
        found = await self.log.page(
            who.tenant, agent_id=agent_id, before=_before(request.page_token), limit=size + 1
        )
        more = len(found) > size
        return pb.ListLoginsResponse(
            logins=[entry_to_proto(e) for e in found[:size]],
            next_page_token=str(found[size - 1].login_id) if more else "",
        )


async def _too_many(context: Ctx, refused: Refusal) -> NoReturn:
    built = status(
        "RESOURCE_EXHAUSTED",
        f"too many failed sign-ins: try again in {max(1, round(refused.retry_after))} s",
        reason="TOO_MANY_FAILED_SIGN_INS",
        details={"per": refused.subject, "limit": str(refused.limit)},
        retry_after=refused.retry_after,
    )
    violation = error_details_pb2.QuotaFailure.Violation(
        subject=refused.subject,
        description=f"at most {refused.limit} failed sign-ins per {refused.subject} in a window",
    )
    built.details.add().Pack(error_details_pb2.QuotaFailure(violations=[violation]))
    await context.abort_with_status(rpc_status.to_status(built))
    raise AssertionError("abort_with_status returned")  # pragma: no cover
