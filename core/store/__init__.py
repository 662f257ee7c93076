"""The durable store: PostgreSQL as the system of record, Redis beside it."""

from core.store.connect import Connections, connect, redact
from core.store.errors import StaleEpoch, StoreError, StoreUnavailable
from core.store.eventlog import EventLog
from core.store.projection import Projection, project

__all__ = [
    "Connections",
    "EventLog",
    "Projection",
    "StaleEpoch",
    "StoreError",
    "StoreUnavailable",
    "connect",
    "project",
    "redact",
]
