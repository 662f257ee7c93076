"""The store's errors, each with the canonical gRPC status the service answers with."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Final

import asyncpg


class StoreError(Exception):
    code = "INTERNAL"


class StaleEpoch(StoreError):
    """A newer incarnation owns the tenant; this writer must stop."""

    code = "FAILED_PRECONDITION"


class StoreUnavailable(StoreError):
    """PostgreSQL (or Redis) did not answer: nothing was acknowledged (for an event-log append
    the outcome is unknown, so its writer rebuilds from the store)."""

    code = "UNAVAILABLE"


class InvalidInput(StoreError):
    """The request breaks a rule of the schema (length, characters, format); nothing was written."""

    code = "INVALID_ARGUMENT"


class UnknownTenant(StoreError):
    """No such tenant; nothing was written."""

    code = "NOT_FOUND"


class InvalidCredential(StoreError):
    """An unknown, wrong or revoked API token."""

    code = "UNAUTHENTICATED"


# --- errors from PostgreSQL --------------------------------------------------------------------

PG_CONNECTION_ERRORS: Final = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.InterfaceError,
)
_PG_INVALID: Final = (
    asyncpg.exceptions.CheckViolationError,
    asyncpg.exceptions.NotNullViolationError,
    asyncpg.exceptions.StringDataRightTruncationError,
    asyncpg.exceptions.UntranslatableCharacterError,
    asyncpg.exceptions.CharacterNotInRepertoireError,
    asyncpg.exceptions.InvalidTextRepresentationError,
)


@contextlib.contextmanager
def translated_errors() -> Iterator[None]:
    """Map PostgreSQL's refusals to ``InvalidInput``/``UnknownTenant``, outages to
    ``StoreUnavailable``. Wrap whole transactions, so a refusal has rolled everything back."""
    try:
        yield
    except asyncpg.exceptions.ForeignKeyViolationError as exc:
        if '"tenants"' in (exc.detail or ""):
            raise UnknownTenant(f"unknown tenant ({exc.detail})") from exc
        raise InvalidInput(f"refused by the schema: {exc.constraint_name}") from exc
    except _PG_INVALID as exc:
        name = getattr(exc, "constraint_name", None) or type(exc).__name__
        raise InvalidInput(f"refused by the schema: {name}: {exc}") from exc
    except PG_CONNECTION_ERRORS as exc:
        raise StoreUnavailable(f"PostgreSQL is unavailable: {exc!r}") from exc
