"""The conversation state of one call, kept up to date turn by turn.

The context engine reads every final (already redacted) utterance, pulls out
entities, topics and the customer's sentiment, and identifies the customer as
soon as something identifying is said or was given up front (the call's
customer hint: caller id, customer id or email). Its state is what the
assistant reads and what the agent UI shows; each change is published as a
`ContextUpdate` carrying the whole state, so a client that joins late only
needs the latest one.

Identification accumulates over the call: a name in turn 1 and an order
number in turn 3 are weighed together (see `context.identify` for when a
match is taken and when it is only offered as a candidate). Every value is
looked up once per call (per identified customer, for order numbers), so a
number that matches nothing is not queried again on every turn; a lookup
that failed because the directory was down is retried on the next turn.

Once the customer is known their recent orders and open tickets are loaded
with them (at call start for a caller-id hint), and the order the caller
talks about is resolved against those orders.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

from callpilot.v1 import call_pb2, common_pb2, directory_pb2, events_pb2

from ..directory import Directory
from .entities import email_variants, extract_entities
from .identify import customer_candidates, is_sure, order_near_misses
from .matching import near_miss
from .sentiment import analyse_sentiment
from .state import ConversationState, Turn
from .topics import detect_topics

__all__ = ["DEFAULT_MAX_TURNS", "PREFETCH_LIMIT", "ContextEngine"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

DEFAULT_MAX_TURNS = 20
"""Recent turns kept in the state: enough for an assistant prompt, bounded for long calls."""
PREFETCH_LIMIT = 10
"""Orders and tickets loaded with an identified customer."""
_CLOSED_TICKETS = frozenset({"closed", "resolved", "solved", "done", "cancelled"})

_ORDER = events_pb2.ENTITY_TYPE_ORDER_NUMBER
_EMAIL = events_pb2.ENTITY_TYPE_EMAIL
_PHONE = events_pb2.ENTITY_TYPE_PHONE_NUMBER
_NAME = events_pb2.ENTITY_TYPE_PERSON_NAME


def mask_contact(value: str) -> str:
    """An email or phone number for logs: enough to recognise, not to use."""
    if "@" in value:
        local, _, domain = value.partition("@")
        return f"{local[:1]}***@{domain}"
    digits = [c for c in value if c.isdigit()]
    return "***" + "".join(digits[-2:]) if digits else "***"


class _LookupFailed(Exception):
    """The directory failed (not: found nothing); the lookup may be retried."""


@dataclass(slots=True)
class _OrderResult:
    """What one heard order number resolved to (cached for the call)."""

    exact: directory_pb2.Order | None = None
    near: list[events_pb2.OrderCandidate] = field(default_factory=list)


class ContextEngine:
    """Entities, topics, sentiment, the customer and the order of one call."""

    def __init__(self, directory: Directory, *, call_id: str, max_turns: int = DEFAULT_MAX_TURNS) -> None:
        self._directory = directory
        self._state = ConversationState(call_id=call_id)
        self._max_turns = max_turns
        self._score = 0.0
        # Lookups already made this call, so a repeated "78901" or a name that
        # matches nobody is not queried on every turn.
        self._tried: set[tuple[str, ...]] = set()
        self._orders_of: dict[str, list[directory_pb2.Order]] = {}
        self._order_results: dict[tuple[str, str], _OrderResult] = {}
        self._exact_orders: dict[str, directory_pb2.Order | None] = {}
        # Turns may arrive from two speakers' pipelines at once; updates must not interleave.
        self._lock = asyncio.Lock()

    @property
    def state(self) -> ConversationState:
        """The live state (the assistant reads it; do not mutate it from outside)."""
        return self._state

    def snapshot(self, segment_id: str = "") -> events_pb2.ContextUpdate:
        """The whole current state as a `ContextUpdate`."""
        state = self._state
        update = events_pb2.ContextUpdate(
            topics=state.topics,
            entities=state.entities,
            sentiment=state.sentiment,
            sentiment_score=self._score,
            segment_id=segment_id,
            orders=state.orders,
            tickets=state.tickets,
            identified_by=state.identified_by,
            candidates=state.candidates,
            order_candidates=state.order_candidates,
        )
        if state.customer is not None:
            update.customer.CopyFrom(state.customer)
        if state.order is not None:
            update.order.CopyFrom(state.order)
        return update

    async def start(self, hint: call_pb2.CustomerHint | None) -> events_pb2.ContextUpdate | None:
        """Identify the customer from the call's hint before anyone speaks, and
        prefetch their recent orders and open tickets.

        Tries the customer id, then the phone number (caller id), then the
        email. Returns the initial update, or None when there is no hint or
        nobody matches it.
        """
        if hint is None:
            return None
        attempts: list[tuple[str, Callable[[], Awaitable[directory_pb2.Customer | None]]]] = []
        if hint.customer_id:
            attempts.append(
                (f"customer id {hint.customer_id}", lambda: self._directory.get_customer(hint.customer_id))
            )
        if hint.phone:
            attempts.append(("caller id", lambda: self._directory.find_customer(phone=hint.phone)))
        if hint.email:
            attempts.append(
                ("email given with the call", lambda: self._directory.find_customer(email=hint.email))
            )
        async with self._lock:
            for what, lookup in attempts:
                try:
                    customer = await self._lookup(what, lookup)
                except _LookupFailed:
                    continue
                if customer is not None:
                    await self._take(customer, what)
                    return self.snapshot()
        return None

    async def on_final(self, turn: Turn) -> events_pb2.ContextUpdate | None:
        """Fold one final utterance into the state.

        Returns the whole new state when anything shown changed, None
        otherwise (the turn itself is still recorded).
        """
        async with self._lock:
            before = self.snapshot()
            state = self._state
            state.turns.append(turn)
            del state.turns[: max(0, len(state.turns) - self._max_turns)]

            is_customer = turn.role == common_pb2.SPEAKER_ROLE_CUSTOMER
            # An agent's "this is John" names the agent, not the customer.
            self._add_entities(extract_entities(turn.text, segment_id=turn.segment_id, names=is_customer))
            if is_customer:
                # Topics are what the customer raises; the agent's "I'll email a return
                # label" or "to your original payment method" are answers, not topics.
                for topic in detect_topics(turn.text):
                    if topic not in state.topics:
                        state.topics.append(topic)
                result = analyse_sentiment(turn.text)
                state.sentiment = result.label
                self._score = result.score
            if state.customer is None:
                await self._identify()
            await self._resolve_order()

            after = self.snapshot(turn.segment_id)
            comparable = events_pb2.ContextUpdate()
            comparable.CopyFrom(after)
            comparable.segment_id = before.segment_id  # a new segment id alone is no change
            return None if comparable == before else after

    def _add_entities(self, found: list[events_pb2.Entity]) -> None:
        known = {(e.type, e.value) for e in self._state.entities}
        for entity in found:
            key = (entity.type, entity.value)
            if key not in known:
                known.add(key)
                self._state.entities.append(entity)

    def _values(self, entity_type: events_pb2.EntityType.ValueType) -> list[str]:
        return [e.value for e in self._state.entities if e.type == entity_type]

    async def _take(self, customer: directory_pb2.Customer, why: str) -> None:
        """Make `customer` the caller and load their orders and open tickets."""
        state = self._state
        state.customer = customer
        state.identified_by = why
        state.candidates = [c for c in state.candidates if c.customer.customer_id != customer.customer_id][:0]
        try:
            state.orders = await self._customer_orders(customer.customer_id)
            tickets = await self._lookup(
                "tickets",
                lambda: self._directory.customer_tickets(customer.customer_id, limit=PREFETCH_LIMIT),
            )
        except _LookupFailed:
            tickets = []
        state.tickets = [t for t in tickets or [] if t.status.lower() not in _CLOSED_TICKETS]
        log.info(
            "customer identified",
            # Not `why`: it may quote the email or phone number the caller gave.
            extra={"call_id": state.call_id, "customer_id": customer.customer_id},
        )

    async def _customer_orders(self, customer_id: str) -> list[directory_pb2.Order]:
        cached = self._orders_of.get(customer_id)
        if cached is None:
            orders = await self._lookup(
                "orders", lambda: self._directory.customer_orders(customer_id, limit=PREFETCH_LIMIT)
            )
            cached = self._orders_of[customer_id] = list(orders or [])
        return cached

    async def _once(self, key: tuple[str, ...], lookup: Callable[[], Awaitable[_T]]) -> _T | None:
        """Run a lookup the first time `key` comes up; None when already tried or failed."""
        if key in self._tried:
            return None
        try:
            result = await lookup()
        except _LookupFailed:
            return None
        self._tried.add(key)
        return result

    async def _identify(self) -> None:
        """Exact identifiers first (email, phone, an order on file), then names
        (taken when sure, else offered as candidates), then a candidate whose
        orders include the number heard (corroboration), in order of mention."""
        for email in self._values(_EMAIL):
            found = await self._once(
                ("email", email),
                partial(self._find, "email", email),
            )
            if found is not None:
                return await self._take(found, f"email {email} is on their account")
        for phone in self._values(_PHONE):
            found = await self._once(
                ("phone", phone),
                partial(self._find, "phone", phone),
            )
            if found is not None:
                return await self._take(found, f"phone number {phone} is on their account")
        for number in self._values(_ORDER):
            result = await self._order_result(number, None)
            if result is not None and result.exact is not None and result.exact.customer_id:
                owner_id = result.exact.customer_id
                owner = await self._once(
                    ("customer", owner_id),
                    partial(self._find, "customer", owner_id),
                )
                if owner is not None:
                    return await self._take(owner, f"order {number} is theirs")
        for heard in self._values(_NAME):
            candidates = await self._once(("name", heard), partial(self._candidates, heard))
            if candidates is None:
                continue
            if is_sure(heard, candidates):
                return await self._take(candidates[0].customer, candidates[0].reason)
            self._merge_candidates(candidates)
        # A candidate is taken when an order number heard is theirs or one digit off one of theirs.
        for candidate in list(self._state.candidates):
            cid = candidate.customer.customer_id
            try:
                orders = await self._customer_orders(cid)
            except _LookupFailed:
                continue
            for number in self._values(_ORDER):
                for order in orders:
                    how = "" if order.order_number == number else near_miss(number, order.order_number)
                    if order.order_number == number or how:
                        why = f"{candidate.reason}, and order {number} " + (
                            "is theirs" if not how else f"is one of theirs with {how} ({order.order_number})"
                        )
                        return await self._take(candidate.customer, why)
        # No customer: a number unique across the directory within one digit is offered.
        for number in self._values(_ORDER):
            result = await self._order_result(number, None)
            for near in result.near if result is not None else []:
                owner_id = near.order.customer_id
                if owner_id and not any(c.customer.customer_id == owner_id for c in self._state.candidates):
                    owner = await self._once(
                        ("customer", owner_id),
                        partial(self._find, "customer", owner_id),
                    )
                    if owner is not None:
                        self._merge_candidates(
                            [
                                events_pb2.CustomerCandidate(
                                    customer=owner,
                                    score=80.0,
                                    reason=f"owner of order {near.order.order_number}, the only order near {number}",
                                )
                            ]
                        )
        return None

    async def _find(self, kind: str, value: str) -> directory_pb2.Customer | None:
        """One exact customer lookup; contact details are masked in the log."""
        directory = self._directory
        if kind == "email":
            # A heard address without its "@" is tried with each dot as the "@".
            for address in email_variants(value):
                found = await self._lookup(
                    f"email {mask_contact(address)}", partial(directory.find_customer, email=address)
                )
                if found is not None:
                    return found
            return None
        if kind == "phone":
            return await self._lookup(
                f"phone {mask_contact(value)}", lambda: directory.find_customer(phone=value)
            )
        return await self._lookup("customer id", lambda: directory.get_customer(value))

    async def _candidates(self, heard: str) -> list[events_pb2.CustomerCandidate]:
        try:
            return await customer_candidates(self._directory, heard)
        except Exception as e:
            log.warning("name lookup failed", exc_info=True, extra={"call_id": self._state.call_id})
            raise _LookupFailed("name") from e

    def _merge_candidates(self, found: list[events_pb2.CustomerCandidate]) -> None:
        best: dict[str, events_pb2.CustomerCandidate] = {
            c.customer.customer_id: c for c in self._state.candidates
        }
        for c in found:
            old = best.get(c.customer.customer_id)
            if old is None or c.score > old.score:
                best[c.customer.customer_id] = c
        self._state.candidates = sorted(best.values(), key=lambda c: -c.score)[:3]

    async def _order_result(self, number: str, customer_id: str | None) -> _OrderResult | None:
        """The exact order (any customer's) and the near misses for `number`:
        among `customer_id`'s orders when given, else unique across the directory."""
        key = (number, customer_id or "")
        if key in self._order_results:
            return self._order_results[key]
        try:
            if number in self._exact_orders:
                exact = self._exact_orders[number]
            else:
                exact = self._exact_orders[number] = await self._lookup(
                    "order", lambda: self._directory.get_order(number)
                )
            if exact is not None:
                result = _OrderResult(exact=exact)
            else:
                among = await self._customer_orders(customer_id) if customer_id else None
                near = await self._lookup(
                    "near orders", lambda: order_near_misses(self._directory, number, among)
                )
                result = _OrderResult(near=list(near or []))
        except _LookupFailed:
            return None
        self._order_results[key] = result
        return result

    async def _resolve_order(self) -> None:
        """The latest order number that resolved decides the call's order:
        exact and the customer's (or any, with no customer known) sets
        `order`; near misses are offered as `order_candidates`. Another
        customer's order is never shown."""
        state = self._state
        customer_id = state.customer.customer_id if state.customer is not None else None
        for number in self._values(_ORDER):
            result = await self._order_result(number, customer_id)
            if result is None:
                continue
            if result.exact is not None:
                if customer_id is None or result.exact.customer_id == customer_id:
                    state.order = result.exact
                    state.order_candidates = []
            elif result.near:
                state.order = None if state.order is None or customer_id is None else state.order
                state.order_candidates = result.near
                if state.order is not None and any(
                    c.order.order_number == state.order.order_number for c in result.near
                ):
                    state.order_candidates = []

    async def _lookup(self, what: str, call: Callable[[], Awaitable[_T]]) -> _T:
        # A directory outage must not stop the transcript: log, and let the
        # caller carry on unidentified.
        try:
            return await call()
        except Exception as e:
            log.warning(
                "customer lookup by %s failed", what, exc_info=True, extra={"call_id": self._state.call_id}
            )
            raise _LookupFailed(what) from e
