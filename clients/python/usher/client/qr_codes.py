"""``QrCodeClient``: QrCodeService, the tenant's QR codes: create, edit, activate and
deactivate, delete, their images (PNG, SVG), per-day figures and the list as a file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import cached_property

import grpc

from usher.client._base import BaseClient
from usher.client.errors import from_rpc_error
from usher.v1 import qr_code_service_pb2 as pb
from usher.v1 import qr_code_service_pb2_grpc as pb_grpc


class QrCodeClient(BaseClient):
    """Methods take the generated request message and return the generated response. Retried
    on transient errors: the reads (Get, List, GetQrCodeImage, GetQrCodeStats), ActivateQrCode
    and DeactivateQrCode (repeating them changes nothing more). ``export_qr_codes`` yields the
    file's bytes chunk by chunk."""

    @cached_property
    def _stub(self) -> pb_grpc.QrCodeServiceAsyncStub:
        return pb_grpc.QrCodeServiceStub(self.channel)

    async def create_qr_code(
        self, request: pb.CreateQrCodeRequest, *, timeout: float | None = None
    ) -> pb.CreateQrCodeResponse:
        return await self._call(self._stub.CreateQrCode, request, idempotent=False, timeout=timeout)

    async def get_qr_code(
        self, request: pb.GetQrCodeRequest, *, timeout: float | None = None
    ) -> pb.GetQrCodeResponse:
        return await self._call(self._stub.GetQrCode, request, idempotent=True, timeout=timeout)

    async def list_qr_codes(
        self, request: pb.ListQrCodesRequest, *, timeout: float | None = None
    ) -> pb.ListQrCodesResponse:
        return await self._call(self._stub.ListQrCodes, request, idempotent=True, timeout=timeout)

    async def update_qr_code(
        self, request: pb.UpdateQrCodeRequest, *, timeout: float | None = None
    ) -> pb.UpdateQrCodeResponse:
        return await self._call(self._stub.UpdateQrCode, request, idempotent=False, timeout=timeout)

    async def activate_qr_code(
        self, request: pb.ActivateQrCodeRequest, *, timeout: float | None = None
    ) -> pb.ActivateQrCodeResponse:
        return await self._call(
            self._stub.ActivateQrCode, request, idempotent=True, timeout=timeout
        )

    async def deactivate_qr_code(
        self, request: pb.DeactivateQrCodeRequest, *, timeout: float | None = None
    ) -> pb.DeactivateQrCodeResponse:
        return await self._call(
            self._stub.DeactivateQrCode, request, idempotent=True, timeout=timeout
        )

    async def delete_qr_code(
        self, request: pb.DeleteQrCodeRequest, *, timeout: float | None = None
    ) -> pb.DeleteQrCodeResponse:
        return await self._call(self._stub.DeleteQrCode, request, idempotent=False, timeout=timeout)

    async def get_qr_code_image(
        self, request: pb.GetQrCodeImageRequest, *, timeout: float | None = None
    ) -> pb.GetQrCodeImageResponse:
        return await self._call(
            self._stub.GetQrCodeImage, request, idempotent=True, timeout=timeout
        )

    async def get_qr_code_stats(
        self, request: pb.GetQrCodeStatsRequest, *, timeout: float | None = None
    ) -> pb.GetQrCodeStatsResponse:
        return await self._call(
            self._stub.GetQrCodeStats, request, idempotent=True, timeout=timeout
        )

    async def export_qr_codes(
        self, request: pb.ExportQrCodesRequest, *, timeout: float | None = None
    ) -> AsyncIterator[bytes]:
        """The export file's bytes, chunk by chunk (not resumed after a failure: start over)."""
        call = self._stub.ExportQrCodes(request, timeout=timeout, metadata=self._metadata)
        try:
            async for response in call:
                yield response.chunk
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from exc
