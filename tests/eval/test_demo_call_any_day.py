"""The demo call gives the same correct suggestion on any date: the demo data
is seeded relative to the seeding day (store.demo_dates) and eligibility is
counted from the call's day."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from callpilot.server.assist.base import AssistRequest, Turn
from callpilot.server.assist.local import LocalAssistant
from callpilot.server.context.engine import ContextEngine
from callpilot.server.store import Store, load_demo_document
from callpilot.server.store.demo_dates import date_demo_document
from callpilot.v1 import common_pb2, events_pb2

DEMO_CALL = [
    "Hi, my name is Maria Garcia.",
    "I am calling about my order seven eight nine oh one.",
    "The headphones arrived broken and I would like a refund please.",
]
_DATE_RE = re.compile(r"\b\d{1,2} [A-Z][a-z]{2} \d{4}\b")


async def _demo_suggestion(tmp_path: Path, day: date) -> str:
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / f'{day}.db'}")
    try:
        await store.import_data(date_demo_document(load_demo_document(), day))
        now = datetime.combine(day, time(15, 0), tzinfo=UTC)  # later the same day
        engine = ContextEngine(store, call_id=f"demo-{day}")
        for i, line in enumerate(DEMO_CALL):
            await engine.on_final(Turn(f"s{i}", common_pb2.SPEAKER_ROLE_CUSTOMER, line))
        request = AssistRequest("sg", engine.state, engine.state.turns[-1])
        outputs = [o async for o in LocalAssistant(store, now=lambda: now).respond(request)]
    finally:
        await store.close()
    completed = outputs[-1]
    assert isinstance(completed, events_pb2.SuggestionCompleted)
    return completed.text


async def test_same_answer_today_next_month_and_next_year(tmp_path: Path) -> None:
    today = datetime.now(UTC).date()
    texts = [await _demo_suggestion(tmp_path, today + timedelta(days=d)) for d in (0, 31, 400)]
    assert "within the 30-day return window (21 days since delivery)" in texts[0]
    assert "offer a refund to the original payment method within 5\u20137 business days" in texts[0]
    # Only the calendar date of the delivery differs.
    assert len({_DATE_RE.sub("<date>", t) for t in texts}) == 1, texts
    delivered = [_DATE_RE.findall(t) for t in texts]
    assert delivered[0] != delivered[1] != delivered[2]
