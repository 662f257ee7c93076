"""``QuotaClient``: QuotaService, the tenant's usage against the quotas its installation set
(read only: limits are set with ``usher admin quota set``)."""

from __future__ import annotations

from functools import cached_property

from usher.client._base import BaseClient
from usher.v1 import quota_service_pb2 as pb
from usher.v1 import quota_service_pb2_grpc as pb_grpc


class QuotaClient(BaseClient):
    """``get_quotas`` is retried on transient errors."""

    @cached_property
    def _stub(self) -> pb_grpc.QuotaServiceAsyncStub:
        return pb_grpc.QuotaServiceStub(self.channel)

    async def get_quotas(
        self, request: pb.GetQuotasRequest | None = None, *, timeout: float | None = None
    ) -> pb.GetQuotasResponse:
        return await self._call(
            self._stub.GetQuotas, request or pb.GetQuotasRequest(), idempotent=True, timeout=timeout
        )
