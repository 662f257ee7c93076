"""``ReportClient``: ReportService, for reports over time, their exports and the agents' login
log (a SUPERVISOR or ADMIN credential)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import cached_property

import grpc

from usher.client._base import BaseClient
from usher.client.errors import from_rpc_error
from usher.v1 import report_service_pb2 as pb
from usher.v1 import report_service_pb2_grpc as pb_grpc


class ReportClient(BaseClient):
    """Methods take the generated request message and return the generated response. Every
    method but the export is retried on transient errors (they only read)."""

    @cached_property
    def _stub(self) -> pb_grpc.ReportServiceAsyncStub:
        return pb_grpc.ReportServiceStub(self.channel)

    async def get_overview_report(
        self, request: pb.GetOverviewReportRequest, *, timeout: float | None = None
    ) -> pb.GetOverviewReportResponse:
        return await self._call(
            self._stub.GetOverviewReport, request, idempotent=True, timeout=timeout
        )

    async def get_agent_report(
        self, request: pb.GetAgentReportRequest, *, timeout: float | None = None
    ) -> pb.GetAgentReportResponse:
        return await self._call(
            self._stub.GetAgentReport, request, idempotent=True, timeout=timeout
        )

    async def get_queue_report(
        self, request: pb.GetQueueReportRequest, *, timeout: float | None = None
    ) -> pb.GetQueueReportResponse:
        return await self._call(
            self._stub.GetQueueReport, request, idempotent=True, timeout=timeout
        )

    async def get_channel_report(
        self, request: pb.GetChannelReportRequest, *, timeout: float | None = None
    ) -> pb.GetChannelReportResponse:
        return await self._call(
            self._stub.GetChannelReport, request, idempotent=True, timeout=timeout
        )

    async def list_agent_logins(
        self, request: pb.ListAgentLoginsRequest, *, timeout: float | None = None
    ) -> pb.ListAgentLoginsResponse:
        return await self._call(
            self._stub.ListAgentLogins, request, idempotent=True, timeout=timeout
        )

    async def get_report_chart(
        self, request: pb.GetReportChartRequest, *, timeout: float | None = None
    ) -> pb.GetReportChartResponse:
        """One chart of a report as PNG or SVG, with the data it plots."""
        return await self._call(
            self._stub.GetReportChart, request, idempotent=True, timeout=timeout
        )

    async def get_visitor_report(
        self, request: pb.GetVisitorReportRequest, *, timeout: float | None = None
    ) -> pb.GetVisitorReportResponse:
        """Web chat visitors' conversations per page path, referrer host and region."""
        return await self._call(
            self._stub.GetVisitorReport, request, idempotent=True, timeout=timeout
        )

    async def get_bot_report(
        self, request: pb.GetBotReportRequest, *, timeout: float | None = None
    ) -> pb.GetBotReportResponse:
        """Every bot's flows started, finished in the bot, handed off and not answered."""
        return await self._call(self._stub.GetBotReport, request, idempotent=True, timeout=timeout)

    async def export_report(
        self, request: pb.ExportReportRequest, *, timeout: float | None = None
    ) -> AsyncIterator[bytes]:
        """The file's bytes, chunk by chunk (not resumed: on an error, export again)."""
        call = self._stub.ExportReport(request, timeout=timeout, metadata=self._metadata)
        try:
            async for response in call:
                yield response.chunk
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from exc
