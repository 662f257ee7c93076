"""Broadcast sending: one loop per served channel claims sends from the core, sends each through
the provider at the channel's rate, and reports what became of them.

Where sending happens, and why here: the gateway already holds the provider's client, the
channel's credentials, its public URL (status callbacks) and the webhooks where the provider's
delivered/read/failed statuses arrive; the core keeps what must survive, each recipient's
state (``core.store.broadcast_sends``). So the core stays the one place that decides who is
sent what, and any number of gateways may send (claims never overlap).

The loop, per channel (``ChannelSender``):

1. ``ClaimBroadcastSends``: up to ``rate x 2 s`` sends (at most 500), for ``lease`` seconds,
   under this gateway's stable ``sender`` id and this run's ``session``, into a queue, and
   again whenever the queue is down to half of that (so workers never wait on a claim).
2. Each send, by up to ``concurrency`` workers (over a ``LeanTransport``: HTTP/1.1 kept alive,
   a fraction of httpx's default transport's CPU a request), each taking a token from the
   channel's bucket (``TokenBucket``: the channel's ``broadcast_rate`` setting, else the
   provider's default): the provider sends (transient
   failures retried with backoff), the journal (``BroadcastJournal``) records the answer, and
   the result waits for the next report. No send starts once the claim's lease is nearly over,
   or once the core said its broadcast was paused or cancelled: those are released.
3. ``ReportBroadcastSends`` every ``flush_every`` seconds; the journal forgets what the core
   acknowledged.

Crash safety (a gateway killed at any instant): at start, answers the journal holds that the
core never acknowledged are reported first. The core hands this sender its sends claimed under
the old session at once (``previous_claims`` > 0; another gateway's once their lease ran out).
For each: the journal's answer if it has one; otherwise it may have gone out (the process died
while the provider had it) or not, and the provider reconciles it
(``Provider.reconcile_broadcast``): Twilio looks for the message among those sent to the
number, LINE and e-mail resend under the same key (X-Line-Retry-Key; Message-ID), WhatsApp
waits until its status webhooks, which carry the send's key, had time to reach the core. So
each recipient is sent once and none is skipped, within what each provider allows
(docs/architecture.md, "Broadcasts").
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import structlog
from google.protobuf import duration_pb2
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter
from usher.client import BroadcastClient, UsherError
from usher.v1 import broadcast_service_pb2 as pb

from gateways.common.broadcast_journal import BroadcastJournal, Entry
from gateways.common.bucket import TokenBucket
from gateways.common.directory import Served
from gateways.common.gateway import Gateway
from gateways.common.lean_http import lean_client
from gateways.common.outbound import is_transient
from gateways.common.provider import BroadcastMessage, DeliveryError, Hold, Provider

log = structlog.get_logger(__name__)

MAX_BATCH = 500
JOURNAL_EVERY = 0.02
"""Seconds the provider's answers wait to be journaled together (a crash within them leaves
those sends to the provider's reconciliation)."""
MAX_REPORT = 1_000
"""Results per ReportBroadcastSends call at most (the request's limit)."""
BATCH_SECONDS = 2.0
"""A claim holds about this many seconds of sends at the channel's rate."""


def message_of(send: pb.BroadcastSend) -> BroadcastMessage:
    return BroadcastMessage(
        recipient=send.recipient,
        address=send.address,
        text=send.text,
        subject=send.subject,
        template_name=send.template_name,
        template_language=send.template_language,
        parameters=tuple(send.template_parameters),
        key=send.idempotency_key,
        previous_claims=send.previous_claims,
        first_claim_time=send.first_claim_time.ToDatetime(tzinfo=dt.UTC)
        if send.HasField("first_claim_time")
        else None,
    )


async def report_status(
    served: Served, provider_id: str, status: str, *, error: str = "", recipient: str = ""
) -> bool:
    """Pass a provider's status (``delivered``, ``read``, ``failed``) of a message that is not a
    conversation's (the sent log does not know it) to the core, in case it is a broadcast's;
    False when the core could not be told (logged)."""
    outcome = {
        "delivered": pb.BROADCAST_SEND_OUTCOME_DELIVERED,
        "read": pb.BROADCAST_SEND_OUTCOME_READ,
        "failed": pb.BROADCAST_SEND_OUTCOME_FAILED,
        "sent": pb.BROADCAST_SEND_OUTCOME_DELIVERED,
    }.get(status)
    if outcome is None or not (provider_id or recipient):
        return False
    result = pb.BroadcastSendResult(
        recipient=recipient, outcome=outcome, provider_message_id=provider_id, error=error[:1000]
    )
    if status == "sent":  # only the callback's key tells: record it as sent, no further
        if not recipient:
            return False
        result.outcome = pb.BROADCAST_SEND_OUTCOME_SENT
    try:
        await BroadcastClient.sharing(served.client).report_broadcast_sends(
            pb.ReportBroadcastSendsRequest(channel=served.channel.channel_id, results=[result])
        )
    except UsherError as exc:
        log.warning("broadcast status not passed on", provider_id=provider_id, error=str(exc))
        return False
    return True


@dataclass
class SenderStats:
    """What the senders of this gateway did since it started."""

    sent: int = 0
    failed: int = 0
    released: int = 0
    reconciled: int = 0
    """Sends found already made by an earlier attempt."""
    held: int = 0
    claims: int = 0


@dataclass(frozen=True, slots=True)
class _Result:
    result: pb.BroadcastSendResult
    journaled: bool
    """The journal holds it until the core has it."""


class ChannelSender:
    """The broadcast loop of one served channel (see the module docstring)."""

    def __init__(
        self,
        gateway: Gateway,
        provider: Provider,
        served: Served,
        journal: BroadcastJournal,
        stats: SenderStats,
        *,
        lease: float,
        concurrency: int,
        idle: float,
        flush_every: float,
        attempts: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.gateway = gateway
        self.provider = provider
        self.served = served
        self.journal = journal
        self.stats = stats
        self.lease = lease
        self.concurrency = concurrency
        self.idle = idle
        self.flush_every = flush_every
        self.attempts = attempts
        self.clock = clock
        self.session = uuid.uuid4().hex
        self.client = BroadcastClient.sharing(served.client)
        rate = float(served.channel.settings.get("broadcast_rate") or provider.broadcast_rate)
        self.bucket = TokenBucket(rate)
        self.batch = max(1, min(MAX_BATCH, int(rate * BATCH_SECONDS)))
        self.lane = dataclasses.replace(
            gateway, http=lean_client(gateway.http.timeout, max_idle=concurrency)
        )
        """The gateway as the provider sees it when broadcasting: its HTTP client is a
        ``LeanTransport``'s, since a request per recipient spent most of the gateway's CPU in
        httpx's default transport."""
        self._queue: asyncio.Queue[tuple[BroadcastMessage, float]] = asyncio.Queue()
        """Claimed sends waiting for a worker, each with its claim's deadline."""
        self._drained = asyncio.Event()
        self._pending: list[_Result] = []
        self._unjournaled: list[Entry] = []
        self._journaling: asyncio.TimerHandle | None = None
        self._flushing = asyncio.Lock()
        self._stopped: set[str] = set()

    @property
    def tenant(self) -> str:
        return self.served.tenant

    @property
    def channel(self) -> str:
        return self.served.channel.channel_id

    async def run(self) -> None:
        """Recover, then claim, send and report until cancelled: the claimer keeps the queue
        of sends topped up (the next claim starts while the last sends of the previous one are
        still going), ``concurrency`` workers send from it, a ticker reports."""
        await self._recover()
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._claimer())
                group.create_task(self._reporter())
                for _ in range(self.concurrency):
                    group.create_task(self._worker())
        finally:
            while not self._queue.empty():  # never attempted: back to the core's queue
                message, _ = self._queue.get_nowait()
                self._add(message.recipient, self.session, "released", journaled=False)
            self._write_journal()
            await self.lane.http.aclose()

    async def _claimer(self) -> None:
        low = max(1, self.batch // 2)
        while True:
            while self._queue.qsize() > low:
                self._drained.clear()
                await self._drained.wait()
            try:
                claimed = await self.client.claim_broadcast_sends(
                    pb.ClaimBroadcastSendsRequest(
                        channel=self.channel,
                        sender=self.journal.sender,
                        session=self.session,
                        max_sends=self.batch,
                        lease=duration_pb2.Duration(seconds=int(self.lease)),
                    )
                )
            except UsherError as exc:
                log.warning("broadcast claim failed", channel=self.channel, error=str(exc))
                await asyncio.sleep(self.idle)
                continue
            if not claimed.sends:
                await self.flush()
                await asyncio.sleep(self.idle)
                continue
            self.stats.claims += 1
            deadline = self.clock() + self.lease - min(5.0, self.lease / 4)
            messages = [message_of(s) for s in claimed.sends]
            self._stopped -= {m.broadcast for m in messages}  # handed out again: resumed
            for message in messages:
                self._queue.put_nowait((message, deadline))

    async def _reporter(self) -> None:
        while True:
            await asyncio.sleep(self.flush_every)
            if self._pending:
                await self.flush()

    async def _worker(self) -> None:
        while True:
            message, deadline = await self._queue.get()
            if self._queue.qsize() <= max(1, self.batch // 2):
                self._drained.set()
            await self._one(self.lane, message, deadline)

    async def _recover(self) -> None:
        """Report what the journal holds from an earlier run."""
        entries = self.journal.unreported(self.tenant, self.channel)
        for e in entries:
            self._add(e.recipient, e.session, e.state, e.provider_id, e.error, journaled=True)
        while self._pending:
            if not await self.flush():
                await asyncio.sleep(self.idle)
        if entries:
            log.info("broadcast results recovered", channel=self.channel, results=len(entries))

    def _add(
        self,
        recipient: str,
        session: str,
        state: str,
        provider_id: str = "",
        error: str = "",
        *,
        journaled: bool,
    ) -> None:
        outcome = {
            "sent": pb.BROADCAST_SEND_OUTCOME_SENT,
            "failed": pb.BROADCAST_SEND_OUTCOME_FAILED,
            "released": pb.BROADCAST_SEND_OUTCOME_RELEASED,
        }[state]
        result = pb.BroadcastSendResult(
            recipient=recipient,
            outcome=outcome,
            provider_message_id=provider_id,
            error=error[:1000],
            session=session,
        )
        self._pending.append(_Result(result, journaled))

    def _journal(self, entry: Entry) -> None:
        """Journal ``entry`` with the others of the next ``JOURNAL_EVERY`` seconds."""
        self._unjournaled.append(entry)
        if self._journaling is None:
            self._journaling = asyncio.get_running_loop().call_later(
                JOURNAL_EVERY, self._write_journal
            )

    def _write_journal(self) -> None:
        if self._journaling is not None:
            self._journaling.cancel()
            self._journaling = None
        entries, self._unjournaled = self._unjournaled, []
        if entries:
            self.journal.finished(self.tenant, self.channel, entries)

    async def flush(self) -> bool:
        """Report the results waiting; False when the core could not be told (the rest wait
        for the next flush)."""
        async with self._flushing:
            self._write_journal()  # what is reported and forgotten was written first
            pending, self._pending = self._pending, []
            for start in range(0, len(pending), MAX_REPORT):
                chunk = pending[start : start + MAX_REPORT]
                try:
                    answer = await self.client.report_broadcast_sends(
                        pb.ReportBroadcastSendsRequest(
                            channel=self.channel, results=[r.result for r in chunk]
                        )
                    )
                except UsherError as exc:
                    log.warning("broadcast report failed", channel=self.channel, error=str(exc))
                    self._pending[:0] = pending[start:]
                    return False
                except BaseException:  # cancelled mid-call: the results wait, not lost
                    self._pending[:0] = pending[start:]
                    raise
                self._stopped.update(answer.stopped_broadcasts)
                self.journal.forget(
                    self.tenant, self.channel, [r.result.recipient for r in chunk if r.journaled]
                )
            return True

    def _stopping(self, message: BroadcastMessage, deadline: float) -> bool:
        """Release ``message`` if its broadcast was paused or cancelled, or its claim is about
        to run out; whether it was."""
        if message.broadcast in self._stopped or self.clock() > deadline:
            self.stats.released += 1
            self._add(message.recipient, self.session, "released", journaled=False)
            return True
        return False

    async def _one(self, lane: Gateway, message: BroadcastMessage, deadline: float) -> None:
        """Send one message, journaled; one that may have gone out before (claimed earlier and
        not released) is settled from the journal, or reconciled with the provider first. A
        pause, cancel or the lease's end seen before the send (after the wait for a token)
        releases it instead."""
        r = message.recipient
        if self._stopping(message, deadline):
            return
        if message.previous_claims > 0 and not await self._settled(lane, message):
            return
        await self.bucket.acquire()
        if self._stopping(message, deadline):
            return
        try:
            provider_id = await self._with_retries(lane, message)
        except Exception as exc:  # the provider's reason, kept on the recipient
            self.stats.failed += 1
            error = str(exc) or type(exc).__name__
            self._journal(Entry(r, self.session, "failed", error=error))
            self._add(r, self.session, "failed", error=error, journaled=True)
            return
        self.stats.sent += 1
        self._journal(Entry(r, self.session, "sent", provider_id))
        self._add(r, self.session, "sent", provider_id, journaled=True)
        if len(self._pending) >= MAX_REPORT:
            await self.flush()

    async def _settled(self, lane: Gateway, message: BroadcastMessage) -> bool:
        """Whether a send claimed before is still to be sent: False when the journal knows its
        answer or the provider finds it sent (either is reported), or the provider says to
        hold it (it stays claimed and comes back when the lease ends)."""
        t, c, r = self.tenant, self.channel, message.recipient
        entry = self.journal.entry(t, c, r)
        if entry is not None:
            self._add(r, self.session, entry.state, entry.provider_id, entry.error, journaled=True)
            return False
        try:
            found = await self.provider.reconcile_broadcast(lane, self.served, message)
        except Hold:
            self.stats.held += 1
            return False
        except (DeliveryError, httpx.HTTPError, OSError) as exc:
            log.warning("broadcast not reconciled; held", recipient=r, error=str(exc))
            self.stats.held += 1
            return False
        if found is None:
            return True
        self.stats.reconciled += 1
        self._journal(Entry(r, self.session, "sent", found))
        self._add(r, self.session, "sent", found, journaled=True)
        return False

    async def _with_retries(self, lane: Gateway, message: BroadcastMessage) -> str:
        """The provider's send, retried with backoff on transient failures (the first try
        without tenacity's machinery: most sends need none)."""
        try:
            return await self.provider.send_broadcast(lane, self.served, message)
        except Exception as exc:
            if not is_transient(exc) or self.attempts <= 1:
                raise
        await asyncio.sleep(0.2)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.attempts - 1),
            wait=wait_exponential_jitter(multiplier=0.2, max=5.0),
            retry=retry_if_exception(is_transient),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self.provider.send_broadcast(lane, self.served, message)
        raise AssertionError("unreachable")  # pragma: no cover


class BroadcastSender:
    """A ``ChannelSender`` for every served channel of a provider that broadcasts, following
    the directory as ``Outbound`` does."""

    def __init__(
        self,
        gateway: Gateway,
        provider: Provider,
        journal: BroadcastJournal,
        *,
        lease: float = 60.0,
        concurrency: int = 16,
        idle: float = 1.0,
        flush_every: float = 0.25,
        attempts: int = 4,
    ) -> None:
        self._gateway = gateway
        self._provider = provider
        self._journal = journal
        self._options = {
            "lease": lease,
            "concurrency": concurrency,
            "idle": idle,
            "flush_every": flush_every,
            "attempts": attempts,
        }
        self._loops: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._watch: asyncio.Task[None] | None = None
        self.stats = SenderStats()

    def start(self) -> None:
        if self._provider.broadcast_rate <= 0:
            return
        self._reconcile()
        self._watch = asyncio.create_task(self._follow_directory(), name="broadcast-watch")

    async def stop(self) -> None:
        tasks = [*self._loops.values(), *([self._watch] if self._watch else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._loops.clear()

    async def _follow_directory(self, every: float = 5.0) -> None:
        """The directory's ``changed`` event is ``Outbound``'s to clear: look now and then."""
        while True:
            await asyncio.sleep(every)
            self._reconcile()

    def _reconcile(self) -> None:
        wanted = {(s.tenant, s.channel.channel_id): s for s in self._gateway.directory}
        for key in set(self._loops) - set(wanted):
            self._loops.pop(key).cancel()
        for key, served in wanted.items():
            if key not in self._loops or self._loops[key].done():
                sender = ChannelSender(
                    self._gateway,
                    self._provider,
                    served,
                    self._journal,
                    self.stats,
                    **self._options,  # type: ignore[arg-type]
                )
                self._loops[key] = asyncio.create_task(
                    self._run(sender), name=f"broadcast-{key[0]}-{key[1]}"
                )

    async def _run(self, sender: ChannelSender) -> None:
        try:
            await sender.run()
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(sender.flush()), 5.0)
            raise
        except Exception:
            log.exception("broadcast sender failed; restarting", channel=sender.channel)
            await asyncio.sleep(1.0)
            self._loops.pop((sender.tenant, sender.channel), None)
            self._reconcile()
