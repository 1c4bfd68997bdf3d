"""Card numbers, CVVs and expiry dates never leave the redactor; order numbers do."""

from __future__ import annotations

import pytest
from callpilot.server import redaction
from callpilot.server.redaction import Redactor, luhn_valid, safe_redact
from callpilot.v1 import common_pb2

CUSTOMER = common_pb2.SPEAKER_ROLE_CUSTOMER
AGENT = common_pb2.SPEAKER_ROLE_AGENT


def final(r: Redactor, text: str, role: int = CUSTOMER) -> str:
    return r.redact(text, role=role, is_final=True)  # type: ignore[arg-type]


def interim(r: Redactor, text: str, role: int = CUSTOMER) -> str:
    return r.redact(text, role=role, is_final=False)  # type: ignore[arg-type]


def test_luhn() -> None:
    assert luhn_valid("4111111111111111")
    assert luhn_valid("378282246310005")  # Amex, 15 digits
    assert not luhn_valid("4111111111111112")
    assert not luhn_valid("")


@pytest.mark.parametrize(
    "said",
    [
        "4111111111111111",
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "4111, 1111, 1111, 1111",
        "3782 822463 10005",
        "four one one one one one one one one one one one one one one one",
        "four one one one, double one one one, one one one one, one one one one",
        "forty one eleven, eleven eleven, eleven eleven, eleven eleven",
        "4111 1111 one one one one 1111",
    ],
)
def test_card_numbers_in_any_form_without_context(said: str) -> None:
    assert final(Redactor(), f"ok so it is {said} right") == "ok so it is [CARD_NUMBER] right"


def test_cvv_and_expiry() -> None:
    r = Redactor()
    assert final(r, "my card is 4111 1111 1111 1111, cvv 123, expiry 12/27") == (
        "my card is [CARD_NUMBER], cvv [CVV], expiry [CARD_EXPIRY]"
    )
    assert final(Redactor(), "the security code is one two three and it expires twelve twenty seven") == (
        "the security code is [CVV] and it expires [CARD_EXPIRY]"
    )
    assert (
        final(Redactor(), "it expires 12.27, and 456 is the CVC")
        == "it expires [CARD_EXPIRY], and [CVV] is the CVC"
    )
    assert final(Redactor(), "expiration December 2027") == "expiration [CARD_EXPIRY]"


def test_card_read_out_over_two_utterances() -> None:
    r = Redactor()
    assert final(r, "my card number is 4111 1111") == "my card number is [CARD_NUMBER]"
    assert final(r, "1111 1111") == "[CARD_NUMBER]"
    # The window is bounded: it closes after utterances without payment talk.
    assert final(r, "that's it") == "that's it"
    assert final(r, "anything else?") == "anything else?"
    assert final(r, "my PIN is 4321") == "my PIN is 4321"


def test_card_continued_without_payment_words_is_caught_by_its_checksum() -> None:
    r = Redactor()
    first = final(r, "the number is 4111 1111 1111")
    assert first == "the number is [CARD_NUMBER]"  # 12+ digits look like a card being read
    r = Redactor()
    assert final(r, "it is 4111 1111") == "it is 4111 1111"
    assert final(r, "1111 1111") == "[CARD_NUMBER]"  # completes a Luhn-valid number


def test_agent_asking_puts_the_customer_in_payment_context() -> None:
    r = Redactor()
    assert (
        final(r, "Can I have the long number on the card?", AGENT)
        == "Can I have the long number on the card?"
    )
    assert final(r, "sure, four one one one, one one one one") == "sure, [CARD_NUMBER]"
    assert final(r, "What's the security code on the back?", AGENT) == "What's the security code on the back?"
    assert final(r, "one two three") == "[CVV]"
    assert final(r, "And when does it expire?", AGENT) == "And when does it expire?"
    assert final(r, "oh nine twenty eight") == "[CARD_EXPIRY]"


def test_interim_partials_are_masked_and_do_not_change_state() -> None:
    r = Redactor()
    final(r, "I'd like to pay by credit card")
    growing = [
        "four one",
        "four one one one one",
        "four one one one one one one one",
        "4111 1111 1111",
        "4111 1111 1111 1111",
    ]
    for text in growing:
        masked = interim(r, text)
        assert "[CARD_NUMBER]" in masked or text == "four one", (text, masked)
        assert "1111" not in masked
    # Without any payment talk a long run in an interim is masked too.
    assert interim(Redactor(), "it's 4111 1111 1111") == "it's [CARD_NUMBER]"
    # Interims do not arm the window.
    r = Redactor()
    interim(r, "my card number")
    assert final(r, "order 78901, thanks") == "order 78901, thanks"
    assert final(r, "and 12345 too") == "and 12345 too"


def test_order_numbers_amounts_and_phones_survive() -> None:
    r = Redactor()
    text = "order 78901, it was $129.99 and my number is 555 010 0101"
    assert final(r, text) == text
    assert final(r, "it's 78901") == "it's 78901"
    # Even in payment context an order number introduced as such survives.
    assert final(r, "I paid with my visa for order 78901") == "I paid with my visa for order 78901"
    assert final(r, "the amount was 129 dollars 99 cents") == "the amount was 129 dollars 99 cents"
    assert final(r, "call me back on 555 010 0101") == "call me back on 555 010 0101"
    # ...but other digit runs right after payment words do not.
    assert final(r, "the card ends in 1111") == "the card ends in [CARD_NUMBER]"


def test_speakers_have_their_own_windows() -> None:
    r = Redactor()
    final(r, "I'll pay with my mastercard")
    # The agent's window was opened too (they may read the number back)...
    assert final(r, "so that's 5555 4444", AGENT) == "so that's [CARD_NUMBER]"
    # ...and each speaker's window closes with that speaker's own utterances.
    final(r, "ok", AGENT)
    final(r, "ok", AGENT)
    assert final(r, "reference 98765 4321", AGENT) == "reference 98765 4321"
    assert final(r, "5555 4444") == "[CARD_NUMBER]"


def test_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    r = Redactor()

    def boom(*args: object, **kwargs: object) -> list[object]:
        raise RuntimeError("bug")

    monkeypatch.setattr(redaction, "find_numbers", boom)
    assert safe_redact(r, "4111 1111 1111 1111", role=CUSTOMER, is_final=True) == "[REDACTED]"
    monkeypatch.undo()
    assert safe_redact(r, "order 78901", role=CUSTOMER, is_final=True) == "order 78901"


@pytest.mark.parametrize(
    "transcripts",
    [
        # How recognisers tend to write the same call.
        [
            "I want to pay with my credit card.",
            "The card number is four one one one one one one one one one one one one one one one.",
            "The security code is one two three and it expires twelve twenty seven.",
        ],
        [
            "I want to pay with my credit card.",
            "The card number is 4111 1111 1111 1111.",
            "The security code is 123 and it expires 12/27.",
        ],
        [
            "I want to pay with my credit card.",
            "The card number is 4-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1.",
            "The security code is 1, 2, 3, and it expires 12, 27.",
        ],
        [
            "I want to pay with my credit card.",
            "The card number is 4111, 1111, 1111, 1111.",
            "The security code is 123 and it expires 1227.",
        ],
    ],
)
def test_a_card_call_leaks_nothing(transcripts: list[str]) -> None:
    r = Redactor()
    out: list[str] = []
    for text in transcripts:
        words = text.split()
        # Interims grow word by word, then the final arrives.
        out += [interim(r, " ".join(words[:n])) for n in range(1, len(words) + 1)]
        out.append(final(r, text))
    leaked = [t for t in out if any(x in t for x in ("1111", "123", "1227", "12/27", "one one one one"))]
    assert leaked == []
    assert out[-1].startswith("The security code is [CVV]") and out[-1].endswith("[CARD_EXPIRY].")


def test_overlapping_rules_do_not_corrupt_the_text() -> None:
    assert final(Redactor(), "card 4111 1111 1111 1111 exp 12/27 cvv 123") == (
        "card [CARD_NUMBER] exp [CARD_EXPIRY] cvv [CVV]"
    )
    assert final(Redactor(), "4111 1111 1111 1111 12/27 123") == "[CARD_NUMBER]"
