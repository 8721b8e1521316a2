"""Test data builders that go through the real models (and the ledger for opening balances)."""

from __future__ import annotations

from datetime import date

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import Binding, Cardholder, WechatUser, post_entry
from models.passwords import hash_password, initial_password

_HASH_CACHE: dict[str, str] = {}


def _hash(pw: str) -> str:
    if pw not in _HASH_CACHE:
        _HASH_CACHE[pw] = hash_password(pw)
    return _HASH_CACHE[pw]


def make_cardholder(
    db: Session,
    student_no: str = "20230001",
    name: str = "张三",
    id_number: str | None = "11010120000101123X",
    passport_no: str | None = None,
    balance_fen: int = 0,
    status: str = "active",
    left_on: date | None = None,
    campus: str = "main",
) -> Cardholder:
    card = Cardholder(
        student_no=student_no,
        name=name,
        id_number=id_number,
        passport_no=passport_no,
        campus=campus,
        status=status,
        left_on=left_on,
        password_hash=_hash(initial_password(id_number, passport_no)),
        balance_fen=0,
    )
    db.add(card)
    db.flush()
    if balance_fen:
        post_entry(db, card.id, balance_fen, "opening", f"opening:{student_no}", description="opening balance")
    return card


def bind(db: Session, openid: str, card: Cardholder, lang: str = "zh") -> Binding:
    if db.get(WechatUser, openid) is None:
        try:
            with db.begin_nested():
                db.add(WechatUser(openid=openid, lang=lang, following=True))
        except IntegrityError:  # the app created the account meanwhile (a simulator page's first push)
            pass
    b = Binding(openid=openid, cardholder_id=card.id)
    db.add(b)
    db.flush()
    return b
