"""`mailctl worker`: a procrastinate worker for mailctl's jobs, plus stalled-job recovery.

procrastinate 3.10 records a heartbeat per worker (procrastinate_workers) and
can list the jobs of workers whose heartbeat is older than a timeout
(`JobManager.get_stalled_jobs`), but putting them back is left to the
application. Every worker here does it: each `recover_every` seconds it
re-queues the running jobs of workers silent for `stalled_after` seconds. A
worker killed with -9, or a host that vanished, therefore loses nobody's
account: a live worker takes the job again and the copy resumes from the state
in the database (the account's advisory lock, held by the dead session until
PostgreSQL notices, keeps the two apart if the first was only slow).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from mailctl.jobs.queue import QueueUrl

logger = logging.getLogger("mailctl.jobs")


async def _recover(application: Any, stalled_after: float, every: float) -> None:
    manager = application.job_manager
    while True:
        await asyncio.sleep(every)
        try:
            for job in await manager.get_stalled_jobs(seconds_since_heartbeat=stalled_after):
                logger.warning("job %s (%s) of a silent worker is queued again", job.id,
                               job.task_name)
                await manager.retry_job(job)
            await manager.prune_stalled_workers(stalled_after)
        except Exception as exc:  # the database restarting: try again next round
            logger.warning("stalled-job recovery: %s", exc)


async def run(url: QueueUrl, concurrency: int, stalled_after: float, until_empty: bool,
              name: str) -> None:
    from mailctl.jobs import tasks
    from mailctl.jobs.tasks import app

    tasks.use_queue(url, name)
    application = app(url)
    heartbeat = max(0.5, stalled_after / 4)
    async with application.open_async():
        recovery = asyncio.create_task(_recover(application, stalled_after, heartbeat))
        try:
            await application.run_worker_async(
                concurrency=concurrency, name=name, wait=not until_empty,
                update_heartbeat_interval=heartbeat, stalled_worker_timeout=stalled_after,
                fetch_job_polling_interval=5.0, listen_notify=True,
                install_signal_handlers=True)
        finally:
            recovery.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await recovery
