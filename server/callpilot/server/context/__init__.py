"""Conversation context: numbers, entities, topics, sentiment and the engine
that folds them into the state the assistant and the agent UI read."""

from .engine import ContextEngine
from .entities import extract_entities
from .numbers import NumberKind, NumberSpan, find_numbers, normalise_numbers
from .sentiment import SentimentResult, analyse_sentiment
from .topics import detect_topics

__all__ = [
    "ContextEngine",
    "NumberKind",
    "NumberSpan",
    "SentimentResult",
    "analyse_sentiment",
    "detect_topics",
    "extract_entities",
    "find_numbers",
    "normalise_numbers",
]
