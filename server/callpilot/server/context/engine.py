"""The conversation state of one call, kept up to date turn by turn.

The context engine reads every final (already redacted) utterance, pulls out
entities, topics and the customer's sentiment, and identifies the customer as
soon as something identifying is said (an order number, an email address, a
phone number) or was given up front (the call's customer hint). Its state is
what the assistant reads and what the agent UI shows; each change is
published as a `ContextUpdate` carrying the whole state, so a client that
joins late only needs the latest one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from callpilot.v1 import call_pb2, common_pb2, directory_pb2, events_pb2

from ..assist.base import ConversationState, Turn
from ..directory import Directory
from .entities import extract_entities
from .sentiment import analyse_sentiment
from .topics import detect_topics

__all__ = ["DEFAULT_MAX_TURNS", "ContextEngine"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

DEFAULT_MAX_TURNS = 20
"""Recent turns kept in the state: enough for an assistant prompt, bounded for long calls."""

_IDENTIFYING = (
    events_pb2.ENTITY_TYPE_ORDER_NUMBER,
    events_pb2.ENTITY_TYPE_EMAIL,
    events_pb2.ENTITY_TYPE_PHONE_NUMBER,
)


class _LookupFailed(Exception):
    """The directory failed (not: found nothing); the lookup may be retried."""


class ContextEngine:
    """Entities, topics, sentiment and the customer of one call."""

    def __init__(self, directory: Directory, *, call_id: str, max_turns: int = DEFAULT_MAX_TURNS) -> None:
        self._directory = directory
        self._state = ConversationState(call_id=call_id)
        self._max_turns = max_turns
        self._score = 0.0
        # Identifying values already looked up, so a repeated "78901" or an
        # order that belongs to nobody is not queried on every turn.
        self._tried: set[tuple[int, str]] = set()
        # Turns may arrive from two speakers' pipelines at once; updates must not interleave.
        self._lock = asyncio.Lock()

    @property
    def state(self) -> ConversationState:
        """The live state (the assistant reads it; do not mutate it from outside)."""
        return self._state

    def snapshot(self, segment_id: str = "") -> events_pb2.ContextUpdate:
        """The whole current state as a `ContextUpdate`."""
        update = events_pb2.ContextUpdate(
            topics=self._state.topics,
            entities=self._state.entities,
            sentiment=self._state.sentiment,
            sentiment_score=self._score,
            segment_id=segment_id,
        )
        if self._state.customer is not None:
            update.customer.CopyFrom(self._state.customer)
        return update

    async def start(self, hint: call_pb2.CustomerHint | None) -> events_pb2.ContextUpdate | None:
        """Identify the customer from the call's hint before anyone speaks.

        Tries the customer id, then the phone number (caller id), then the
        email. Returns the initial update, or None when there is no hint or
        nobody matches it.
        """
        if hint is None:
            return None
        attempts: list[tuple[str, Callable[[], Awaitable[directory_pb2.Customer | None]]]] = []
        if hint.customer_id:
            attempts.append(("customer id", lambda: self._directory.get_customer(hint.customer_id)))
        if hint.phone:
            attempts.append(("phone", lambda: self._directory.find_customer(phone=hint.phone)))
        if hint.email:
            attempts.append(("email", lambda: self._directory.find_customer(email=hint.email)))
        async with self._lock:
            for what, lookup in attempts:
                try:
                    customer = await self._lookup(what, lookup)
                except _LookupFailed:
                    continue
                if customer is not None:
                    self._state.customer = customer
                    return self.snapshot()
        return None

    async def on_final(self, turn: Turn) -> events_pb2.ContextUpdate | None:
        """Fold one final utterance into the state.

        Returns the whole new state when the customer, topics, entities or
        sentiment changed, None otherwise (the turn itself is still recorded).
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

    async def _identify(self) -> None:
        """Look the customer up from identifying entities, in order of first mention.

        Each value is looked up once; one whose lookup failed (directory down)
        is tried again on the next turn.
        """
        for entity in list(self._state.entities):
            key = (int(entity.type), entity.value)
            if entity.type not in _IDENTIFYING or key in self._tried:
                continue
            try:
                customer = await self._customer_for(entity)
            except _LookupFailed:
                continue
            self._tried.add(key)
            if customer is not None:
                self._state.customer = customer
                log.info(
                    "customer identified",
                    extra={"call_id": self._state.call_id, "customer_id": customer.customer_id},
                )
                return

    async def _customer_for(self, entity: events_pb2.Entity) -> directory_pb2.Customer | None:
        value = entity.value
        if entity.type == events_pb2.ENTITY_TYPE_ORDER_NUMBER:
            order = await self._lookup("order", lambda: self._directory.get_order(value))
            if order is None or not order.customer_id:
                return None
            return await self._lookup("customer id", lambda: self._directory.get_customer(order.customer_id))
        if entity.type == events_pb2.ENTITY_TYPE_EMAIL:
            return await self._lookup("email", lambda: self._directory.find_customer(email=value))
        return await self._lookup("phone", lambda: self._directory.find_customer(phone=value))

    async def _lookup(self, what: str, call: Callable[[], Awaitable[_T | None]]) -> _T | None:
        # A directory outage must not stop the transcript: log, and let the
        # caller carry on unidentified.
        try:
            return await call()
        except Exception as e:
            log.warning(
                "customer lookup by %s failed", what, exc_info=True, extra={"call_id": self._state.call_id}
            )
            raise _LookupFailed(what) from e
