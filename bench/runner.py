"""Running the load generator process and the profiler (py-spy) against a server, and reading their output."""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from bench.env import ROOT, Server, Settings

SETTLE_TIMEOUT = 120.0  # seconds a row waits after its last answer for ``settled``


def run_load(
    settings: Settings,
    name: str,
    server: Server,
    reqs: list[tuple],
    *,
    rate: float = 0,
    concurrency: int | None = None,
    duration: float | None = None,
    warmup: float | None = None,
    once: bool = False,
    settled: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Replay ``reqs`` against ``server`` from a separate process; adds the server's CPU use to the result. With
    ``settled``, the row goes on after the last answer until ``settled()`` (work the server does after answering, such
    as deliveries): its CPU is counted and ``settle_s`` says how long that took after the load generator ended."""
    path = settings.workdir / f"requests-{name}.pkl"
    with path.open("wb") as f:
        pickle.dump(reqs, f, protocol=pickle.HIGHEST_PROTOCOL)
    dur = duration if duration is not None else settings.duration
    cmd = [
        sys.executable,
        "-m",
        "bench.loadgen",
        str(path),
        server.url,
        "--duration",
        str(dur),
        "--concurrency",
        str(concurrency or (32 if rate else settings.concurrency)),
        "--rate",
        str(rate),
        "--warmup",
        str(warmup if warmup is not None else (0.5 if settings.quick else 2.0)),
    ]
    if once:
        cmd.append("--once")
    cpu0, back0 = server.cpu_seconds(), backend_cpu_seconds()
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=dur + 600)
    ended = time.perf_counter()
    while settled is not None and not settled() and time.perf_counter() - ended < SETTLE_TIMEOUT:
        time.sleep(0.01)
    wall = time.perf_counter() - t0
    settle_s = time.perf_counter() - ended
    cpu1, back1 = server.cpu_seconds(), backend_cpu_seconds()
    path.unlink(missing_ok=True)
    if out.returncode != 0:
        raise RuntimeError(f"load generator failed for {name}: {out.stderr[-2000:]}")
    result = json.loads(out.stdout)
    result["server_cpu_pct"] = 100 * (cpu1 - cpu0) / wall if wall else 0.0
    result["backend_cpu_pct"] = 100 * (back1 - back0) / wall if wall else 0.0
    result["server_cpu_ms_per_req"] = 1000 * (cpu1 - cpu0) / max(1, result["requests"])
    result["server_cpu_s"] = cpu1 - cpu0
    result["settle_s"] = settle_s
    result["server_rss_mib"] = server.rss_mib()
    return result


def backend_cpu_seconds() -> float:
    """CPU used so far by PostgreSQL and Redis on this machine (they share the 2 cores with the server)."""
    total = 0.0
    for p in psutil.process_iter(["name"]):
        if p.info["name"] and (p.info["name"].startswith("postgres") or p.info["name"].startswith("redis-server")):
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
    return total


def profile_server(
    settings: Settings, name: str, server: Server, reqs: list[tuple], seconds: float, *, rate: float = 0, once: bool = False
) -> dict[str, Any]:
    """Sample the server's workers with py-spy while load runs; returns the hottest frames (ours and overall)."""
    if shutil.which("py-spy") is None and not (Path(sys.executable).parent / "py-spy").exists():
        return {"error": "py-spy not installed (pip install py-spy)"}
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    raw = settings.workdir / f"profile-{name}.txt"
    spy = subprocess.Popen(
        [
            exe,
            "record",
            "--pid",
            str(server.proc.pid),
            "--subprocesses",
            "--duration",
            str(int(seconds)),
            "--rate",
            "200",
            "--gil",
            "--format",
            "raw",
            "--output",
            str(raw),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.0)
    try:
        run_load(settings, f"{name}-profile", server, reqs, rate=rate, duration=seconds, warmup=0, once=once)
    finally:
        _, err = spy.communicate(timeout=seconds + 60)
    if not raw.exists():
        return {"error": f"py-spy produced nothing: {err[-500:]}"}
    return summarize_raw(raw)


_OURS = ("bot/", "handlers/", "models/")


def summarize_raw(path: Path, top: int = 12) -> dict[str, Any]:
    """Inclusive share of each of our functions and the leaf (self) share of every function, from py-spy's raw stacks.
    Recorded with ``--gil``: only the thread holding the GIL is sampled, so shares are of Python CPU time."""
    inclusive: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    package: Counter[str] = Counter()
    busy = 0
    for line in path.read_text().splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not count_s.isdigit():
            continue
        count = int(count_s)
        frames = [f for f in stack.split(";") if not f.startswith("process ")]
        if not frames:
            continue
        last = frames[-1]
        busy += count
        leaf[_short(last)] += count
        package[_package(last)] += count
        seen: set[str] = set()
        for fr in frames:
            if fr.partition(" (")[2].startswith(_OURS):
                s = _short(fr)
                if s not in seen:
                    seen.add(s)
                    inclusive[s] += count
    if not busy:
        return {"busy_samples": 0}
    return {
        "busy_samples": busy,
        "ours_inclusive": [(k, round(100 * v / busy, 1)) for k, v in inclusive.most_common(top)],
        "leaf_self": [(k, round(100 * v / busy, 1)) for k, v in leaf.most_common(top)],
        "by_package": [(k, round(100 * v / busy, 1)) for k, v in package.most_common(10)],
        "raw_file": str(path),
    }


def _package(frame: str) -> str:
    """Where a leaf frame's own time goes: 'sqlalchemy', 'psycopg', 'our code', 'stdlib' …"""
    loc = _short(frame).partition(" (")[2]
    if loc.startswith(_OURS):
        return "our code (bot/, handlers/, models/)"
    head = loc.split("/", 1)[0]
    return head if "/" in loc else "stdlib/other"


def _short(frame: str) -> str:
    """'func (/abs/path/to/site-packages/pkg/mod.py:12)' → 'func (pkg/mod.py)': per function, not per line."""
    name, _, loc = frame.partition(" (")
    loc = loc.rstrip(")").rpartition(":")[0] or loc.rstrip(")")
    for marker in ("site-packages/", str(ROOT) + "/", "lib/python3.11/"):
        if marker in loc:
            loc = loc.split(marker, 1)[1]
            break
    return f"{name} ({loc})"


def profile_call(settings: Settings, name: str, pids: dict[str, int], fn: Any, servers: tuple[str, ...] = ()) -> dict[str, Any]:
    """Run ``fn()`` while py-spy samples each process in ``pids`` (label → pid; the bench's own process included
    when the code under test runs in it; labels in ``servers`` are sampled with their child processes).
    py-spy stops on SIGINT and writes what it has."""
    import os
    import signal

    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(exe).exists():
        fn()
        return {"error": "py-spy not installed (pip install py-spy)"}
    spies = {}
    for label, pid in pids.items():
        raw = settings.workdir / f"profile-{name}-{label}.txt"
        raw.unlink(missing_ok=True)
        spies[label] = (
            raw,
            subprocess.Popen(
                [
                    exe,
                    "record",
                    "--pid",
                    str(pid),
                    *(["--subprocesses"] if label in servers else []),
                    "--duration",
                    "600",
                    "--rate",
                    "200",
                    "--gil",
                    "--format",
                    "raw",
                    "--output",
                    str(raw),
                    "--nonblocking",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            ),
        )
    time.sleep(1.0)
    t0 = time.perf_counter()
    try:
        fn()
    finally:
        seconds = time.perf_counter() - t0
        for _, proc in spies.values():
            os.kill(proc.pid, signal.SIGINT)
        for _, proc in spies.values():
            proc.wait(timeout=60)
    out: dict[str, Any] = {"seconds": seconds}
    for label, (raw, _) in spies.items():
        out[label] = summarize_raw(raw) if raw.exists() else {"error": "py-spy wrote nothing"}
    return out
