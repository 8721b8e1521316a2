"""Persistence: SQLAlchemy 2 models and the ledger. Knows nothing of Flask, Redis or WeChat."""

from models.alerts import AlertSettings
from models.autodebit import AutodebitAgreement, AutodebitAttempt, RefundRequest
from models.base import Base, utcnow
from models.binding import Binding
from models.cardholder import Cardholder
from models.credit import CardCredit, CardEntryPush
from models.ledger import (
    Booked,
    Credited,
    InsufficientBalance,
    KeyReused,
    LedgerEntry,
    LockedCard,
    NoSuchCard,
    Notice,
    Posted,
    Replayed,
    TerminalEntry,
    book_entries,
    ledger_sum,
    lock_card,
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
    "Booked",
    "CardCredit",
    "CardEntryPush",
    "CardLoss",
    "Cardholder",
    "Credited",
    "InsufficientBalance",
    "LedgerEntry",
    "KeyReused",
    "LockedCard",
    "NoSuchCard",
    "Notice",
    "OutboxNotice",
    "Posted",
    "Replayed",
    "PowerRoom",
    "ReconciliationRun",
    "RefundRequest",
    "SavedRoom",
    "StaffUser",
    "TerminalEntry",
    "TopupOrder",
    "WechatUser",
    "book_entries",
    "lang_of",
    "ledger_sum",
    "lock_card",
    "post_credit",
    "post_entry",
    "utcnow",
]
