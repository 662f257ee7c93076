"""How failures from below become ``google.rpc.Status`` answers."""

from __future__ import annotations

from typing import Any

import pytest
from google.rpc import error_details_pb2, status_pb2

from core.api.errors import fail_from
from core.runtime.feed import ResumeTooOld, SlowConsumer


class Context:
    """Records the status a servicer aborts with."""

    def __init__(self) -> None:
        self.status: status_pb2.Status | None = None

    async def abort_with_status(self, status: Any) -> None:
        details = dict(status.trailing_metadata)["grpc-status-details-bin"]
        self.status = status_pb2.Status.FromString(details)
        raise RuntimeError("aborted")


def detail(status: status_pb2.Status, kind: type[Any]) -> Any:
    for packed in status.details:
        found = kind()
        if packed.Unpack(found):
            return found
    return None


async def test_a_slow_consumer_is_told_to_resume_soon() -> None:
    context = Context()
    with pytest.raises(RuntimeError):
        await fail_from(context, SlowConsumer("fell 1000 events behind"))  # type: ignore[arg-type]
    assert context.status is not None
    assert detail(context.status, error_details_pb2.ErrorInfo).reason == "SLOW_CONSUMER"
    assert detail(context.status, error_details_pb2.RetryInfo) is not None


async def test_a_resume_too_old_is_final() -> None:
    context = Context()
    with pytest.raises(RuntimeError):
        await fail_from(context, ResumeTooOld("too far back"))  # type: ignore[arg-type]
    assert context.status is not None
    assert detail(context.status, error_details_pb2.RetryInfo) is None
