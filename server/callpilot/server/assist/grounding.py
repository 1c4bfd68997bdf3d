"""The grounding check: every fact in a suggestion must come from the call.

A suggestion an agent reads aloud must not invent an amount, a date or a
policy term. Both engines pass their text through this check before the
`SuggestionCompleted` is sent:

* **Facts** are the amounts ("$129.99", "49.50 USD"), dates ("2 Nov 2026",
  "November 2", "2026-11-02") and other numbers ("30-day", "5-7", "78901")
  a suggestion states.
* **Evidence** is what the turn's successful tool calls returned (every
  string and number in their results, spelled-out numbers included), what
  was said in the call (the transcript in the state, entity values), counts
  derived from cited orders (number of items), and day counts between the
  call's date and any date in the evidence ("22 days since delivery").
* A fact is **grounded** when it equals a piece of evidence (amounts and
  numbers compared as decimals; dates by day and month, and year when
  stated). The local engine drops a sentence with an ungrounded fact (and
  logs it: its templates only use tool results, so that is a bug); the LLM
  engine keeps the sentence with the figure replaced by "[unverified]" and
  tells the agent with a notice.

Neither engine ever shows an agent a figure that no tool returned and
nobody said.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from callpilot.v1 import events_pb2

from ..context.numbers import normalise_numbers
from ..context.state import ConversationState
from .tools import result_dict

__all__ = [
    "Evidence",
    "Fact",
    "GroundingResult",
    "check",
    "evidence_for",
    "facts_in",
    "ground",
    "ground_local",
    "grounding_notice",
]

log = logging.getLogger(__name__)

_MONTHS = {
    m: i
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1
    )
}
_MONTH = r"(?P<mon>jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
_DATE_RES = (
    re.compile(r"\b(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})(?:[T ][\d:.]+Z?)?", re.IGNORECASE),
    re.compile(rf"\b(?P<d>\d{{1,2}})(?:st|nd|rd|th)?\s+{_MONTH}(?:,?\s+(?P<y>\d{{4}}))?\b", re.IGNORECASE),
    re.compile(rf"\b{_MONTH}\s+(?P<d>\d{{1,2}})(?:st|nd|rd|th)?\b(?:,?\s+(?P<y>\d{{4}}))?", re.IGNORECASE),
)
_MONEY_RE = re.compile(
    r"(?:[$€£]\s?(?P<a>\d[\d,]*(?:\.\d+)?))|(?:\b(?P<b>\d[\d,]*(?:\.\d+)?)\s?(?:USD|EUR|GBP|dollars?|euros?|pounds?)\b)",
    re.IGNORECASE,
)
_NUMBER_RE = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?(?![\d])")


@dataclass(frozen=True, slots=True)
class Fact:
    """One checkable statement in a suggestion."""

    kind: str  # "money", "date" or "number"
    text: str
    start: int
    end: int
    value: Decimal | tuple[int, int, int | None]


def _decimal(text: str) -> Decimal | None:
    try:
        return Decimal(text.replace(",", "")).normalize()
    except InvalidOperation:
        return None


def _date_match(m: re.Match[str]) -> tuple[int, int, int | None] | None:
    groups = m.groupdict()
    month = int(groups["m"]) if groups.get("m") else _MONTHS.get((groups.get("mon") or "")[:3].lower(), 0)
    day = int(groups["d"])
    year = int(groups["y"]) if groups.get("y") else None
    if not 1 <= month <= 12 or not 1 <= day <= 31:
        return None
    return (month, day, year)


def facts_in(text: str) -> list[Fact]:
    """The amounts, dates and numbers `text` states, in order."""
    found: list[Fact] = []
    taken: list[tuple[int, int]] = []

    def free(a: int, b: int) -> bool:
        return not any(a < e and s < b for s, e in taken)

    for regex in _DATE_RES:
        for m in regex.finditer(text):
            value = _date_match(m)
            if value is not None and free(m.start(), m.end()):
                taken.append((m.start(), m.end()))
                found.append(Fact("date", m.group(0), m.start(), m.end(), value))
    for m in _MONEY_RE.finditer(text):
        amount = _decimal(m.group("a") or m.group("b"))
        if amount is not None and free(m.start(), m.end()):
            taken.append((m.start(), m.end()))
            found.append(Fact("money", m.group(0), m.start(), m.end(), amount))
    for m in _NUMBER_RE.finditer(text):
        number = _decimal(m.group(0).rstrip(",."))
        if number is not None and free(m.start(), m.end()):
            found.append(Fact("number", m.group(0), m.start(), m.end(), number))
    found.sort(key=lambda f: f.start)
    return found


@dataclass(slots=True)
class Evidence:
    """Numbers and dates the call has established."""

    numbers: set[Decimal] = field(default_factory=set)
    dates: set[date] = field(default_factory=set)

    def add_text(self, text: str) -> None:
        for variant in dict.fromkeys((text, normalise_numbers(text))):
            for f in facts_in(variant):
                if f.kind == "date":
                    month, day, year = f.value  # type: ignore[misc]
                    if year is not None:
                        with contextlib.suppress(ValueError):
                            self.dates.add(date(year, month, day))
                    # A date is also its parts ("the 2nd").
                    self.numbers.add(Decimal(day))
                    if year is not None:
                        self.numbers.add(Decimal(year))
                else:
                    self.numbers.add(f.value)  # type: ignore[arg-type]

    def add_value(self, value: Any) -> None:
        if isinstance(value, dict):
            for v in value.values():
                self.add_value(v)
            items = value.get("items")
            if isinstance(items, list):  # "and 2 more items"
                self.numbers.update({Decimal(len(items)), Decimal(max(len(items) - 1, 0))})
        elif isinstance(value, list):
            for v in value:
                self.add_value(v)
        elif isinstance(value, bool) or value is None:
            return
        elif isinstance(value, int | float):
            d = _decimal(repr(value))
            if d is not None:
                self.numbers.add(d)
        else:
            self.add_text(str(value))

    def supports(self, fact: Fact, today: date) -> bool:
        if fact.kind == "date":
            month, day, year = fact.value  # type: ignore[misc]
            return any(
                d.month == month and d.day == day and (year is None or d.year == year) for d in self.dates
            )
        return fact.value in self.numbers

    def with_day_counts(self, today: date) -> Evidence:
        """Also the day counts between `today` and every known date."""
        out = Evidence(set(self.numbers), set(self.dates))
        out.numbers.update(Decimal(abs((today - d).days)) for d in self.dates)
        return out


def evidence_for(
    state: ConversationState | None, tool_calls: Iterable[events_pb2.ToolCall], today: date
) -> Evidence:
    """What a suggestion may state: the successful tool results plus what was said."""
    ev = Evidence()
    for call in tool_calls:
        if call.status == events_pb2.TOOL_CALL_STATUS_SUCCEEDED:
            ev.add_value(result_dict(call))
            ev.add_value(
                json.loads(json.dumps(dict(call.arguments), default=str))
                if call.HasField("arguments")
                else {}
            )
    if state is not None:
        for turn in state.turns:
            ev.add_text(turn.text)
        for entity in state.entities:
            ev.add_text(entity.value)
    return ev.with_day_counts(today)


@dataclass(frozen=True, slots=True)
class GroundingResult:
    """A checked suggestion."""

    text: str
    facts: int
    ungrounded: list[Fact]
    dropped: list[str]


def check(text: str, evidence: Evidence, today: date) -> list[Fact]:
    """The facts in `text` that `evidence` does not support."""
    return [f for f in facts_in(text) if not evidence.supports(f, today)]


def _sentences(text: str) -> list[str]:
    # Split after . ! ? followed by space; "129.99" and "C-1001." stay whole.
    parts = re.split(r"(?<=[.!?])\s+", text.strip())
    return [p for p in parts if p]


NOTICE_UNGROUNDED = "UNGROUNDED_FACTS_DROPPED"
"""Notice code: figures in a model's suggestion were flagged as unverified."""


def grounding_notice(figures: int) -> events_pb2.Notice:
    """The notice the agent gets when `figures` figures were flagged."""
    return events_pb2.Notice(
        level=events_pb2.NOTICE_LEVEL_WARNING,
        code=NOTICE_UNGROUNDED,
        text=f"{figures} figure(s) in the suggestion came from no tool result or anything said on the "
        "call; they are shown as [unverified].",
    )


UNVERIFIED = "[unverified]"
"""What an ungrounded figure in a model's suggestion is replaced with."""


def ground(
    text: str,
    state: ConversationState | None,
    tool_calls: Sequence[events_pb2.ToolCall],
    today: date,
    *,
    flag: bool = False,
) -> GroundingResult:
    """Check `text` against what the call has established.

    Default: drop the sentences that state something unsupported. With
    `flag`: keep them, with each unsupported figure replaced by
    `UNVERIFIED` (a model's sentence is often still useful advice).
    """
    evidence = evidence_for(state, tool_calls, today)
    kept: list[str] = []
    dropped: list[str] = []
    bad: list[Fact] = []
    total = 0
    for sentence in _sentences(text):
        facts = facts_in(sentence)
        total += len(facts)
        unsupported = [f for f in facts if not evidence.supports(f, today)]
        if not unsupported:
            kept.append(sentence)
            continue
        bad.extend(unsupported)
        dropped.append(sentence)
        if flag:
            for f in sorted(unsupported, key=lambda f: -f.start):
                sentence = sentence[: f.start] + UNVERIFIED + sentence[f.end :]
            kept.append(sentence)
    return GroundingResult(" ".join(kept), total, bad, dropped)


def ground_local(
    text: str, state: ConversationState, tool_calls: Sequence[events_pb2.ToolCall], today: date | datetime
) -> str:
    """The local engine's check: its templates only use tool results, so a
    dropped sentence is a bug; it is logged and not shown."""
    day = today.date() if isinstance(today, datetime) else today
    result = ground(text, state, tool_calls, day)
    if result.dropped:
        log.error(
            "local suggestion stated ungrounded facts %s; dropped %d sentence(s)",
            [f.text for f in result.ungrounded],
            len(result.dropped),
            extra={"call_id": state.call_id},
        )
    return result.text
