"""Canonical forms shared by the importer and the lookups that must match it.

An order number, a phone number or an amount is stored in one canonical
form so that what a caller quotes ("#78-901", "(555) 010-0101") finds what
was imported.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, date, datetime, time


def format_cents(cents: int) -> str:
    """Hundredths as the contract's decimal string, e.g. 12999 -> "129.99"."""
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}{cents // 100}.{cents % 100:02d}"


def phone_digits(phone: str) -> str:
    return "".join(ch for ch in phone if ch.isdigit())


def normalize_order_number(value: str) -> str:
    """The form order numbers are stored and looked up in.

    Callers quote "#78901", "78-901" or "78 901"; all mean "78901".
    """
    return value.strip().lstrip("#").replace(" ", "").replace("-", "").upper()


def parse_iso8601(value: object) -> datetime | None:
    """An ISO 8601 date ("2026-10-28", taken as midnight UTC) or date-time.

    Date-times without an offset are taken as UTC, because import files come
    from systems that almost always mean UTC and guessing the server's zone
    would make the same file import differently on different machines.
    """
    if not isinstance(value, str):
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(), tzinfo=UTC)
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def describe(value: object) -> str:
    """A value as an error message quotes it: JSON-ish, short, never the whole of a big value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__
