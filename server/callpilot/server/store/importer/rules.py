"""The value rules of the import format, as pydantic validators with the importer's own messages.

Each rule takes the raw JSON value and returns the normalised one, or
raises a `PydanticCustomError` whose message is what a person reads
(`"555-0101" is not an international number; use E.164 …`); models.py
attaches them to fields, so the models are the one statement of the format
(validation and the generated docs/data-import.md both come from them).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, time
from decimal import Decimal, InvalidOperation

from callpilot.server.store import schema
from callpilot.server.store.importer.normalize import (
    describe,
    format_cents,
    normalize_order_number,
    parse_iso8601,
)
from pydantic_core import PydanticCustomError

# Bounds that keep values inside the database's integer columns.
MAX_CENTS = 10**14
MAX_QUANTITY = 1_000_000
_CENT = Decimal("0.01")

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
_ID_RE = re.compile(ID_PATTERN)
_ORDER_NUMBER_RE = re.compile(r"^[A-Z0-9]{1,32}$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
_PHONE_PUNCTUATION = str.maketrans("", "", " -().")

#: The error type every rule raises; validate.py reports its message as is.
ERROR_TYPE = "import_rule"


def problem(message: str) -> PydanticCustomError:
    # The message goes in the context, never in the template, so braces in
    # a user's value are not taken for placeholders.
    return PydanticCustomError(ERROR_TYPE, "{message}", {"message": message})


def text(
    max_len: int, *, required: bool = True, default: str = "", lower: bool = False
) -> Callable[[object], str]:
    """Trimmed text of at most `max_len` characters; null or blank is `default` unless required."""

    def rule(value: object) -> str:
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                raise problem("is required")
            return default
        if not isinstance(value, str):
            raise problem(f"must be a string, got {describe(value)}")
        value = value.strip()
        if len(value) > max_len:
            raise problem(f"is {len(value)} characters long; at most {max_len} are allowed")
        return value.lower() if lower else value

    return rule


_text_64 = text(64)
_text_16 = text(16)
_optional_320 = text(320, required=False)
_optional_32 = text(32, required=False)


def ident(value: object) -> str:
    result = _text_64(value)
    if not _ID_RE.match(result):
        raise problem(
            f'"{result}" is not a valid id: use letters, digits, "_", ".", ":" or "-", starting with '
            "a letter or digit"
        )
    return result


def email(value: object) -> str:
    result = _optional_320(value)
    if result and not _EMAIL_RE.match(result):
        raise problem(f'"{result}" is not an email address')
    return result


def phone(value: object) -> str:
    result = _optional_32(value)
    if not result:
        return result
    compact = result.translate(_PHONE_PUNCTUATION)
    digits = compact[1:]
    if not (compact.startswith("+") and digits.isdigit() and 8 <= len(digits) <= 15):
        raise problem(f'"{result}" is not an international number; use E.164 like "+15551234567"')
    return compact


def money(value: object) -> int:
    """A decimal amount as exact hundredths."""
    if value is None:
        raise problem("is required")
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise problem(f'must be a decimal amount like "129.99", got {describe(value)}')
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        amount = Decimal("NaN")
    if not amount.is_finite():
        raise problem(f'"{value}" is not a decimal amount like "129.99"')
    if amount < 0:
        raise problem(f"{value} is negative")
    # Bound the size first: arithmetic on an absurd exponent would overflow.
    if amount > Decimal(MAX_CENTS) / 100:
        raise problem(f"{value} is larger than {format_cents(MAX_CENTS)}")
    if amount != amount.quantize(_CENT):
        raise problem(f"{value} has more than two decimal places")
    return int(amount * 100)


def when(value: object) -> datetime:
    if value is None:
        raise problem("is required")
    parsed = parse_iso8601(value)
    if parsed is None:
        raise problem(f"{describe(value)} is not an ISO 8601 date or date-time")
    return parsed


def optional_when(value: object) -> datetime | None:
    return None if value is None else when(value)


def quantity(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_QUANTITY:
        raise problem(f"must be a whole number from 1 to {MAX_QUANTITY}, got {describe(value)}")
    return value


def order_number(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if value is None or value == "":
        raise problem("is required")
    if not isinstance(value, str):
        raise problem(f"must be a string, got {describe(value)}")
    number = normalize_order_number(value)
    if not _ORDER_NUMBER_RE.match(number):
        raise problem(f'"{value}" is not an order number (letters and digits)')
    return number


def currency(value: object) -> str:
    code = _text_64(value).upper()
    if not _CURRENCY_RE.match(code):
        raise problem(f'"{code}" is not an ISO 4217 code like "USD"')
    return code


def policy_type(value: object) -> str:
    kind = _text_16(value).lower()
    if kind not in schema.POLICY_TYPES:
        raise problem(f'"{kind}" is not one of: {", ".join(schema.POLICY_TYPES)}')
    return kind


def items_list(value: object) -> object:
    """Checks the list itself; models.OrderItem checks each item."""
    if not isinstance(value, list):
        raise problem(f"must be a list, got {describe(value)}")
    if not value:
        raise problem("must be a non-empty list of items")
    return value


def tag_list(value: object) -> object:
    if value is None:
        return []
    if not isinstance(value, list):
        raise problem(f"must be a list of strings, got {describe(value)}")
    return value


def tag(value: object) -> str:
    if not isinstance(value, str) or not value.strip() or len(value.strip()) > 64:
        raise problem(f"must be a non-empty string of at most 64 characters, got {describe(value)}")
    return value.strip().lower()


def section(value: object) -> object:
    """A top-level list; null means an empty one. Its records are checked by their model."""
    return [] if value is None else value


def day_or_time(value: datetime) -> str:
    """A parsed date as an error message shows it: the day alone when it is midnight."""
    return value.date().isoformat() if value.time() == time() else value.isoformat()
