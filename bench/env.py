"""The bench's surroundings: machine facts, the bench database, config for the servers, and server processes.

Every server row runs under the same gunicorn settings (``Settings``) on its own loopback port, in its own
process group, so the load generator (another process) measures HTTP end to end, as WeChat would.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REDIS_URL = os.environ.get("CARDBOT_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


@dataclass
class Settings:
    duration: float = 20.0
    quick: bool = False
    workers: int = 2
    threads: int = 8
    concurrency: int = 16
    fixed_rate: int = 200
    db_name: str = field(default_factory=lambda: os.environ.get("CARDBOT_BENCH_DB_NAME", "cardbot_bench"))
    workdir: Path = field(default_factory=lambda: Path(os.environ.get("CARDBOT_BENCH_DIR", "/tmp/cardbot-bench")))
    profile: bool = True

    @property
    def server_desc(self) -> str:
        return f"gunicorn gthread, {self.workers} workers x {self.threads} threads"


def machine() -> dict[str, str]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "ram": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "python": platform.python_version(),
        "commit": commit + (" (+ uncommitted changes)" if dirty else ""),
        "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


# --- database ---------------------------------------------------------------------------------------------
def bench_database_url(settings: Settings) -> str:
    base = os.environ.get("CARDBOT_BENCH_DATABASE_URL", DEFAULT_DB)
    return make_url(base).set(database=settings.db_name).render_as_string(hide_password=False)


def recreate_database(settings: Settings) -> str:
    """Drop and create the bench database on the configured server, then migrate it to head."""
    from bot.migrate import upgrade

    base = os.environ.get("CARDBOT_BENCH_DATABASE_URL", DEFAULT_DB)
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{settings.db_name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{settings.db_name}"'))
    admin.dispose()
    url = bench_database_url(settings)
    upgrade(url)
    return url


def drop_database(settings: Settings) -> None:
    admin = create_engine(os.environ.get("CARDBOT_BENCH_DATABASE_URL", DEFAULT_DB), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{settings.db_name}" WITH (FORCE)'))
    admin.dispose()


def truncate_all(engine: Any) -> None:
    from models import Base

    names = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


# --- config for the bot processes ---------------------------------------------------------------------------
def tree_cpu_seconds(pid: int) -> float:
    """User and system CPU of a process and its children (a gunicorn master and its workers)."""
    total = 0.0
    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return total
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bot_overrides(db_url: str, keys_dir: Path, emulator_url: str, prefix: str, public_url: str) -> dict[str, dict[str, Any]]:
    """Config sections for the bot under test and for the emulator (which is the same app with its emulator on)."""
    return {
        "database": {"url": db_url},
        "redis": {"url": REDIS_URL, "key_prefix": prefix},
        # Not the demo values: the bot under test runs as in production, which refuses them.
        "wechat": {
            "api_base_url": emulator_url,
            "oauth_base_url": emulator_url,
            "secret": "bench-app-secret-" + "s" * 16,
            "token": "benchtoken2026",
            "encoding_aes_key": "B" * 43,
        },
        "cardsystem": {"secret": "bench-cardsystem-secret-" + "c" * 16},
        "electricity": {"api_base_url": f"{emulator_url}/emulator", "secret": "bench-electricity-secret-" + "e" * 16},
        "bank": {"adapter": "http", "api_base_url": f"{emulator_url}/emulator/bank", "secret": "bench-bank-secret-" + "b" * 16},
        "pay": {
            "apiv3_key": "benchapiv3key0123456789abcdefghi",
            "api_base_url": emulator_url,
            "notify_url": f"{public_url}/pay/notify",
            "private_key_path": str(keys_dir / "merchant_private.pem"),
            "public_key_path": str(keys_dir / "platform_public.pem"),
        },
        "server": {"public_base_url": public_url, "secret_key": "bench-secret-key-" + "k" * 32},
        "emulator": {
            "enabled": True,
            "merchant_public_key_path": str(keys_dir / "merchant_public.pem"),
            "platform_private_key_path": str(keys_dir / "platform_private.pem"),
            "keys_dir": str(keys_dir),
            "auto_deliver_pushes": False,
            "notify_retry_scale": 0.001,
        },
    }


def as_env(overrides: dict[str, dict[str, Any]]) -> dict[str, str]:
    """``CARDBOT_<SECTION>__<KEY>`` variables: the config's own override mechanism, so gunicorn needs no file."""
    env: dict[str, str] = {}
    for section, values in overrides.items():
        for key, value in values.items():
            env[f"CARDBOT_{section.upper()}__{key.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


def new_prefix() -> str:
    return f"bench{uuid.uuid4().hex[:8]}:"


def clear_prefix(prefix: str) -> None:
    import redis

    r = redis.Redis.from_url(REDIS_URL)
    keys = list(r.scan_iter(match=prefix + "*", count=5000))
    for i in range(0, len(keys), 5000):
        r.delete(*keys[i : i + 5000])


# --- server processes ---------------------------------------------------------------------------------------
class Server:
    """A gunicorn (or other) server in its own process group; ``stop()`` ends exactly that group."""

    def __init__(
        self,
        name: str,
        app_spec: str,
        settings: Settings,
        env: dict[str, str],
        *,
        workers: int | None = None,
        threads: int | None = None,
        health: str = "/healthz",
        port: int | None = None,
    ) -> None:
        self.name = name
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.health = health
        self.log_path = settings.workdir / f"server-{name}.log"
        cmd = [
            sys.executable,
            "-m",
            "gunicorn",
            "-k",
            "gthread",
            "-w",
            str(workers or settings.workers),
            "--threads",
            str(threads or settings.threads),
            "-b",
            f"127.0.0.1:{self.port}",
            "--backlog",
            "2048",
            "--timeout",
            "60",
            "--log-level",
            "warning",
            app_spec,
        ]
        full_env = {**os.environ, **env, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))}
        settings.workdir.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 30.0) -> Server:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} server exited; see {self.log_path}:\n{self.log_path.read_text()[-3000:]}")
            try:
                if requests.get(self.url + self.health, timeout=1).status_code < 500 and self.worker_pids():
                    time.sleep(0.5)  # let the other workers finish booting too
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} server did not start; see {self.log_path}")

    def worker_pids(self) -> list[int]:
        try:
            return [c.pid for c in psutil.Process(self.proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def rss_mib(self) -> float:
        """Resident memory of master and workers together."""
        total = 0
        for pid in [self.proc.pid, *self.worker_pids()]:
            with contextlib.suppress(psutil.NoSuchProcess):
                total += psutil.Process(pid).memory_info().rss
        return total / 2**20

    def cpu_seconds(self) -> float:
        return tree_cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self._log.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
