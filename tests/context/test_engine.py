"""The context engine: state, customer identification, updates."""

from __future__ import annotations

from callpilot.server.assist.base import Turn
from callpilot.server.context.engine import ContextEngine
from callpilot.server.redaction import Redactor
from callpilot.v1 import call_pb2, common_pb2, events_pb2
from fakes.directory import FakeDirectory

CUSTOMER = common_pb2.SPEAKER_ROLE_CUSTOMER
AGENT = common_pb2.SPEAKER_ROLE_AGENT


def customer(seg: str, text: str) -> Turn:
    return Turn(segment_id=seg, role=CUSTOMER, text=text)


def agent(seg: str, text: str) -> Turn:
    return Turn(segment_id=seg, role=AGENT, text=text)


async def test_hint_by_customer_id_phone_or_email(directory: FakeDirectory) -> None:
    for hint in (
        call_pb2.CustomerHint(customer_id="C-1001"),
        call_pb2.CustomerHint(phone="(555) 010-0101"),
        call_pb2.CustomerHint(email="Maria.Garcia@example.com"),
        call_pb2.CustomerHint(customer_id="C-9999", email="maria.garcia@example.com"),
    ):
        engine = ContextEngine(directory, call_id="call-1")
        update = await engine.start(hint)
        assert update is not None, hint
        assert update.customer.customer_id == "C-1001"
        assert update.segment_id == ""
        assert engine.state.customer is not None and engine.state.customer.name == "Maria Garcia"


async def test_no_or_unknown_hint(directory: FakeDirectory) -> None:
    engine = ContextEngine(directory, call_id="call-1")
    assert await engine.start(None) is None
    assert await engine.start(call_pb2.CustomerHint()) is None
    assert await engine.start(call_pb2.CustomerHint(phone="+1 555 999 9999")) is None
    assert engine.state.customer is None


async def test_spoken_order_number_identifies_the_customer(directory: FakeDirectory) -> None:
    engine = ContextEngine(directory, call_id="call-1")
    update = await engine.on_final(customer("s1", "I'm calling about my order seven eight nine oh one."))
    assert update is not None
    assert update.segment_id == "s1"
    assert [(e.type, e.value, e.text, e.segment_id) for e in update.entities] == [
        (events_pb2.ENTITY_TYPE_ORDER_NUMBER, "78901", "seven eight nine oh one", "s1")
    ]
    assert update.customer.customer_id == "C-1001"
    assert directory.called("get_order") == [("78901",)]
    assert engine.state.customer is not None and engine.state.customer.customer_id == "C-1001"


async def test_email_and_phone_identify_the_customer(directory: FakeDirectory) -> None:
    engine = ContextEngine(directory, call_id="call-1")
    update = await engine.on_final(customer("s1", "it's maria dot garcia at example dot com"))
    assert update is not None and update.customer.customer_id == "C-1001"

    engine = ContextEngine(directory, call_id="call-2")
    update = await engine.on_final(customer("s1", "you can reach me on 555 010 0102"))
    assert update is not None and update.customer.customer_id == "C-1002"


async def test_state_accumulates_and_updates_carry_the_whole_state(directory: FakeDirectory) -> None:
    engine = ContextEngine(directory, call_id="call-1")
    await engine.on_final(agent("a1", "Thanks for calling, this is John. How can I help?"))
    await engine.on_final(customer("s1", "Hi, my name is Maria Garcia."))
    await engine.on_final(
        customer("s2", "My order 78901 arrived broken, I want a refund. This is ridiculous!")
    )
    update = await engine.on_final(
        customer("s3", "It was 129 dollars 99 cents, order seven eight nine oh one.")
    )
    assert update is not None
    assert [(e.type, e.value) for e in update.entities] == [
        (events_pb2.ENTITY_TYPE_PERSON_NAME, "Maria Garcia"),  # the agent's "John" is not taken
        (events_pb2.ENTITY_TYPE_ORDER_NUMBER, "78901"),  # once, with its first mention
        (events_pb2.ENTITY_TYPE_MONEY, "129.99"),
    ]
    assert update.entities[1].segment_id == "s2"
    assert list(update.topics) == [
        events_pb2.TOPIC_SHIPPING,
        events_pb2.TOPIC_TECHNICAL,
        events_pb2.TOPIC_REFUND,
    ]
    assert update.customer.customer_id == "C-1001"
    assert update.sentiment == events_pb2.SENTIMENT_NEUTRAL  # of the latest customer utterance
    assert list(engine.state.topics) == list(update.topics)
    assert [t.segment_id for t in engine.state.turns] == ["a1", "s1", "s2", "s3"]
    # The order was looked up once, not on every mention.
    assert directory.called("get_order") == [("78901",)]


async def test_sentiment_comes_from_customer_turns_only(directory: FakeDirectory) -> None:
    engine = ContextEngine(directory, call_id="call-1")
    update = await engine.on_final(customer("s1", "I'm really frustrated, this is terrible"))
    assert update is not None and update.sentiment == events_pb2.SENTIMENT_NEGATIVE
    assert update.sentiment_score < -0.5
    # The agent's cheerful turn changes nothing.
    assert await engine.on_final(agent("a1", "I'm so sorry, I'm happy to help, great!")) is None
    assert engine.state.sentiment == events_pb2.SENTIMENT_NEGATIVE
    update = await engine.on_final(customer("s2", "thank you, that's great"))
    assert update is not None and update.sentiment == events_pb2.SENTIMENT_POSITIVE


async def test_nothing_new_returns_none(directory: FakeDirectory) -> None:
    engine = ContextEngine(directory, call_id="call-1")
    assert await engine.on_final(customer("s1", "order 78901")) is not None
    assert await engine.on_final(customer("s2", "yes order 78901")) is None
    assert len(engine.state.turns) == 2


async def test_turns_are_bounded(directory: FakeDirectory) -> None:
    engine = ContextEngine(directory, call_id="call-1", max_turns=5)
    for i in range(12):
        await engine.on_final(customer(f"s{i}", "okay"))
    assert [t.segment_id for t in engine.state.turns] == [f"s{i}" for i in range(7, 12)]


async def test_unknown_order_and_directory_failures_do_not_raise(directory: FakeDirectory) -> None:
    engine = ContextEngine(directory, call_id="call-1")
    update = await engine.on_final(customer("s1", "order 12345"))
    assert update is not None and not update.HasField("customer")
    directory.fail = RuntimeError("database down")
    update = await engine.on_final(customer("s2", "my email is maria.garcia@example.com"))
    assert update is not None and not update.HasField("customer")
    assert [e.value for e in update.entities] == ["12345", "maria.garcia@example.com"]
    # Once the directory is back, the email is looked up again; the unknown order is not.
    directory.fail = None
    directory.calls.clear()
    update = await engine.on_final(customer("s3", "hello?"))
    assert update is not None and update.customer.customer_id == "C-1001"
    assert directory.called("get_order") == []


async def test_hinted_customer_is_kept(directory: FakeDirectory) -> None:
    engine = ContextEngine(directory, call_id="call-1")
    await engine.start(call_pb2.CustomerHint(customer_id="C-1002"))
    await engine.on_final(customer("s1", "my order is 78901"))
    assert engine.state.customer is not None and engine.state.customer.customer_id == "C-1002"
    assert directory.called("get_order") == []


async def test_reads_redacted_text(directory: FakeDirectory) -> None:
    """Card data is masked, but the order number, amount and phone survive redaction."""
    redactor = Redactor()
    engine = ContextEngine(directory, call_id="call-1")
    said = [
        "I paid $129.99 for order 78901 and you can call me at 555 010 0101",
        "I paid with my visa, 4111 1111 1111 1111",
    ]
    update = None
    for i, text in enumerate(said):
        redacted = redactor.redact(text, role=CUSTOMER, is_final=True)
        update = await engine.on_final(customer(f"s{i}", redacted)) or update
    assert update is not None
    assert "4111" not in str(update)
    assert {(e.type, e.value) for e in update.entities} == {
        (events_pb2.ENTITY_TYPE_MONEY, "129.99"),
        (events_pb2.ENTITY_TYPE_ORDER_NUMBER, "78901"),
        (events_pb2.ENTITY_TYPE_PHONE_NUMBER, "5550100101"),
    }
    assert update.customer.customer_id == "C-1001"
