"""Alerts the student chooses (提醒设置): each spend, a low balance, a large spend; queued from the card's entries.

The transaction that records a new terminal entry (bot.card_entries) marks it ``alerts_due`` (a ledger entry when an
account of its card chose alerts, a remote card system's spend always); a replayed entry is not recorded, so not
marked. The worker's pass (``queue_due``) takes the marked spends a batch at a time and queues their alerts in the
transaction that clears their marks: an alert exists exactly when its entry does, never lost, never twice. A
canteen's noon costs one account query and one INSERT per batch, not two statements per entry while the card is
locked. The outbox sends them. Rules:

- **Spends merge**: a spend alert waits ``merge_minutes`` in the outbox (``next_attempt_at``); spends arriving
  meanwhile, or while quiet hours hold it, are added to that row (total, count, the latest balance) instead of a new
  one. One worker queues at a time (a lock in Redis) and takes one card's spends in the order they were posted, so
  no two merges race; the merge is an UPDATE on condition that no worker took the row meanwhile, else the spends get
  a row of their own.
- **Quiet hours** (``[notices] quiet_hours``) hold non-urgent alerts (``[notices.<kind>] urgent``; the large-spend
  alert is urgent by default).
- **Daily cap**: at most ``daily_cap`` alert rows per account a school day; a merge adds no row.
- **Refused for good**: when WeChat answers 43101 (the user refused the template) or 43004 (not following) the outbox
  marks the notice undeliverable and pauses this account's alerts (``pause``); saving the settings again resumes them.
- The low-balance alert goes out when a spend takes the balance from at or above the threshold to below it, and
  only while no auto top-up is signed (with one, the card is topped up instead).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import redis
from sqlalchemy import Boolean, Connection, bindparam, func, insert, or_, select, update
from sqlalchemy.orm import aliased

from bot import notices
from bot.autodebit import active_agreement, threshold_of
from bot.calendar import day_start_utc
from bot.errors import UserError
from bot.money import fen, yuan
from bot.notices import Said
from models import AlertSettings, Binding, CardEntryPush, LedgerEntry, OutboxNotice, WechatUser, utcnow
from models.enums import NoticeStatus

if TYPE_CHECKING:
    from bot.runtime import Runtime

SPEND, LOW, LARGE = "spend_alert", "low_balance_alert", "large_spend_alert"
KINDS = (SPEND, LOW, LARGE)
REFUSED_FOR_GOOD = {43101, 43004}


@dataclass(frozen=True)
class Choice:
    """One account's alerts as the page shows and saves them (thresholds in fen)."""

    spend: bool
    low_balance: bool
    low_threshold_fen: int
    large_spend: bool
    large_threshold_fen: int
    paused_by: int | None = None


def default(services: Runtime) -> Choice:
    c = services.cfg.alerts
    return Choice(False, False, fen(c.low_threshold), False, fen(c.large_threshold))


def settings(services: Runtime, openid: str) -> Choice:
    with services.session() as db:
        row = db.get(AlertSettings, openid)
        if row is None:
            return default(services)
        return Choice(row.spend, row.low_balance, row.low_threshold_fen, row.large_spend, row.large_threshold_fen, row.paused_by)


def _threshold(value: Any, low: int, high: int) -> int:
    """Whole yuan from the page, within the school's bounds, as fen."""
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).strip().isdigit():
        raise UserError("invalid_threshold", 400, "alerts_err_threshold", low=low, high=high)
    amount = int(str(value).strip())
    if not low <= amount <= high:
        raise UserError("invalid_threshold", 400, "alerts_err_threshold", low=low, high=high)
    return fen(amount)


def save(services: Runtime, openid: str, body: dict[str, Any]) -> Choice:
    """Store the account's choice (a bound account only); saving resumes alerts paused by WeChat's refusal."""
    c = services.cfg.alerts
    choice = Choice(
        spend=body.get("spend") is True,
        low_balance=body.get("low_balance") is True,
        low_threshold_fen=_threshold(body.get("low_threshold", c.low_threshold), 1, c.max_threshold),
        large_spend=body.get("large_spend") is True,
        large_threshold_fen=_threshold(body.get("large_threshold", c.large_threshold), 1, c.max_threshold),
    )
    with services.session() as db, db.begin():
        if db.execute(select(Binding.id).where(Binding.openid == openid)).first() is None:
            raise UserError("not_bound", 409)
        row = db.get(AlertSettings, openid) or AlertSettings(openid=openid)
        row.spend, row.low_balance, row.low_threshold_fen = choice.spend, choice.low_balance, choice.low_threshold_fen
        row.large_spend, row.large_threshold_fen, row.paused_by = choice.large_spend, choice.large_threshold_fen, None
        db.add(row)
    return choice


def pause(db: Any, openid: str, code: int) -> None:
    """WeChat will not deliver this account's alerts (43101 / 43004): queue none until the student saves again."""
    db.execute(update(AlertSettings).where(AlertSettings.openid == openid).values(paused_by=code))


_TODAY = aliased(OutboxNotice, name="today")


def _held(column: Any) -> Any:
    """A column of the account's spend alert still held in the outbox (merging, or a quiet-hours hold), the newest.
    Its status is not asked: a notice nobody tried or claimed is pending (only a send attempt moves it on), ``_MERGE``
    checks again, and asking would let PostgreSQL read it off the status index, through every pending notice of a
    burst, instead of the account's index (openid, kind, id)."""
    o = OutboxNotice
    return (
        select(column)
        .where(
            o.openid == AlertSettings.openid,
            o.kind == SPEND,
            o.attempts == 0,
            o.claimed_by.is_(None),
            or_(bindparam("quiet", type_=Boolean), o.next_attempt_at > bindparam("now")),
        )
        .order_by(o.id.desc())
        .limit(1)
        .correlate(AlertSettings)
        .scalar_subquery()
    )


_SENT_TODAY = (
    select(func.count())
    .select_from(_TODAY)
    # the kinds as ORs of equalities, not IN: an IN list is a parameter SQLAlchemy renders into the SQL on each execution
    .where(_TODAY.openid == AlertSettings.openid, or_(*(_TODAY.kind == k for k in KINDS)), _TODAY.created_at >= bindparam("since"))
    .correlate(AlertSettings)
    .scalar_subquery()
)


def _accounts(cards: Any, *columns: Any) -> Any:
    """The accounts of the cards (a condition on ``Binding.cardholder_id``) that chose alerts and may get them."""
    return (
        select(*columns)
        .select_from(AlertSettings)
        .join(Binding, Binding.openid == AlertSettings.openid)
        .join(WechatUser, WechatUser.openid == AlertSettings.openid)
        .where(
            cards,
            AlertSettings.paused_by.is_(None),
            WechatUser.following.is_(True),
            or_(AlertSettings.spend, AlertSettings.low_balance, AlertSettings.large_spend),
        )
    )


def chosen_by(cardholder_id: Any) -> Any:
    """Whether an account of the card (a column or parameter) may get alerts, as an EXISTS: asked with the entry's
    row lock, it spares most entries (cards nobody asked alerts for) the account query."""
    return _accounts(Binding.cardholder_id == cardholder_id, AlertSettings.openid).exists()


# Per account of a batch's cards: its card, choice, language, alert rows today, held spend (each a lookup by the
# outbox's account index), and its card's auto top-up threshold (with one, no low-balance alert: it is topped up)
_CHOSEN = _accounts(
    Binding.cardholder_id.in_(bindparam("cards", expanding=True)),
    Binding.cardholder_id,
    AlertSettings.openid,
    AlertSettings.spend,
    AlertSettings.low_balance,
    AlertSettings.low_threshold_fen,
    AlertSettings.large_spend,
    AlertSettings.large_threshold_fen,
    WechatUser.lang,
    _SENT_TODAY.label("sent_today"),
    _held(OutboxNotice.id).label("held_id"),
    _held(OutboxNotice.data).label("held_data"),
    threshold_of(Binding.cardholder_id).label("autodebit_threshold"),
)
_INSERT = insert(OutboxNotice)
# Adding spends to the held alert, unless a worker claimed it meanwhile (it then holds the row: this waits for it)
_MERGE = (
    update(OutboxNotice)
    .where(
        OutboxNotice.id == bindparam("held"),
        OutboxNotice.status == NoticeStatus.PENDING,
        OutboxNotice.attempts == 0,
        OutboxNotice.claimed_by.is_(None),
    )
    .values(data=bindparam("data", type_=OutboxNotice.data.type))
)


def _marked(table: Any, entry_id: Any, merchant: Any) -> tuple[Any, Any]:
    """The marked spends of an entries table, oldest first (one card's in the order they were posted: each was
    committed under the card's lock before the next could move it), and the statement that clears their marks."""
    due = (
        select(table.id, table.cardholder_id, entry_id.label("entry_id"), table.amount_fen, table.balance_after_fen, merchant.label("merchant"))
        .where(table.alerts_due.is_(True))
        .order_by(table.id)
        .limit(bindparam("limit"))
        .with_for_update(skip_locked=True)
    )
    done = update(table).where(table.id.in_(bindparam("ids", expanding=True))).values(alerts_due=None)
    return due, done


# The ledger's (the bot's own card system) and a remote card system's pushes: a school runs one of them
_SOURCES = (_marked(LedgerEntry, LedgerEntry.ref, LedgerEntry.description), _marked(CardEntryPush, CardEntryPush.entry_id, CardEntryPush.merchant))
BATCH = 500
LOCK_SECONDS = 60


def queue_due(services: Runtime, batch: int = BATCH) -> int:
    """The worker's pass: queue the alerts of the spends marked ``alerts_due``, a batch per transaction, which also
    clears their marks (never lost, never twice); returns the spends done. One worker at a time (a lock in Redis),
    so each batch's caps and merges see every earlier batch's rows; another worker finds the lock taken and moves on."""
    lock = services.store.r.lock(services.store.key("lock", "alerts"), timeout=LOCK_SECONDS, blocking=False)
    if not lock.acquire(blocking=False):
        return 0
    try:
        done = 0
        while n := _queue_batch(services, batch):
            done += n
            if n < batch:
                break
            lock.reacquire()  # a long burst: the lock lives on while batches keep coming (raises if it was lost)
        return done
    finally:
        with contextlib.suppress(redis.exceptions.LockError):  # outlived: the marks still keep each batch once
            lock.release()


def _queue_batch(services: Runtime, batch: int) -> int:
    """One batch: the marked spends, one query for their cards' accounts, one INSERT for the new alerts, a merge per
    held spend alert, the marks cleared."""
    clock = services.clock
    now = max(clock.utcnow(), utcnow())
    quiet = services.cfg.notices.quiet_hours.contains(clock.now().time().replace(tzinfo=None))
    with services.engine.begin() as conn:
        marked = [(done, conn.execute(due, {"limit": batch}).all()) for due, done in _SOURCES]
        spends = [row for _, rows in marked for row in rows]
        if not spends:
            return 0
        today = clock.today()
        params = {"cards": sorted({s.cardholder_id for s in spends}), "now": now, "quiet": quiet, "since": day_start_utc(today), "today": today}
        readers: dict[int, list[_Reader]] = {}
        for a in conn.execute(_CHOSEN, params):
            readers.setdefault(a.cardholder_id, []).append(_Reader(a, services.cfg.alerts.daily_cap - a.sent_today))
        new = _New(services, now)
        for s in spends:
            for who in readers.get(s.cardholder_id, ()):
                new.alert(who, s)
        new.write(conn)
        for done, rows in marked:
            if rows:
                conn.execute(done, {"ids": [r.id for r in rows]})
    return len(spends)


@dataclass
class _Spends:
    """Spends of one account merged into one alert: the total, how many, and the latest (merchant, balance)."""

    first_entry_id: str
    fen: int = 0
    count: int = 0
    merchant: str = ""
    balance: int = 0

    def add(self, amount: int, merchant: str, balance: int) -> None:
        self.fen, self.count, self.merchant, self.balance = self.fen + amount, self.count + 1, merchant, balance

    def values(self, fen: int, count: int) -> dict[str, Any]:
        what: Any = self.merchant if count == 1 else Said("alert_spend_many", {"merchant": self.merchant, "count": str(count)})
        return {"amount": fen, "merchant": what, "balance": self.balance}


@dataclass
class _Reader:
    """An account a batch alerts: its choice (``s``, a row of ``_CHOSEN``), how many alerts it may still get today,
    and the batch's spends for its held alert (``held``, merged into that row) or for a new one (``fresh``)."""

    s: Any
    left: int
    held: _Spends | None = None
    fresh: _Spends | None = None

    @property
    def lang(self) -> str:
        return self.s.lang or "zh"


def _values(services: Runtime, **values: Any) -> dict[str, Any]:
    return values | {"time": f"{services.clock.now():%m-%d %H:%M}", "advice": Said("alert_low_advice")}


@dataclass
class _New:
    """The alert rows of one batch, inserted together, and the held spend alerts it merges into."""

    services: Runtime
    now: datetime
    rows: list[dict[str, Any]] = field(default_factory=list)
    readers: list[_Reader] = field(default_factory=list)

    def alert(self, who: _Reader, spend: Any) -> None:
        """What one spend tells one account: a large spend, crossing the low-balance line (no auto top-up signed),
        and the spend itself, merged with the account's held spend alert or the batch's new one."""
        s, amount, after = who.s, -spend.amount_fen, spend.balance_after_fen
        if s.large_spend and amount >= s.large_threshold_fen:
            self.add(who, LARGE, f"large:{spend.entry_id}:{s.openid}", amount=amount, merchant=spend.merchant, balance=after)
        if s.low_balance and s.autodebit_threshold is None and after + amount >= s.low_threshold_fen > after:
            self.add(who, LOW, f"low:{spend.entry_id}:{s.openid}", balance=after, threshold=s.low_threshold_fen)
        if not s.spend:
            return
        if who.held is None and who.fresh is None:
            if s.held_id is not None:
                who.held = _Spends(spend.entry_id)
            elif who.left > 0:  # a new alert counts against the cap; merging into it adds nothing
                who.left -= 1
                who.fresh = _Spends(spend.entry_id)
            else:
                return
            self.readers.append(who)
        spends = who.held or who.fresh
        assert spends is not None
        spends.add(amount, spend.merchant, after)

    def add(self, who: _Reader, kind: str, dedup: str, hold: timedelta | None = None, merged: dict[str, int] | None = None, **values: Any) -> None:
        """One alert row unless the account's daily cap is reached; ``hold`` delays it (spends merging: such a row
        counted against the cap when its first spend came, in ``alert``), ``merged`` keeps the running total and count
        beside the told values (not template fields, so never sent)."""
        if hold is None:
            if who.left <= 0:
                return
            who.left -= 1
        services = self.services
        notice = notices.compose(services.cfg, kind, who.s.openid, dedup, who.lang, **_values(services, **values))
        self.rows.append(
            {
                "dedup_key": dedup[:128],
                "openid": who.s.openid,
                "kind": kind,
                "data": notice.data | (merged or {}),
                "url": notice.url,
                "urgent": notice.urgent,
                "status": NoticeStatus.PENDING,
                "attempts": 0,
                "next_attempt_at": self.now + (hold or timedelta()),
                "created_at": services.clock.utcnow(),
            }
        )

    def write(self, conn: Connection) -> None:
        """Merge into the held alerts (one whose row a worker took meanwhile becomes a new alert, cap permitting),
        then insert every new row at once."""
        hold = timedelta(minutes=self.services.cfg.alerts.merge_minutes)
        for who in self.readers:
            if who.held is not None and not _merge(self.services, conn, who, who.held):
                if who.left <= 0:
                    continue
                who.left -= 1
                who.fresh = who.held
            if who.fresh is not None:
                f = who.fresh
                merged = {"_fen": f.fen, "_count": f.count}
                self.add(who, SPEND, f"spend:{f.first_entry_id}:{who.s.openid}", hold, merged, **f.values(f.fen, f.count))
        if self.rows:
            conn.execute(_INSERT, self.rows if len(self.rows) > 1 else self.rows[0])  # one row: no executemany pipeline


def _merge(services: Runtime, conn: Connection, who: _Reader, spends: _Spends) -> bool:
    """Add the batch's spends to the account's alert still held in the outbox; False when a worker took that row."""
    held = who.s.held_data
    total, count = int(held.get("_fen", 0)) + spends.fen, int(held.get("_count", 1)) + spends.count
    data = notices.told(who.lang, **_values(services, **spends.values(total, count)))
    return bool(conn.execute(_MERGE, {"held": who.s.held_id, "data": data | {"_fen": total, "_count": count}}).rowcount)


def page_state(services: Runtime, openid: str) -> dict[str, Any]:
    """The settings page's data: the choice, and whether the low-balance alert is offered (no auto top-up signed)."""
    choice = settings(services, openid)
    with services.session() as db:
        card_id = db.execute(select(Binding.cardholder_id).where(Binding.openid == openid)).scalar_one_or_none()
        agreement = active_agreement(db, card_id, services.clock.today()) if card_id is not None else None
    c = services.cfg.alerts
    return {
        "bound": card_id is not None,
        "spend": choice.spend,
        "low_balance": choice.low_balance,
        "low_threshold": choice.low_threshold_fen // 100,
        "large_spend": choice.large_spend,
        "large_threshold": choice.large_threshold_fen // 100,
        "paused": choice.paused_by is not None,
        "low_offered": agreement is None,
        "autodebit_threshold": yuan(agreement.threshold_fen) if agreement is not None else "",
        "merge_minutes": c.merge_minutes,
        "daily_cap": c.daily_cap,
        "max_threshold": c.max_threshold,
        "quiet_hours": str(services.cfg.notices.quiet_hours),
    }
