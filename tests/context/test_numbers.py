"""Spoken and written numbers normalised to digits."""

from __future__ import annotations

import pytest
from callpilot.server.context.numbers import NumberKind, find_numbers, normalise_numbers


@pytest.mark.parametrize(
    ("said", "digits"),
    [
        ("7-8-901", "78901"),
        ("78901", "78901"),
        ("78 901", "78901"),
        ("seven eight nine oh one", "78901"),
        ("seven, eight, nine, oh, one", "78901"),
        ("Seven-eight-nine-zero-one", "78901"),
        ("seventy eight nine oh one", "78901"),
        ("seventy-eight thousand nine hundred and one", "78901"),
        ("7 8 nine o one", "78901"),
        ("double five", "55"),
        ("double oh seven", "007"),
        ("triple nine", "999"),
        ("five five five, oh one oh, oh one oh one", "5550100101"),
        ("(555) 010-0101", "5550100101"),
        ("555.010.0101", "5550100101"),
        ("nineteen ninety nine", "1999"),
    ],
)
def test_digit_runs(said: str, digits: str) -> None:
    spans = find_numbers(said)
    assert [(s.kind, s.value) for s in spans] == [(NumberKind.DIGITS, digits)]
    assert spans[0].text == said[spans[0].start : spans[0].end]
    assert normalise_numbers(said) == digits


@pytest.mark.parametrize(
    ("said", "value"),
    [
        ("$129.99", "129.99"),
        ("129.99 dollars", "129.99"),
        ("129 dollars 99 cents", "129.99"),
        ("129 dollars and 99 cents", "129.99"),
        ("a hundred and twenty nine dollars", "129.00"),
        ("one hundred twenty-nine dollars and ninety-nine cents", "129.99"),
        ("twenty nine ninety nine dollars", "29.99"),
        ("$1,299.00", "1299.00"),
        ("99 cents", "0.99"),
        ("USD 40", "40.00"),
    ],
)
def test_money(said: str, value: str) -> None:
    spans = find_numbers(f"it cost {said} in total")
    assert [(s.kind, s.value) for s in spans] == [(NumberKind.MONEY, value)]
    assert spans[0].text == said


def test_normalised_text_keeps_the_words_around_numbers() -> None:
    assert normalise_numbers("my order is seven eight nine oh one, it was $129.99") == (
        "my order is 78901, it was $129.99"
    )
    assert normalise_numbers("it cost 129 dollars 99 cents") == "it cost $129.99"


def test_unrelated_numbers_are_not_glued() -> None:
    spans = find_numbers("I bought 2 items for order 78901 and paid 3.50 for shipping")
    assert [(s.kind, s.value) for s in spans] == [
        (NumberKind.DIGITS, "2"),
        (NumberKind.DIGITS, "78901"),
        (NumberKind.NUMBER, "3.50"),
    ]
    # A multi-digit group after a comma starts a new number.
    assert [s.value for s in find_numbers("order 78901, 2 of them")] == ["78901", "2"]


def test_words_that_only_sound_like_numbers() -> None:
    assert find_numbers("oh, I see, the blue one please") == []
    assert normalise_numbers("oh one two") == "012"
    assert find_numbers("a lot and a half") == []
    assert find_numbers("the 2026-11-02 delivery") == []


def test_pieces_keep_the_spoken_groups() -> None:
    (span,) = find_numbers("4111 1111 one one")
    assert [p.digits for p in span.pieces] == ["4111", "1111", "1", "1"]
    assert [p.spoken for p in span.pieces] == [False, False, True, True]
