"""Engine and session factory. One engine per process; one session per request or job."""

from __future__ import annotations

import select
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str, echo: bool = False) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, echo=echo, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()
            # pysqlite's own transaction handling defers BEGIN; take the write lock up front instead
            # so concurrent writers serialise instead of failing on lock upgrade.
            dbapi_conn.isolation_level = None

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            if conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":  # a lone read takes no lock
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    engine = create_engine(
        url,
        echo=echo,
        pool_size=10,
        max_overflow=20,
        pool_timeout=3,
        connect_args={"connect_timeout": 3} if url.startswith("postgresql") else {},
    )
    event.listen(engine, "checkout", _alive)
    return engine


READ_STATEMENT_TIMEOUT_MS = 2000  # a chat read answered inline must leave the 5 s reply budget room to say "busy"


def make_read_engine(engine: Engine) -> Engine:
    """Lone reads without BEGIN, COMMIT or ROLLBACK: on PostgreSQL a small pool of its own whose connections stay in
    autocommit (switching a shared connection's isolation level on each checkout and back on return costs more
    than the read), nothing to reset on return since no transaction can be open, and a statement timeout, so a
    read stuck behind a lock fails in time; on SQLite the same connections, marked autocommit for the begin hook."""
    if engine.dialect.name != "postgresql":
        return engine.execution_options(isolation_level="AUTOCOMMIT")
    reads = create_engine(
        engine.url,
        echo=engine.echo,
        isolation_level="AUTOCOMMIT",
        pool_reset_on_return=None,
        pool_size=10,  # as many as the request threads that read at once: a connection over the pool size is
        max_overflow=20,  # closed on return, and opening one costs more than many reads
        pool_timeout=3,
        connect_args={"connect_timeout": 3, "options": f"-c statement_timeout={READ_STATEMENT_TIMEOUT_MS}"},
    )
    event.listen(reads, "checkout", _alive)
    return reads


def _alive(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
    """A pooled connection whose server ended it (restart, ``pg_terminate_backend``, idle timeout) has the server's
    goodbye or EOF waiting on its socket, while an idle live one has nothing to read: asking the socket costs no round
    trip, where ``pool_pre_ping`` costs one per checkout. The pool replaces a connection this refuses."""
    fileno = getattr(dbapi_conn, "fileno", None)
    if fileno is None:
        return
    try:
        readable, _, _ = select.select([fileno()], [], [], 0)
    except Exception as e:  # closed by the driver already, or a socket the OS no longer knows
        raise exc.DisconnectionError("connection socket unusable") from e
    if readable:
        raise exc.DisconnectionError("the server closed the connection while it was idle in the pool")


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
