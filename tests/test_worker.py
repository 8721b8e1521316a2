"""``cardbot worker``: one pass drains the outbox and runs every job; scheduled jobs run once per period across
workers and never concurrently; the stuck-order job of the top-up part is part of the schedule."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from bot import worker
from bot.worker import JOBS, Job, run_due_jobs, run_job
from tests.support.autodebit import (
    at,
    balance,
    entry,
    notices,
    signed,
    student,
    templates,
)

pytestmark = pytest.mark.usefixtures("ledger_checked")

OPENID = "oWorkerUser0000000000001"
NO = "20231006"


@pytest.mark.unit
def test_schedule_has_the_sweep_the_stuck_orders_the_refunds_and_the_reminders():
    assert {j.name for j in JOBS} == {"autodebit_sweep", "topup_settle_stuck", "credit_refunds_settle", "agreement_reminders", "power_low_sweep"}


def test_jobs_run_once_per_period_across_workers(live):
    ran = run_due_jobs(live.services, "w1")
    assert set(ran) == {j.name for j in JOBS}
    assert run_due_jobs(live.services, "w2") == []


def test_a_job_never_runs_twice_at_once(live):
    calls = []
    started = threading.Event()

    def slow(services):
        calls.append(1)
        started.set()
        time.sleep(0.5)

    job = Job("slow_test_job", 60, slow)
    results = []
    t = threading.Thread(target=lambda: results.append(run_job(live.services, job, "w1", force=True)))
    t.start()
    started.wait(5)
    results.append(run_job(live.services, job, "w2", force=True))  # the lock is held: skipped
    t.join()
    assert sorted(results) == [False, True] and len(calls) == 1


def test_worker_once_sweeps_and_sends_the_notice(live):
    clock = live.services.clock
    clock.freeze(at(2026, 11, 25, 21, 0))
    card_id = student(live, OPENID, student_no=NO, balance_fen=2100)
    signed(live, OPENID)
    assert entry(live, NO, -200).json()["autodebit"]["status"] == "waiting"
    clock.freeze(at(2026, 11, 26, 7, 0))
    result = CliRunner().invoke(
        worker.command, ["--once", "--id", "test-worker"], obj=SimpleNamespace(services=live.services), catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert "autodebit_sweep" in result.output and "topup_settle_stuck" in result.output
    assert balance(live, card_id) == 6900
    assert [n.status for n in notices(live, "autodebit_success")] == ["sent"]
    assert len(templates(live, OPENID)) == 1


def test_worker_loop_stops_on_request(live):
    stop = threading.Event()
    t = threading.Thread(target=worker.run, args=(live.services, "loop", 0.05, stop))
    t.start()
    time.sleep(0.3)
    stop.set()
    t.join(5)
    assert not t.is_alive()
