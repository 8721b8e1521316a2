"""Alerts the student chooses (提醒设置): each spend, a low balance, a large spend; queued from the card's entries.

``queue_for_entry`` runs inside the transaction that records a terminal entry (bot.card_entries, with the card row
locked), for a new entry only, so an alert exists exactly when its entry does and a replayed entry adds none: never
lost, never twice. The outbox sends them. Rules:

- **Spends merge**: a spend alert waits ``merge_minutes`` in the outbox (``next_attempt_at``); spends arriving
  meanwhile, or while quiet hours hold it, are added to that row (total, count, the latest balance) instead of a new
  one. The card row lock serialises one card's entries, and an account holds one card, so no two merges race; the
  merge is an UPDATE on condition that no worker took the row meanwhile, else the spend gets a row of its own.
- **Quiet hours** (``[notices] quiet_hours``) hold non-urgent alerts (``[notices.<kind>] urgent``; the large-spend
  alert is urgent by default).
- **Daily cap**: at most ``daily_cap`` alert rows per account a school day; a merge adds no row.
- **Refused for good**: when WeChat answers 43101 (the user refused the template) or 43004 (not following) the outbox
  marks the notice undeliverable and pauses this account's alerts (``pause``); saving the settings again resumes them.
- The low-balance alert goes out when a spend takes the balance from at or above the threshold to below it, and
  only while no auto top-up is signed (with one, the card is topped up instead).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Boolean, Connection, bindparam, func, insert, or_, select, update
from sqlalchemy.orm import aliased

from bot import notices
from bot.autodebit import active_agreement, active_terms
from bot.calendar import day_start_utc
from bot.errors import UserError
from bot.money import fen, yuan
from bot.notices import Said
from models import AlertSettings, Binding, OutboxNotice, WechatUser, utcnow
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
    .where(_TODAY.openid == AlertSettings.openid, or_(*(_TODAY.kind == k for k in KINDS)), _TODAY.created_at >= bindparam("today"))
    .correlate(AlertSettings)
    .scalar_subquery()
)


def _accounts(cardholder_id: Any, *columns: Any) -> Any:
    """The card's accounts that chose alerts and may get them."""
    return (
        select(*columns)
        .select_from(AlertSettings)
        .join(Binding, Binding.openid == AlertSettings.openid)
        .join(WechatUser, WechatUser.openid == AlertSettings.openid)
        .where(
            Binding.cardholder_id == cardholder_id,
            AlertSettings.paused_by.is_(None),
            WechatUser.following.is_(True),
            or_(AlertSettings.spend, AlertSettings.low_balance, AlertSettings.large_spend),
        )
    )


def chosen_by(cardholder_id: Any) -> Any:
    """Whether an account of the card (a column or parameter) may get alerts, as an EXISTS: asked with the entry's
    balance move, it spares most entries (cards nobody asked alerts for) the account query."""
    return _accounts(cardholder_id, AlertSettings.openid).exists()


# Per account: its choice, language, alert rows today, held spend (each a lookup by the outbox's openid index)
_CHOSEN = _accounts(
    bindparam("card"),
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
)
_INSERT = insert(OutboxNotice)
# Adding a spend to the held alert, unless a worker claimed it meanwhile (it then holds the row: this waits for it)
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


def queue_for_entry(
    services: Runtime,
    conn: Connection,
    card_id: int,
    entry_id: str,
    amount_fen: int,
    balance_after_fen: int,
    merchant: str,
    low_offered: bool | None = None,
) -> None:
    """The alerts one new spend calls for, in the entry's transaction (the card row is locked by the caller): one
    query for the card's accounts, their caps and held spends, one INSERT for the new rows. ``low_offered``: whether
    the card has no auto top-up, when the caller knows (else asked if a low-balance alert is due)."""
    if amount_fen >= 0:
        return
    clock = services.clock
    now = max(clock.utcnow(), utcnow())
    quiet = services.cfg.notices.quiet_hours.contains(clock.now().time().replace(tzinfo=None))
    chosen = conn.execute(_CHOSEN, {"card": card_id, "now": now, "quiet": quiet, "today": day_start_utc(clock.today())}).all()
    if not chosen:
        return
    new = _New(services, now)
    spend, before = -amount_fen, balance_after_fen - amount_fen
    for s in chosen:
        who = _Reader(s.openid, s.lang or "zh", services.cfg.alerts.daily_cap - s.sent_today)
        if s.large_spend and spend >= s.large_threshold_fen:
            new.add(who, LARGE, f"large:{entry_id}:{s.openid}", amount=spend, merchant=merchant, balance=balance_after_fen)
        if s.low_balance and before >= s.low_threshold_fen > balance_after_fen:
            if low_offered is None:
                low_offered = active_terms(conn, card_id, clock.today()) is None  # with one, the card is topped up instead
            if low_offered:
                new.add(who, LOW, f"low:{entry_id}:{s.openid}", balance=balance_after_fen, threshold=s.low_threshold_fen)
        if s.spend and not (s.held_id is not None and _merge(services, conn, who, s, spend, merchant, balance_after_fen)):
            hold = timedelta(minutes=services.cfg.alerts.merge_minutes)
            merged = {"_fen": spend, "_count": 1}
            new.add(who, SPEND, f"spend:{entry_id}:{s.openid}", hold, merged, amount=spend, merchant=merchant, balance=balance_after_fen)
    if new.rows:
        conn.execute(_INSERT, new.rows if len(new.rows) > 1 else new.rows[0])  # one row: no executemany pipeline


@dataclass
class _Reader:
    """An account an entry alerts, with its language and how many alerts it may still get today."""

    openid: str
    lang: str
    left: int


def _values(services: Runtime, **values: Any) -> dict[str, Any]:
    return values | {"time": f"{services.clock.now():%m-%d %H:%M}", "advice": Said("alert_low_advice")}


@dataclass
class _New:
    """The alert rows one entry adds, inserted together."""

    services: Runtime
    now: datetime
    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(self, who: _Reader, kind: str, dedup: str, hold: timedelta | None = None, merged: dict[str, int] | None = None, **values: Any) -> None:
        """One alert row unless the account's daily cap is reached; ``hold`` delays it (spends merging), ``merged``
        keeps the running total and count beside the told values (not template fields, so never sent)."""
        if who.left <= 0:
            return
        who.left -= 1
        services = self.services
        notice = notices.compose(services.cfg, kind, who.openid, dedup, who.lang, **_values(services, **values))
        self.rows.append(
            {
                "dedup_key": dedup[:128],
                "openid": who.openid,
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


def _merge(services: Runtime, conn: Connection, who: _Reader, s: Any, amount: int, merchant: str, balance: int) -> bool:
    """Add the spend to the account's alert still held in the outbox; False when a worker took that row meanwhile."""
    total, count = int(s.held_data.get("_fen", 0)) + amount, int(s.held_data.get("_count", 1)) + 1
    what = Said("alert_spend_many", {"merchant": merchant, "count": str(count)})
    data = notices.told(who.lang, **_values(services, amount=total, merchant=what, balance=balance))
    return bool(conn.execute(_MERGE, {"held": s.held_id, "data": data | {"_fen": total, "_count": count}}).rowcount)


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
