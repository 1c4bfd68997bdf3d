"""The demo data is dated relative to the day it is seeded, so it never rots."""

from __future__ import annotations

from datetime import date

from callpilot.server.store import load_demo_document
from callpilot.server.store.demo_dates import DEMO_AS_OF, date_demo_document
from store.make_demo_data import AS_OF


def test_as_of_matches_the_generator() -> None:
    assert DEMO_AS_OF == AS_OF


def test_dates_move_by_the_days_since_as_of_and_nothing_else_changes() -> None:
    doc = load_demo_document()
    assert isinstance(doc, dict)
    moved = date_demo_document(doc, date(2027, 3, 1))
    assert isinstance(moved, dict)
    order = next(o for o in moved["orders"] if o["number"] == "78901")
    assert (order["order_date"], order["delivered_date"]) == ("2027-02-03", "2027-02-08")
    ticket = moved["tickets"][0]
    original = doc["tickets"][0]
    assert ticket["created_at"].endswith("Z") and ticket["created_at"] != original["created_at"]
    assert {k: v for k, v in ticket.items() if k != "created_at"} == {
        k: v for k, v in original.items() if k != "created_at"
    }
    assert moved["customers"] == doc["customers"] and moved["policies"] == doc["policies"]
    assert date_demo_document(doc, DEMO_AS_OF) == doc
    assert load_demo_document() == doc, "the packaged document is not modified"
