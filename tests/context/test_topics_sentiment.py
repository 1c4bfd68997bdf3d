"""Topics and per-utterance sentiment."""

from __future__ import annotations

import pytest
from callpilot.server.context.sentiment import analyse_sentiment
from callpilot.server.context.topics import detect_topics
from callpilot.v1 import events_pb2 as ev


@pytest.mark.parametrize(
    ("said", "topics"),
    [
        ("I'd like a refund please", [ev.TOPIC_REFUND]),
        ("can I get my money back", [ev.TOPIC_REFUND]),
        ("I want to send them back", [ev.TOPIC_RETURN]),
        ("I returned it last week", [ev.TOPIC_RETURN]),
        ("where is my package? the tracking hasn't updated", [ev.TOPIC_SHIPPING]),
        ("I was charged twice on my credit card", [ev.TOPIC_BILLING]),
        ("my headphones won't charge anymore", [ev.TOPIC_TECHNICAL]),
        ("the app keeps crashing", [ev.TOPIC_TECHNICAL]),
        ("how do I pair them with my phone", [ev.TOPIC_TECHNICAL]),
        ("please cancel my subscription", [ev.TOPIC_CANCELLATION]),
        ("I can't log in, I forgot my password", [ev.TOPIC_ACCOUNT]),
        ("can you return my call tomorrow", []),
        ("hello, good morning", []),
    ],
)
def test_topics(said: str, topics: list[int]) -> None:
    assert detect_topics(said) == topics


def test_topics_in_order_of_first_mention() -> None:
    said = "They arrived late, stopped working after a day, so I want to return them and get a refund"
    assert detect_topics(said) == [ev.TOPIC_SHIPPING, ev.TOPIC_TECHNICAL, ev.TOPIC_RETURN, ev.TOPIC_REFUND]


@pytest.mark.parametrize(
    "said",
    [
        "They arrived broken, so I want to return them and get a refund",
        "The tablet arrived with a cracked screen",
        "the box was damaged when it was delivered",
    ],
)
def test_damaged_on_arrival_is_a_return_not_shipping_or_technical(said: str) -> None:
    topics = detect_topics(said)
    assert topics[0] == ev.TOPIC_RETURN
    assert ev.TOPIC_SHIPPING not in topics and ev.TOPIC_TECHNICAL not in topics


def test_redaction_placeholders_are_not_topics() -> None:
    assert detect_topics("it is [CARD_NUMBER] and [CVV]") == []


@pytest.mark.parametrize(
    ("said", "label"),
    [
        ("This is ridiculous, I'm really frustrated!", ev.SENTIMENT_NEGATIVE),
        ("I am not happy at all", ev.SENTIMENT_NEGATIVE),
        ("I never received my package", ev.SENTIMENT_NEGATIVE),
        ("Thank you so much, that was really helpful", ev.SENTIMENT_POSITIVE),
        ("great, perfect", ev.SENTIMENT_POSITIVE),
        ("my order number is 78901", ev.SENTIMENT_NEUTRAL),
        ("I'm not angry", ev.SENTIMENT_NEUTRAL),
        ("", ev.SENTIMENT_NEUTRAL),
    ],
)
def test_sentiment_labels(said: str, label: int) -> None:
    assert analyse_sentiment(said).label == label


def test_negation_flips_and_intensifiers_strengthen() -> None:
    happy = analyse_sentiment("I am happy").score
    assert analyse_sentiment("I am not happy").score < 0 < happy
    assert analyse_sentiment("I am very happy").score > happy
    assert analyse_sentiment("I am slightly annoyed").score > analyse_sentiment("I am annoyed").score
    assert -1.0 <= analyse_sentiment("terrible awful horrible worst nightmare!!!").score <= -0.9


def test_but_weights_the_second_clause() -> None:
    assert analyse_sentiment("the agent was nice but I am really annoyed").label == ev.SENTIMENT_NEGATIVE
