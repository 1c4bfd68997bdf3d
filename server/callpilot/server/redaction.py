"""Masking payment card data in transcripts before anything else sees them.

Redaction sits between speech recognition and everything downstream (the
event log, watchers, the context engine, the assistant, LLM providers), so a
card number spoken on a call is never stored or sent anywhere. It must cope
with how cards are really read out:

* written ("4111 1111 1111 1111", "4111-1111-..."), spoken ("four one one
  one ...", "oh", "double one") or mixed, and split over several words;
* interim hypotheses, which show a number while it is still being read and so
  cannot be Luhn-checked yet;
* a card read out over two utterances, or after the agent asked for it.

So the rules are, per utterance:

1. A digit run that is a Luhn-valid 13-19 digit number is a card number, in
   any context. A run of 12 or more digits is treated as one too (a card with
   a misheard digit is still a card; an interim shows a card being read),
   unless it is introduced as a tracking or order number.
2. In *payment context* (payment words, e.g. "card", "visa", "security
   code", in this utterance or in either party's utterances just before this
   speaker's last two), any run of 4 or more digits is masked as a card
   number and a 3-digit run as a CVV; up to 4 digits next to "CVV"/"security
   code", or right after the other party asked for one, are a CVV. Order
   numbers introduced as such ("order 78901") and phone numbers introduced as
   such are left alone, so the context engine can still read them.
3. Expiry dates near a card ("expires 12/27", "twelve twenty seven",
   "December 2027") become [CARD_EXPIRY].

State is kept per speaker and only committed on final text: interims are
re-redacted from scratch each time against the state of the finished
utterances. Amounts of money are never masked. Anything unexpected fails
closed through `safe_redact`.

Beyond cards, per `RedactionPolicy` (a tenant's choice; all on by default):

4. US Social Security numbers: "123-45-6789" written in that shape
   anywhere, or nine digits after "social security"/"SSN"/"social" -> [SSN].
5. Bank details when the utterance talks about a bank ("routing",
   "checking", "savings", "bank account", "IBAN"): nine digits after
   "routing"/"ABA" -> [ROUTING_NUMBER]; 4-17 digits after "account" ->
   [BANK_ACCOUNT]. A customer's account with the company ("account C-1001",
   "my account email") is not a bank account and stays readable.
6. Dates of birth: the date after "date of birth", "DOB", "born on/in",
   "birthday" -> [DATE_OF_BIRTH].

Emails and phone numbers are not masked here: the context engine needs
them to find the customer. Code that logs them masks them (e.g.
`context.engine.mask_contact`).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

from callpilot.v1 import common_pb2

from .context.numbers import NumberKind, NumberSpan, find_numbers

__all__ = [
    "BANK_ACCOUNT",
    "CARD_EXPIRY",
    "CARD_NUMBER",
    "CVV",
    "DATE_OF_BIRTH",
    "REDACTED",
    "ROUTING_NUMBER",
    "SSN",
    "RedactionPolicy",
    "Redactor",
    "guard_card_numbers",
    "luhn_valid",
    "safe_redact",
]

log = logging.getLogger(__name__)

CARD_NUMBER = "[CARD_NUMBER]"
CVV = "[CVV]"
CARD_EXPIRY = "[CARD_EXPIRY]"
SSN = "[SSN]"
BANK_ACCOUNT = "[BANK_ACCOUNT]"
ROUTING_NUMBER = "[ROUTING_NUMBER]"
DATE_OF_BIRTH = "[DATE_OF_BIRTH]"
REDACTED = "[REDACTED]"
"""What `safe_redact` returns when redaction itself failed: the whole utterance is withheld."""

_CARD_WORDS_RE = re.compile(
    r"\b(?:cards?|credit|debit|visa|master ?card|amex|american express|discover card|"
    r"card number|long number|payment details)\b",
    re.IGNORECASE,
)
_CVV_WORDS_RE = re.compile(
    r"\b(?:cvv2?|cvc2?|cid|security (?:code|number)|verification (?:code|number)|"
    r"(?:three|3|four|4)[- ]digit code|code on the back)\b",
    re.IGNORECASE,
)
_EXPIRY_WORDS_RE = re.compile(
    r"\b(?:expir\w*|exp|valid (?:thru|through|until|till)|good (?:thru|through|until|till))\b",
    re.IGNORECASE,
)
_MONTHS = (
    "jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    "sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?"
)
_MONTH_WORD_RE = re.compile(rf"\b(?:{_MONTHS})\W*$", re.IGNORECASE)
_SLASH_EXPIRY_RE = re.compile(r"(?<![\d/])(?:0?[1-9]|1[0-2])\s*/\s*(?:\d{2}|20\d{2})(?![\d/])")
_WORD_RE = re.compile(r"[^\W\d_]+")
_PUNCT_GAP_RE = re.compile(r"[\s,.;:/-]*")

_ORDER_CUES = frozenset({"order", "orders", "confirmation", "reference", "ref", "ticket", "case"})
_PHONE_CUES = frozenset({"phone", "cell", "mobile", "call", "reach", "callback", "landline", "telephone"})
_TRACKING_CUES = frozenset({"tracking", "shipment", "parcel", "package", "waybill"})

# How far (characters) a CVV/expiry word reaches to the number it names.
_CUE_REACH_BEFORE = 60
_CUE_REACH_AFTER = 30
_LONG_RUN = 12


@dataclass(frozen=True, slots=True)
class RedactionPolicy:
    """What a tenant masks besides payment cards (cards are always masked)."""

    ssn: bool = True
    bank: bool = True
    date_of_birth: bool = True


_SSN_SHAPE_RE = re.compile(r"(?<![\d-])\d{3}-\d{2}-\d{4}(?![\d-])")
_SSN_CUE_RE = re.compile(r"\b(?:social security(?: number)?|ssn|social|s s n)\b", re.IGNORECASE)
_BANK_WORDS_RE = re.compile(
    r"\b(?:routing|aba|checking|savings|bank(?:ing)? (?:account|details)|iban|sort code|direct deposit|wire)\b",
    re.IGNORECASE,
)
_ROUTING_CUE_RE = re.compile(r"\b(?:routing|aba|transit)(?: number)?\b", re.IGNORECASE)
_BANK_ACCOUNT_CUE_RE = re.compile(r"\b(?:account|acct|iban)(?: number| no)?\b", re.IGNORECASE)
_DOB_CUE_RE = re.compile(
    r"\b(?:date of birth|d\.? ?o\.? ?b\.?|born(?: on| in)?|birthday|birth date)\b", re.IGNORECASE
)
_DATE_TOKEN_RE = re.compile(
    rf"(?:\s|,|/|-|\.)*(?:\d{{1,4}}(?:st|nd|rd|th)?|{_MONTHS}|the|of|is|was|on|oh|"
    r"first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|twelfth|thirteenth|"
    r"fourteenth|fifteenth|sixteenth|seventeenth|eighteenth|nineteenth|twentieth|thirtieth|"
    r"one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|"
    r"sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|"
    r"hundred|thousand)\b",
    re.IGNORECASE,
)
_DATE_FILLER = frozenset({"the", "of", "is", "was", "on"})
_CUE_REACH_PERSONAL = 40


def _cue_before(regex: re.Pattern[str], text: str, pos: int) -> bool:
    return any(0 <= pos - m.end() <= _CUE_REACH_PERSONAL for m in regex.finditer(text[:pos]))


def _personal_masks(text: str, policy: RedactionPolicy) -> list[tuple[int, int, str]]:
    """SSNs, bank details and dates of birth in one utterance (rules 4-6)."""
    masks: list[tuple[int, int, str]] = []
    if policy.ssn:
        masks += [(m.start(), m.end(), SSN) for m in _SSN_SHAPE_RE.finditer(text)]
    spans = [s for s in find_numbers(text) if s.kind is NumberKind.DIGITS]
    bank = policy.bank and _BANK_WORDS_RE.search(text) is not None
    for span in spans:
        if _overlaps(span.start, span.end, masks):
            continue
        n = len(span.value)
        if policy.ssn and n == 9 and _cue_before(_SSN_CUE_RE, text, span.start):
            masks.append((span.start, span.end, SSN))
        elif bank and n == 9 and _cue_before(_ROUTING_CUE_RE, text, span.start):
            masks.append((span.start, span.end, ROUTING_NUMBER))
        elif bank and 4 <= n <= 17 and _cue_before(_BANK_ACCOUNT_CUE_RE, text, span.start):
            masks.append((span.start, span.end, BANK_ACCOUNT))
    if policy.date_of_birth:
        for cue in _DOB_CUE_RE.finditer(text):
            pos, start, end = cue.end(), -1, cue.end()
            while (m := _DATE_TOKEN_RE.match(text, pos)) is not None and m.end() > pos:
                word = m.group(0).strip(" ,/-.").lower()
                if word not in _DATE_FILLER:
                    if start < 0:
                        start = m.end() - len(m.group(0).lstrip(" ,/-."))
                    end = m.end()
                pos = m.end()
            if start >= 0:
                masks.append((start, end, DATE_OF_BIRTH))
    return masks


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum every payment card number satisfies."""
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _is_card(digits: str) -> bool:
    return 13 <= len(digits) <= 19 and luhn_valid(digits)


@dataclass(slots=True)
class _SpeakerState:
    """What the finished utterances of one speaker imply for the next ones."""

    # Final utterances of this speaker still in payment context.
    window: int = 0
    # The last payment words asked for these (so "one two three" after
    # "what's the security code?" is a CVV, not a card fragment).
    expect_cvv: bool = False
    expect_expiry: bool = False
    # Digits the last final utterance ended with, for a card split over two.
    tail_digits: str = ""


@dataclass(slots=True)
class _Analysis:
    masks: list[tuple[int, int, str]] = field(default_factory=list)
    payment_words: bool = False
    cvv_words: bool = False
    expiry_words: bool = False
    masked_card: bool = False
    tail_digits: str = ""


class Redactor:
    """Masks card numbers, CVVs and expiry dates in one call's transcript.

    One instance per call: it remembers, per speaker, whether the
    conversation is in the middle of a card being read out.
    """

    def __init__(self, *, window: int = 2, policy: RedactionPolicy | None = None) -> None:
        """`window`: how many following final utterances of each speaker stay in
        payment context after payment words; `policy`: what else is masked."""
        self._window = window
        self._policy = policy or RedactionPolicy()
        self._speakers: dict[int, _SpeakerState] = {}

    def _state(self, role: int) -> _SpeakerState:
        return self._speakers.setdefault(role, _SpeakerState())

    def redact(self, text: str, *, role: common_pb2.SpeakerRole.ValueType, is_final: bool) -> str:
        """`text` with card data replaced by placeholders.

        Interim text is judged against the state left by earlier final
        utterances and does not change it; final text updates it.
        """
        state = self._state(int(role))
        personal = _personal_masks(text, self._policy)
        analysis = self._analyse(text, state)
        if is_final:
            self._commit(int(role), state, analysis)
        # A number that is an SSN or bank detail keeps that label, not a card's.
        cards = [m for m in analysis.masks if not _overlaps(m[0], m[1], personal)]
        return _apply(text, personal + cards)

    # -- analysis ---------------------------------------------------------------

    def _analyse(self, text: str, state: _SpeakerState) -> _Analysis:
        a = _Analysis()
        card_cues = [m.start() for m in _CARD_WORDS_RE.finditer(text)]
        cvv_cues = [(m.start(), m.end()) for m in _CVV_WORDS_RE.finditer(text)]
        expiry_cues = [m.end() for m in _EXPIRY_WORDS_RE.finditer(text)]
        a.cvv_words = bool(cvv_cues)
        a.expiry_words = bool(expiry_cues)
        a.payment_words = bool(card_cues or cvv_cues or expiry_cues)
        in_context = state.window > 0 or a.payment_words

        def nearest_cue(start: int, end: int) -> str | None:
            """The CVV or expiry cue closest to a number ("expires 12/27, CVV 123")."""
            best: tuple[int, str] | None = None
            for c_end in expiry_cues:
                if 0 <= start - c_end <= _CUE_REACH_BEFORE:
                    best = min(best or (start - c_end, CARD_EXPIRY), (start - c_end, CARD_EXPIRY))
            for c_start, c_end in cvv_cues:
                if 0 <= start - c_end <= _CUE_REACH_BEFORE:
                    best = min(best or (start - c_end, CVV), (start - c_end, CVV))
                elif 0 <= c_start - end <= _CUE_REACH_AFTER:  # "123 is the security code"
                    best = min(best or (c_start - end, CVV), (c_start - end, CVV))
            if best is not None:
                return best[1]
            if not a.payment_words:  # the last utterance asked for it
                if state.expect_expiry:
                    return CARD_EXPIRY
                if state.expect_cvv:
                    return CVV
            return None

        # Written expiry dates first: "12/27" would otherwise read as two numbers.
        for m in _SLASH_EXPIRY_RE.finditer(text):
            if in_context or nearest_cue(m.start(), m.end()) == CARD_EXPIRY:
                a.masks.append((m.start(), m.end(), CARD_EXPIRY))

        numbers = find_numbers(text)
        # "expires 12.27": a recogniser may write an expiry as a decimal.
        for span in numbers:
            if span.kind is NumberKind.NUMBER and nearest_cue(span.start, span.end) == CARD_EXPIRY:
                a.masks.append((span.start, span.end, CARD_EXPIRY))
        spans = [s for s in numbers if s.kind is NumberKind.DIGITS]

        def cues_before(pos: int) -> tuple[bool, bool, bool]:
            before = {w.lower() for w in _WORD_RE.findall(text[:pos])[-4:]}
            return bool(before & _ORDER_CUES), bool(before & _TRACKING_CUES), bool(before & _PHONE_CUES)

        # "4111, 1111, 1111, 1111": groups split only by punctuation are read as one
        # number for the card checks (the number parser keeps them apart, rightly so
        # for order numbers).
        unmasked = [s for s in spans if not _overlaps(s.start, s.end, a.masks)]
        for group in _punctuated_groups(text, unmasked):
            digits = "".join(s.value for s in group)
            order_cue, tracking_cue, _ = cues_before(group[0].start)
            if _is_card(digits) or (len(digits) >= _LONG_RUN and not (order_cue or tracking_cue)):
                a.masks.append((group[0].start, group[-1].end, CARD_NUMBER))
                a.masked_card = True

        for idx, span in enumerate(spans):
            if _overlaps(span.start, span.end, a.masks):
                continue
            digits = span.value
            n = len(digits)
            order_cue, tracking_cue, phone_cue = cues_before(span.start)
            cue = nearest_cue(span.start, span.end)

            placeholder: str | None = None
            start = span.start
            if _is_card(digits):
                placeholder = CARD_NUMBER
            elif idx == 0 and state.tail_digits and _is_card(state.tail_digits + digits) and not order_cue:
                placeholder = CARD_NUMBER  # the rest of a card begun in the last utterance
            elif n >= _LONG_RUN and not (tracking_cue or order_cue):
                placeholder = CARD_NUMBER
            elif (order_cue and 5 <= n <= 10) or (phone_cue and n in (10, 11)):
                pass  # "order 78901" and "call me on 555..." stay readable even while paying
            elif cue == CARD_EXPIRY and n <= 6:
                # "twelve twenty seven", "oh nine ... twenty eight", "December 2027"
                placeholder = CARD_EXPIRY
                month = _MONTH_WORD_RE.search(text[: span.start])
                if month is not None:
                    start = month.start()
            elif cue == CVV and n <= 4:
                placeholder = CVV
            elif in_context or a.masked_card:
                if n >= 4:
                    placeholder = CARD_NUMBER
                elif n == 3:
                    placeholder = CVV
            if placeholder is not None:
                a.masks.append((start, span.end, placeholder))
                a.masked_card = a.masked_card or placeholder == CARD_NUMBER

        if spans and not any(cues_before(spans[-1].start)[::2]):  # not an order or phone number
            a.tail_digits = _tail_digits(text, spans)
        return a

    def _commit(self, role: int, state: _SpeakerState, a: _Analysis) -> None:
        if a.payment_words:
            # Either party's payment words put both in context: the agent asks
            # "what's the card number?", the customer answers; the customer says
            # "my visa", the agent reads it back.
            roles = {role, int(common_pb2.SPEAKER_ROLE_CUSTOMER), int(common_pb2.SPEAKER_ROLE_AGENT)}
            for r in roles:
                other = self._state(r)
                if r != role:
                    other.window = self._window
                    other.expect_cvv = a.cvv_words
                    other.expect_expiry = a.expiry_words
            state.window = self._window
            state.expect_cvv = a.cvv_words
            state.expect_expiry = a.expiry_words
        elif a.masked_card:
            state.window = self._window  # still reading digits out
            state.expect_cvv = state.expect_expiry = False
        else:
            state.window = max(0, state.window - 1)
            state.expect_cvv = state.expect_expiry = False
        state.tail_digits = a.tail_digits


def _overlaps(start: int, end: int, masks: list[tuple[int, int, str]]) -> bool:
    return any(start < m_end and m_start < end for m_start, m_end, _ in masks)


def _punctuated_groups(text: str, spans: list[NumberSpan]) -> list[list[NumberSpan]]:
    """Runs of two or more digit spans with nothing but punctuation between them."""
    groups: list[list[NumberSpan]] = []
    current: list[NumberSpan] = []
    for span in spans:
        if current and _PUNCT_GAP_RE.fullmatch(text[current[-1].end : span.start]):
            current.append(span)
            continue
        if len(current) > 1:
            groups.append(current)
        current = [span]
    if len(current) > 1:
        groups.append(current)
    return groups


def _tail_digits(text: str, spans: list[NumberSpan]) -> str:
    """The digits an utterance ends with, if it ends mid-number ("... 4111 1111")."""
    if not spans:
        return ""
    last = spans[-1]
    # 10+ digits are a phone number or already masked as a card, not half a card.
    if text[last.end :].strip(" \t.,;:!?-") or not 4 <= len(last.value) <= 9:
        return ""
    return last.value


def _apply(text: str, masks: list[tuple[int, int, str]]) -> str:
    """Replace the masked spans; overlapping spans merge (the first placeholder wins)."""
    merged: list[tuple[int, int, str]] = []
    for start, end, placeholder in sorted(masks):
        if merged and start < merged[-1][1]:
            m_start, m_end, m_placeholder = merged[-1]
            merged[-1] = (m_start, max(m_end, end), m_placeholder)
        else:
            merged.append((start, end, placeholder))
    out: list[str] = []
    pos = 0
    for start, end, placeholder in merged:
        out += [text[pos:start], placeholder]
        pos = end
    out.append(text[pos:])
    return "".join(out)


def safe_redact(
    redactor: Redactor, text: str, *, role: common_pb2.SpeakerRole.ValueType, is_final: bool
) -> str:
    """`redactor.redact`, failing closed: if redaction raises, the whole
    utterance is withheld as "[REDACTED]" rather than passed on unmasked."""
    try:
        return redactor.redact(text, role=role, is_final=is_final)
    except Exception:
        log.exception("redaction failed; withholding the utterance")
        return REDACTED


_CARD_RUN_RE = re.compile(r"(?<![\d])\d(?:[ -]?\d){12,18}(?![\d])")


def guard_card_numbers(text: str) -> str:
    """Mask any Luhn-valid 13-19 digit number (spaces and dashes allowed)."""

    def mask(m: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", m.group(0))
        return CARD_NUMBER if 13 <= len(digits) <= 19 and luhn_valid(digits) else m.group(0)

    return _CARD_RUN_RE.sub(mask, text)
