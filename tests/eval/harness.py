"""Runs the evaluation calls (tests/eval/calls.json) and scores them.

Each call runs as the session runs it, minus the audio: every turn is
redacted (`Redactor`), folded into a `ContextEngine` over the company's
imported data (a real SQLite store: the packaged demo data, or a company
document from tests/eval/companies/, dated relative to today like the demo
seed), and every customer turn the assistant wants to answer is answered.
The scorecard compares what happened with the call's expectations.

The LLM engine runs against the loopback OpenAI-protocol server of the test
suite (tests/providers/fake_openai.py), scripted to make the same tool calls
as the local engine and to answer with the local engine's text plus the
call's `llm_extra` (a figure no tool returned, as a model may invent). So
its figures measure our pipeline around a model (tools, grounding check,
overhead), not a model's judgement.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from callpilot.server.assist.base import Assistant, AssistRequest, Turn
from callpilot.server.assist.grounding import evidence_for, facts_in
from callpilot.server.assist.local import LocalAssistant
from callpilot.server.assist.openai_llm import OpenAIAssistant
from callpilot.server.assist.tools import ToolBox
from callpilot.server.context.engine import ContextEngine
from callpilot.server.context.state import ConversationState
from callpilot.server.redaction import Redactor
from callpilot.server.store import Store
from callpilot.server.store.demo_dates import date_demo_document
from callpilot.v1 import call_pb2, common_pb2, events_pb2
from providers.fake_openai import FakeOpenAI, Stream, ToolCallSpec, text_stream

HERE = Path(__file__).resolve().parent
CALLS = HERE / "calls.json"
ROLES = {"customer": common_pb2.SPEAKER_ROLE_CUSTOMER, "agent": common_pb2.SPEAKER_ROLE_AGENT}


def load_calls() -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = json.loads(CALLS.read_text(encoding="utf-8"))["calls"]
    return calls


@asynccontextmanager
async def companies(names: Sequence[str]) -> AsyncIterator[dict[str, Store]]:
    """One seeded SQLite store per company, closed at the end."""
    stores: dict[str, Store] = {}
    with tempfile.TemporaryDirectory(prefix="callpilot-eval-") as tmp:
        try:
            for name in dict.fromkeys(names):
                url = f"sqlite+aiosqlite:///{Path(tmp) / (name + '.db')}"
                if name == "demo":
                    stores[name] = await Store.open(url, seed_demo=True)
                else:
                    store = stores[name] = await Store.open(url)
                    doc = json.loads((HERE / "companies" / f"{name}.json").read_text(encoding="utf-8"))
                    await store.import_data(date_demo_document(doc, datetime.now(UTC).date()))
            yield stores
        finally:
            for store in stores.values():
                await store.close()


@dataclass
class Suggestion:
    text: str  # what the agent was shown (SuggestionCompleted)
    draft: str  # what was streamed (deltas)
    tools: list[events_pb2.ToolCall]
    notices: list[str]
    latency_s: float  # final turn in -> first suggestion delta
    turn_index: int  # the turn it answered


@dataclass
class CallResult:
    call: dict[str, Any]
    customer: str | None = None
    candidates: list[str] = field(default_factory=list)
    order: str | None = None
    order_candidates: list[str] = field(default_factory=list)
    topics: list[str] = field(default_factory=list)
    sentiment: str = ""
    suggestions: list[Suggestion] = field(default_factory=list)
    turns: list[Turn] = field(default_factory=list)

    @property
    def tools(self) -> list[events_pb2.ToolCall]:
        return [t for s in self.suggestions for t in s.tools]


def _enum(name: str, prefix: str) -> str:
    return name.removeprefix(prefix).lower()


async def run_call(
    call: dict[str, Any], store: Store, assistant: Assistant, texts: list[str] | None = None
) -> CallResult:
    """One call through redaction, the context engine and `assistant`.

    `texts` replaces the turns' text (e.g. what Whisper heard)."""
    engine = ContextEngine(store, call_id=call["id"])
    hint = call.get("hint")
    await engine.start(call_pb2.CustomerHint(**hint) if hint else None)
    redactor = Redactor()
    result = CallResult(call)
    for i, spec in enumerate(call["turns"]):
        role = ROLES[spec["role"]]
        said = texts[i] if texts is not None else spec["text"]
        started = time.perf_counter()
        turn = Turn(f"{call['id']}-{i}", role, redactor.redact(said, role=role, is_final=True))
        result.turns.append(turn)
        await engine.on_final(turn)
        if not assistant.wants_to_respond(turn, engine.state):
            continue
        request = AssistRequest(f"sg-{i}", engine.state, turn)
        tools: list[events_pb2.ToolCall] = []
        notices: list[str] = []
        draft, text, first = "", "", math.nan
        async for out in assistant.respond(request):
            if isinstance(out, events_pb2.ToolCall):
                tools.append(out)
            elif isinstance(out, events_pb2.SuggestionDelta):
                if math.isnan(first):
                    first = time.perf_counter() - started
                draft += out.text
            elif isinstance(out, events_pb2.SuggestionCompleted):
                text = out.text
            elif isinstance(out, events_pb2.Notice):
                notices.append(out.code)
        engine.state.suggestions.append(text)
        result.suggestions.append(Suggestion(text, draft, tools, notices, first, i))
    state = engine.state
    result.customer = state.customer.customer_id if state.customer is not None else None
    result.candidates = [c.customer.customer_id for c in state.candidates]
    result.order = state.order.order_number if state.order is not None else None
    result.order_candidates = [c.order.order_number for c in state.order_candidates]
    result.topics = [_enum(events_pb2.Topic.Name(t), "TOPIC_") for t in state.topics]
    result.sentiment = _enum(events_pb2.Sentiment.Name(state.sentiment), "SENTIMENT_")
    return result


async def run_local(
    calls: Sequence[dict[str, Any]], texts: dict[str, list[str]] | None = None
) -> list[CallResult]:
    async with companies([c["company"] for c in calls]) as stores:
        results = []
        for call in calls:
            store = stores[call["company"]]
            results.append(await run_call(call, store, LocalAssistant(store), (texts or {}).get(call["id"])))
        return results


def _script(local: CallResult) -> list[Stream]:
    """The scripted model: the local engine's tools and text, plus the call's invented figure."""
    script: list[Stream] = []
    extra = str(local.call["expect"].get("llm_extra", ""))
    for n, s in enumerate(local.suggestions):
        reads = [t for t in s.tools if t.tool_name != "create_ticket"]
        if reads:
            specs = [
                ToolCallSpec(t.tool_name, json.dumps(dict(t.arguments)), id=f"call_{n}_{k}")
                for k, t in enumerate(reads)
            ]
            script.append(Stream(tool_calls=specs))
        answer = s.text if not (extra and n == 0) else f"{s.text} {extra}".strip()
        script.append(text_stream(answer or "Ask the customer how you can help."))
    return script


async def run_llm(calls: Sequence[dict[str, Any]], local_results: Sequence[CallResult]) -> list[CallResult]:
    results = []
    async with companies([c["company"] for c in calls]) as stores:
        for call, local in zip(calls, local_results, strict=True):
            store = stores[call["company"]]
            async with FakeOpenAI(chat=_script(local)) as oa:
                llm = OpenAIAssistant(
                    oa.api_key, oa.base_url, "eval-model", ToolBox(store), max_tool_rounds=1
                )
                try:
                    results.append(await run_call(call, store, llm))
                finally:
                    await llm.aclose()
    return results


# ---------------------------------------------------------------------------- scoring

_CONTRADICTIONS = (
    ("outside the", "within the"),
    ("outside the", "you can offer a refund"),
    ("outside the", "customers get a refund"),
    ("already been refunded", "you can offer a refund"),
)


def contradictions(result: CallResult) -> int:
    """Suggestions that contradict themselves, or an earlier suggestion on the window."""
    n = 0
    said_within = said_outside = False
    for s in result.suggestions:
        low = s.text.lower()
        n += sum(1 for a, b in _CONTRADICTIONS if a in low and b in low)
        said_within |= "within the" in low and "return window" in low
        said_outside |= "outside the" in low and "return window" in low
    return n + int(said_within and said_outside)


def fact_counts(result: CallResult, *, draft: bool = False) -> tuple[int, int]:
    """(facts stated, facts grounded) over the call's suggestions."""
    total = grounded = 0
    today = datetime.now(UTC).date()
    for s in result.suggestions:
        text = s.draft if draft else s.text
        state = ConversationState(call_id="x", turns=result.turns[: s.turn_index + 1])
        evidence = evidence_for(state, s.tools, today)
        for f in facts_in(text):
            total += 1
            grounded += evidence.supports(f, today)
    return total, grounded


@dataclass
class Checks:
    identification: bool | None = None
    order: bool | None = None
    tools: bool | None = None
    facts: bool | None = None
    topics: bool | None = None
    failures: list[str] = field(default_factory=list)


def check_call(result: CallResult) -> Checks:
    expect = result.call["expect"]
    c = Checks()
    text = " ".join(s.text for s in result.suggestions)
    if "customer" in expect or "candidate" in expect:
        ok = True
        if "customer" in expect and result.customer != expect["customer"]:
            ok = False
            c.failures.append(f"customer {result.customer} != {expect['customer']}")
        if "candidate" in expect:
            want = expect["candidate"]
            if (want is None and result.candidates) or (want is not None and want not in result.candidates):
                ok = False
                c.failures.append(f"candidates {result.candidates} lack {want}")
        c.identification = ok
    if "order" in expect or "order_candidate" in expect:
        ok = True
        if "order" in expect and result.order != expect["order"]:
            ok = False
            c.failures.append(f"order {result.order} != {expect['order']}")
        if "order_candidate" in expect and expect["order_candidate"] not in result.order_candidates:
            ok = False
            c.failures.append(f"order candidates {result.order_candidates} lack {expect['order_candidate']}")
        c.order = ok
    if "tools" in expect or "max_tool_runs" in expect:
        ran = [t.tool_name for t in result.tools]
        missing = [t for t in expect.get("tools", []) if t not in ran]
        over = {k: ran.count(k) for k, v in expect.get("max_tool_runs", {}).items() if ran.count(k) > v}
        c.tools = not missing and not over
        if not c.tools:
            c.failures.append(f"tools {ran}: missing {missing}, repeated {over}")
    if "must_include" in expect or "must_not_include" in expect:
        absent = [f for f in expect.get("must_include", []) if f not in text]
        present = [f for f in expect.get("must_not_include", []) if f in text]
        c.facts = not absent and not present
        if not c.facts:
            c.failures.append(f"facts missing {absent}, forbidden present {present}")
    if "topics" in expect or "topics_not" in expect or "final_sentiment" in expect:
        ok = all(t in result.topics for t in expect.get("topics", []))
        ok &= not any(t in result.topics for t in expect.get("topics_not", []))
        ok &= expect.get("final_sentiment", result.sentiment) == result.sentiment
        c.topics = ok
        if not ok:
            c.failures.append(f"topics {result.topics}, sentiment {result.sentiment}")
    return c


def _rate(values: list[bool | None]) -> tuple[int, int]:
    applicable = [v for v in values if v is not None]
    return sum(applicable), len(applicable)


def p95(values: list[float]) -> float:
    xs = sorted(v for v in values if not math.isnan(v))
    if not xs:
        return math.nan
    return xs[min(len(xs) - 1, math.ceil(0.95 * len(xs)) - 1)]


def scorecard(results: Sequence[CallResult]) -> dict[str, Any]:
    checks = [check_call(r) for r in results]
    facts_total = facts_grounded = draft_total = draft_grounded = 0
    for r in results:
        t, g = fact_counts(r)
        facts_total, facts_grounded = facts_total + t, facts_grounded + g
        t, g = fact_counts(r, draft=True)
        draft_total, draft_grounded = draft_total + t, draft_grounded + g
    card: dict[str, Any] = {
        "calls": len(results),
        "calls_passed": sum(1 for c in checks if not c.failures),
        "identification": _rate([c.identification for c in checks]),
        "order_resolution": _rate([c.order for c in checks]),
        "tools": _rate([c.tools for c in checks]),
        "facts": _rate([c.facts for c in checks]),
        "topics_sentiment": _rate([c.topics for c in checks]),
        "grounded_precision": facts_grounded / facts_total if facts_total else 1.0,
        "draft_grounded_precision": draft_grounded / draft_total if draft_total else 1.0,
        "facts_stated": facts_total,
        "contradictions": sum(contradictions(r) for r in results),
        "p95_final_to_first_delta_ms": 1000 * p95([s.latency_s for r in results for s in r.suggestions]),
        "failures": {r.call["id"]: c.failures for r, c in zip(results, checks, strict=True) if c.failures},
    }
    return card
