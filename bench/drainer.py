"""One worker process for the bench (``python -m bench.drainer [credits|alerts]``), like one ``cardbot worker``.

Config comes from CARDBOT_* variables. It builds its services, says ``ready``, waits for ``go`` on stdin (so
process start-up is not timed), then calls ``bot.outbox.drain`` (as ``cardbot worker`` does; ``credits``: ``bot.credits.deliver_due``;
``alerts``: ``bot.alerts.queue_due``, until also told ``done``, waiting ``WORKER_INTERVAL`` after each pass as
``cardbot worker`` does) until two calls in a row find nothing, and prints one JSON line: items handled, seconds
(``alerts``: to the end of the last batch that found spends), and its own CPU seconds.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import threading
import time

WORKER_INTERVAL = 1.0  # ``cardbot worker``'s default --interval: a worker waits this long after each pass


def main() -> None:
    from bot.alerts import queue_due
    from bot.config import load_config
    from bot.credits import deliver_due
    from bot.outbox import drain
    from bot.runtime import build_runtime

    services = build_runtime(load_config())
    services.wechat.send_template  # noqa: B018  (build the API client before the clock starts)
    services.card_system  # noqa: B018
    worker_id = f"bench-{os.getpid()}"
    mode = sys.argv[1] if sys.argv[1:] else "outbox"
    print("ready", flush=True)
    sys.stdin.readline()
    # ``alerts`` runs beside a burst still arriving: it stops once told the burst is over ("done") and then idle
    told = threading.Event()
    if mode == "alerts":
        threading.Thread(target=lambda: (sys.stdin.readline(), told.set()), daemon=True).start()
    else:
        told.set()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    handled, idle, last = 0, 0, t0
    while not (told.is_set() and idle >= 2) and time.perf_counter() - t0 < 300:
        if mode == "credits":
            n = sum(deliver_due(services).values())
        elif mode == "alerts":
            n = queue_due(services)
            time.sleep(WORKER_INTERVAL)
        else:
            n = drain(services, worker_id)
        handled += n
        if n == 0:
            idle += 1
            time.sleep(0.05 if mode != "alerts" else 0.01)
        else:
            idle, last = 0, time.perf_counter()
    seconds = (last if mode == "alerts" else time.perf_counter()) - t0
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    print(json.dumps({"handled": handled, "seconds": seconds, "cpu_s": cpu}), flush=True)
    services.close()


if __name__ == "__main__":
    main()
