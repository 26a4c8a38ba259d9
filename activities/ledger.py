"""`record_to_ledger`: a case's events and facts, written to the case ledger.

The write is idempotent (escalator/adapters/ledger_store.py), so Temporal's
retries are safe. Every failure is transient: a ledger that is down, full or
misconfigured is fixed by its operator, and the case's events wait in the
activity's retries, never in the case. The workflow never waits for this
activity, except before closing a resolved case, so a ledger outage delays no
escalation.
"""

from __future__ import annotations

import asyncio

from sqlalchemy.exc import SQLAlchemyError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from escalator.adapters.ledger_store import LedgerStore
from escalator.adapters.settings import EscalatorSettings, LedgerSettings
from escalator.domain.errors import InvalidInput
from escalator.domain.ledger import LedgerBatch, LedgerReceipt
from escalator.domain.names import RECORD_TO_LEDGER

LEDGER_UNAVAILABLE = "LedgerUnavailable"


class LedgerActivities:
    """`record_to_ledger`, writing to the store that `settings.ledger.url` names."""

    def __init__(self, settings: EscalatorSettings) -> None:
        self.settings = settings
        self.store = LedgerStore(settings.ledger.url.get_secret_value())

    def __repr__(self) -> str:
        return "LedgerActivities(url=***)"  # the URL may hold a password

    @activity.defn(name=RECORD_TO_LEDGER)
    async def record_to_ledger(self, batch: LedgerBatch) -> LedgerReceipt:
        return await _write(self.store, batch)

    def close(self) -> None:
        self.store.close()


_stores: dict[str, LedgerStore] = {}  # one per URL, for the environment-reading form


@activity.defn(name=RECORD_TO_LEDGER)
async def record_to_ledger(batch: LedgerBatch) -> LedgerReceipt:
    """`record_to_ledger` with ESCALATOR_LEDGER_URL read from the environment."""
    try:
        url = LedgerSettings.from_env().url.get_secret_value()
    except InvalidInput as error:  # a worker misconfiguration: retry once it is fixed
        raise ApplicationError(f"ledger: {error}", type=LEDGER_UNAVAILABLE) from None
    store = _stores.setdefault(url, LedgerStore(url))
    return await _write(store, batch)


async def _write(store: LedgerStore, batch: LedgerBatch) -> LedgerReceipt:
    try:
        # SQLAlchemy is synchronous; a thread keeps the worker's event loop free.
        return await asyncio.to_thread(store.write, batch)
    except InvalidInput as error:  # says what to fix, and never holds the URL
        raise ApplicationError(
            f"{error}; {len(batch.events)} events of case {batch.case_id} wait for it",
            type=LEDGER_UNAVAILABLE,
        ) from None
    except (SQLAlchemyError, OSError) as error:
        # The message names the database error's kind only: the URL, which a driver
        # may quote, can carry a password.
        raise ApplicationError(
            f"ledger unavailable ({type(error).__name__}); {len(batch.events)} events "
            f"of case {batch.case_id} wait for it",
            type=LEDGER_UNAVAILABLE,
        ) from None
