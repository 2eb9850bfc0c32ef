"""The prune that `mailctl serve` runs by itself, so expired accounts stop working on time.

Every API worker (on every host sharing the store) wakes up now and then and
tries to take the `prune` lease in the store: one conditional upsert that
succeeds only if no prune is running and the last one finished at least
`interval` seconds ago, so only one of them wins. A pruner killed mid-run
holds the lease for at most RUN_LEASE seconds; two overlapping runs would
still be safe (deleting an account that is gone counts as done, a slot is
released once), the lease only saves the provider the duplicate calls.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket

from mailctl.accounts.errors import AccountsError
from mailctl.accounts.expiry import iso
from mailctl.accounts.service import AccountService, PruneReport

log = logging.getLogger("mailctl.accounts.prune")
LEASE = "prune"
RUN_LEASE = 900.0  # seconds a run may take before another worker may start one
MAX_POLL = 60.0  # how often an idle worker looks whether a prune is due


class ScheduledPrune:
    def __init__(self, service: AccountService, interval: float) -> None:
        self.service = service
        self.interval = interval
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"

    @property
    def poll(self) -> float:
        return min(self.interval, MAX_POLL)

    def run_once(self) -> PruneReport | None:
        """Prune if it is due and nobody else is at it; None when it was not our turn."""
        store = self.service.store
        if not store.claim_lease(LEASE, self.holder, RUN_LEASE, self.interval):
            return None
        try:
            report = self.service.prune()
        finally:
            store.finish_lease(LEASE, self.holder)
        for a in report.removed:
            log.info("pruned %s (token %s, expired %s)", a.address, a.token_name or "-",
                     iso(a.expires))
        for a in report.repaired:
            log.info("undid the interrupted creation of %s", a.address)
        for a, why in report.failed:
            log.warning("could not prune %s: %s (retried at the next prune)", a.address, why)
        return report

    async def loop(self) -> None:
        """Until cancelled; a failed run is logged and retried at the next poll."""
        while True:
            try:
                await asyncio.to_thread(self.run_once)
            except AccountsError as exc:
                log.warning("scheduled prune skipped: %s", exc.reason)
            except Exception as exc:  # a bug or a provider crash must not stop the API
                log.error("scheduled prune failed: %s: %s", type(exc).__name__, exc)
            await asyncio.sleep(self.poll)
