"""Entities of one utterance."""

from __future__ import annotations

import pytest
from callpilot.server.context.entities import extract_entities
from callpilot.v1 import events_pb2

ORDER = events_pb2.ENTITY_TYPE_ORDER_NUMBER
MONEY = events_pb2.ENTITY_TYPE_MONEY
EMAIL = events_pb2.ENTITY_TYPE_EMAIL
PHONE = events_pb2.ENTITY_TYPE_PHONE_NUMBER
NAME = events_pb2.ENTITY_TYPE_PERSON_NAME


def found(text: str, **kw: object) -> list[tuple[int, str, str]]:
    return [(e.type, e.value, e.text) for e in extract_entities(text, **kw)]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "said",
    [
        "my order number is seven eight nine oh one",
        "my order is 7-8-9-0-1.",
        "order #78901",
        "it's 78 901",
        "seventy eight nine oh one, the order",
    ],
)
def test_order_numbers(said: str) -> None:
    assert [(t, v) for t, v, _ in found(said)] == [(ORDER, "78901")]


def test_entity_keeps_the_words_and_segment() -> None:
    (entity,) = extract_entities("about order seven eight nine oh one please", segment_id="seg-3")
    assert entity.value == "78901"
    assert entity.text == "seven eight nine oh one"
    assert entity.segment_id == "seg-3"


def test_not_order_numbers() -> None:
    assert found("my zip code is 94107") == []
    assert found("I have 2 of them since 2024") == []
    assert found("call me on 555 0101") == []


def test_two_order_numbers_side_by_side() -> None:
    assert [v for _, v, _ in found("orders 78901 78902")] == ["78901", "78902"]


@pytest.mark.parametrize(
    ("said", "address"),
    [
        ("my email is maria.garcia@example.com", "maria.garcia@example.com"),
        ("it's Maria.Garcia@Example.COM thanks", "maria.garcia@example.com"),
        ("my email is maria dot garcia at example dot com", "maria.garcia@example.com"),
        ("maria underscore g at mail dot example dot co dot uk", "maria_g@mail.example.co.uk"),
        ("j dash smith at example.com", "j-smith@example.com"),
    ],
)
def test_emails(said: str, address: str) -> None:
    assert [(t, v) for t, v, _ in found(said)] == [(EMAIL, address)]


def test_shop_names_are_not_emails() -> None:
    assert found("I bought it at amazon dot com") == []


def test_digits_inside_an_email_are_not_an_order() -> None:
    assert [(t, v) for t, v, _ in found("write to john78901@example.com")] == [
        (EMAIL, "john78901@example.com")
    ]


@pytest.mark.parametrize(
    ("said", "digits"),
    [
        ("call me at (555) 010-0101", "5550100101"),
        ("my number is 1 555 010 0101", "15550100101"),
        ("five five five, oh one oh, oh one oh one", "5550100101"),
        ("+1-555-010-0101", "15550100101"),
    ],
)
def test_phone_numbers(said: str, digits: str) -> None:
    assert [(t, v) for t, v, _ in found(said)] == [(PHONE, digits)]


def test_money() -> None:
    assert [(t, v) for t, v, _ in found("I paid $129.99, not a hundred and forty dollars")] == [
        (MONEY, "129.99"),
        (MONEY, "140.00"),
    ]


@pytest.mark.parametrize(
    ("said", "name"),
    [
        ("Hi, my name is Maria Garcia.", "Maria Garcia"),
        ("hi my name is maria garcia and I need help", "Maria Garcia"),
        ("Hi, I'm Maria.", "Maria"),
        ("This is Maria Garcia calling", "Maria Garcia"),
        ("It's Maria O'Brien", "Maria O'Brien"),
    ],
)
def test_names(said: str, name: str) -> None:
    assert [(t, v) for t, v, _ in found(said)] == [(NAME, name)]


@pytest.mark.parametrize(
    "said",
    ["I'm calling about my order", "this is ridiculous", "I'm really upset", "It's Monday", "my name is"],
)
def test_not_names(said: str) -> None:
    assert found(said) == []


def test_names_can_be_skipped() -> None:
    assert found("This is John from support", names=False) == []


def test_several_entities_in_order() -> None:
    text = "I'm Maria, order 78901, I paid 129 dollars 99 cents, email maria dot garcia at example dot com"
    assert [(t, v) for t, v, _ in found(text)] == [
        (NAME, "Maria"),
        (ORDER, "78901"),
        (MONEY, "129.99"),
        (EMAIL, "maria.garcia@example.com"),
    ]
