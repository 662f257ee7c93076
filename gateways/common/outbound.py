"""Outbound delivery: one loop per served channel reads the core's outbound stream and hands
each item to the provider, retrying transient failures with exponential backoff and jitter.

The last delivered event id is kept in the sent log, so a restarted gateway resumes where it
stopped: at least once (an item in flight at a crash is sent again). An item that still fails
after the retries is logged and skipped, so one bad recipient cannot stall a channel.
"""

from __future__ import annotations

import asyncio
import contextlib

import httpx
import structlog
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)
from usher.client import OutOfRange, UsherError
from usher.v1 import conversation_service_pb2 as pb

from gateways.common.directory import Served
from gateways.common.gateway import Gateway
from gateways.common.provider import DeliveryError, Provider

log = structlog.get_logger(__name__)


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, DeliveryError):
        return exc.transient
    return isinstance(exc, httpx.TransportError | OSError | asyncio.TimeoutError)


class Outbound:
    def __init__(
        self,
        gateway: Gateway,
        provider: Provider,
        *,
        attempts: int = 6,
        first_wait: float = 0.2,
        max_wait: float = 10.0,
    ) -> None:
        self._gateway = gateway
        self._provider = provider
        self._attempts = attempts
        self._first_wait = first_wait
        self._max_wait = max_wait
        self._loops: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._watch: asyncio.Task[None] | None = None
        self.failed = 0
        """Items given up on after the retries."""

    def start(self) -> None:
        self._reconcile()
        self._watch = asyncio.create_task(self._follow_directory(), name="outbound-watch")

    async def stop(self) -> None:
        tasks = [*self._loops.values(), *([self._watch] if self._watch else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._loops.clear()

    async def _follow_directory(self) -> None:
        while True:
            await self._gateway.directory.changed.wait()
            self._gateway.directory.changed.clear()
            self._reconcile()

    def _reconcile(self) -> None:
        wanted = {(s.tenant, s.channel.channel_id): s for s in self._gateway.directory}
        for key in set(self._loops) - set(wanted):
            self._loops.pop(key).cancel()
        for key, served in wanted.items():
            if key not in self._loops or self._loops[key].done():
                self._loops[key] = asyncio.create_task(
                    self._run(served), name=f"outbound-{key[0]}-{key[1]}"
                )

    async def _run(self, served: Served) -> None:
        tenant, channel = served.tenant, served.channel.channel_id
        sent = self._gateway.sent
        while True:
            after = sent.cursor(tenant, channel)
            stream = served.client.events(channel=channel, resume_after_event_id=after)
            try:
                async for item in stream:
                    # the directory may have new settings (a rotated token) for this channel
                    current = self._gateway.directory.lookup(tenant, channel) or served
                    await self._deliver(current, item)
                    sent.advance(tenant, channel, item.event_id)
            except OutOfRange:
                log.error("outbound resume point too old; continuing from now", channel=channel)
                sent.advance(tenant, channel, 0)
            except UsherError as exc:  # refused (a revoked key...): try again in a while
                log.warning("outbound stream failed", channel=channel, error=str(exc))
                await asyncio.sleep(self._max_wait)
            finally:
                await stream.aclose()

    async def _deliver(self, served: Served, item: pb.OutboundItem) -> None:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._attempts),
            wait=wait_exponential_jitter(multiplier=self._first_wait, max=self._max_wait),
            retry=retry_if_exception(is_transient),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    await self._provider.deliver(self._gateway, served, item)
        except Exception as exc:
            self.failed += 1
            log.error(
                "delivery failed",
                tenant=served.tenant,
                channel=served.channel.channel_id,
                conversation=item.conversation,
                event_id=item.event_id,
                error=str(exc),
            )
