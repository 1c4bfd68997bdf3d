"""What the call tells the recogniser: the identified customer as hotwords.

Once the directory identifies the customer, their name and recent order
numbers are the words a generic model most often gets wrong (a surname it
has never seen, a digit dropped from an order number), and the words the
assistant most needs right. `speech_context` picks them from directory
records; the session passes the result to every STT stream of the call with
`STTStream.update_context(names=..., numbers=...)`.

Policy: only the customer's name and their order numbers are used — fields
a caller says aloud and that are safe to hand to a model. Payment data is
never part of the context (the directory records used here carry none).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from callpilot.v1 import directory_pb2

MAX_ORDER_NUMBERS = 5
"""The most recent orders are the ones a caller quotes; more would only dilute the hotwords."""


@dataclass(frozen=True, slots=True)
class SpeechContext:
    names: tuple[str, ...]
    numbers: tuple[str, ...]


def speech_context(
    customer: directory_pb2.Customer, orders: Sequence[directory_pb2.Order] = ()
) -> SpeechContext:
    """The customer's full name, and their `MAX_ORDER_NUMBERS` most recent order numbers (given newest first)."""
    name = " ".join(customer.name.split())
    numbers: list[str] = []
    for order in orders:
        number = order.order_number.strip()
        if number and number not in numbers:
            numbers.append(number)
        if len(numbers) == MAX_ORDER_NUMBERS:
            break
    return SpeechContext((name,) if name else (), tuple(numbers))
