"""One process of card pushes for the alerts row (``python -m bench.pusher TAG FIRST N STEP``), like one gunicorn
worker taking ``POST /integration/card-entries``.

Config comes from CARDBOT_* variables. It builds its services, says ``ready``, waits for ``go`` on stdin (so process
start-up is not timed), then records one spend for each card ``FIRST, FIRST+STEP, …`` (``N`` of them) through
``bot.card_entries.record_entry`` from ``THREADS`` threads, and prints one JSON line: entries, seconds, and its own
CPU seconds. It keeps its database connections until told ``exit``, so the bench can read their server processes' CPU.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

THREADS = 8


def main() -> None:
    from bot.card_entries import CardEntry, record_entry
    from bot.config import load_config
    from bot.runtime import build_runtime

    tag, first, n, step = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    services = build_runtime(load_config())
    with services.engine.connect():  # the pool's first connection before the clock starts
        pass
    at = datetime.now(UTC).replace(tzinfo=None)

    def one(i: int) -> None:
        record_entry(services, CardEntry(f"{tag}{i}", str(2000000000 + i), -(1200 + i % 700), "第一食堂 Canteen 1", at))

    print("ready", flush=True)
    sys.stdin.readline()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(one, range(first, first + n * step, step)))
    seconds = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    print(json.dumps({"handled": n, "seconds": seconds, "cpu_s": cpu}), flush=True)
    sys.stdin.readline()
    services.close()


if __name__ == "__main__":
    main()
