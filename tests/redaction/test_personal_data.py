"""Redaction beyond cards: SSNs, bank details and dates of birth, per policy;
emails and phones stay usable for lookup but are masked in logs."""

from __future__ import annotations

import logging

import pytest
from callpilot.server.context.engine import ContextEngine, mask_contact
from callpilot.server.context.state import Turn
from callpilot.server.redaction import RedactionPolicy, Redactor, safe_redact
from callpilot.v1 import common_pb2, directory_pb2

CUSTOMER = common_pb2.SPEAKER_ROLE_CUSTOMER


def redact(text: str, policy: RedactionPolicy | None = None) -> str:
    return Redactor(policy=policy).redact(text, role=CUSTOMER, is_final=True)


@pytest.mark.parametrize(
    ("said", "expected"),
    [
        ("my social is 123-45-6789", "my social is [SSN]"),
        (
            "my social security number is one two three four five six seven eight nine",
            "my social security number is [SSN]",
        ),
        (
            "for direct deposit the routing number is 021000021 and the account number is 12345678",
            "for direct deposit the routing number is [ROUTING_NUMBER] and the account number is [BANK_ACCOUNT]",
        ),
        ("I was born on March third nineteen eighty five", "I was born on [DATE_OF_BIRTH]"),
        ("date of birth 03/14/1985, order 78901", "date of birth [DATE_OF_BIRTH], order 78901"),
        # What the context engine needs stays readable.
        ("my account email is maria@example.com and order 78901", None),
        ("I paid $129.99 on 2 Nov for order 78901", None),
        ("call me at 555 010 0101, my account number is 12345", None),
    ],
)
def test_personal_data_is_masked(said: str, expected: str | None) -> None:
    assert redact(said) == (expected if expected is not None else said)


def test_policy_turns_kinds_off() -> None:
    off = RedactionPolicy(ssn=False, bank=False, date_of_birth=False)
    said = "ssn 123-45-6789, routing number 021000021, born on 3 March 1985"
    assert redact(said, off) == said
    assert redact("card 4111 1111 1111 1111", off) == "card [CARD_NUMBER]", "cards are always masked"


def test_fails_closed() -> None:
    class Broken(Redactor):
        def redact(self, text: str, *, role: common_pb2.SpeakerRole.ValueType, is_final: bool) -> str:
            raise RuntimeError("boom")

    assert safe_redact(Broken(), "my ssn is 123-45-6789", role=CUSTOMER, is_final=True) == "[REDACTED]"


class _DownDirectory:
    """A directory whose lookups fail, so the engine logs what it tried."""

    async def find_customer(self, *, phone: str | None = None, email: str | None = None) -> None:
        raise ConnectionError("directory down")

    async def get_order(self, order_number: str) -> None:
        raise ConnectionError("directory down")

    async def search_customers(self, query: str, limit: int = 10) -> list[directory_pb2.Customer]:
        return []


async def test_emails_and_phones_are_masked_in_logs(caplog: pytest.LogCaptureFixture) -> None:
    assert mask_contact("maria.garcia@example.com") == "m***@example.com"
    assert mask_contact("+1 555 010 0101") == "***01"
    engine = ContextEngine(_DownDirectory(), call_id="c")  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING):
        await engine.on_final(Turn("s1", CUSTOMER, "my email is maria.garcia@example.com"))
        await engine.on_final(Turn("s2", CUSTOMER, "call me on 555 010 0101"))
    text = caplog.text
    assert "m***@example.com" in text and "maria.garcia@example.com" not in text
    assert "5550100101" not in text and "555 010 0101" not in text
    # The value itself stays usable: the engine kept it to retry the lookup.
    assert {e.value for e in engine.state.entities} >= {"maria.garcia@example.com", "5550100101"}
