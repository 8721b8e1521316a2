"""The school's roster CSV → cardholders (docs/contract.md: "Roster CSV").

The whole file is validated before anything is written, so one bad row leaves the database as it was.
A CSV balance is the opening balance of a card the bot has not seen (an ``opening`` ledger entry). For a known
card the live balance wins: the export is a snapshot that top-ups and spending have moved on since, so applying it
would mint or destroy money. A difference is only reported, unless an operator asks for it to be applied
(``set_balances_reason``): then it becomes an ``adjust`` entry that carries the reason.
"""

from __future__ import annotations

import csv
import os
import re
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.money import parse_yuan
from models import Cardholder, post_entry
from models.enums import CardStatus, EntryKind
from models.passwords import hash_password, initial_password

STATUSES = [s.value for s in CardStatus]
COLUMNS = ("student_no", "name", "id_number", "passport_no", "campus", "balance", "status", "left_on")
STUDENT_NO = re.compile(r"^\d{8,12}$")
ID_NUMBER = re.compile(r"^\d{17}[\dX]$")
PASSPORT = re.compile(r"^[A-Z0-9]{5,20}$")
MAX_BALANCE_FEN = 10**9  # 10 million yuan: anything above is a typo in the export
MAX_REASON = 100  # fits the ledger entry's description after "roster import: "


class RosterError(Exception):
    """A bad file: ``line_no`` and ``message`` name the first problem; ``problems`` lists them all."""

    def __init__(self, line_no: int, message: str, problems: list[tuple[int, str]] | None = None) -> None:
        super().__init__(f"line {line_no}: {message}")
        self.line_no = line_no
        self.message = message
        self.problems = problems or [(line_no, message)]


@dataclass(frozen=True)
class BalanceDifference:
    """A known card whose live balance is not the file's; ``entry_key`` names the adjust entry when one was written."""

    student_no: str
    live_fen: int
    csv_fen: int
    entry_key: str | None = None


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    differences: list[BalanceDifference] = field(default_factory=list)
    adjusted: list[BalanceDifference] = field(default_factory=list)

    def __str__(self) -> str:
        text = f"created {self.created}, updated {self.updated}, unchanged {self.unchanged}"
        if self.adjusted:
            text += f", {len(self.adjusted)} balances set from the file"
        elif self.differences:
            text += f", {len(self.differences)} balances differ from the file (kept)"
        return text


@dataclass
class Row:
    line_no: int
    student_no: str
    name: str
    id_number: str | None
    passport_no: str | None
    campus: str
    balance_fen: int
    status: str
    left_on: date | None
    problems: list[str] = field(default_factory=list)


def _clean_row(line_no: int, raw: dict[str | None, object]) -> Row:
    problems: list[str] = []
    extra = raw.get(None)
    if isinstance(extra, list) and extra:
        problems.append(f"{len(COLUMNS) + len(extra)} fields, expected {len(COLUMNS)}")
    values = {c: str(raw.get(c) or "").strip() for c in COLUMNS}
    if any(raw.get(c) is None for c in COLUMNS):
        problems.append(f"too few fields, expected {len(COLUMNS)}")

    student_no = values["student_no"]
    if not STUDENT_NO.match(student_no):
        problems.append(f"student_no {student_no!r} must be 8-12 digits")
    name = " ".join(values["name"].split())
    if not name:
        problems.append("name is empty")
    elif len(name) > 64:
        problems.append("name is longer than 64 characters")
    id_number = values["id_number"].upper() or None
    if id_number and not ID_NUMBER.match(id_number):
        problems.append(f"id_number {values['id_number']!r} must be 18 characters: 17 digits and a digit or X")
    passport_no = values["passport_no"].upper() or None
    if passport_no and not PASSPORT.match(passport_no):
        problems.append(f"passport_no {values['passport_no']!r} must be 5-20 letters or digits")
    if not id_number and not passport_no:
        problems.append("id_number or passport_no is needed (the initial card password comes from it)")
    campus = values["campus"]
    if len(campus) > 64:
        problems.append("campus is longer than 64 characters")
    balance_fen = 0
    try:
        balance_fen = parse_yuan(values["balance"])
        if balance_fen < 0 or balance_fen > MAX_BALANCE_FEN:
            problems.append(f"balance {values['balance']!r} out of range")
    except ValueError as exc:
        problems.append(f"balance {exc}")
    status = values["status"].lower()
    if status not in STATUSES:
        problems.append(f"status {values['status']!r} must be one of {', '.join(STATUSES)}")
    left_on = None
    if values["left_on"]:
        try:
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", values["left_on"]):
                raise ValueError
            left_on = date.fromisoformat(values["left_on"])
        except ValueError:
            problems.append(f"left_on {values['left_on']!r} must be a date YYYY-MM-DD")
    elif status == CardStatus.GRADUATED:
        problems.append("left_on is required for graduated cardholders")
    return Row(line_no, student_no, name, id_number, passport_no, campus, balance_fen, status, left_on, problems)


def read_roster(path: str | os.PathLike[str]) -> list[Row]:
    """Parse and validate the whole file; raise RosterError listing every bad line."""
    problems: list[tuple[int, str]] = []
    rows: list[Row] = []
    try:
        with Path(path).open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in (reader.fieldnames or [])]
            if sorted(header) != sorted(COLUMNS):
                missing = [c for c in COLUMNS if c not in header]
                unknown = [h for h in header if h not in COLUMNS]
                detail = "; ".join(
                    p for p in (f"missing {', '.join(missing)}" if missing else "", f"unknown {', '.join(unknown)}" if unknown else "") if p
                )
                raise RosterError(1, f"header must be {','.join(COLUMNS)} ({detail or 'duplicate columns'})")
            reader.fieldnames = header
            for raw in reader:
                row = _clean_row(reader.line_num, raw)
                problems.extend((row.line_no, p) for p in row.problems)
                rows.append(row)
    except UnicodeDecodeError as exc:
        raise RosterError(0, f"file is not UTF-8 ({exc.reason})") from None
    except csv.Error as exc:
        raise RosterError(0, f"not a valid CSV file: {exc}") from None
    problems.extend(_duplicates(rows))
    if problems:
        problems.sort()
        raise RosterError(problems[0][0], problems[0][1], problems)
    return rows


def _duplicates(rows: Iterable[Row]) -> list[tuple[int, str]]:
    seen_no: dict[str, int] = {}
    seen_passport: dict[str, int] = {}
    out: list[tuple[int, str]] = []
    for r in rows:
        if r.student_no in seen_no:
            out.append((r.line_no, f"student_no {r.student_no} already on line {seen_no[r.student_no]}"))
        seen_no.setdefault(r.student_no, r.line_no)
        if r.passport_no:
            if r.passport_no in seen_passport:
                out.append((r.line_no, f"passport_no {r.passport_no} already on line {seen_passport[r.passport_no]}"))
            seen_passport.setdefault(r.passport_no, r.line_no)
    return out


def _existing(db: Session, rows: list[Row]) -> dict[str, Cardholder]:
    found: dict[str, Cardholder] = {}
    nos = [r.student_no for r in rows]
    for i in range(0, len(nos), 500):
        chunk = nos[i : i + 500]
        found.update({c.student_no: c for c in db.execute(select(Cardholder).where(Cardholder.student_no.in_(chunk))).scalars()})
    return found


def _passport_conflicts(db: Session, rows: list[Row]) -> list[tuple[int, str]]:
    """A passport number must lead to one card only, also across cards that are not in this file."""
    wanted: dict[str | None, Row] = {r.passport_no: r for r in rows if r.passport_no}
    out: list[tuple[int, str]] = []
    keys = list(wanted)
    for i in range(0, len(keys), 500):
        q = select(Cardholder.student_no, Cardholder.passport_no).where(Cardholder.passport_no.in_(keys[i : i + 500]))
        for student_no, passport_no in db.execute(q):
            row = wanted[passport_no]
            if student_no != row.student_no:
                out.append((row.line_no, f"passport_no {passport_no} belongs to student_no {student_no}"))
    return out


def _hashes(passwords: list[str]) -> list[str]:
    """argon2 is slow by design; hash a large roster on a few threads (argon2-cffi releases the GIL)."""
    if len(passwords) < 8:
        return [hash_password(p) for p in passwords]
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 2)) as pool:
        return list(pool.map(hash_password, passwords))


def _set_balance(db: Session, card: Cardholder, csv_fen: int, reason: str) -> BalanceDifference | None:
    """One ``adjust`` entry taking the card to ``csv_fen``, computed under the card's row lock from its fresh balance."""
    db.refresh(card, with_for_update=True)
    live_fen = card.balance_fen
    if live_fen == csv_fen:
        return None
    key = f"roster:{card.student_no}:{uuid.uuid4().hex}"
    post_entry(db, card.id, csv_fen - live_fen, EntryKind.ADJUST, key, description=f"roster import: {reason}")
    return BalanceDifference(card.student_no, live_fen, csv_fen, key)


def import_roster(db: Session, path: str | os.PathLike[str], *, set_balances_reason: str | None = None) -> ImportResult:
    """Upsert the roster in ``db`` (the caller commits). Raises RosterError and writes nothing on any bad row.

    Known cards keep their live balance; differences are listed in ``differences``. With ``set_balances_reason``
    each one is applied as an ``adjust`` entry (listed in ``adjusted``).
    """
    if set_balances_reason is not None and not 0 < len(set_balances_reason.strip()) <= MAX_REASON:
        raise ValueError(f"setting balances needs a reason of 1-{MAX_REASON} characters")
    rows = read_roster(path)
    existing = _existing(db, rows)
    conflicts = _passport_conflicts(db, rows)
    if conflicts:
        conflicts.sort()
        raise RosterError(conflicts[0][0], conflicts[0][1], conflicts)

    result = ImportResult()
    new_rows = [r for r in rows if r.student_no not in existing]
    rehash = [
        r
        for r in rows
        if r.student_no in existing and (existing[r.student_no].id_number, existing[r.student_no].passport_no) != (r.id_number, r.passport_no)
    ]
    hashed = dict(
        zip(
            [r.student_no for r in new_rows + rehash],
            _hashes([initial_password(r.id_number, r.passport_no) for r in new_rows + rehash]),
            strict=True,
        )
    )
    for row in rows:
        card = existing.get(row.student_no)
        if card is None:
            card = Cardholder(
                student_no=row.student_no,
                name=row.name,
                id_number=row.id_number,
                passport_no=row.passport_no,
                campus=row.campus,
                status=row.status,
                left_on=row.left_on,
                password_hash=hashed[row.student_no],
                balance_fen=0,
            )
            db.add(card)
            db.flush()
            if row.balance_fen:
                post_entry(db, card.id, row.balance_fen, EntryKind.OPENING, f"opening:{row.student_no}", description="opening balance")
            result.created += 1
            continue
        changed = False
        if set_balances_reason is not None and (done := _set_balance(db, card, row.balance_fen, set_balances_reason.strip())):
            result.differences.append(done)
            result.adjusted.append(done)
            changed = True
        elif set_balances_reason is None and card.balance_fen != row.balance_fen:
            result.differences.append(BalanceDifference(row.student_no, card.balance_fen, row.balance_fen))
        for attr in ("name", "id_number", "passport_no", "campus", "status", "left_on"):
            if getattr(card, attr) != getattr(row, attr):
                setattr(card, attr, getattr(row, attr))
                changed = True
        if row.student_no in hashed:
            card.password_hash = hashed[row.student_no]
        if changed:
            result.updated += 1
        else:
            result.unchanged += 1
    db.flush()
    return result
