"""``cardbot worker``: drains the notice outbox and runs the scheduled jobs; several may run at once.

Every pass first delivers the credits owed to the card system (``bot.credits``), queues the alerts of the spends
marked for them (``bot.alerts.queue_due``), then drains the notice outbox; all are safe from many workers (claims, row
leases, the alerts' lock). Each scheduled job runs at most once per period across all
workers: a worker takes the job's period marker (``SET NX EX period``) and then the job's lock (so a run that outlasts
its period is never overlapped), both in the shared Redis.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click
import redis

from bot import alerts, autodebit, credit_refunds, credits, outbox, power, topup

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    name: str
    every_seconds: int
    run: Callable[[Runtime], Any]


JOBS = (
    Job("autodebit_sweep", 60, autodebit.sweep),
    Job("topup_settle_stuck", 60, topup.settle_stuck_orders),
    Job("credit_refunds_settle", 60, credit_refunds.settle_refunds),
    Job("agreement_reminders", 3600, autodebit.run_agreement_reminders),
    Job("power_low_sweep", 900, power.sweep_low),
)


def run_job(services: Runtime, job: Job, worker_id: str, *, force: bool = False) -> bool:
    """Run ``job`` if no worker ran it this period (``force``: ignore the period, still never concurrently)."""
    r, key = services.store.r, services.store.key
    if not force and not r.set(key("job", job.name, "due"), worker_id, nx=True, ex=job.every_seconds):
        return False
    lock = r.lock(key("lock", "job", job.name), timeout=max(60, job.every_seconds * 5), blocking=False)
    if not lock.acquire(blocking=False):
        return False
    try:
        t0 = time.perf_counter()
        result = job.run(services)
        log.info("job %s done in %.2f s: %s", job.name, time.perf_counter() - t0, result)
    except Exception:
        log.exception("job %s failed; next period will try again", job.name)
    finally:
        try:
            lock.release()
        except redis.exceptions.LockError:
            log.warning("job %s outlived its lock", job.name)
    return True


def run_due_jobs(services: Runtime, worker_id: str) -> list[str]:
    """Every job whose period has come; returns the names this worker ran."""
    return [job.name for job in JOBS if run_job(services, job, worker_id)]


def drain_all(services: Runtime, worker_id: str, max_batches: int = 1000) -> int:
    """Deliver the credits that are due, queue the alerts of new spends, then drain notices until nothing is due
    (bounded, so jobs still get their turn)."""
    credits.deliver_due(services)
    alerts.queue_due(services)
    return outbox.drain(services, worker_id, max_batches)


def run(services: Runtime, worker_id: str, interval: float, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            drain_all(services, worker_id)
            run_due_jobs(services, worker_id)
        except (redis.RedisError, OSError) as exc:
            log.warning("worker pass failed (%s); retrying", type(exc).__name__)
        except Exception:
            log.exception("worker pass failed; retrying")
        stop.wait(interval)


@click.command("worker")
@click.option("--once", is_flag=True, help="one pass: drain the outbox and run every job now, then exit")
@click.option("--interval", default=1.0, show_default=True, type=float, help="seconds between passes")
@click.option("--id", "worker_id", default="", help="this worker's name (default host:pid)")
@click.pass_obj
def command(obj: Any, once: bool, interval: float, worker_id: str) -> None:
    """Deliver credits to the card system, drain the notice outbox, run scheduled jobs (auto top-up sweep, stuck orders, refunds, reminders)."""
    services = obj.services
    worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}"
    if once:
        sent = drain_all(services, worker_id)
        ran = [job.name for job in JOBS if run_job(services, job, worker_id, force=True)]
        sent += drain_all(services, worker_id)
        click.echo(f"notices handled: {sent}; jobs run: {', '.join(ran) or 'none'}")
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    click.echo(f"worker {worker_id} running (Ctrl+C to stop)")
    run(services, worker_id, interval, stop)
