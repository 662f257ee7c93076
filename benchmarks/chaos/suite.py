"""``usher bench chaos``: a steady load through the SDK while shards, front doors, PostgreSQL
and Redis are faulted on a schedule; then an audit proving nothing acknowledged was lost,
duplicated, owned twice or put an agent over capacity, and the recovery time of each fault.

The pieces: ``cluster`` (what runs), ``faults`` (the schedule), ``load`` (the clients and the
probes), ``ledger`` (what the clients were told), ``audit`` (the checks).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from benchmarks.chaos import faults
from benchmarks.chaos.audit import EXAMPLES, Audit, audit_api, audit_live, audit_store
from benchmarks.chaos.cluster import Progress, running_cluster
from benchmarks.chaos.ledger import Ledger
from benchmarks.chaos.load import LoadConfig, TenantLoad, configure, recovery, tenant_names
from benchmarks.loadgen import quantile

TARGET_RECOVERY_P99_S = 5.0


@dataclass(frozen=True, slots=True)
class ChaosConfig:
    shards: int = 2
    doors: int = 2
    load: LoadConfig = field(default_factory=LoadConfig)
    schedule: faults.Schedule = field(default_factory=faults.Schedule)
    drain_s: float = 30.0
    """After the last fault's gap: how long the agents at work have to finish."""
    replay_limit: int = 2000
    """Acknowledged starts and messages of each kind replayed through the API, at most."""
    database_url: str | None = None
    redis_url: str | None = None


def smoke(config: ChaosConfig) -> ChaosConfig:
    """``--quick``: one fault of each kind, short holds (a check of the invariants, not of
    recovery times)."""
    return dataclasses.replace(
        config,
        load=dataclasses.replace(config.load, agents=4, rate=3.0, handle_s=0.5),
        schedule=faults.Schedule(
            warmup_s=3.0,
            shard_kills=1,
            door_kills=1,
            postgres_stops=1,
            postgres_stop_s=3.0,
            redis_stops=1,
            redis_stop_s=3.0,
            gap_s=4.0,
        ),
        drain_s=20.0,
        replay_limit=300,
    )


@dataclass(frozen=True, slots=True)
class FaultResult:
    kind: str
    target: str
    at_s: float
    """Seconds after the load started."""
    held_s: float
    """From injection to lifting (a door's restart included)."""
    recovery_s: float | None
    """From lifting until every probe path answered again (None: some path never did)."""
    failed_probes: int
    """Probe calls sent from injection to recovery that failed: the fault as the clients saw
    it (0 for a fault nobody noticed)."""


@dataclass(frozen=True, slots=True)
class ChaosResult:
    faults: tuple[FaultResult, ...]
    acknowledged: int
    acknowledged_conversations: int
    acknowledged_messages: int
    lost: int
    duplicated: int
    double_owned: int
    over_capacity: int
    acknowledged_then_refused: int
    invariant_violations: int
    rebuild_mismatches: int
    """Tenants whose live shard state differs from a fresh replay of their event log."""
    rebuilds_compared: int
    recovery_p99_s: float | None
    """Over the faults; None when a fault never recovered."""
    unrecovered: int
    calls_acknowledged: int
    unknown_outcomes: dict[str, int]
    """Calls given up on with their outcome unknown (never acknowledged, so not audited)."""
    resolved_by_reading: int
    load_errors: dict[str, int]
    replays: dict[str, int]
    events_checked: int
    peak_load_ratio: float
    """Highest load / capacity of any agent after any event replayed."""
    probe_calls: int
    seconds: float
    examples: dict[str, list[str]]
    setup: dict[str, Any]

    @property
    def clean(self) -> bool:
        return (
            self.lost
            == self.duplicated
            == self.double_owned
            == self.over_capacity
            == self.acknowledged_then_refused
            == self.invariant_violations
            == self.rebuild_mismatches
            == 0
        )


def document(result: ChaosResult) -> dict[str, Any]:
    """``{"suite": "chaos", <ChaosResult fields>, "clean": ...}``."""
    return {"suite": "chaos", **dataclasses.asdict(result), "clean": result.clean}


async def run_chaos(config: ChaosConfig, progress: Progress | None = None) -> ChaosResult:
    """The whole suite (module docstring)."""
    say = progress or (lambda _: None)
    planned, seconds = faults.plan(config.schedule)
    run = uuid.uuid4().hex[:6]
    ledger = Ledger()
    async with running_cluster(
        shards=config.shards,
        doors=config.doors,
        database_url=config.database_url,
        redis_url=config.redis_url,
        say=say,
    ) as cluster:
        targets = [door.target for door in cluster.doors]
        names = tenant_names(run, config.load.tenants, config.shards)
        say(f"configuring tenants {', '.join(names)}")
        tenants = [
            await configure(cluster.stores.direct_url, targets[0], name, config.load)
            for name in names
        ]
        loads = [TenantLoad(t, targets, config.load, ledger, run) for t in tenants]
        try:
            await asyncio.gather(*(load.start() for load in loads))
            say(f"load for {seconds:g} s, {len(planned)} faults")
            t0 = time.monotonic()
            arrivals = [asyncio.create_task(load.arrivals(seconds)) for load in loads]
            injected = await faults.inject(cluster, planned, t0, say)
            await asyncio.gather(*arrivals)
            say("draining")
            await asyncio.gather(*(load.drain(config.drain_s) for load in loads))
        finally:
            await asyncio.gather(*(load.close() for load in loads))
        elapsed = time.monotonic() - t0
        say("auditing the store")
        audit = Audit()
        await audit_store(cluster.stores.direct_url, names, ledger, audit)
        say("comparing each tenant's live state with a rebuild from its event log")
        await audit_live(cluster.stores.direct_url, names, cluster.live, audit)
        say("auditing through the API")
        await audit_api(targets[0], tenants, ledger, audit, config.replay_limit)
        how = cluster.stores.how

    results = tuple(_fault_result(f, ledger, t0) for f in injected)
    recovered = sorted(f.recovery_s for f in results if f.recovery_s is not None)
    unrecovered = sum(1 for f in results if f.recovery_s is None)
    p99 = round(quantile(recovered, 0.99), 3) if recovered and not unrecovered else None
    audit.double_owned += [f"{t} {c}: granted twice" for t, c in ledger.double_owned()]
    refused = ledger.refused_after_ack + audit.refused_after_ack
    found = {
        "lost": audit.lost_conversations + audit.lost_messages,
        "duplicated": audit.duplicated_conversations + audit.duplicated_messages,
        "double_owned": audit.double_owned,
        "over_capacity": audit.over_capacity,
        "acknowledged_then_refused": refused,
        "invariant_violations": audit.invariant_violations,
        "rebuild_mismatches": audit.rebuild_mismatches,
    }
    return ChaosResult(
        faults=results,
        acknowledged=len(ledger.starts) + len(ledger.messages),
        acknowledged_conversations=len(ledger.starts),
        acknowledged_messages=len(ledger.messages),
        lost=len(found["lost"]),
        duplicated=len(found["duplicated"]),
        double_owned=len(found["double_owned"]),
        over_capacity=len(found["over_capacity"]),
        acknowledged_then_refused=len(refused),
        invariant_violations=len(audit.invariant_violations),
        rebuild_mismatches=len(audit.rebuild_mismatches),
        rebuilds_compared=audit.rebuilds_compared,
        recovery_p99_s=p99,
        unrecovered=unrecovered,
        calls_acknowledged=ledger.calls,
        unknown_outcomes=dict(ledger.unknown),
        resolved_by_reading=ledger.resolved,
        load_errors=dict(sorted(ledger.errors.items())),
        replays=dict(audit.replays),
        events_checked=audit.events_checked,
        peak_load_ratio=round(audit.peak_load_ratio, 3),
        probe_calls=len(ledger.probes),
        seconds=round(elapsed, 1),
        examples={k: v[:EXAMPLES] for k, v in found.items() if v},
        setup={
            "shards": config.shards,
            "doors": config.doors,
            "tenants": config.load.tenants,
            "agents_per_tenant": config.load.agents,
            "capacity": config.load.capacity,
            "rate_per_tenant": config.load.rate,
            "handle_s": config.load.handle_s,
            "transfer_share": config.load.transfer_share,
            "stores": how,
            "schedule": dataclasses.asdict(config.schedule),
        },
    )


def _fault_result(fault: faults.Injected, ledger: Ledger, t0: float) -> FaultResult:
    took = recovery(ledger.probes, fault.lifted)
    until = fault.lifted + took if took is not None else float("inf")
    failed = sum(1 for p in ledger.probes if not p.ok and fault.started <= p.sent <= until)
    return FaultResult(
        kind=fault.kind,
        target=fault.target,
        at_s=round(fault.started - t0, 2),
        held_s=round(fault.lifted - fault.started, 2),
        recovery_s=None if took is None else round(took, 3),
        failed_probes=failed,
    )
