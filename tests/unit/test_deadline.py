"""Commands submitted on behalf of an RPC are bounded by that RPC's deadline."""

from __future__ import annotations

import asyncio
from contextvars import ContextVar

from core.api.context import within_deadline
from core.routing import commands as c
from core.runtime.shard import Outcome

COMMAND = c.DefineSkill(tenant="acme", skill="billing")


async def slow(command: c.Command) -> Outcome:
    await asyncio.sleep(3600)
    return Outcome()


async def quick(command: c.Command) -> Outcome:
    return Outcome(first_id=7)


async def test_a_submit_past_the_calls_deadline_answers_deadline_exceeded() -> None:
    deadline: ContextVar[float] = ContextVar("deadline")
    deadline.set(asyncio.get_running_loop().time() + 0.05)

    outcome = await within_deadline(slow, deadline)(COMMAND)

    assert outcome.failure is not None and outcome.failure.code == "DEADLINE_EXCEEDED"


async def test_without_a_deadline_a_submit_waits_for_its_outcome() -> None:
    deadline: ContextVar[float] = ContextVar("deadline")

    assert (await within_deadline(quick, deadline)(COMMAND)).first_id == 7
