"""What a caller is talking about: billing, refund, return, shipping, ...

Keyword and word-form rules (each pattern accepts the usual inflections:
"refund", "refunded", "refunding") rather than a classifier, because the
topic drives which policy the assistant looks up and an agent must be able to
see why: every topic maps to phrases a supervisor can read and extend. Topics
are reported in order of first mention in the utterance.
"""

from __future__ import annotations

import re

from callpilot.v1 import events_pb2

__all__ = ["detect_topics"]

_NEG = r"(?:not|isn't|isnt|doesn't|doesnt|won't|wont|can't|cant|cannot|didn't|didnt|stopped|keeps?|never)"

_RULES: tuple[tuple[events_pb2.Topic.ValueType, tuple[str, ...]], ...] = (
    (
        events_pb2.TOPIC_REFUND,
        (
            r"\brefund\w*",
            r"\bmoney back\b",
            r"\breimburs\w*",
            r"\bcharge ?backs?\b",
            r"\bcredit(?:ed)? (?:it |me )?back\b",
            r"\bpay(?:ing)? me back\b",
        ),
    ),
    (
        events_pb2.TOPIC_RETURN,
        (
            r"\breturn(?:s|ed|ing)?\b(?! (?:my |your |the |a )?(?:call|calls)\b)",
            r"\bsend(?:ing)? (?:it |them |this |that |these |those )?back\b",
            r"\bship(?:ping)? (?:it |them |this |that )?back\b",
            r"\btake (?:it|them) back\b",
            r"\bexchang\w*",
            r"\brma\b",
        ),
    ),
    (
        events_pb2.TOPIC_SHIPPING,
        (
            r"\bship(?:s|ped|ping|ment|ments)?\b(?! (?:it |them |this |that )?back\b)",
            r"\bdeliver(?:y|ies|ed|ing)?\b",
            r"\btrack(?:ing)?\b",
            r"\b(?:package|parcel|courier|shipment)s?\b",
            r"\b(?:ups|fedex|usps|dhl)\b",
            r"\b(?:arriv\w*|in transit)\b",
            r"\bwhere(?:'s| is) my (?:order|package|parcel|stuff)\b",
            r"\blost in the (?:mail|post)\b",
        ),
    ),
    (
        events_pb2.TOPIC_BILLING,
        (
            r"\bbill(?:s|ed|ing)?\b",
            r"\binvoic\w*",
            r"(?<!won't )(?<!wont )(?<!not )(?<!doesn't )(?<!doesnt )(?<!didn't )"
            r"\b(?:over|double[- ]?|re)?charg(?:e|es|ed)\b(?! (?:up|properly|anymore)\b)",
            r"\bpayments?\b",
            r"\b(?:paid|pay)\b(?! me back)",
            r"\bstatements?\b",
            r"\bfees?\b",
            r"\b(?:credit|debit) card\b",
            r"\breceipts?\b",
        ),
    ),
    (
        events_pb2.TOPIC_TECHNICAL,
        (
            rf"\b{_NEG}\s+(?:\w+\s+)?(?:work\w*|turn\w* on|connect\w*|pair\w*|charg\w*|load\w*|power\w* on|sync\w*|start\w*)",
            r"\b(?:broken|broke|defective|faulty|glitch\w*|malfunction\w*)\b",
            r"\berrors?\b",
            r"\bcrash\w*",
            r"\bbugs?\b",
            r"\bfr(?:eez\w*|oze|ozen)\b",
            r"\breset\w*",
            r"\b(?:set ?up|install\w*|firmware|bluetooth|wi-?fi)\b",
            r"\bpair(?:s|ed|ing)?\b",
            r"\b(?:battery|batteries|charging)\b",
            r"\bhow (?:do|can|should) (?:i|we|you)\s+(?:set|reset|connect|pair|fix|turn|install|update|use)\b",
        ),
    ),
    (
        events_pb2.TOPIC_CANCELLATION,
        (
            r"\bcancel\w*",
            r"\bunsubscrib\w*",
            r"\bterminat\w*",
            r"\bstop (?:my|the) (?:subscription|order|service|membership)\b",
            r"\bclose (?:my|the) account\b",
        ),
    ),
    (
        events_pb2.TOPIC_ACCOUNT,
        (
            r"\baccounts?\b",
            r"\blog ?in\b|\blogin\b|\bsign(?:ing)? in\b|\blog(?:ging)? in\b",
            r"\bpasswords?\b",
            r"\busername\b",
            r"\bprofile\b",
            r"\blocked out\b",
            r"\b(?:two[- ]factor|2fa)\b",
            r"\b(?:change|update) (?:my |the )?(?:email|e-mail|address|phone number|details)\b",
        ),
    ),
)

_COMPILED = tuple((topic, re.compile("|".join(f"(?:{p})" for p in patterns))) for topic, patterns in _RULES)
_PLACEHOLDER_RE = re.compile(r"\[[A-Z_]+\]")


# An item that arrived damaged is a return/refund call (the return policy covers
# it), not a delivery question or a troubleshooting one: "arrived broken",
# "came with a cracked screen", "was damaged when it was delivered".
_DAMAGED_ON_ARRIVAL_RE = re.compile(
    r"\b(?:arriv\w*|came|delivered|showed up|turned up|got here|received it|opened (?:it|the box))\b"
    r"(?:\W+\w+){0,4}?\W+(?:broken|damaged|cracked|smashed|shattered|dented|defective|faulty|in pieces|torn)\b"
    r"|\b(?:broken|damaged|cracked|smashed|shattered|dented|defective)\b(?:\W+\w+){0,5}?\W+"
    r"(?:when (?:it|they) (?:arrived|came|was delivered|were delivered)|on arrival|in the box)\b"
)
_NOT_WHEN_DAMAGED = (events_pb2.TOPIC_SHIPPING, events_pb2.TOPIC_TECHNICAL)


def detect_topics(text: str) -> list[events_pb2.Topic.ValueType]:
    """Topics mentioned in `text`, in order of first mention, without duplicates.

    Words inside a damaged-on-arrival phrase count for a return, not for
    shipping or technical ("the tablet arrived with a cracked screen").
    """
    # Redaction placeholders ("[CARD_NUMBER]") are not the caller's words.
    lowered = _PLACEHOLDER_RE.sub(" ", text).lower().replace("\u2019", "'")
    damaged = [(m.start(), m.end()) for m in _DAMAGED_ON_ARRIVAL_RE.finditer(lowered)]
    hits: list[tuple[int, events_pb2.Topic.ValueType]] = []
    if damaged:
        hits.append((damaged[0][0], events_pb2.TOPIC_RETURN))
    for topic, regex in _COMPILED:
        for m in regex.finditer(lowered):
            if topic in _NOT_WHEN_DAMAGED and any(s <= m.start() < e for s, e in damaged):
                continue
            if not any(t == topic for _, t in hits):
                hits.append((m.start(), topic))
            break
    hits.sort(key=lambda h: h[0])
    return [topic for _, topic in hits]
