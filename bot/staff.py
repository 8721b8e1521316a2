"""Service-center staff: accounts, login (argon2 password, TOTP for supervisors) and idle-expiring sessions.

An account is made by ``cardbot admin add-user`` with a one-time setup link; only the link token's SHA-256 is
stored, so a database reader cannot use it. Sessions live in Redis under a random token (the cookie holds the token,
Redis its SHA-256): each request pushes the expiry ``[admin] idle_minutes`` further, and ending one deletes it.
A TOTP code is accepted once (its time step is remembered until it is out of the window).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

import pyotp
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.errors import UserError
from models import StaffUser
from models.enums import StaffRole
from models.passwords import hash_password, verify_password

if TYPE_CHECKING:
    from bot.runtime import Runtime

MIN_PASSWORD = 12
# A wrong name costs the same argon2 check as a wrong password (no oracle for which names exist).
_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class Staff:
    """Who is signed in (what a session carries)."""

    id: int
    name: str
    role: StaffRole

    @property
    def supervisor(self) -> bool:
        return self.role is StaffRole.SUPERVISOR


@dataclass(frozen=True)
class Setup:
    """An account waiting for its first password: the TOTP secret a supervisor must enrol (None for a clerk)."""

    name: str
    role: StaffRole
    totp_secret: str | None
    totp_uri: str | None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add_user(services: Runtime, name: str, role: StaffRole) -> str:
    """A new account (or a fresh setup link for one not set up yet); returns the one-time setup token."""
    name = name.strip()
    if not 1 <= len(name) <= 64:
        raise UserError("admin_bad_name", 400)
    token = secrets.token_urlsafe(32)
    expires = services.clock.utcnow() + timedelta(hours=services.cfg.admin.setup_link_hours)
    with services.session() as db, db.begin():
        user = db.execute(select(StaffUser).where(StaffUser.name == name).with_for_update()).scalar_one_or_none()
        if user is not None and user.password_hash:
            raise UserError("admin_user_exists", 409, name=name)
        if user is None:
            user = StaffUser(name=name, role=role.value, active=True)
            try:
                with db.begin_nested():
                    db.add(user)
            except IntegrityError:
                raise UserError("admin_user_exists", 409, name=name) from None
        user.role = role.value
        user.totp_secret = pyotp.random_base32() if role is StaffRole.SUPERVISOR else None
        user.setup_token_hash, user.setup_expires_at = _digest(token), expires
    return token


def _pending(db: Session, services: Runtime, token: str) -> StaffUser:
    user = db.execute(select(StaffUser).where(StaffUser.setup_token_hash == _digest(token)).with_for_update()).scalar_one_or_none()
    if user is None or user.setup_expires_at is None or user.setup_expires_at < services.clock.utcnow():
        raise UserError("admin_setup_expired", 404)
    return user


def setup_of(services: Runtime, token: str) -> Setup:
    """What the setup page shows for a link (refused when unknown, used or expired)."""
    with services.session() as db, db.begin():
        user = _pending(db, services, token)
        secret = user.totp_secret
        uri = pyotp.TOTP(secret).provisioning_uri(name=user.name, issuer_name=services.cfg.admin.totp_issuer) if secret else None
        return Setup(user.name, StaffRole(user.role), secret, uri)


def complete_setup(services: Runtime, token: str, password: str, repeat: str, code: str = "") -> Staff:
    """Set the password (and, for a supervisor, prove the authenticator works with a current code); the link is spent."""
    if len(password) < MIN_PASSWORD:
        raise UserError("admin_password_short", 400, n=MIN_PASSWORD)
    if password != repeat:
        raise UserError("admin_password_mismatch", 400)
    hashed = hash_password(password)
    with services.session() as db, db.begin():
        user = _pending(db, services, token)
        if user.totp_secret and not _code_ok(services, user.id, user.totp_secret, code):
            raise UserError("admin_bad_code", 400)
        user.password_hash, user.setup_token_hash, user.setup_expires_at = hashed, None, None
        return Staff(user.id, user.name, StaffRole(user.role))


def _code_ok(services: Runtime, user_id: int, secret: str, code: str) -> bool:
    """A current TOTP code, never accepted twice (the step is remembered past the ±1-step window)."""
    code = code.strip().replace(" ", "")
    totp = pyotp.TOTP(secret)
    now = services.clock.now()
    for drift in (0, -1, 1):
        at = now + timedelta(seconds=drift * totp.interval)
        if secrets.compare_digest(totp.at(at), code):
            step = totp.timecode(at)
            return bool(services.store.r.set(services.store.key("admin", "totp", user_id, step), "1", nx=True, ex=totp.interval * 4))
    return False


def authenticate(services: Runtime, name: str, password: str, code: str) -> Staff:
    """Name and password (and a supervisor's TOTP code): the staff member, else one refusal that says nothing more."""
    with services.session() as db:
        user = db.execute(select(StaffUser).where(StaffUser.name == name.strip()[:64])).scalar_one_or_none()
        ok = verify_password(user.password_hash if user is not None and user.password_hash else _DUMMY_HASH, password)
        if not ok or user is None or not user.active or not user.password_hash:
            raise UserError("admin_login_failed", 401)
        if user.role == StaffRole.SUPERVISOR and not (user.totp_secret and _code_ok(services, user.id, user.totp_secret, code)):
            raise UserError("admin_login_failed", 401)
        staff = Staff(user.id, user.name, StaffRole(user.role))
    with services.session() as db, db.begin():
        row = db.get(StaffUser, staff.id)
        assert row is not None
        row.last_login_at = services.clock.utcnow()
    return staff


def _session_key(services: Runtime, token: str) -> str:
    return services.store.key("admin", "session", _digest(token))


def start_session(services: Runtime, staff: Staff) -> str:
    """A new session's token (for the cookie)."""
    token = secrets.token_urlsafe(32)
    body = json.dumps({"id": staff.id, "name": staff.name, "role": staff.role.value})
    services.store.r.set(_session_key(services, token), body, ex=services.cfg.admin.idle_minutes * 60)
    return token


def session_staff(services: Runtime, token: str) -> Staff | None:
    """The session's staff member, its idle time starting again; None when it ended, expired or never was."""
    if not token:
        return None
    key = _session_key(services, token)
    pipe = services.store.r.pipeline()
    pipe.get(key)
    pipe.expire(key, services.cfg.admin.idle_minutes * 60)
    raw, _ = pipe.execute()
    if not raw:
        return None
    data = json.loads(raw)
    return Staff(int(data["id"]), str(data["name"]), StaffRole(data["role"]))


def end_session(services: Runtime, token: str) -> None:
    services.store.r.delete(_session_key(services, token))
