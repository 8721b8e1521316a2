"""The load generator: a separate process (``python -m bench.loadgen``) so its CPU is its own and can be reported.

It replays a file of pre-built, freshly signed requests (built by the bench just before the row starts, so every
signature is valid and every message unique, as WeChat's are) over keep-alive connections from N threads.
Closed loop (``--concurrency``: as fast as the server answers) or open loop (``--rate``: a fixed schedule, latency
measured from the scheduled send time so a slow server cannot hide its queueing).
Prints one JSON object: requests, throughput, p50/p99 (ms), errors, and its own CPU use.
"""

from __future__ import annotations

import argparse
import itertools
import json
import pickle
import resource
import socket
import sys
import threading
import time
from collections import Counter
from urllib.parse import urlsplit

HEADERS = {"Content-Type": "text/xml"}


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(q / 100 * (len(sorted_values) - 1))))
    return sorted_values[k]


def _serialize(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    head = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in headers.items() if k.lower() not in ("content-length", "host")]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


class _Conn:
    """A keep-alive HTTP/1.1 connection that sends pre-serialized requests and reads Content-Length framed answers:
    far less client CPU per request than http.client or requests, so the generator takes little from the server."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port), timeout=15)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.closed = False

    def exchange(self, request: bytes) -> int:
        self.sock.sendall(request)
        buf = self.buf
        while (end := buf.find(b"\r\n\r\n")) < 0:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionResetError("server closed the connection")
            buf += chunk
        head = buf[:end].decode("latin-1")
        status = int(head[9:12])
        length = 0
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
            elif name.strip().lower() == "transfer-encoding":
                raise ValueError("chunked responses are not supported")
        total = end + 4 + length
        while len(buf) < total:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionResetError("server closed the connection")
            buf += chunk
        self.buf = buf[total:]
        self.closed = "connection: close" in head.lower()  # the answer counts; the worker reconnects
        return status

    def close(self) -> None:
        self.sock.close()


def run(
    url: str,
    requests_: list[tuple],
    duration: float,
    concurrency: int,
    rate: float,
    warmup: float,
    path_override: str | None = None,
    once: bool = False,
) -> dict[str, object]:
    """``requests_``: (path, body) or (path, body, headers). ``once``: send each request exactly once, then stop."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    n = len(requests_)
    wire = [_serialize(host, port, path_override or r[0], r[1], r[2] if len(r) > 2 else HEADERS) for r in requests_]
    counter = itertools.count()
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    lock = threading.Lock()
    start_barrier = threading.Barrier(concurrency + 1)
    clock = {"t0": 0.0}

    def worker(slot: int) -> None:
        conn = _Conn(host, port)
        mine = latencies[slot]
        local_status: Counter[int] = Counter()
        start_barrier.wait()
        t0 = clock["t0"]
        measure_from = t0 + warmup
        stop_at = measure_from + duration
        while True:
            i = next(counter)
            if once and i >= n:
                break
            if rate:
                scheduled = t0 + i / rate
                if scheduled >= stop_at:
                    break
                delay = scheduled - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                begin = scheduled
            else:
                begin = time.perf_counter()
                if begin >= stop_at:
                    break
            try:
                status = conn.exchange(wire[i % n])
            except (OSError, ValueError) as exc:
                with lock:
                    errors[type(exc).__name__] += 1
                conn.close()
                conn = _Conn(host, port)
                continue
            end = time.perf_counter()
            if begin >= measure_from:
                local_status[status] += 1
                mine.append(end - begin)
            if conn.closed:
                conn.close()
                conn = _Conn(host, port)
        conn.close()
        with lock:
            statuses.update(local_status)

    threads = [threading.Thread(target=worker, args=(s,), daemon=True) for s in range(concurrency)]
    for t in threads:
        t.start()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    clock["t0"] = time.perf_counter()
    start_barrier.wait()
    for t in threads:
        t.join()
    wall = time.perf_counter() - clock["t0"]
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    lat = sorted(x for xs in latencies for x in xs)
    ok = sum(c for s, c in statuses.items() if 200 <= s < 300)
    issued = next(counter)
    return {
        "requests": len(lat),
        "ok": ok,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "errors": dict(errors),
        "throughput": len(lat) / (wall if once else duration),
        "p50_ms": percentile(lat, 50) * 1000,
        "p99_ms": percentile(lat, 99) * 1000,
        "max_ms": (lat[-1] * 1000) if lat else float("nan"),
        "loadgen_cpu_s": cpu,
        "loadgen_cpu_pct": 100 * cpu / wall if wall else 0.0,
        "wall_s": wall,
        "wrapped": issued > n and not once,
        "rate": rate,
        "concurrency": concurrency,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("requests_file")
    p.add_argument("url")
    p.add_argument("--duration", type=float, default=20)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--rate", type=float, default=0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--path", default=None, help="send every request to this path instead of its own")
    p.add_argument("--once", action="store_true", help="send each request once, then stop (duration is a cap)")
    a = p.parse_args(argv)
    with open(a.requests_file, "rb") as f:
        reqs = pickle.load(f)  # written by the bench itself a moment ago
    json.dump(run(a.url, reqs, a.duration, a.concurrency, a.rate, a.warmup, a.path, a.once), sys.stdout)


if __name__ == "__main__":
    main()
