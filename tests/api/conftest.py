"""Speech fixtures for the API tests (synthesised once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import concat_wavs, synth

CUSTOMER_LINES = [
    "Hi, my name is Maria Garcia.",
    "I am calling about my order seven eight nine oh one.",
    "The headphones arrived broken and I would like a refund please.",
]


@pytest.fixture(scope="session")
def support_call_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A customer asking about an order by number and for a refund."""
    d = tmp_path_factory.mktemp("speech")
    parts = [synth(line, d / f"line{i}.wav") for i, line in enumerate(CUSTOMER_LINES)]
    return concat_wavs(parts, d / "support_call.wav", gap_s=1.2)


@pytest.fixture(scope="session")
def card_call_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A customer reading out a (test) card number, CVV and expiry."""
    d = tmp_path_factory.mktemp("card")
    lines = [
        "I want to pay with my credit card.",
        "The card number is four one one one one one one one one one one one one one one one.",
        "The security code is one two three and it expires twelve twenty seven.",
    ]
    parts = [synth(line, d / f"card{i}.wav") for i, line in enumerate(lines)]
    return concat_wavs(parts, d / "card_call.wav", gap_s=1.2)
