"""Keeps the packaged demo data from rotting: its dates move with the seeding day.

The demo data (demo_data.json, made by tests/store/make_demo_data.py) was
written as of `DEMO_AS_OF`: Maria Garcia's headphones (order 78901) were
delivered 21 days before it, inside the 30-day return window. Imported as
written, the demo call would say "outside the return window" a few weeks
later. So the seed moves every order and ticket date by the days between
`DEMO_AS_OF` and the day it seeds: on any day, 78901 was delivered 21 days
before the seeding, and the demo call gives the same answer on that day.

Only dates move; ids, amounts, texts and the order of records are kept. A
document that is not shaped like the demo data is returned unchanged (the
importer reports what is wrong with it).
"""

from __future__ import annotations

import copy
from datetime import date, datetime, timedelta
from typing import Any

__all__ = ["DEMO_AS_OF", "date_demo_document"]

DEMO_AS_OF = date(2026, 11, 23)
"""The day demo_data.json was written for (`AS_OF` in tests/store/make_demo_data.py)."""

_DATE_FIELDS = {"orders": ("order_date", "delivered_date"), "tickets": ("created_at",)}


def _shift(value: Any, delta: timedelta) -> Any:
    if not isinstance(value, str) or not value:
        return value
    if len(value) == 10:  # "2026-11-02"
        try:
            return (date.fromisoformat(value) + delta).isoformat()
        except ValueError:
            return value
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    shifted = (when + delta).isoformat()
    return shifted.replace("+00:00", "Z") if value.endswith("Z") else shifted


def date_demo_document(doc: object, today: date) -> object:
    """A copy of the demo document with its dates moved to be relative to `today`."""
    if not isinstance(doc, dict):
        return doc
    delta = today - DEMO_AS_OF
    out = copy.deepcopy(doc)
    for section, fields in _DATE_FIELDS.items():
        records = out.get(section)
        if not isinstance(records, list):
            continue
        for record in records:
            if isinstance(record, dict):
                for name in fields:
                    if name in record:
                        record[name] = _shift(record[name], delta)
    return out
