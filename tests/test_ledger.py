"""The ledger under a stale session: a card already loaded before its row lock must not credit from an old balance."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from models import Cardholder, ledger_sum, post_entry
from tests.support.factories import make_cardholder


def test_post_entry_reads_the_balance_under_the_lock_not_a_stale_copy(live: Any) -> None:
    with live.session() as db, db.begin():
        card_id = make_cardholder(db, "20239901", balance_fen=10000).id

    with live.session() as stale:
        seen = stale.execute(select(Cardholder).where(Cardholder.id == card_id)).scalar_one()  # in the identity map: 100.00
        stale.commit()  # keeps the object (expire_on_commit=False) but holds no lock
        with live.session() as other, other.begin():
            post_entry(other, card_id, 5000, "topup", "ledger-test:other")
        with stale.begin():
            post_entry(stale, card_id, 2000, "topup", "ledger-test:stale")
        assert seen.balance_fen == 17000

    with live.session() as db:
        card = db.get(Cardholder, card_id)
        assert card is not None
        assert card.balance_fen == 17000
        assert ledger_sum(db, card_id) == 17000
