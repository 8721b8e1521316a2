"""Card passwords: only slow argon2 hashes are kept; the plain password is never stored or logged."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# Moderate cost: ~30-50 ms per check on a 2-core machine, enough to make offline guessing slow.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def initial_password(id_number: str | None, passport_no: str | None) -> str:
    """docs/contract.md: last 6 characters of the ID number with X written as 0; else the passport number's last 6."""
    if id_number:
        return id_number.strip()[-6:].upper().replace("X", "0")
    if passport_no:
        return passport_no.strip()[-6:]
    raise ValueError("a cardholder needs an id_number or a passport_no")
