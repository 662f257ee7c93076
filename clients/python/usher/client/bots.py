"""``BotClient``: BotService, for supervisors' and admins' bot builders: create, edit (a bot
that has been active edits as a new version), activate, pause, delete, and preview a flow with
a scripted customer."""

from __future__ import annotations

from functools import cached_property

from usher.client._base import BaseClient
from usher.v1 import bot_service_pb2 as pb
from usher.v1 import bot_service_pb2_grpc as pb_grpc


class BotClient(BaseClient):
    """Methods take the generated request message and return the generated response. Retried
    on transient errors: GetBot, ListBots, ActivateBot, PauseBot, PreviewBot and GetBotStats
    (repeating them changes nothing more)."""

    @cached_property
    def _stub(self) -> pb_grpc.BotServiceAsyncStub:
        return pb_grpc.BotServiceStub(self.channel)

    async def create_bot(
        self, request: pb.CreateBotRequest, *, timeout: float | None = None
    ) -> pb.CreateBotResponse:
        return await self._call(self._stub.CreateBot, request, idempotent=False, timeout=timeout)

    async def get_bot(
        self, request: pb.GetBotRequest, *, timeout: float | None = None
    ) -> pb.GetBotResponse:
        return await self._call(self._stub.GetBot, request, idempotent=True, timeout=timeout)

    async def list_bots(
        self, request: pb.ListBotsRequest, *, timeout: float | None = None
    ) -> pb.ListBotsResponse:
        return await self._call(self._stub.ListBots, request, idempotent=True, timeout=timeout)

    async def update_bot(
        self, request: pb.UpdateBotRequest, *, timeout: float | None = None
    ) -> pb.UpdateBotResponse:
        return await self._call(self._stub.UpdateBot, request, idempotent=False, timeout=timeout)

    async def activate_bot(
        self, request: pb.ActivateBotRequest, *, timeout: float | None = None
    ) -> pb.ActivateBotResponse:
        return await self._call(self._stub.ActivateBot, request, idempotent=True, timeout=timeout)

    async def pause_bot(
        self, request: pb.PauseBotRequest, *, timeout: float | None = None
    ) -> pb.PauseBotResponse:
        return await self._call(self._stub.PauseBot, request, idempotent=True, timeout=timeout)

    async def delete_bot(
        self, request: pb.DeleteBotRequest, *, timeout: float | None = None
    ) -> pb.DeleteBotResponse:
        return await self._call(self._stub.DeleteBot, request, idempotent=False, timeout=timeout)

    async def preview_bot(
        self, request: pb.PreviewBotRequest, *, timeout: float | None = None
    ) -> pb.PreviewBotResponse:
        return await self._call(self._stub.PreviewBot, request, idempotent=True, timeout=timeout)

    async def get_bot_stats(
        self, request: pb.GetBotStatsRequest, *, timeout: float | None = None
    ) -> pb.GetBotStatsResponse:
        return await self._call(self._stub.GetBotStats, request, idempotent=True, timeout=timeout)
