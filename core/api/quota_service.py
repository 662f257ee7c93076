"""QuotaService: the tenant's usage against the quotas its installation set
(``core.store.quotas``), read only, for supervisors and admins. The limits are set with
``usher admin quota set`` on the installation's database, never through the tenant's API."""

from __future__ import annotations

from typing import Any

from usher.v1 import quota_service_pb2 as pb
from usher.v1 import quota_service_pb2_grpc as pb_grpc

from core.api import convert as cv
from core.api.auth import caller
from core.api.context import ApiContext
from core.store import quotas

Ctx = Any  # grpc.aio.ServicerContext


def quota_to_proto(usage: quotas.QuotaUsage) -> pb.Quota:
    return pb.Quota(
        metric=usage.metric,
        description=quotas.DESCRIPTIONS[usage.metric],
        used=usage.used,
        limit=usage.limit or 0,
        unlimited=usage.limit is None,
        period_start_date=usage.period_start.isoformat() if usage.period_start else "",
        period_end_date=usage.period_end.isoformat() if usage.period_end else "",
    )


class QuotaServicer(pb_grpc.QuotaServiceServicer):
    """QuotaService over an ``ApiContext``."""

    def __init__(self, api: ApiContext) -> None:
        self._api = api

    @cv.guarded
    async def GetQuotas(self, request: pb.GetQuotasRequest, context: Ctx) -> pb.GetQuotasResponse:
        found = await quotas.usage(self._api.pool, caller(context).tenant)
        return pb.GetQuotasResponse(quotas=[quota_to_proto(u) for u in found])
