"""Matching what was heard against what the directory holds.

Speech recognition gets surnames and digits slightly wrong ("Garsha" for
"Garcia", "7891" for "78901"). These pure functions score a heard name
against a customer's name and classify a heard order number against a real
one; `context.identify` applies them to a directory.

Names: each heard word is compared with the best-fitting word of the
customer's name by edit similarity (rapidfuzz) and by phonetic keys
(metaphone and NYSIIS from jellyfish): words that sound the same score at
least `PHONETIC_SCORE`. The name's score is the mean over the heard words,
so a full name outranks a first name alone.

Numbers: a heard number is a near miss of an order number when it is one
edit away (Damerau-Levenshtein: one digit dropped, added, changed, or two
adjacent digits swapped).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import jellyfish
from rapidfuzz import fuzz

__all__ = [
    "PHONETIC_SCORE",
    "SURE_SCORE",
    "NameMatch",
    "fold_name",
    "name_score",
    "near_miss",
    "one_edit_variants",
]

PHONETIC_SCORE = 88.0
"""A heard word that sounds like a name word scores at least this much."""
SURE_SCORE = 97.0
"""A name alone identifies the caller only at this score (every word exact, or nearly)."""

_WORD_RE = re.compile(r"[a-z]+")


def fold_name(text: str) -> str:
    """Lower case, accents and punctuation dropped: "José Álvarez" -> "jose alvarez"."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()
    return " ".join(_WORD_RE.findall(plain.replace("'", "")))


@dataclass(frozen=True, slots=True)
class NameMatch:
    """How well a heard name fits a directory name."""

    score: float
    # "exact", "sounds like" or "spelled like": how the weakest word matched.
    how: str


def _word_score(heard: str, word: str) -> tuple[float, str]:
    if heard == word:
        return 100.0, "exact"
    similarity = fuzz.ratio(heard, word)
    if len(heard) >= 3 and len(word) >= 3:
        same_sound = jellyfish.metaphone(heard) == jellyfish.metaphone(word) or (
            jellyfish.nysiis(heard) == jellyfish.nysiis(word)
        )
        if same_sound:
            return max(similarity, PHONETIC_SCORE + similarity / 20), "sounds like"
    return similarity, "spelled like"


def name_score(heard: str, name: str) -> NameMatch:
    """Score 0-100 of `heard` (one or more words) against a customer's `name`.

    Every heard word must match a different word of the name; unmatched
    heard words count as 0.
    """
    heard_words = fold_name(heard).split()
    name_words = fold_name(name).split()
    if not heard_words or not name_words:
        return NameMatch(0.0, "spelled like")
    free = list(name_words)
    total = 0.0
    hows: list[str] = []
    for hw in heard_words:
        if not free:
            hows.append("spelled like")
            continue
        scored = [(_word_score(hw, nw), i) for i, nw in enumerate(free)]
        (score, how), best = max(scored, key=lambda s: s[0][0])
        total += score
        hows.append(how)
        free.pop(best)
    weakest = (
        "exact"
        if all(h == "exact" for h in hows)
        else ("sounds like" if "sounds like" in hows else "spelled like")
    )
    return NameMatch(round(total / len(heard_words), 1), weakest)


def near_miss(heard: str, number: str) -> str:
    """How `heard` differs from order `number` if by one edit, else ''.

    Both are digit strings. Returns "one digit dropped", "one digit added",
    "one digit changed" or "two digits swapped".
    """
    if not heard or not number or heard == number:
        return ""
    if jellyfish.damerau_levenshtein_distance(heard, number) != 1:
        return ""
    if len(heard) < len(number):
        return "one digit dropped"
    if len(heard) > len(number):
        return "one digit added"
    if sorted(heard) == sorted(number):
        return "two digits swapped"
    return "one digit changed"


def one_edit_variants(heard: str) -> list[str]:
    """Every digit string one edit from `heard` (the numbers a caller may have meant)."""
    digits = "0123456789"
    out: set[str] = set()
    for i in range(len(heard) + 1):
        for d in digits:
            out.add(heard[:i] + d + heard[i:])
    for i in range(len(heard)):
        out.add(heard[:i] + heard[i + 1 :])
        for d in digits:
            out.add(heard[:i] + d + heard[i + 1 :])
        if i + 1 < len(heard):
            out.add(heard[:i] + heard[i + 1] + heard[i] + heard[i + 2 :])
    out.discard(heard)
    return sorted(v for v in out if v)
