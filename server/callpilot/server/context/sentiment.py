"""Sentiment of one utterance from a small lexicon.

The agent needs a cue ("the caller is getting frustrated"), not a research
grade classifier, and the cue must be computed within the turn on the event
loop. So: a few hundred scored words and phrases of customer-service speech,
negation ("not happy" is negative, "not bad" mildly positive), intensifiers
("really", "so") and dampeners ("a bit"), a "but" shift that weights the
clause after it, and a squashing function that maps the sum to -1..1.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from callpilot.v1 import events_pb2

from .wordlists import wordset as _wordset

__all__ = ["NEGATIVE_THRESHOLD", "POSITIVE_THRESHOLD", "SentimentResult", "analyse_sentiment"]

POSITIVE_THRESHOLD = 0.2
"""Scores at or above this are positive."""
NEGATIVE_THRESHOLD = -0.2
"""Scores at or below this are negative."""

# Word scores on a -3..3 scale.
_LEXICON: dict[str, float] = {
    # negative
    "angry": -2.5, "furious": -3.0, "livid": -3.0, "mad": -2.0, "upset": -2.0, "annoyed": -2.0,
    "annoying": -2.0, "irritated": -2.0, "frustrated": -2.5, "frustrating": -2.5, "disappointed": -2.0,
    "disappointing": -2.0, "unhappy": -2.0, "sad": -1.5, "worried": -1.5, "concerned": -1.0,
    "confused": -1.0, "terrible": -3.0, "awful": -3.0, "horrible": -3.0, "worst": -3.0, "bad": -2.0,
    "poor": -1.5, "useless": -2.5, "pathetic": -3.0, "ridiculous": -2.5, "unacceptable": -3.0,
    "outrageous": -3.0, "disgusting": -3.0, "hate": -3.0, "hated": -3.0, "sucks": -2.5, "broken": -1.0,
    "damaged": -1.5, "defective": -1.5, "wrong": -1.5, "problem": -1.0, "problems": -1.0,
    "issue": -0.5, "issues": -0.5, "late": -1.0, "delayed": -1.0, "lost": -1.0, "missing": -1.0,
    "scam": -3.0, "rude": -2.5, "incompetent": -3.0, "complaint": -1.5, "complain": -1.5,
    "waste": -2.0, "wasted": -2.0, "nightmare": -3.0, "stupid": -2.5, "joke": -1.5,
    "sick": -1.5, "tired": -1.5, "never": -0.5, "unfortunately": -1.0, "fail": -2.0, "failed": -2.0,
    "cancel": -0.5, "overcharged": -2.0, "mess": -2.0, "disaster": -3.0, "shocked": -2.0,
    # positive
    "thanks": 2.0, "thank": 2.0, "thankful": 2.0, "grateful": 2.5, "appreciate": 2.5,
    "appreciated": 2.5, "great": 2.5, "good": 1.5, "fine": 0.5, "nice": 2.0, "lovely": 2.5,
    "love": 2.5, "happy": 2.0, "glad": 2.0, "pleased": 2.0, "perfect": 2.5, "excellent": 3.0,
    "amazing": 3.0, "awesome": 3.0, "wonderful": 3.0, "fantastic": 3.0, "brilliant": 3.0,
    "helpful": 2.0, "quick": 1.0, "fast": 1.0, "easy": 1.5, "satisfied": 2.0, "resolved": 1.5,
    "fixed": 1.5, "works": 1.0, "working": 0.5, "sorted": 1.5, "cool": 1.0, "okay": 0.3, "ok": 0.3,
    "better": 1.5, "best": 2.0, "friendly": 2.0, "relieved": 2.0, "fair": 1.0,
}  # fmt: skip
# Multi-word expressions, read before single words.
_PHRASES: dict[tuple[str, ...], float] = {
    ("fed", "up"): -2.5,
    ("waste", "of", "time"): -3.0,
    ("thank", "you"): 2.0,
    ("no", "problem"): 1.0,
    ("no", "worries"): 1.0,
    ("not", "working"): -2.0,
    ("doesn't", "work"): -2.0,
    ("does", "not", "work"): -2.0,
    ("still", "waiting"): -2.0,
    ("still", "haven't"): -1.5,
    ("never", "received"): -2.0,
    ("never", "arrived"): -2.0,
    ("never", "got"): -1.5,
    ("not", "acceptable"): -2.5,
    ("sick", "of"): -2.5,
    ("had", "enough"): -2.5,
    ("makes", "sense"): 1.0,
    ("that", "helps"): 1.5,
}
_NEGATORS = _wordset(
    """not no never nothing nobody neither nor none without hardly barely cannot can't cant don't dont
    doesn't doesnt didn't didnt isn't isnt wasn't wasnt aren't arent weren't werent won't wont
    wouldn't wouldnt couldn't couldnt shouldn't shouldnt haven't havent hasn't hasnt hadn't hadnt"""
)
_INTENSIFIERS = {
    "very": 1.5, "really": 1.5, "so": 1.4, "extremely": 1.8, "absolutely": 1.7, "totally": 1.6,
    "completely": 1.6, "super": 1.5, "incredibly": 1.8, "utterly": 1.8, "truly": 1.4, "such": 1.3,
    "too": 1.3, "most": 1.3, "seriously": 1.5,
}  # fmt: skip
_DAMPENERS = {
    "slightly": 0.5,
    "somewhat": 0.6,
    "bit": 0.6,
    "little": 0.6,
    "kinda": 0.6,
    "fairly": 0.7,
    "quite": 0.8,
}
# "not happy" is nearly as negative as "unhappy"; "not angry" is only mildly positive.
_NEGATED_POSITIVE = -0.75
_NEGATED_NEGATIVE = -0.3
_NEGATION_WINDOW = 3
_ALPHA = 15.0  # how quickly the sum saturates towards -1 / 1

_TOKEN_RE = re.compile(r"[a-z]+(?:'[a-z]+)?|[!?.,;]")


@dataclass(frozen=True, slots=True)
class SentimentResult:
    """A score in -1..1 and its label."""

    score: float
    label: events_pb2.Sentiment.ValueType


def _label(score: float) -> events_pb2.Sentiment.ValueType:
    if score >= POSITIVE_THRESHOLD:
        return events_pb2.SENTIMENT_POSITIVE
    if score <= NEGATIVE_THRESHOLD:
        return events_pb2.SENTIMENT_NEGATIVE
    return events_pb2.SENTIMENT_NEUTRAL


def analyse_sentiment(text: str) -> SentimentResult:
    """Score one utterance; text with no sentiment words is neutral (0.0)."""
    tokens = _TOKEN_RE.findall(text.lower().replace("\u2019", "'"))
    total = 0.0
    clause_start = 0  # negation does not reach across punctuation or "but"
    i = 0
    max_phrase = max(len(p) for p in _PHRASES)
    while i < len(tokens):
        tok = tokens[i]
        if tok in "!?.,;" or tok == "but":
            if tok == "but":
                total *= 0.5  # "it's fine but I'm really annoyed": the second clause counts
            clause_start = i + 1
            i += 1
            continue
        score: float | None = None
        width = 1
        for n in range(max_phrase, 1, -1):
            phrase = tuple(tokens[i : i + n])
            if phrase in _PHRASES:
                score, width = _PHRASES[phrase], n
                break
        if score is None:
            score = _LEXICON.get(tok)
        if score:
            lo = max(clause_start, i - _NEGATION_WINDOW)
            window = tokens[lo:i]
            for w in tokens[max(clause_start, i - 2) : i]:
                score *= _INTENSIFIERS.get(w, 1.0) * _DAMPENERS.get(w, 1.0)
            # A multi-word phrase that already contains its negation ("not working")
            # is not flipped again by it.
            if width == 1 and any(w in _NEGATORS for w in window):
                score *= _NEGATED_POSITIVE if score > 0 else _NEGATED_NEGATIVE
            total += score
        i += width
    if total:
        total *= 1.0 + 0.1 * min(text.count("!"), 3)
    score = total / math.sqrt(total * total + _ALPHA)
    return SentimentResult(round(score, 3), _label(score))
