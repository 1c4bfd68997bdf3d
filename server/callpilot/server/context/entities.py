"""Entities in one utterance: order numbers, money, emails, phone numbers, names.

Rules rather than a model: the entities that matter on a support call have a
fixed shape once numbers are normalised (see `numbers`), the rules run in
microseconds on the event loop, and an agent can be told exactly why
something was or was not picked up. Every entity keeps the words as said
(already redacted) next to its normalised value, so the agent UI can
highlight the transcript and the directory can be queried with the value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from callpilot.v1 import events_pb2

from .numbers import NumberKind, NumberSpan, find_numbers
from .wordlists import wordset as _wordset

__all__ = ["email_variants", "extract_entities"]

_ORDER = events_pb2.ENTITY_TYPE_ORDER_NUMBER
_MONEY = events_pb2.ENTITY_TYPE_MONEY
_EMAIL = events_pb2.ENTITY_TYPE_EMAIL
_PHONE = events_pb2.ENTITY_TYPE_PHONE_NUMBER
_NAME = events_pb2.ENTITY_TYPE_PERSON_NAME

# --- emails ------------------------------------------------------------------

# Top-level domains accepted for spoken addresses; a closed list keeps "I'll be
# at home dot..." from becoming an address.
_TLDS = (
    "com", "net", "org", "io", "co", "uk", "us", "ca", "au", "de", "fr", "es", "it", "nl",
    "edu", "gov", "info", "biz", "me", "ai", "app", "dev", "mail", "email",
)  # fmt: skip
_SEP = r"(?:\s*(?:\.|\bdot\b|_|\bunderscore\b|-|\bdash\b|\bhyphen\b|\+|\bplus\b)\s*)"
_LABEL = r"[a-z0-9]+"
_EMAIL_RE = re.compile(
    rf"(?<![\w.+-])(?P<local>{_LABEL}(?:{_SEP}{_LABEL})*)"
    rf"(?:\s*@\s*|\s+at\s+)"
    rf"(?P<domain>[a-z0-9-]+(?:\s*(?:\.|\bdot\b)\s*[a-z0-9-]+)*\s*(?:\.|\bdot\b)\s*(?:{'|'.join(_TLDS)}))\b",
    re.IGNORECASE,
)
_SPOKEN_SEPARATORS = {"dot": ".", "underscore": "_", "dash": "-", "hyphen": "-", "plus": "+"}
_SEP_WORD_RE = re.compile(r"\s*\b(dot|underscore|dash|hyphen|plus)\b\s*|\s*([._+-])\s*", re.IGNORECASE)


def _spoken_to_address(local: str, domain: str) -> str:
    def repl(m: re.Match[str]) -> str:
        return _SPOKEN_SEPARATORS[m.group(1).lower()] if m.group(1) else m.group(2)

    local = _SEP_WORD_RE.sub(repl, local)
    domain = _SEP_WORD_RE.sub(repl, domain)
    return (re.sub(r"\s+", "", local) + "@" + re.sub(r"\s+", "", domain)).lower()


# --- names -------------------------------------------------------------------

_NAME_INTRO_RE = re.compile(
    r"\b(?P<intro>my name is|my name's|name is|the name is|name's|spelled|spelt|this is|i'm|i am|it's)"
    r"(?:\s+as)?\s+",
    re.IGNORECASE,
)
# Letters spelled out one by one ("g a r c i a", "G-A-R-C-I-A", "g. a. r."): three or more.
_SPELLED_RE = re.compile(r"\b[a-z](?:(?:\.?[ \t]+|\.|-)[a-z]\b){2,}\.?", re.IGNORECASE)


def collapse_spelling(text: str) -> str:
    """ "g a r c i a" -> "garcia": callers spell names and email addresses letter by letter."""

    def join(m: re.Match[str]) -> str:
        return "".join(ch for ch in m.group(0) if ch.isalpha())

    return _SPELLED_RE.sub(join, text)


_NAME_WORD_RE = re.compile(r"[^\W\d_]+(?:['\u2019-][^\W\d_]+)*")
# Common words that follow "this is" / "I'm" / "my name is" and are not names.
_NOT_NAMES = _wordset(
    """
    a about actually afraid after again ago all also am an and angry annoyed any are as at back
    because been being but by calling calling can cannot checking concerning confused contacting
    could did do does doing done down for from frustrated fine getting glad going good gone got
    had happy has have having he her here him his how however i if in interested into is it its
    just kind last like literally looking me mine more most much my need new no not now of off
    ok okay on one only or our out over phoning please spelled spelt pretty quite rather really regarding ridiculous
    ringing right same she should so sorry still such sure than that the their them then there
    these they this those to too trying unhappy up upset us very waiting was we well were what
    when where which who why will with wondering worried would yeah yes yet you your
    monday tuesday wednesday thursday friday saturday sunday today tomorrow yesterday
    january february march april may june july august september october november december
    it them him everything something anything nothing
    """
)

# --- numbers in context --------------------------------------------------------

_WORD_RE = re.compile(r"[^\W\d_]+(?:['\u2019][^\W\d_]+)*")
_ORDER_CUES = {"order", "orders", "confirmation", "reference", "ref"}
_NOT_ORDER_CUES = {"zip", "postal", "postcode", "code", "extension", "ext", "pin", "year", "apartment", "apt"}
_PHONE_CUES = {"phone", "cell", "mobile", "call", "reach", "callback", "landline", "telephone"}


def _words_before(text: str, pos: int, n: int) -> list[str]:
    return [w.lower() for w in _WORD_RE.findall(text[:pos])[-n:]]


@dataclass(frozen=True, slots=True)
class _Found:
    start: int
    end: int
    entity: events_pb2.Entity


def _entity(
    type_: events_pb2.EntityType.ValueType, value: str, text: str, segment_id: str
) -> events_pb2.Entity:
    return events_pb2.Entity(type=type_, value=value, text=text, segment_id=segment_id)


def _number_entities(text: str, span: NumberSpan, segment_id: str) -> list[_Found]:
    if span.kind is NumberKind.MONEY:
        return [_Found(span.start, span.end, _entity(_MONEY, span.value, span.text, segment_id))]
    if span.kind is not NumberKind.DIGITS:
        return []
    before = _words_before(text, span.start, 4)
    order_cue = any(w in _ORDER_CUES for w in before)
    digits = span.value
    # "orders 78901 78902": two written order numbers next to each other are two numbers.
    written = [p for p in span.pieces if not p.spoken]
    if (
        len(span.pieces) > 1
        and len(written) == len(span.pieces)
        and all(5 <= len(p.digits) <= 8 for p in written)
    ):
        return [
            _Found(p.start, p.end, _entity(_ORDER, p.digits, text[p.start : p.end], segment_id))
            for p in written
        ]
    # After "order" a four-digit number is still an order number: often one heard with a digit missing.
    if order_cue and 4 <= len(digits) <= 10:
        return [_Found(span.start, span.end, _entity(_ORDER, digits, span.text, segment_id))]
    if len(digits) == 10 or (len(digits) == 11 and digits.startswith("1")):
        return [_Found(span.start, span.end, _entity(_PHONE, digits, span.text, segment_id))]
    if 5 <= len(digits) <= 8 and not any(w in _NOT_ORDER_CUES or w in _PHONE_CUES for w in before):
        return [_Found(span.start, span.end, _entity(_ORDER, digits, span.text, segment_id))]
    return []


# "my email is maria.garcia.example.com": a recogniser that dropped the "at".
# The value keeps the dots without an "@"; the context engine tries each dot
# as the "@" (see `email_variants`).
_HEARD_EMAIL_RE = re.compile(
    rf"\b(?:e-?mail|email address|e-mail address)(?: address)?\s+(?:is\s+|was\s+|it's\s+)?"
    rf"(?P<addr>{_LABEL}(?:{_SEP}{_LABEL}){{2,}}?\s*(?:\.|\bdot\b)\s*(?:{'|'.join(_TLDS)}))\b",
    re.IGNORECASE,
)


def email_variants(value: str) -> list[str]:
    """Addresses a heard email may be: itself if it has an "@", else each
    dot before the domain read as the "@" ("a.b.example.com" ->
    "a@b.example.com", "a.b@example.com")."""
    if "@" in value:
        return [value]
    labels = value.split(".")
    return [".".join(labels[:i]) + "@" + ".".join(labels[i:]) for i in range(1, len(labels) - 1)]


def _emails(text: str, segment_id: str) -> list[_Found]:
    found: list[_Found] = []
    for m in _HEARD_EMAIL_RE.finditer(text):
        if "@" in m.group(0) or re.search(r"\s+at\s+", m.group("addr")):
            continue
        value = _spoken_to_address(m.group("addr"), "").rstrip("@")
        found.append(
            _Found(m.start("addr"), m.end("addr"), _entity(_EMAIL, value, m.group("addr"), segment_id))
        )
    for m in _EMAIL_RE.finditer(text):
        local = m.group("local")
        if local.lower() in _NOT_NAMES:
            continue  # "I bought it at amazon dot com" names a shop, not an address
        address = _spoken_to_address(local, m.group("domain"))
        start = m.start("local")
        found.append(_Found(start, m.end(), _entity(_EMAIL, address, text[start : m.end()], segment_id)))
    return found


def _names(text: str, segment_id: str) -> list[_Found]:
    found: list[_Found] = []
    for m in _NAME_INTRO_RE.finditer(text):
        intro = m.group("intro").lower()
        # Only "my name is" is explicit enough to take lower-case words (some
        # recognisers do not capitalise); after "this is" / "I'm" a name must
        # be capitalised, or "I'm calling about..." would name the caller "Calling".
        explicit = "name" in intro
        words: list[re.Match[str]] = []
        pos = m.end()
        while len(words) < 2:
            w = _NAME_WORD_RE.match(text, pos)
            if w is None:
                break
            word = w.group()
            if word.lower() in _NOT_NAMES or len(word) < 2 or (not explicit and not word[0].isupper()):
                break
            words.append(w)
            gap = re.match(r"[ \t]+", text[w.end() :])
            if gap is None:
                break
            pos = w.end() + gap.end()
        if words:
            start, end = words[0].start(), words[-1].end()
            value = " ".join(_title(w.group()) for w in words)
            found.append(_Found(start, end, _entity(_NAME, value, text[start:end], segment_id)))
    return found


def _title(word: str) -> str:
    if len(word) > 1 and word.isupper():  # spelled out: "GARCIA"
        return word.capitalize()
    return word if any(c.isupper() for c in word) else word[:1].upper() + word[1:]


def _overlaps(a: _Found, spans: list[_Found]) -> bool:
    return any(a.start < b.end and b.start < a.end for b in spans)


def extract_entities(text: str, *, segment_id: str = "", names: bool = True) -> list[events_pb2.Entity]:
    """Entities mentioned in `text`, in order of appearance.

    Letters spelled one by one are read as the word they spell first
    (entity `text` is then the collapsed form). `names=False` skips person names: an agent's "this is John" names the
    agent, not the customer, so the context engine only takes names from
    customer turns.
    """
    text = collapse_spelling(text)
    emails = _emails(text, segment_id)
    found: list[_Found] = list(emails)
    for span in find_numbers(text):
        for f in _number_entities(text, span, segment_id):
            if not _overlaps(f, emails):  # digits inside "maria78901@example.com"
                found.append(f)
    if names:
        found.extend(n for n in _names(text, segment_id) if not _overlaps(n, emails))
    found.sort(key=lambda f: f.start)
    return [f.entity for f in found]
