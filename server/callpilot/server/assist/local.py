"""The local assistant: grounded suggestions without a language model.

This is the default assistant, so a fresh install gives agents useful help
with no API key and no GPU: it reads the conversation state the context
engine keeps, decides from the topics and entities which directory lookups
answer the customer's turn, runs them through the same `ToolBox` an LLM
assistant uses, and fills templates with the facts that came back (order
status and dates, the return window worked out from the policy text, refund
timing, knowledge-base passages). Every suggestion cites the records it used;
when nothing is known yet it suggests the question that would unlock them.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from callpilot.v1 import common_pb2, directory_pb2, events_pb2
from google.protobuf import json_format

from ..context.backchannel import BACKCHANNEL_WORDS as _BACKCHANNEL_WORDS
from ..context.backchannel import PLACEHOLDER_RE as _PLACEHOLDER_RE
from ..context.backchannel import is_backchannel
from ..context.backchannel import words as _words
from ..context.entities import extract_entities
from ..context.numbers import normalise_numbers
from ..context.topics import detect_topics
from ..context.wordlists import wordset as _wordset
from ..directory import Directory
from .base import Assistant, AssistOutput, AssistRequest, ConversationState, Turn
from .grounding import ground_local
from .summary import extractive_summary, first_sentence, sentences_of
from .tools import ToolBox, result_dict

__all__ = ["LocalAssistant", "is_backchannel"]

_CUSTOMER = common_pb2.SPEAKER_ROLE_CUSTOMER
_T = events_pb2  # topic and entity enums live here

# Dropped from knowledge-base queries: they match every article.
_QUERY_STOP_WORDS = _wordset(
    """
    what what's how why when where which who do does did can could would should will is are was were be
    the a an my your our their its of to for with in on at by from and or but if about any some this
    these those there here i we you he she they them me us want need like get tell please
    """
)

_HOW_TO_RE = re.compile(
    r"\bhow (?:do|can|should|would) (?:i|we|you)\b|\bhow to\b|\bwhat(?:'s| is) the (?:best )?way\b"
    r"|\bis there a way\b|\bwhy (?:does|doesn't|won't|is|isn't)\b",
    re.IGNORECASE,
)
# An explicit request for a ticket or a complaint on record: the one write
# the local engine proposes (the agent confirms it before anything changes).
_TICKET_RE = re.compile(
    r"\b(?:open|raise|file|log|create|make|start)\b(?:\W+\w+){0,3}?\W+(?:ticket|complaint|case)\b"
    r"|\bescalate\b",
    re.IGNORECASE,
)
_WARRANTY_RE = re.compile(r"\bwarrant(?:y|ies)\b|\bguarantee\w*", re.IGNORECASE)
_SLA_RE = re.compile(
    r"\bsla\b|\bresponse time\b|\bresolution time\b|\bhow long (?:will|does|do|would) (?:it|this|that|you)\b"
    r"|\bescalat\w*",
    re.IGNORECASE,
)
_DAYS_RE = re.compile(r"\b(\d{1,3})(?:[- ]|\s+calendar\s+|\s+)days?\b", re.IGNORECASE)
# A stated range ("card refunds then take 5-7 business days") is how long the
# customer waits for their money; a single figure elsewhere in the text is
# often an internal step ("we inspect it within 2 business days").
_BUSINESS_DAYS_RANGE_RE = re.compile(
    r"\b(\d{1,2})\s*(?:\u2013|-|to)\s*(\d{1,2})\s+business days\b", re.IGNORECASE
)
_BUSINESS_DAYS_RE = re.compile(r"\b(\d{1,2})\s+business days\b", re.IGNORECASE)
_ORDER_TOPICS = (_T.TOPIC_REFUND, _T.TOPIC_RETURN, _T.TOPIC_SHIPPING, _T.TOPIC_CANCELLATION, _T.TOPIC_BILLING)
_CURRENCY_SIGNS = {"USD": "$", "EUR": "€", "GBP": "£"}
_HISTORY_CALLS = 256  # calls whose lookups are remembered for their summary
_MAX_LOOKED_UP = 50


def _fmt_date(d: date) -> str:
    return f"{d.day} {d:%b %Y}"


def _fmt_money(amount: str, currency: str) -> str:
    sign = _CURRENCY_SIGNS.get(currency)
    return f"{sign}{amount}" if sign else f"{amount} {currency}".strip()


def _search_policy(regex: re.Pattern[str], body: str) -> re.Match[str] | None:
    # As written first ("5-7 business days" must not read as 57), then with
    # spelled-out numbers normalised ("thirty days").
    return regex.search(body) or regex.search(normalise_numbers(body))


def _policy_days(policy: directory_pb2.Policy) -> int | None:
    """The day count a policy states ("within 30 days of delivery", "thirty days")."""
    m = _search_policy(_DAYS_RE, policy.body)
    return int(m.group(1)) if m else None


def _refund_terms(policy: directory_pb2.Policy | None) -> str:
    """ "a refund to the original payment method within 5-7 business days", from the policy text."""
    clause = "a refund"
    if policy is None:
        return clause
    if "original payment method" in policy.body.lower():
        clause += " to the original payment method"
    ranged = _search_policy(_BUSINESS_DAYS_RANGE_RE, policy.body)
    if ranged:
        return clause + f" within {ranged.group(1)}\u2013{ranged.group(2)} business days"
    single = _search_policy(_BUSINESS_DAYS_RE, policy.body)
    if single:
        clause += f" within {single.group(1)} business days"
    return clause


def _policy_name(kind: str) -> str:
    return {"sla": "service-level"}.get(kind, kind)


@dataclass(slots=True)
class _Facts:
    """What the tool calls of one response established."""

    customer: directory_pb2.Customer | None = None
    customer_orders: list[directory_pb2.Order] = field(default_factory=list)
    customer_failed: bool = False
    # A customer record looked up only to be offered for confirmation.
    candidate: directory_pb2.Customer | None = None
    order: directory_pb2.Order | None = None
    order_failed: str = ""
    policies: dict[str, directory_pb2.Policy] = field(default_factory=dict)
    articles: list[dict[str, Any]] = field(default_factory=list)

    def absorb(
        self, call: events_pb2.ToolCall, arguments: dict[str, Any], *, candidate: bool = False
    ) -> None:
        ok = call.status == events_pb2.TOOL_CALL_STATUS_SUCCEEDED
        result = result_dict(call)
        if call.tool_name == "lookup_customer" and candidate:
            if ok and "customer" in result:
                self.candidate = json_format.ParseDict(
                    result["customer"], directory_pb2.Customer(), ignore_unknown_fields=True
                )
        elif call.tool_name == "lookup_customer":
            if ok and "customer" in result:
                self.customer = json_format.ParseDict(
                    result["customer"], directory_pb2.Customer(), ignore_unknown_fields=True
                )
                self.customer_orders = [
                    json_format.ParseDict(o, directory_pb2.Order(), ignore_unknown_fields=True)
                    for o in result.get("orders", [])
                ]
            else:
                self.customer_failed = True
        elif call.tool_name == "get_order_details":
            if ok:
                self.order = json_format.ParseDict(
                    result["order"], directory_pb2.Order(), ignore_unknown_fields=True
                )
            else:
                self.order_failed = str(arguments.get("order_number", ""))
        elif call.tool_name == "check_policy" and ok:
            self.policies[str(arguments["policy_type"])] = json_format.ParseDict(
                result["policy"], directory_pb2.Policy(), ignore_unknown_fields=True
            )
        elif call.tool_name == "search_knowledge" and ok:
            self.articles = list(result.get("hits", []))


@dataclass(slots=True)
class _CallMemory:
    """What the tools established over one call."""

    # The customer a lookup identified (the context engine may not know them:
    # a name alone does not identify a caller for it).
    customer: directory_pb2.Customer | None = None
    looked_up: list[str] = field(default_factory=list)
    # Candidates already offered to the agent: each is offered once per call.
    offered: set[str] = field(default_factory=set)
    # Lookups that found nothing: not run again with the same arguments this call.
    not_found: set[str] = field(default_factory=set)

    def record(self, call: events_pb2.ToolCall, arguments: dict[str, Any], facts: _Facts) -> None:
        if call.status == events_pb2.TOOL_CALL_STATUS_FAILED and call.error.startswith("no "):
            self.not_found.add(_call_key(call.tool_name, arguments))
        if call.status != events_pb2.TOOL_CALL_STATUS_SUCCEEDED:
            what = f"{call.tool_name.replace('_', ' ')} ({call.error})"
        elif call.tool_name == "get_order_details":
            what = f"order {arguments.get('order_number', '')}"
        elif call.tool_name == "check_policy":
            what = f"{_policy_name(str(arguments.get('policy_type', '')))} policy"
        elif call.tool_name == "lookup_customer" and facts.candidate is not None:
            what = f"candidate customer {facts.candidate.customer_id}"
        elif call.tool_name == "lookup_customer" and facts.customer is not None:
            self.customer = facts.customer
            what = f"customer {facts.customer.customer_id}"
        else:
            what = f"article {facts.articles[0]['article_id']}" if facts.articles else "knowledge base"
        if what not in self.looked_up and len(self.looked_up) < _MAX_LOOKED_UP:
            self.looked_up.append(what)


class _Sources:
    """Cited records, once each, in order of citation."""

    def __init__(self) -> None:
        self.items: list[events_pb2.Source] = []

    def add(self, kind: events_pb2.SourceKind.ValueType, id_: str, title: str) -> None:
        if not any(s.kind == kind and s.id == id_ for s in self.items):
            self.items.append(events_pb2.Source(kind=kind, id=id_, title=title))


def _call_key(name: str, arguments: dict[str, Any]) -> str:
    return name + json.dumps(arguments, sort_keys=True, default=str)


@dataclass(frozen=True, slots=True)
class _Plan:
    calls: list[tuple[str, dict[str, Any]]]
    topics: list[events_pb2.Topic.ValueType]
    order_number: str
    # Who the caller was known to be before this response's tools ran.
    known: directory_pb2.Customer | None
    # A customer who may be the caller, to offer for confirmation (not to take).
    candidate: events_pb2.CustomerCandidate | None = None
    # `order_number` is a near miss of what was heard: confirm it first.
    order_candidate: events_pb2.OrderCandidate | None = None
    # An order number already looked up and not found this call.
    order_not_found: str = ""
    # An order number heard that is not one of the identified caller's orders.
    not_theirs: str = ""


class LocalAssistant(Assistant):
    """Rule-based, grounded assistant; the default when no LLM is configured."""

    def __init__(
        self,
        directory: Directory,
        toolbox: ToolBox | None = None,
        *,
        delta_delay: float = 0.0,
        now: Callable[[], datetime] | None = None,
        words_per_delta: int = 4,
    ) -> None:
        """`delta_delay` spaces the deltas (seconds) so a UI shows the text
        streaming like an LLM's; `now` is the clock eligibility is computed
        against (tests pin it)."""
        self._toolbox = toolbox or ToolBox(directory)
        self._delta_delay = delta_delay
        self._now = now or (lambda: datetime.now(UTC))
        self._words_per_delta = max(1, words_per_delta)
        # Per call (the assistant serves every call of a server): who the tools
        # identified, and what was looked up for the end-of-call summary.
        self._calls: OrderedDict[str, _CallMemory] = OrderedDict()

    # -- Assistant ----------------------------------------------------------------

    def wants_to_respond(self, turn: Turn, state: ConversationState) -> bool:
        """Only customer turns with something in them: the agent does not need
        suggestions about their own words, nor a new one for every "uh-huh"."""
        return turn.role == _CUSTOMER and not is_backchannel(turn.text)

    async def respond(self, request: AssistRequest) -> AsyncIterator[AssistOutput]:
        """Run the planned tools (yielding each record), then stream the suggestion.

        Only completed tool calls are remembered between responses, so
        cancelling at any await leaves nothing half-done.
        """
        trigger_segment_id = request.trigger.segment_id if request.trigger else ""
        memory = self._memory(request.state.call_id)
        plan = self._plan(request, memory)
        facts = _Facts()
        proposed: list[events_pb2.ToolCall] = []
        tool_calls: list[events_pb2.ToolCall] = []
        caller = request.state.customer.customer_id if request.state.customer is not None else ""
        for name, arguments in plan.calls:
            call = await self._toolbox.run(
                name, arguments, trigger_segment_id=trigger_segment_id, caller_customer_id=caller
            )
            tool_calls.append(call)
            if call.status == events_pb2.TOOL_CALL_STATUS_PENDING_CONFIRMATION:
                proposed.append(call)
                yield call
                continue
            is_candidate = (
                plan.candidate is not None
                and name == "lookup_customer"
                and arguments.get("customer_id") == plan.candidate.customer.customer_id
            )
            facts.absorb(call, arguments, candidate=is_candidate)
            memory.record(call, arguments, facts)
            yield call
        if self._days_past_window(plan, facts) > 0 and "warranty" not in facts.policies:
            # Outside the return window: what the policies do allow instead.
            arguments = {"policy_type": "warranty"}
            call = await self._toolbox.run("check_policy", arguments, trigger_segment_id=trigger_segment_id)
            tool_calls.append(call)
            facts.absorb(call, arguments)
            memory.record(call, arguments, facts)
            yield call
        text, sources = self._compose(request, plan, facts, memory.customer)
        if facts.candidate is not None:
            memory.offered.add(facts.candidate.customer_id)
        text = ground_local(text, request.state, tool_calls, self._now().astimezone(UTC))
        if proposed:
            subjects = "; ".join(f"\u201c{c.arguments['subject']}\u201d" for c in proposed)
            text = (
                f"{text} I have drafted a support ticket ({subjects}) \u2014 confirm it to file it.".strip()
            )
        pieces = self._chunks(text)
        for i, piece in enumerate(pieces):
            yield events_pb2.SuggestionDelta(suggestion_id=request.suggestion_id, text=piece)
            if i < len(pieces) - 1:
                await asyncio.sleep(self._delta_delay)
        yield events_pb2.SuggestionCompleted(
            suggestion_id=request.suggestion_id,
            text=text,
            sources=sources,
            trigger_segment_id=trigger_segment_id,
        )

    async def summarise(self, state: ConversationState) -> str:
        """An extractive summary: who called, why (their own words), what was
        looked up, what the agent offered and promised, and how they felt."""
        memory = self._calls.get(state.call_id) or _CallMemory()
        return extractive_summary(state, customer=memory.customer, looked_up=memory.looked_up)

    # -- planning -------------------------------------------------------------------

    def _memory(self, call_id: str) -> _CallMemory:
        memory = self._calls.get(call_id)
        if memory is None:
            memory = self._calls[call_id] = _CallMemory()
            while len(self._calls) > _HISTORY_CALLS:
                self._calls.popitem(last=False)
        self._calls.move_to_end(call_id)
        return memory

    def _plan(self, request: AssistRequest, memory: _CallMemory) -> _Plan:
        state = request.state
        known = state.customer or memory.customer
        text = request.trigger.text if request.trigger else ""
        if request.query:
            text = f"{text} {request.query}".strip()
        turn_entities = extract_entities(
            text, names=request.trigger is None or request.trigger.role == _CUSTOMER
        )
        turn_topics = detect_topics(text)
        topics = turn_topics or list(state.topics)

        def latest(entity_type: events_pb2.EntityType.ValueType) -> str:
            for entity in [*reversed(turn_entities), *reversed(state.entities)]:
                if entity.type == entity_type:
                    return entity.value
            return ""

        calls: list[tuple[str, dict[str, Any]]] = []
        # The order the context engine resolved beats the raw number heard; a
        # near miss of one of the customer's orders is looked up to be confirmed.
        order_candidate = (
            state.order_candidates[0] if state.order is None and state.order_candidates else None
        )
        if state.order is not None:
            order_number = state.order.order_number
        elif order_candidate is not None:
            order_number = order_candidate.order.order_number
        else:
            order_number = latest(_T.ENTITY_TYPE_ORDER_NUMBER)
        not_theirs = ""
        if order_number and state.order is None and order_candidate is None and state.customer is not None:
            # The context engine matched it against the caller's orders: neither
            # it nor a near miss is theirs, and another customer's order is never read out.
            not_theirs, order_number = order_number, ""
        candidate: events_pb2.CustomerCandidate | None = None
        if known is None:
            fresh = [c for c in state.candidates if c.customer.customer_id not in memory.offered]
            if fresh:
                candidate = fresh[0]
                calls.append(("lookup_customer", {"customer_id": candidate.customer.customer_id}))
            elif not state.candidates:
                for entity_type, key in (
                    (_T.ENTITY_TYPE_EMAIL, "email"),
                    (_T.ENTITY_TYPE_PHONE_NUMBER, "phone"),
                    (_T.ENTITY_TYPE_PERSON_NAME, "name"),
                ):
                    value = latest(entity_type)
                    if value and _call_key("lookup_customer", {key: value}) not in memory.not_found:
                        calls.append(("lookup_customer", {key: value}))
                        break
        elif not order_number and any(t in _ORDER_TOPICS for t in topics):
            # A known customer with an order problem but no number: offer their latest orders.
            calls.append(("lookup_customer", {"customer_id": known.customer_id}))
        order_not_found = ""
        if order_number:
            if _call_key("get_order_details", {"order_number": order_number}) in memory.not_found:
                order_not_found, order_number = order_number, ""
            else:
                calls.append(("get_order_details", {"order_number": order_number}))

        policy_types: list[str] = []
        if _T.TOPIC_REFUND in topics:
            # The return window decides refund eligibility; the refund policy says how it is paid.
            policy_types += ["return", "refund"] if order_number else ["refund"]
        if _T.TOPIC_RETURN in topics:
            policy_types.append("return")
        if _WARRANTY_RE.search(text):
            policy_types.append("warranty")
        if _SLA_RE.search(text):
            policy_types.append("sla")
        for kind in dict.fromkeys(policy_types):
            calls.append(("check_policy", {"policy_type": kind}))
        if known is not None and request.trigger is not None and _TICKET_RE.search(text):
            calls.append(
                (
                    "create_ticket",
                    {"customer_id": known.customer_id, "subject": _ticket_subject(text, order_number)},
                )
            )

        # The knowledge base answers how-to and troubleshooting questions; a refund for
        # something that "arrived broken" is answered by the order and the policies.
        troubleshooting = _T.TOPIC_TECHNICAL in turn_topics and not any(
            t in turn_topics for t in (_T.TOPIC_REFUND, _T.TOPIC_RETURN, _T.TOPIC_CANCELLATION)
        )
        agent_question = bool(request.query) and not policy_types
        if agent_question or troubleshooting or _HOW_TO_RE.search(text):
            query = self._search_query(request.query or text)
            if query:
                calls.append(("search_knowledge", {"query": query}))
        return _Plan(
            calls,
            topics,
            order_number,
            known,
            candidate=candidate,
            order_candidate=order_candidate,
            order_not_found=order_not_found,
            not_theirs=not_theirs,
        )

    @staticmethod
    def _search_query(text: str) -> str:
        words = _words(_PLACEHOLDER_RE.sub(" ", text))
        return " ".join(w for w in words if w not in _BACKCHANNEL_WORDS and w not in _QUERY_STOP_WORDS)[:200]

    # -- composing ------------------------------------------------------------------

    def _compose(
        self, request: AssistRequest, plan: _Plan, facts: _Facts, identified: directory_pb2.Customer | None
    ) -> tuple[str, list[events_pb2.Source]]:
        sources = _Sources()
        sentences: list[str] = []
        topics = plan.topics
        customer = facts.customer
        if customer is not None and plan.known is None:
            # Who is calling belongs on the customer card (the ContextUpdate), not in a
            # suggestion: suggestions are things to say or do. The record is still cited.
            sources.add(events_pb2.SOURCE_KIND_CUSTOMER, customer.customer_id, customer.name)
        if facts.candidate is not None and plan.candidate is not None:
            c = facts.candidate
            heard = _heard_name(plan.candidate.reason)
            sentences.append(
                f"{heard + '? ' if heard else ''}The closest customer on file is {c.name} ({c.customer_id}): "
                f"{plan.candidate.reason}. Not confirmed — ask the caller for the email address on the "
                "account and check it matches before using this record."
            )
            sources.add(events_pb2.SOURCE_KIND_CUSTOMER, c.customer_id, c.name)

        used_policies: set[str] = set()
        if facts.order is not None and plan.order_candidate is not None:
            sentences.append(self._confirm_order_sentence(facts.order, plan.order_candidate))
            sentences.append(
                "If so: " + self._order_sentence(facts.order, topics, facts, sources, used_policies)
            )
        elif facts.order is not None:
            sentences.append(self._order_sentence(facts.order, topics, facts, sources, used_policies))
        elif plan.not_theirs:
            first = (plan.known.name.split() or ["the customer"])[0] if plan.known else "the customer"
            sentences.append(
                f"Order {plan.not_theirs} is not one of {first}'s orders; ask them to read the number again "
                "from their order confirmation email."
            )
        elif facts.order_failed:
            sentences.append(
                f"Order {facts.order_failed} is not in the system. Ask the customer to read the order number again; "
                "it is in their order confirmation email."
            )
        elif facts.customer_orders and any(t in _ORDER_TOPICS for t in topics):
            latest = facts.customer_orders[0]
            name = (plan.known or customer or directory_pb2.Customer()).name
            who = f"{name.split()[0]}'s" if name else "The customer's"
            sentences.append(
                f"{who} most recent order is {self._order_label(latest)}; confirm that is the one they mean."
            )
            sources.add(events_pb2.SOURCE_KIND_ORDER, latest.order_number, f"Order {latest.order_number}")
            if customer is not None:
                sources.add(events_pb2.SOURCE_KIND_CUSTOMER, customer.customer_id, customer.name)

        for kind, policy in facts.policies.items():
            if kind in used_policies:
                continue
            if kind == "refund":
                sentences.append(f"{policy.title or 'Refund policy'}: customers get {_refund_terms(policy)}.")
            else:
                sentences.append(
                    f"{policy.title or _policy_name(kind).capitalize() + ' policy'}: {first_sentence(policy.body)}"
                )
            sources.add(
                events_pb2.SOURCE_KIND_POLICY,
                kind,
                policy.title or f"{_policy_name(kind).capitalize()} policy",
            )

        if facts.articles:
            hit = facts.articles[0]
            sentences.append(f"From \u201c{hit['title']}\u201d: {first_sentence(str(hit['snippet']), 300)}")
            sources.add(events_pb2.SOURCE_KIND_ARTICLE, str(hit["article_id"]), str(hit["title"]))

        if (
            facts.order is None
            and not facts.order_failed
            and not plan.order_not_found
            and not plan.not_theirs
        ):
            question = self._clarifying_question(plan, topics, facts, bool(sentences))
            if question:
                sentences.append(question)
        sentences = [s.strip() for s in sentences if s.strip()]
        # What an earlier suggestion of this call already said is not said again
        # (unless nothing new is left: then the last point stands).
        said = {x for earlier in request.state.suggestions for x in sentences_of(earlier)}
        fresh = [x for x in sentences if not set(sentences_of(x)) <= said]
        text = " ".join(fresh or sentences[-1:])
        return text, sources.items

    def _days_past_window(self, plan: _Plan, facts: _Facts) -> int:
        """Days a delivered order the caller wants to return is past the return window (0 if not)."""
        order, policy = facts.order, facts.policies.get("return")
        if order is None or policy is None or not order.HasField("delivered_time"):
            return 0
        if not any(t in plan.topics for t in (_T.TOPIC_REFUND, _T.TOPIC_RETURN)):
            return 0
        window = _policy_days(policy)
        if window is None:
            return 0
        delivered = order.delivered_time.ToDatetime(tzinfo=UTC).date()
        return max(0, (self._now().astimezone(UTC).date() - delivered).days - window)

    def _confirm_order_sentence(self, order: directory_pb2.Order, near: events_pb2.OrderCandidate) -> str:
        """ "Order 7891 is not on file; did they mean 78901, the Wireless Headphones delivered 2 Nov 2026?" """
        items = [i.name for i in order.items if i.name]
        what = f", the {items[0]}" if items else ""
        when = ""
        if order.HasField("delivered_time"):
            when = f" delivered {_fmt_date(order.delivered_time.ToDatetime(tzinfo=UTC).date())}"
        elif order.HasField("order_time"):
            when = f" ordered {_fmt_date(order.order_time.ToDatetime(tzinfo=UTC).date())}"
        how = near.reason.split(";")[0]
        return (
            f"Order {near.heard} is not on file; did they mean {order.order_number}{what}{when} ({how})? "
            "Confirm with the customer."
        )

    def _order_label(self, order: directory_pb2.Order) -> str:
        items = [i.name for i in order.items if i.name]
        what = items[0] if items else ""
        if len(items) > 1:
            what += f" and {len(items) - 1} more item{'s' if len(items) > 2 else ''}"
        details = ", ".join(
            x for x in (what, _fmt_money(order.total, order.currency_code) if order.total else "") if x
        )
        return f"{order.order_number} ({details})" if details else order.order_number

    def _order_sentence(
        self,
        order: directory_pb2.Order,
        topics: list[events_pb2.Topic.ValueType],
        facts: _Facts,
        sources: _Sources,
        used_policies: set[str],
    ) -> str:
        sources.add(events_pb2.SOURCE_KIND_ORDER, order.order_number, f"Order {order.order_number}")
        label = f"Order {self._order_label(order)}"
        status = order.status.lower()
        delivered = (
            order.delivered_time.ToDatetime(tzinfo=UTC).date() if order.HasField("delivered_time") else None
        )
        ordered = order.order_time.ToDatetime(tzinfo=UTC).date() if order.HasField("order_time") else None
        if status == "refunded":
            return (
                f"{label} has already been refunded; confirm the refund reached the original payment method."
            )
        if status == "cancelled":
            return f"{label} was cancelled" + (f" (ordered {_fmt_date(ordered)})." if ordered else ".")
        if delivered is not None:
            head = f"{label} was delivered on {_fmt_date(delivered)}"
        elif status == "shipped":
            head = (
                f"{label} has shipped"
                + (f" (ordered {_fmt_date(ordered)})" if ordered else "")
                + " but is not delivered yet"
            )
        else:
            head = f"{label} is {status or 'open'}" + (f" (ordered {_fmt_date(ordered)})" if ordered else "")

        wants_refund = _T.TOPIC_REFUND in topics
        wants_return = _T.TOPIC_RETURN in topics
        if (wants_refund or wants_return) and delivered is not None:
            policy = facts.policies.get("return")
            window = _policy_days(policy) if policy is not None else None
            if policy is None or window is None:
                return head + "; check the return policy before offering a refund."
            used_policies.add("return")
            sources.add(events_pb2.SOURCE_KIND_POLICY, "return", policy.title or "Return policy")
            days = (self._now().astimezone(UTC).date() - delivered).days
            if days <= window:
                if wants_refund:
                    refund = facts.policies.get("refund")
                    if refund is not None:
                        used_policies.add("refund")
                        sources.add(events_pb2.SOURCE_KIND_POLICY, "refund", refund.title or "Refund policy")
                    offer = f"you can offer {_refund_terms(refund)}"
                else:
                    offer = "you can start a return"
                return f"{head}; it is within the {window}-day return window ({days} days since delivery), so {offer}."
            # Said once, with no refund offer after it: the refund policy's terms do not apply.
            used_policies.add("refund")
            outside = f"{head}, {days} days ago, which is outside the {window}-day return window, so a standard refund does not apply"
            warranty = facts.policies.get("warranty")
            if warranty is None:
                return outside + "; ask a supervisor about an exception."
            used_policies.add("warranty")
            sources.add(events_pb2.SOURCE_KIND_POLICY, "warranty", warranty.title or "Warranty policy")
            return (
                f"{outside}. What the {warranty.title or 'warranty policy'} allows instead: "
                f"{first_sentence(warranty.body)}"
            )
        if wants_refund or wants_return or _T.TOPIC_CANCELLATION in topics:
            if status in ("processing", "pending", "placed", "open", ""):
                return f"{head}; it has not shipped, so you can cancel it and refund the customer in full."
            if status == "shipped":
                return f"{head}; it cannot be cancelled now, so offer a return once it arrives."
        if _T.TOPIC_SHIPPING in topics and delivered is not None:
            return f"{head}; if the customer cannot find it, confirm the delivery address and ask them to check with neighbours."
        if _T.TOPIC_SHIPPING in topics:
            return f"{head}; let the customer know it is on its way."
        return head + "."

    def _clarifying_question(
        self, plan: _Plan, topics: list[events_pb2.Topic.ValueType], facts: _Facts, have_text: bool
    ) -> str:
        customer = plan.known or facts.customer
        if facts.customer_orders and any(t in _ORDER_TOPICS for t in topics):
            return ""
        if any(
            t in (_T.TOPIC_REFUND, _T.TOPIC_RETURN, _T.TOPIC_SHIPPING, _T.TOPIC_CANCELLATION) for t in topics
        ):
            return "Ask for the order number so you can check the order and what it is eligible for."
        if _T.TOPIC_BILLING in topics:
            return "Ask which charge they mean (date and amount) and for the order number."
        if _T.TOPIC_ACCOUNT in topics and customer is None:
            return "Verify the caller: ask for the email address or phone number on the account."
        if _T.TOPIC_TECHNICAL in topics and not facts.articles:
            return "Ask which product it is and what exactly happens when they try to use it."
        if have_text:
            return ""
        if facts.customer_failed:
            return "No customer record matches what was given; ask for the email address on the account or the order number."
        if customer is None:
            return "Ask for the order number or the email address on the account so you can look the customer up."
        first = customer.name.split()[0] if customer.name else "the customer"
        return f"Ask {first} how you can help today."

    def _chunks(self, text: str) -> list[str]:
        words = re.findall(r"\S+\s*", text)
        n = self._words_per_delta
        return ["".join(words[i : i + n]) for i in range(0, len(words), n)] or [text]


def _heard_name(reason: str) -> str:
    """The name as heard, from a candidate's reason ('name "Maria Garsha" sounds like ...')."""
    m = re.match(r'name "([^"]+)"', reason)
    return m.group(1) if m else ""


def _ticket_subject(text: str, order_number: str) -> str:
    """A one-line subject from the customer's own words (already redacted)."""
    words = " ".join(_PLACEHOLDER_RE.sub(" ", text).split())
    subject = words if len(words) <= 100 else words[:99].rsplit(" ", 1)[0] + "\u2026"
    return f"Order {order_number}: {subject}" if order_number else subject
