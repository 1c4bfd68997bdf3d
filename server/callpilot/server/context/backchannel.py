"""Utterances with nothing to act on ("uh-huh", "okay thanks", "yes please").

Shared by both assistants (whether to answer a turn) and the summary (the
reason for contact is the first customer utterance that is not one).
"""

from __future__ import annotations

import re

from .wordlists import wordset

__all__ = ["BACKCHANNEL_WORDS", "PLACEHOLDER_RE", "is_backchannel", "words"]

BACKCHANNEL_WORDS = wordset(
    """
    uh huh uh-huh mm mmm hmm hm mhm mm-hmm um umm er ah oh okay ok k alright all right yes yeah yep
    yup ya no nope nah thanks thank you so much very cheers right sure got it i see cool great perfect
    fine good sounds please bye goodbye hello hi hey well that's that is correct exactly true wow
    one moment sec second hold on a just let me
    """
)
"""Whole utterances made only of these words carry nothing to act on."""
_MAX_BACKCHANNEL_WORDS = 5
PLACEHOLDER_RE = re.compile(r"\[[A-Z_]+\]")
"""Redaction placeholders ("[CARD_NUMBER]")."""


def words(text: str) -> list[str]:
    """Lower-case words and single digits of `text`."""
    return re.findall(r"[a-z]+(?:['-][a-z]+)*|\d", text.lower().replace("\u2019", "'"))


def is_backchannel(text: str) -> bool:
    """True for "uh-huh", "okay thanks", "yes please" and other utterances with nothing to act on."""
    cleaned = PLACEHOLDER_RE.sub(" ", text)
    if any(ch.isdigit() for ch in cleaned):
        return False  # numbers are information ("78901")
    found = words(cleaned)
    if not found or sum(len(w) for w in found) < 3:
        return True
    return len(found) <= _MAX_BACKCHANNEL_WORDS and all(w in BACKCHANNEL_WORDS for w in found)
