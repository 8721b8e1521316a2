"""One worker process for the bench (``python -m bench.drainer [credits]``), like one ``cardbot worker``.

Config comes from CARDBOT_* variables. It builds its services, says ``ready``, waits for ``go`` on stdin (so
process start-up is not timed), then calls ``bot.outbox.drain_once`` (or, with ``credits``,
``bot.credits.deliver_due``) until two calls in a row find nothing, and prints one JSON line: items handled,
seconds, and its own CPU seconds.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time


def main() -> None:
    from bot.config import load_config
    from bot.credits import deliver_due
    from bot.outbox import drain_once
    from bot.runtime import build_runtime

    services = build_runtime(load_config())
    services.wechat.send_template  # noqa: B018  (build the API client before the clock starts)
    services.card_system  # noqa: B018
    worker_id = f"bench-{os.getpid()}"
    credits = sys.argv[1:] == ["credits"]
    print("ready", flush=True)
    sys.stdin.readline()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    handled, idle = 0, 0
    while idle < 2 and time.perf_counter() - t0 < 300:
        n = sum(deliver_due(services).values()) if credits else drain_once(services, worker_id)
        handled += n
        if n == 0:
            idle += 1
            time.sleep(0.05)
        else:
            idle = 0
    seconds = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    print(json.dumps({"handled": handled, "seconds": seconds, "cpu_s": cpu}), flush=True)
    services.close()


if __name__ == "__main__":
    main()
