"""Alerts the student chooses (提醒设置): each spend, a low balance, a large spend; queued from the card's entries.

``queue_for_entry`` runs inside the transaction that records a terminal entry (bot.card_entries, with the card row
locked), for a new entry only, so an alert exists exactly when its entry does and a replayed entry adds none: never
lost, never twice. The outbox sends them. Rules:

- **Spends merge**: a spend alert waits ``merge_minutes`` in the outbox (``next_attempt_at``); spends arriving
  meanwhile, or while quiet hours hold it, are added to that row (total, count, the latest balance) instead of a new
  one. The card row lock serialises one card's entries, and an account holds one card, so no two merges race.
- **Quiet hours** (``[notices] quiet_hours``) hold non-urgent alerts (``[notices.<kind>] urgent``; the large-spend
  alert is urgent by default).
- **Daily cap**: at most ``daily_cap`` alert rows per account a school day; a merge adds no row.
- **Refused for good**: when WeChat answers 43101 (the user refused the template) or 43004 (not following) the outbox
  marks the notice undeliverable and pauses this account's alerts (``pause``); saving the settings again resumes them.
- The low-balance alert goes out when a spend takes the balance from at or above the threshold to below it, and
  only while no auto top-up is signed (with one, the card is topped up instead).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bot import notices
from bot.autodebit import active_agreement
from bot.calendar import day_start_utc
from bot.errors import UserError
from bot.money import fen, yuan
from bot.notices import Said
from models import AlertSettings, Binding, Cardholder, OutboxNotice, WechatUser, utcnow
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


def queue_for_entry(services: Runtime, db: Session, card: Cardholder, entry_id: str, amount_fen: int, balance_after_fen: int, merchant: str) -> None:
    """The alerts one new spend calls for, in the entry's transaction (the card row is locked by the caller)."""
    if amount_fen >= 0:
        return
    chosen = db.execute(
        select(AlertSettings, WechatUser.lang)
        .join(Binding, Binding.openid == AlertSettings.openid)
        .join(WechatUser, WechatUser.openid == AlertSettings.openid)
        .where(Binding.cardholder_id == card.id, AlertSettings.paused_by.is_(None), WechatUser.following.is_(True))
    ).all()
    before = balance_after_fen - amount_fen
    low_offered: bool | None = None
    for s, lang in chosen:
        who = _Reader(s.openid, lang or "zh")
        spend = -amount_fen
        if s.large_spend and spend >= s.large_threshold_fen:
            _queue(services, db, who, LARGE, f"large:{entry_id}:{s.openid}", amount=spend, merchant=merchant, balance=balance_after_fen)
        if s.low_balance and before >= s.low_threshold_fen > balance_after_fen:
            if low_offered is None:
                low_offered = active_agreement(db, card.id, services.clock.today()) is None
            if low_offered:
                _queue(services, db, who, LOW, f"low:{entry_id}:{s.openid}", balance=balance_after_fen, threshold=s.low_threshold_fen)
        if s.spend:
            _spend(services, db, who, entry_id, spend, merchant, balance_after_fen)


@dataclass
class _Reader:
    """An account an entry alerts, with its language and how many alerts it may still get today (counted once)."""

    openid: str
    lang: str
    left: int | None = None


def _values(services: Runtime, **values: Any) -> dict[str, Any]:
    return values | {"time": f"{services.clock.now():%m-%d %H:%M}", "advice": Said("alert_low_advice")}


def _queue(
    services: Runtime,
    db: Session,
    who: _Reader,
    kind: str,
    dedup: str,
    hold: timedelta | None = None,
    merged: dict[str, int] | None = None,
    **values: Any,
) -> None:
    """Queue one alert row unless the account's daily cap is reached; ``hold`` delays it (spends merging), ``merged``
    keeps the running total and count beside the told values (not template fields, so never sent)."""
    if who.left is None:
        o = OutboxNotice
        today = day_start_utc(services.clock.today())
        counted = select(func.count()).select_from(o).where(o.openid == who.openid, o.kind.in_(KINDS), o.created_at >= today)
        who.left = services.cfg.alerts.daily_cap - db.execute(counted).scalar_one()
    if who.left <= 0:
        return
    who.left -= 1
    notice = notices.build(db, services.cfg, kind, who.openid, dedup, who.lang, **_values(services, **values))
    due = max(services.clock.utcnow(), utcnow()) + (hold or timedelta())
    db.add(
        OutboxNotice(
            dedup_key=dedup[:128],
            openid=who.openid,
            kind=kind,
            data=notice.data | (merged or {}),
            url=notice.url,
            urgent=notice.urgent,
            status=NoticeStatus.PENDING,
            next_attempt_at=due,
            created_at=services.clock.utcnow(),
        )
    )


def _spend(services: Runtime, db: Session, who: _Reader, entry_id: str, amount: int, merchant: str, balance: int) -> None:
    """Add the spend to the account's alert still held in the outbox, else queue a new one held ``merge_minutes``."""
    o = OutboxNotice
    now = max(services.clock.utcnow(), utcnow())
    quiet = services.cfg.notices.quiet_hours.contains(services.clock.now().time().replace(tzinfo=None))
    held = db.execute(
        select(o)
        .where(
            o.openid == who.openid,
            o.kind == SPEND,
            o.status == NoticeStatus.PENDING,
            o.attempts == 0,
            o.claimed_by.is_(None),
            *([] if quiet else [o.next_attempt_at > now]),
        )
        .order_by(o.id.desc())
        .limit(1)
        .with_for_update()
    ).scalar_one_or_none()
    if held is None:
        hold = timedelta(minutes=services.cfg.alerts.merge_minutes)
        merged = {"_fen": amount, "_count": 1}
        _queue(services, db, who, SPEND, f"spend:{entry_id}:{who.openid}", hold, merged, amount=amount, merchant=merchant, balance=balance)
        return
    total, count = int(held.data.get("_fen", 0)) + amount, int(held.data.get("_count", 1)) + 1
    what = Said("alert_spend_many", {"merchant": merchant, "count": str(count)})
    values = _values(services, amount=total, merchant=what, balance=balance)
    fresh = notices.build(db, services.cfg, SPEND, who.openid, held.dedup_key, who.lang, **values)
    held.data = fresh.data | {"_fen": total, "_count": count}


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
