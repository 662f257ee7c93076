"""``AuthClient``: AuthService, for consoles that sign agents in with a password."""

from __future__ import annotations

from functools import cached_property

from usher.client._base import BaseClient
from usher.v1 import auth_service_pb2 as pb
from usher.v1 import auth_service_pb2_grpc as pb_grpc


class AuthClient(BaseClient):
    """Sign in (no token needed: construct with ``token=""``), refresh the session, sign out,
    and read the sign-in log (a SUPERVISOR or ADMIN token). Methods take the generated request
    message and return the generated response. Only ``list_logins`` is retried on transient
    errors: a repeated sign-in or refresh would issue another token, a repeated sign-out is
    refused (its token is gone).

    A session's token expires after an hour: call ``refresh_session`` before
    ``SignInResponse.expire_time`` and use the new token (``with_token``) from then on."""

    @cached_property
    def _stub(self) -> pb_grpc.AuthServiceAsyncStub:
        return pb_grpc.AuthServiceStub(self.channel)

    def with_token(self, token: str) -> AuthClient:
        """This client over the same channel with another token (say, a refreshed one)."""
        client = AuthClient.sharing(self)
        client._metadata = (("authorization", f"Bearer {token}"),)
        return client

    async def sign_in(
        self, request: pb.SignInRequest, *, timeout: float | None = None
    ) -> pb.SignInResponse:
        return await self._call(self._stub.SignIn, request, idempotent=False, timeout=timeout)

    async def refresh_session(
        self, request: pb.RefreshSessionRequest | None = None, *, timeout: float | None = None
    ) -> pb.SignInResponse:
        return await self._call(
            self._stub.RefreshSession,
            request or pb.RefreshSessionRequest(),
            idempotent=False,
            timeout=timeout,
        )

    async def sign_out(
        self, request: pb.SignOutRequest | None = None, *, timeout: float | None = None
    ) -> pb.SignOutResponse:
        return await self._call(
            self._stub.SignOut, request or pb.SignOutRequest(), idempotent=False, timeout=timeout
        )

    async def list_logins(
        self, request: pb.ListLoginsRequest, *, timeout: float | None = None
    ) -> pb.ListLoginsResponse:
        return await self._call(self._stub.ListLogins, request, idempotent=True, timeout=timeout)
