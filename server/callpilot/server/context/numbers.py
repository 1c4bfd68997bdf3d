"""Spoken and written numbers in a transcript, normalised to digits.

Callers read order, card and phone numbers aloud in every style at once:
"7-8-901", "seven eight nine oh one", "double five", "78 901", "seventy eight
nine oh one". Speech recognisers render the same number differently from one
utterance to the next, so everything that needs the digits (entity extraction,
customer identification, card-number redaction) reads them through this one
module instead of re-inventing its own regular expressions. The transcript
itself is never rewritten here: every result carries the character span of
what was said, so callers decide what to replace.

The rules, kept deliberately small:

* A *digit run* is a maximal stretch of number tokens (written digit groups,
  digit words, "oh", "double"/"triple", cardinals such as "seventy eight")
  separated by nothing but spaces, dashes or, between spoken digits, commas.
  Its pieces are concatenated: "78 901" and "seven eight nine oh one" both read
  "78901". Any other word ends the run, so "2 items for order 78901" keeps the
  2 apart.
* Inside a run, words are read greedily as cardinals ("a hundred and twenty
  nine" is 129) and a cardinal ends where it could not continue ("seventy eight
  nine" is 78 then 9), which is how people read digits in pairs.
* Money is a number next to a currency sign or word ("$129.99",
  "129 dollars 99 cents", "a hundred and twenty nine dollars") and is
  normalised to a two-decimal string ("129.99", "129.00").
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

__all__ = [
    "NumberKind",
    "NumberSpan",
    "Piece",
    "find_numbers",
    "normalise_numbers",
]


class NumberKind(enum.Enum):
    """What a number span is."""

    # A string of digits: an identifier read out (order, phone or card number) or a count.
    DIGITS = "digits"
    # A written quantity that is not an identifier: "3.5", "1,299".
    NUMBER = "number"
    # An amount of money; `value` has two decimals.
    MONEY = "money"


@dataclass(frozen=True, slots=True)
class Piece:
    """One part of a digit run as said: a written group or a spoken phrase.

    Redaction needs pieces, not just the joined digits, to find where a card
    number starts and ends inside a longer run ("4111 1111 1111 1111 123").
    """

    digits: str
    start: int
    end: int
    spoken: bool


@dataclass(frozen=True, slots=True)
class NumberSpan:
    """A number found in a text, with its normalised value and where it was said."""

    kind: NumberKind
    # Digits for DIGITS, a decimal string for NUMBER and MONEY ("129.99").
    value: str
    # Character offsets into the original text; text[start:end] == self.text.
    start: int
    end: int
    text: str
    # For DIGITS: the parts it was joined from, in order.
    pieces: tuple[Piece, ...] = ()
    # For MONEY: ISO 4217 code ("USD").
    currency: str = ""


# --- vocabulary --------------------------------------------------------------

_UNITS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
    "six": 6, "seven": 7, "eight": 8, "nine": 9,
}  # fmt: skip
_TEENS = {
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
_TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fourty": 40, "fifty": 50,
    "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
}  # fmt: skip
_SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}
_ZEROS = {"zero", "oh", "o", "nought"}
# "oh" and "o" are ordinary words too ("oh, I see"); they only count as zero
# next to another number token.
_AMBIGUOUS_ZEROS = {"oh", "o"}
_REPEATS = {"double": 2, "triple": 3}
_CURRENCY_SYMBOLS = {"$": "USD", "€": "EUR", "£": "GBP"}
_CURRENCY_WORDS = {
    "dollar": "USD", "dollars": "USD", "buck": "USD", "bucks": "USD", "usd": "USD",
    "euro": "EUR", "euros": "EUR", "eur": "EUR",
    "pound": "GBP", "pounds": "GBP", "quid": "GBP", "gbp": "GBP",
}  # fmt: skip
_CURRENCY_CODES = {"usd", "eur", "gbp"}
_CENT_WORDS = {"cent", "cents", "penny", "pence"}
_SYMBOL_FOR = {"USD": "$", "EUR": "€", "GBP": "£"}

_TOKEN_RE = re.compile(
    r"""
    (?P<date>\d{4}-\d{2}-\d{2})                      # ISO dates are not numbers to join
    |(?P<thousands>\d{1,3}(?:,\d{3})+(?:\.\d+)?)     # 1,299 or 1,299.00
    |(?P<decimal>\d+\.\d{1,2}(?![\d.]))              # 129.99, 3.5
    |(?P<digits>\d+(?:[-.]\d+)*)                     # 78901, 7-8-901, 555.010.0101
    |(?P<word>[^\W\d_]+(?:['\u2019][^\W\d_]+)*)            # words, with apostrophes
    |(?P<sym>[$€£])
    |(?P<punct>\S)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # date | thousands | decimal | digits | word | sym | punct
    text: str
    lower: str
    start: int
    end: int


def _tokenise(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    for m in _TOKEN_RE.finditer(text):
        kind = m.lastgroup or "punct"
        tokens.append(_Token(kind, m.group(), m.group().lower().replace("\u2019", "'"), m.start(), m.end()))
    return tokens


def _is_digit_word(tok: _Token) -> bool:
    """A word that is a digit on its own (for "double five", "oh" neighbours)."""
    return tok.kind == "word" and (tok.lower in _UNITS or tok.lower in _ZEROS)


def _is_plain_number_word(tok: _Token) -> bool:
    w = tok.lower
    return tok.kind == "word" and (
        w in _UNITS or w in _TEENS or w in _TENS or (w in _ZEROS and w not in _AMBIGUOUS_ZEROS)
    )


# --- digit runs --------------------------------------------------------------


class _Atoms:
    """Decides which tokens belong to digit runs, with one token of look-around."""

    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens

    def _next_word(self, i: int) -> _Token | None:
        # The next non-separator token after i (dashes and commas are transparent).
        j = i + 1
        while j < len(self.tokens) and self.tokens[j].kind == "punct" and self.tokens[j].text in "-,":
            j += 1
        return self.tokens[j] if j < len(self.tokens) else None

    def is_atom(self, i: int, prev_is_atom: bool, prev: _Token | None) -> bool:
        tok = self.tokens[i]
        if tok.kind == "digits":
            return True
        if tok.kind != "word":
            return False
        w = tok.lower
        nxt = self._next_word(i)
        if _is_plain_number_word(tok):
            return True
        if w in _AMBIGUOUS_ZEROS:
            if prev_is_atom:
                return True
            # Look past further "oh"s: "oh oh seven".
            j = i
            while nxt is not None and nxt.kind == "word" and nxt.lower in _AMBIGUOUS_ZEROS:
                j = self.tokens.index(nxt, j + 1)
                nxt = self._next_word(j)
            return nxt is not None and (
                _is_plain_number_word(nxt) or nxt.kind == "digits" or nxt.lower in _REPEATS
            )
        if w in _REPEATS:
            return nxt is not None and (_is_digit_word(nxt) or (nxt.kind == "digits" and len(nxt.text) == 1))
        if w in ("a", "an"):
            return nxt is not None and nxt.kind == "word" and nxt.lower in ("hundred", "thousand")
        if w in _SCALES:
            return prev_is_atom
        if w == "and":
            return (
                prev_is_atom
                and prev is not None
                and prev.lower in _SCALES
                and nxt is not None
                and nxt.kind == "word"
                and (nxt.lower in _UNITS or nxt.lower in _TEENS or nxt.lower in _TENS)
            )
        return False


def _separator_ok(sep: list[_Token], left: _Token, right: _Token) -> bool:
    """Whether the punctuation between two number tokens keeps them in one run."""
    for s in sep:
        if s.text == "-":
            continue
        if s.text == ",":
            # "seven, eight, nine" is one number; "78901, 2 of them" is two.
            if (left.kind == "digits" and len(left.text) > 1) or (
                right.kind == "digits" and len(right.text) > 1
            ):
                return False
            continue
        if s.text in "()" and left.kind == "digits" and right.kind == "digits":
            continue  # "(555) 010-0101"
        return False
    return True


def _runs(tokens: list[_Token]) -> list[list[_Token]]:
    atoms = _Atoms(tokens)
    runs: list[list[_Token]] = []
    current: list[_Token] = []
    pending_sep: list[_Token] = []
    for i, tok in enumerate(tokens):
        prev = current[-1] if current else None
        if atoms.is_atom(i, bool(current), prev):
            if current and prev is not None and not _separator_ok(pending_sep, prev, tok):
                runs.append(current)
                current = []
            current.append(tok)
            pending_sep = []
        elif current and tok.kind == "punct" and tok.text in "-,()":
            pending_sep.append(tok)
        else:
            if current:
                runs.append(current)
            current = []
            pending_sep = []
    if current:
        runs.append(current)
    trimmed = (_trim(r) for r in runs)
    return [r for r in trimmed if r]


def _trim(run: list[_Token]) -> list[_Token]:
    # A run cannot end in a connective ("a", "and") left dangling by look-ahead.
    while run and run[-1].lower in ("a", "an", "and"):
        run = run[:-1]
    return run


def _written_digits(tok: _Token) -> str:
    return re.sub(r"\D", "", tok.text)


def _read_cardinal(run: list[_Token], i: int) -> tuple[int, int]:
    """Read a cardinal from run[i:], greedily; returns (value, next index).

    Returns next index == i when run[i] cannot start a cardinal.
    """
    total = 0
    current = 0
    last: str | None = None
    top_scale = 10**12
    j = i
    while j < len(run):
        tok = run[j]
        w = tok.lower
        if tok.kind == "digits":
            # A short written number can start a cardinal: "5 hundred".
            nxt = run[j + 1].lower if j + 1 < len(run) else ""
            if last is None and nxt in _SCALES and len(tok.text) <= 3:
                current = int(tok.text)
                last = "unit"
                j += 1
                continue
            break
        if w in ("a", "an") and last is None:
            current, last = 1, "unit"
        elif w in _UNITS:
            if last not in (None, "tens", "hundred", "scale", "and"):
                break
            current += _UNITS[w]
            last = "unit"
        elif w in _TEENS or w in _TENS:
            if last not in (None, "hundred", "scale", "and"):
                break
            current += _TEENS.get(w) or _TENS[w]
            last = "tens" if w in _TENS else "teen"
        elif w == "hundred":
            if last not in ("unit", "teen", "tens") or not 0 < current < 100:
                break
            current *= 100
            last = "hundred"
        elif w in _SCALES:
            scale = _SCALES[w]
            if last not in ("unit", "teen", "tens", "hundred") or current == 0 or scale >= top_scale:
                break
            total += current * scale
            current = 0
            top_scale = scale
            last = "scale"
        elif w == "and" and last in ("hundred", "scale"):
            last = "and"
        else:
            break
        j += 1
    if last == "and":  # do not swallow a trailing connective
        j -= 1
    if j == i:
        return 0, i
    return total + current, j


def _pieces(run: list[_Token]) -> list[Piece]:
    pieces: list[Piece] = []
    i = 0
    while i < len(run):
        tok = run[i]
        w = tok.lower
        if tok.kind == "digits" and not (
            i + 1 < len(run) and run[i + 1].lower in _SCALES and len(tok.text) <= 3
        ):
            pieces.append(Piece(_written_digits(tok), tok.start, tok.end, spoken=False))
            i += 1
        elif w in _REPEATS and i + 1 < len(run):
            nxt = run[i + 1]
            digit = "0" if nxt.lower in _ZEROS else str(_UNITS.get(nxt.lower, "")) or _written_digits(nxt)
            pieces.append(Piece(digit * _REPEATS[w], tok.start, nxt.end, spoken=True))
            i += 2
        elif w in _ZEROS:
            pieces.append(Piece("0", tok.start, tok.end, spoken=True))
            i += 1
        else:
            value, j = _read_cardinal(run, i)
            if j == i:  # a stray connective; skip it
                i += 1
                continue
            pieces.append(Piece(str(value), tok.start, run[j - 1].end, spoken=True))
            i = j
    return pieces


# --- money -------------------------------------------------------------------


def _money_value(whole: str, cents: str = "") -> str:
    whole = whole.lstrip("0") or "0"
    cents = (cents + "00")[:2] if cents else "00"
    return f"{whole}.{cents}"


@dataclass(slots=True)
class _Num:
    """A number-like item in token order: a digit run or a written quantity."""

    kind: NumberKind
    value: str
    first: int  # token indices, inclusive
    last: int
    pieces: tuple[Piece, ...] = ()


def _split_dollars_cents(num: _Num) -> tuple[str, str]:
    """Read a run before a currency word: "twenty nine ninety nine dollars" is 29.99."""
    if num.kind is not NumberKind.DIGITS:
        whole, _, frac = num.value.partition(".")
        return whole, frac
    p = num.pieces
    if len(p) >= 2 and p[-1].spoken and len(p[-1].digits) == 2 and all(x.spoken for x in p):
        return "".join(x.digits for x in p[:-1]), p[-1].digits
    return num.value, ""


def find_numbers(text: str) -> list[NumberSpan]:
    """Every digit run, written quantity and amount of money in `text`, in order."""
    tokens = _tokenise(text)
    index = {id(t): k for k, t in enumerate(tokens)}
    nums: list[_Num] = []
    for run in _runs(tokens):
        if len(run) == 1 and run[0].lower == "one":
            continue  # "the blue one" is a pronoun, not a number
        pieces = tuple(_pieces(run))
        if not pieces:
            continue
        first, last = index[id(run[0])], index[id(run[-1])]
        if first > 0 and tokens[first - 1].text == "(" and any(t.text == ")" for t in tokens[first:last]):
            first -= 1  # "(555) 010-0101" keeps its opening bracket
        nums.append(_Num(NumberKind.DIGITS, "".join(p.digits for p in pieces), first, last, pieces))
    for k, tok in enumerate(tokens):
        if tok.kind in ("thousands", "decimal"):
            nums.append(_Num(NumberKind.NUMBER, tok.text.replace(",", ""), k, k))
    nums.sort(key=lambda n: n.first)

    def word_at(k: int) -> str:
        return tokens[k].lower if 0 <= k < len(tokens) else ""

    by_first = {n.first: n for n in nums}
    spans: list[NumberSpan] = []
    consumed: set[int] = set()
    for n_idx, num in enumerate(nums):
        if n_idx in consumed:
            continue
        first, last = num.first, num.last
        currency = ""
        whole, cents = num.value, ""
        money = False
        # "$129.99" or "USD 129.99": a currency sign or code right before the number.
        if first > 0 and (tokens[first - 1].kind == "sym" or tokens[first - 1].lower in _CURRENCY_CODES):
            currency = _CURRENCY_SYMBOLS.get(tokens[first - 1].text) or tokens[first - 1].lower.upper()
            first -= 1
            whole, _, cents = (
                num.value.partition(".") if num.kind is NumberKind.NUMBER else (num.value, "", "")
            )
            money = True
        # "129 dollars [and] 99 cents" / "twenty nine ninety nine dollars".
        if word_at(last + 1) in _CURRENCY_WORDS:
            currency = currency or _CURRENCY_WORDS[word_at(last + 1)]
            if not money:
                whole, cents = _split_dollars_cents(num)
            money = True
            last += 1
            k = last + 1
            if word_at(k) == "and":
                k += 1
            cent_num = by_first.get(k)
            if (
                cent_num is not None
                and cent_num.kind is NumberKind.DIGITS
                and word_at(cent_num.last + 1) in _CENT_WORDS
            ):
                cents = cent_num.value.zfill(2)[-2:]
                last = cent_num.last + 1
                consumed.add(nums.index(cent_num))
        elif word_at(last + 1) in _CENT_WORDS and not money and num.kind is NumberKind.DIGITS:
            # "99 cents" on its own.
            whole, cents, currency, money = "0", num.value.zfill(2)[-2:], "USD", True
            last += 1
        start, end = tokens[first].start, tokens[last].end
        if money:
            spans.append(
                NumberSpan(
                    NumberKind.MONEY, _money_value(whole, cents), start, end, text[start:end], (), currency
                )
            )
        else:
            spans.append(NumberSpan(num.kind, num.value, start, end, text[start:end], num.pieces))
    return spans


def normalise_numbers(text: str) -> str:
    """`text` with every number rewritten as digits: what the context engine reads.

    Digit runs become their digits ("seven eight nine oh one" -> "78901"),
    money becomes its sign and two-decimal value ("129 dollars 99 cents" ->
    "$129.99"), so later regular expressions see one spelling per value.
    """
    out: list[str] = []
    pos = 0
    for span in find_numbers(text):
        out.append(text[pos : span.start])
        if span.kind is NumberKind.MONEY:
            out.append(_SYMBOL_FOR.get(span.currency, "") + span.value)
        else:
            out.append(span.value)
        pos = span.end
    out.append(text[pos:])
    return "".join(out)
