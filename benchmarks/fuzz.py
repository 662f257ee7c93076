"""``usher bench fuzz``: requests for every ``usher.v1`` RPC generated from the proto
descriptors (Hypothesis strategies: names from a seeded tenant mixed with garbage, extreme
numbers, undefined enum values, NUL bytes, oversized strings and lists), sent to a real front
door over gRPC with the role each service expects.

Every answer must be a canonical code other than UNKNOWN whose message and details carry no
traceback or server path; INVALID_ARGUMENT must carry a ``BadRequest``. Afterwards the server must
still serve, the engine's invariants must hold, and the tenant rebuilt from the store by a new
shard must equal the live engine. ``run_fuzz`` does it all and returns a ``FuzzResult``; the test
``tests/integration/test_fuzz.py`` runs it small, the CLI larger (JSON with ``--json``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import secrets
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import asyncpg
import click
import grpc
import redis.asyncio as aioredis
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from usher.v1 import (
    admin_service_pb2,
    agent_service_pb2,
    bot_service_pb2,
    canned_reply_service_pb2,
    conversation_service_pb2,
    record_service_pb2,
    report_service_pb2,
    supervisor_service_pb2,
)

from benchmarks import report
from core.api.local import build_local_context
from core.api.server import Server, available_servicers
from core.api.validation.walk import limit_of
from core.routing import ManualClock
from core.routing.invariants import InvariantViolation, check_invariants, snapshot
from core.runtime.shard import Shard
from core.store import credentials
from core.store.connect import Connections

SERVICES: Final = (
    conversation_service_pb2,
    agent_service_pb2,
    supervisor_service_pb2,
    admin_service_pb2,
    record_service_pb2,
    bot_service_pb2,
    canned_reply_service_pb2,
    report_service_pb2,
)
ROLE_OF: Final = {
    "ConversationService": ("gateway", None),
    "AgentService": ("agent", "ann"),
    "SupervisorService": ("supervisor", None),
    "AdminService": ("admin", None),
    "RecordService": ("agent", "ann"),
    "BotService": ("admin", None),
    "CannedReplyService": ("agent", "ann"),
    "ReportService": ("supervisor", None),
}
LEAKS: Final = ("Traceback", 'File "', ".py", "/work/", "site-packages", "Error(")
"""Text that shows an exception or a server path reached the client."""

GARBAGE: Final = (
    "",
    "\x00",
    "a\x00b",
    "x" * 300,
    "y" * 70_000,
    "queues/\x00",
    "conversations/../x",
    "conversations/c/messages/99999999999999999999",
    "\U0001f600" * 70,
    "agents/",
    "-",
    "en_US",
    "+1",
    "@",
)


@dataclass(frozen=True, slots=True)
class Call:
    """One generated request: ``/usher.v1.{service}/{method}``."""

    service: str
    method: str
    request: Message
    streaming: bool

    @property
    def path(self) -> str:
        return f"/usher.v1.{self.service}/{self.method}"


@dataclass(slots=True)
class FuzzResult:
    calls: int = 0
    codes: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    still_serving: bool = False
    invariants_hold: bool = False
    store_agrees: bool = False
    seconds: float = 0.0

    @property
    def clean(self) -> bool:
        return (
            not self.problems and self.still_serving and self.invariants_hold and self.store_agrees
        )


# --- strategies ----------------------------------------------------------------------------------

_INT_RANGES: Final = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}


def _mostly(valid: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``valid`` nine times in ten, so that many requests get past the edge's limits."""
    return st.integers(0, 9).flatmap(lambda roll: valid if roll else odd)


def _integers(low: int, high: int) -> st.SearchStrategy[int]:
    edges = [v for v in (low, high, 0, -1, 10**6 + 1, 2**31 - 1, 2**53) if low <= v <= high]
    return _mostly(st.integers(max(low, 0), min(high, 10)), st.sampled_from(edges))


def _scalar(field: FieldDescriptor, names: Sequence[str]) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        form = limit_of(field).form
        fitting = [n for n in names if form is None or form.accepts(n)] or list(names)
        return _mostly(
            st.sampled_from(fitting), st.one_of(st.sampled_from(GARBAGE), st.text(max_size=20))
        )
    if kind == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=32)
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return _mostly(
            st.floats(0.5, 10), st.sampled_from([float("nan"), float("inf"), 1e308, -1.0])
        )
    if kind == FieldDescriptor.TYPE_ENUM and field.enum_type is not None:
        defined = [v.number for v in field.enum_type.values]
        return _mostly(st.sampled_from(defined), st.integers(-3, 99))
    low, high = _INT_RANGES[kind]
    return _integers(low, high)


def _times(cls: Any, around: int) -> st.SearchStrategy[Message]:
    odd = st.builds(cls, seconds=_integers(-(2**40), 2**40), nanos=_integers(-(2**31), 2**31 - 1))
    return _mostly(st.builds(cls, seconds=st.integers(around, around + 3_600)), odd)


def messages(
    descriptor: Descriptor, names: Sequence[str], depth: int = 0
) -> st.SearchStrategy[Message]:
    """Instances of ``descriptor``'s message, every field set or not at random."""
    cls = message_factory.GetMessageClass(descriptor)
    if descriptor.full_name == "google.protobuf.Timestamp":
        return _times(cls, 1_800_000_000)
    if descriptor.full_name == "google.protobuf.Duration":
        return _times(cls, 1)
    if descriptor.full_name == "google.protobuf.FieldMask":
        return st.builds(
            cls,
            paths=st.lists(
                st.one_of(st.sampled_from(["display_name", "capacity"]), st.text(max_size=10)),
                max_size=3,
            ),
        )
    parts: dict[str, st.SearchStrategy[Any]] = {}
    for f in descriptor.fields:
        item: st.SearchStrategy[Any]
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            key = _scalar(f.message_type.fields_by_name["key"], names)
            entry = f.message_type.fields_by_name["value"]
            value = (
                _scalar(entry, names)
                if entry.message_type is None
                else messages(entry.message_type, names, depth + 1)
            )
            parts[f.name] = st.dictionaries(key, value, max_size=3)
            continue
        if f.message_type is not None:
            if depth >= 4:
                continue
            item = messages(f.message_type, names, depth + 1)
        else:
            item = _scalar(f, names)
        if f.is_repeated:
            many = st.lists(item, min_size=60, max_size=120)
            few = st.lists(item, max_size=3)
            parts[f.name] = _mostly(few, many) if f.message_type is None else few
        else:
            parts[f.name] = item
    return st.fixed_dictionaries({}, optional=parts).map(lambda values: _build(cls, values))


def _build(cls: Callable[[], Message], values: dict[str, Any]) -> Message:
    out = cls()
    for name, value in values.items():
        target = getattr(out, name)
        if isinstance(value, dict):
            for k, v in value.items():
                if isinstance(v, Message):
                    target[k].CopyFrom(v)
                else:
                    target[k] = v
        elif isinstance(value, list):
            for v in value:
                if isinstance(v, Message):
                    target.add().CopyFrom(v)
                else:
                    target.append(v)
        elif isinstance(value, Message):
            target.CopyFrom(value)
        else:
            setattr(out, name, value)
    return out


def methods() -> list[tuple[str, str, Descriptor, bool]]:
    """(service, method, request descriptor, server-streaming) of every ``usher.v1`` RPC."""
    return [
        (service.name, method.name, method.input_type, method.server_streaming)
        for module in SERVICES
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    ]


def calls(names: Sequence[str]) -> st.SearchStrategy[Call]:
    """A request for any RPC."""
    return st.one_of(
        [
            messages(descriptor, names).map(_as_call(service, method, streaming))
            for service, method, descriptor, streaming in methods()
        ]
    )


def _as_call(service: str, method: str, streaming: bool) -> Callable[[Message], Call]:
    return lambda request: Call(service, method, request, streaming)


def draw(names: Sequence[str], count: int, seed: int) -> list[Call]:
    """``count`` generated calls (Hypothesis runs the generator; the sending is ours)."""
    drawn: list[Call] = []

    @hypothesis_seed(seed)
    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(calls(names))
    def collect(call: Call) -> None:
        drawn.append(call)

    collect()
    return drawn[:count]


# --- sending -------------------------------------------------------------------------------------


def _status(error: grpc.aio.AioRpcError) -> status_pb2.Status | None:
    raw = dict(error.trailing_metadata() or ()).get("grpc-status-details-bin")
    return None if raw is None else status_pb2.Status.FromString(raw)


def judge(call: Call, error: grpc.aio.AioRpcError) -> list[str]:
    """What is wrong with the refusal of ``call`` (empty: a clean answer)."""
    code = error.code()
    problems = []
    where = call.path
    if code == grpc.StatusCode.UNKNOWN:
        problems.append(f"{where}: UNKNOWN")
    status = _status(error)
    texts = [error.details() or ""]
    if status is not None:
        texts.append(status.message)
        texts.extend(str(d) for d in status.details)
    leaked = [marker for marker in LEAKS if any(marker in text for text in texts)]
    if leaked:
        problems.append(f"{where}: {code.name} leaks {leaked[0]!r}")
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        bad = error_details_pb2.BadRequest()
        if status is None or not any(d.Unpack(bad) for d in status.details):
            problems.append(f"{where}: INVALID_ARGUMENT without BadRequest")
    if code == grpc.StatusCode.INTERNAL:
        problems.append(f"{where}: INTERNAL")
    return problems


async def send(
    channel: grpc.aio.Channel, call: Call, auth: tuple[tuple[str, str], ...], result: FuzzResult
) -> None:
    result.calls += 1
    body = call.request.SerializeToString()
    try:
        if call.streaming:
            stream = channel.unary_stream(
                call.path, request_serializer=lambda b: b, response_deserializer=lambda b: b
            )(body, metadata=auth)
            try:
                await asyncio.wait_for(stream.read(), 0.3)
                result.codes["OK"] += 1
            except TimeoutError:
                result.codes["OK"] += 1  # open and quiet: a valid stream
            finally:
                stream.cancel()
            code = await stream.code()
            if code not in (grpc.StatusCode.CANCELLED, grpc.StatusCode.OK):
                raise _StreamEnded(code)
            return
        unary = channel.unary_unary(
            call.path, request_serializer=lambda b: b, response_deserializer=lambda b: b
        )
        await unary(body, metadata=auth, timeout=30)
        result.codes["OK"] += 1
    except grpc.aio.AioRpcError as error:
        result.codes[error.code().name] += 1
        result.problems.extend(judge(call, error))
    except _StreamEnded:
        pass


class _StreamEnded(Exception):
    def __init__(self, code: grpc.StatusCode) -> None:
        super().__init__(code.name)


# --- the run -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FuzzConfig:
    calls: int = 300
    seed: int = 1
    tenant: str = ""
    """Empty: a fresh ``fuzz-<random>`` tenant, so runs never share state."""


async def _seed(
    channel: grpc.aio.Channel,
    admin: tuple[tuple[str, str], ...],
    agent: tuple[tuple[str, str], ...],
    gateway: tuple[tuple[str, str], ...],
) -> list[str]:
    """A small tenant (skill, queue, two agents, ann online, a conversation); its names."""
    from usher.v1 import (
        admin_service_pb2_grpc,
        agent_pb2,
        agent_service_pb2_grpc,
        conversation_pb2,
        conversation_service_pb2_grpc,
    )

    a = admin_service_pb2_grpc.AdminServiceStub(channel)
    await a.CreateSkill(admin_service_pb2.CreateSkillRequest(skill_id="billing"), metadata=admin)
    await a.CreateQueue(admin_service_pb2.CreateQueueRequest(queue_id="sales"), metadata=admin)
    for name in ("ann", "bob"):
        await a.CreateAgent(
            admin_service_pb2.CreateAgentRequest(
                agent_id=name, agent=agent_pb2.Agent(display_name=name, capacity=2)
            ),
            metadata=admin,
        )
    await agent_service_pb2_grpc.AgentServiceStub(channel).SetStatus(
        agent_service_pb2.SetStatusRequest(status=agent_pb2.AGENT_STATUS_ONLINE), metadata=agent
    )
    started = await conversation_service_pb2_grpc.ConversationServiceStub(
        channel
    ).StartConversation(
        conversation_service_pb2.StartConversationRequest(
            channel="sms",
            queue="queues/sales",
            customer=conversation_pb2.CustomerIdentity(external_id="kim"),
            first_message=conversation_service_pb2.CustomerMessage(text="hello"),
        ),
        metadata=gateway,
    )
    conversation = started.conversation.name
    return [
        conversation,
        f"{conversation}/messages/{started.first_message.name.rsplit('/', 1)[-1] or 1}",
        "queues/sales",
        "agents/ann",
        "agents/bob",
        "skills/billing",
        "offers/o1",
        "transfers/t1",
        "departments/d1",
        "channels/web",
        "sms",
        "ann",
        "en",
        "zh-Hant-HK",
        "+85291234567",
        "kim@example.com",
        "https://example.test/f.png",
        "image/png",
        "a" * 64,
        "12:00",
        "2030-01-01",
        "Europe/London",
        "display_name",
        "Ann",
    ]


async def run_fuzz(
    pool: asyncpg.Pool, redis_url: str, config: FuzzConfig = FuzzConfig()
) -> FuzzResult:
    """One front door and its shard on a manual clock (no timer fires on its own, so the
    engine and the store can be compared at the end); see the module docstring."""
    tenant = config.tenant or f"fuzz-{secrets.token_hex(4)}"
    client = aioredis.Redis.from_url(redis_url)
    ctx, shard = build_local_context(
        Connections(pool, client, "fuzz", "fuzz"), clock=ManualClock(time.time())
    )
    shard.start()
    server = Server(ctx, available_servicers(ctx), host="127.0.0.1", port=0, rate_limit=None)
    result = FuzzResult()
    began = time.perf_counter()
    try:
        await server.start()
        await pool.execute(
            "INSERT INTO tenants (tenant_id) VALUES ($1) ON CONFLICT DO NOTHING", tenant
        )
        auth = {}
        for service, (role, agent_id) in ROLE_OF.items():
            _, token = await credentials.create(pool, tenant, role, agent_id)
            auth[service] = (("authorization", f"Bearer {token}"),)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            names = await _seed(
                channel, auth["AdminService"], auth["AgentService"], auth["ConversationService"]
            )
            generated = await asyncio.to_thread(draw, names, config.calls, config.seed)
            for call in generated:
                await send(channel, call, auth[call.service], result)
            probe = channel.unary_unary(
                "/usher.v1.AdminService/ListSkills",
                request_serializer=lambda b: b,
                response_deserializer=lambda b: b,
            )
            try:
                await probe(
                    admin_service_pb2.ListSkillsRequest().SerializeToString(),
                    metadata=auth["AdminService"],
                    timeout=10,
                )
                result.still_serving = True
            except grpc.aio.AioRpcError as error:
                result.problems.append(f"not serving afterwards: {error.code().name}")
    finally:
        await server.stop(grace=1.0)
        await shard.stop()
        await client.aclose()
    live = shard.engine.get(tenant)
    if live is not None:
        try:
            check_invariants(live)
            result.invariants_hold = True
        except InvariantViolation as exc:
            result.problems.append(f"invariant broken: {exc}")
        successor = Shard("fuzz-rebuild", pool, clock=ManualClock(shard.engine.clock.now()))
        await successor.live(tenant)
        rebuilt = successor.engine.get(tenant)
        result.store_agrees = rebuilt is not None and snapshot(rebuilt) == snapshot(live)
        if not result.store_agrees:
            result.problems.append("the tenant rebuilt from the store differs from the live engine")
        await successor.stop()
    result.seconds = time.perf_counter() - began
    return result


def document(result: FuzzResult, config: FuzzConfig) -> dict[str, Any]:
    """The JSON document of a run (``--json``)."""
    return {
        "suite": "fuzz",
        "config": dataclasses.asdict(config),
        "calls": result.calls,
        "codes": dict(sorted(result.codes.items())),
        "problems": result.problems[:100],
        "still_serving": result.still_serving,
        "invariants_hold": result.invariants_hold,
        "store_agrees": result.store_agrees,
        "clean": result.clean,
        "seconds": round(result.seconds, 2),
    }


# --- the command ---------------------------------------------------------------------------------


async def _run_against(database_url: str, redis_url: str, config: FuzzConfig) -> FuzzResult:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=8)
    try:
        return await run_fuzz(pool, redis_url, config)
    finally:
        await pool.close()


@click.command("fuzz")
@click.option("--calls", type=click.IntRange(min=1), default=2_000, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option(
    "--database-url",
    envvar="USHER_DATABASE_URL",
    show_envvar=True,
    required=True,
    help="A migrated PostgreSQL (`usher db migrate`); the run uses a fresh fuzz-<hex> tenant.",
)
@click.option("--redis-url", envvar="USHER_REDIS_URL", show_envvar=True, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead.")
def fuzz(calls: int, seed: int, database_url: str, redis_url: str, as_json: bool) -> None:
    """Generated requests for every usher.v1 RPC against a real front door; exits 1 unless
    every answer is clean, the server still serves and the store agrees with the engine."""
    config = FuzzConfig(calls=calls, seed=seed)
    with contextlib.redirect_stdout(sys.stderr):  # the server's log lines
        result = asyncio.run(_run_against(database_url, redis_url, config))
    body = document(result, config)
    if as_json:
        click.echo(report.dumps(body))
    else:
        codes = ", ".join(f"{code} {n}" for code, n in sorted(result.codes.items()))
        click.echo(f"fuzz: {result.calls} calls in {result.seconds:.1f} s: {codes}")
        for problem in result.problems[:50]:
            click.echo(f"  problem: {problem}")
        click.echo(
            f"still serving: {result.still_serving}; invariants: {result.invariants_hold}; "
            f"store agrees: {result.store_agrees}"
        )
    if not result.clean:
        sys.exit(1)
