"""Persistence: SQLAlchemy 2 models and the ledger. Knows nothing of Flask, Redis or WeChat."""

from models.alerts import AlertSettings
from models.autodebit import AutodebitAgreement, AutodebitAttempt, RefundRequest
from models.base import Base, utcnow
from models.binding import Binding
from models.cardholder import Cardholder
from models.credit import CardCredit, CardEntryPush
from models.ledger import (
    MOVE_BY_NO,
    Credited,
    InsufficientBalance,
    LedgerEntry,
    LockedCard,
    Notice,
    Posted,
    Replayed,
    book_entry,
    ledger_sum,
    lock_card,
    move_balance,
    post_credit,
    post_entry,
)
from models.loss import CardLoss
from models.outbox import OutboxNotice
from models.power import PowerRoom, SavedRoom
from models.staff import AuditEntry, ReconciliationRun, StaffUser
from models.topup import TopupOrder
from models.wechat_user import WechatUser, lang_of

__all__ = [
    "AlertSettings",
    "AutodebitAgreement",
    "AuditEntry",
    "AutodebitAttempt",
    "Base",
    "Binding",
    "CardCredit",
    "CardEntryPush",
    "CardLoss",
    "Cardholder",
    "Credited",
    "InsufficientBalance",
    "LedgerEntry",
    "MOVE_BY_NO",
    "LockedCard",
    "Notice",
    "OutboxNotice",
    "Posted",
    "Replayed",
    "PowerRoom",
    "ReconciliationRun",
    "RefundRequest",
    "SavedRoom",
    "StaffUser",
    "TopupOrder",
    "WechatUser",
    "book_entry",
    "lang_of",
    "ledger_sum",
    "lock_card",
    "move_balance",
    "post_credit",
    "post_entry",
    "utcnow",
]
