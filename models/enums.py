"""Every state machine's values, one ``StrEnum`` each. Columns store the value; CHECK constraints are built from here."""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import CheckConstraint


class CardStatus(StrEnum):
    ACTIVE = "active"
    GRADUATED = "graduated"
    FROZEN = "frozen"
    LOST = "lost"


class EntryKind(StrEnum):
    OPENING = "opening"
    TOPUP = "topup"
    SPEND = "spend"
    AUTODEBIT = "autodebit"
    REFUND = "refund"
    ADJUST = "adjust"
    WITHDRAW = "withdraw"


class OrderStatus(StrEnum):
    CREATED = "created"
    PAID = "paid"
    CLOSED = "closed"
    FAILED = "failed"


class AgreementStatus(StrEnum):
    ACTIVE = "active"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class AttemptStatus(StrEnum):
    """``waiting`` → ``processing`` (the bank may have been called) → ``succeeded`` / ``failed`` / ``cancelled``."""

    WAITING = "waiting"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class RefundStatus(StrEnum):
    PENDING = "pending"
    APPROVING = "approving"
    APPROVED = "approved"
    REJECTED = "rejected"
    FAILED = "failed"


class CreditStatus(StrEnum):
    """A paid amount on its way to the card system: ``pending`` (to deliver, or its outcome unknown) → ``delivered`` /
    ``refused`` (listed for the service center) → ``refunding`` → ``refunded`` (only refused money goes back)."""

    PENDING = "pending"
    DELIVERED = "delivered"
    REFUSED = "refused"
    REFUNDING = "refunding"
    REFUNDED = "refunded"


class CreditChannel(StrEnum):
    WECHAT_PAY = "wechat_pay"
    AUTODEBIT = "autodebit"


class NoticeStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    UNCONFIRMED = "unconfirmed"
    UNCERTAIN = "uncertain"
    UNDELIVERABLE = "undeliverable"
    FAILED = "failed"


class StaffRole(StrEnum):
    """Service-center staff in the web console: a clerk helps at the counter; a supervisor also decides money."""

    CLERK = "clerk"
    SUPERVISOR = "supervisor"


class AuditOutcome(StrEnum):
    """What became of an audited console request."""

    DONE = "done"  # viewed, or the action did what it was asked
    REFUSED = "refused"  # the domain refused it (its reason is in ``detail``)
    FORBIDDEN = "forbidden"  # the role may not do it (403)


class LossStatus(StrEnum):
    """A lost-card report: ``pending`` (sent to the card system, its answer not yet known; re-sent with the same ref)
    → ``lost`` → ``found`` (cancelled with the card password); ``refused`` when the card system would not mark it."""

    PENDING = "pending"
    LOST = "lost"
    FOUND = "found"
    REFUSED = "refused"


def check_in(column: str, enum: type[StrEnum], name: str) -> CheckConstraint:
    """``column IN (...)`` over every value of ``enum``: the database refuses what the code does not know."""
    values = ",".join(f"'{v.value}'" for v in enum)
    return CheckConstraint(f"{column} IN ({values})", name=name)


class Product(StrEnum):
    """What a paid order buys (``TopupOrder.product``, ``CardCredit.product``): money on a campus card (``target`` =
    student number) or electricity for a dorm room (``target`` = the electricity system's room id)."""

    CARD = "card"
    POWER = "power"
