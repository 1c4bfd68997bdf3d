"""Knowledge-base ranking: BM25 over article title, tags and body, in Python.

A knowledge base of a contact center holds hundreds to a few thousand short
articles, so an in-memory index rebuilt when the articles change is both
fast enough and identical on SQLite and PostgreSQL (whose full-text search
SQLite lacks). Titles and tags say what an article is about more reliably
than its body, so their terms are counted several times (a simple BM25F).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

TITLE_WEIGHT = 3
TAG_WEIGHT = 3
BODY_WEIGHT = 1
K1 = 1.2
B = 0.75
# Related words count for less than the words actually said.
SYNONYM_WEIGHT = 0.5
SNIPPET_MAX_CHARS = 300

# Words that carry no topic in a caller's question ("can I get a refund to
# my card" is about "refund" and "card").
_STOPWORDS_TEXT = """
a about after again all also am an and any are as at be been before being but by can
could did do does doing done for from get got had has have having he her here hers him
his how i if in into is it its just me might more most much must my no nor not now of
off on once only or other our ours out over own please same she should so some such than
that the their theirs them then there these they this those through to too under until
up us very want was we were what when where which while who whom why will with would you
your yours
"""
STOPWORDS = frozenset(_STOPWORDS_TEXT.split())

# How callers say things vs. how articles are written. Small on purpose: it
# only bridges the gaps plain word matching cannot ("money back" -> refund).
_RELATED_WORDS = {
    "money": "refund",
    "reimburse": "refund",
    "reimbursement": "refund",
    "charged": "billing payment",
    "charge": "billing payment",
    "invoice": "billing",
    "bill": "billing",
    "parcel": "package delivery",
    "package": "delivery",
    "arrived": "delivery",
    "delivered": "delivery",
    "delivery": "delivered",
    "late": "delivery tracking",
    "delayed": "delivery tracking",
    "broken": "defective damaged",
    "faulty": "defective",
    "working": "defective",
    "cracked": "damaged",
    "login": "password account",
    "log": "login password",
    "sign": "login",
    "earphones": "headphones",
    "headset": "headphones",
    "earbuds": "headphones",
    "exchange": "replacement return",
    "guarantee": "warranty",
}

_TOKEN_RE = re.compile(r"[a-z0-9]+")
_SENTENCE_RE = re.compile(r"(?<=[.!?])\s+|\n+")
_VOWELS = frozenset("aeiouy")


def fold(text: str) -> str:
    """Lower-case and strip accents, so "José" and "jose" compare equal."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def stem(word: str) -> str:
    """A deliberately small suffix stripper.

    It only has to make the inflections callers actually use meet their base
    form ("refunds", "refunded", "refunding" -> "refund"; "shipped",
    "shipping" -> "ship"); the same function runs on documents and queries,
    so over-stemming is harmless as long as it is consistent.
    """
    if len(word) <= 3 or word.isdigit():
        return word
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith("sses"):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for suffix in ("ation", "ing", "ive", "ed"):
        base = word[: -len(suffix)]
        if word.endswith(suffix) and len(base) >= 3 and _VOWELS.intersection(base):
            word = base
            break
    if word.endswith("e") and len(word) > 4:
        word = word[:-1]
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in _VOWELS:
        word = word[:-1]
    return word


def tokenize(text: str) -> list[str]:
    """Stemmed content words of `text`, in order."""
    return [stem(tok) for tok in _TOKEN_RE.findall(fold(text)) if len(tok) > 1 and tok not in STOPWORDS]


RELATED: dict[str, tuple[str, ...]] = {
    stem(word): tuple(stem(w) for w in related.split()) for word, related in _RELATED_WORDS.items()
}


def query_terms(query: str) -> dict[str, float]:
    """The query's terms with their weights: 1 for words said, less for related words."""
    weights: dict[str, float] = {}
    for term in tokenize(query):
        weights[term] = 1.0
    for term in list(weights):
        for related in RELATED.get(term, ()):
            weights.setdefault(related, SYNONYM_WEIGHT)
    return weights


def sentences(text: str) -> list[str]:
    """`text` split into sentences (and lines), blanks dropped."""
    return [s.strip() for s in _SENTENCE_RE.split(text) if s.strip()]


@dataclass(frozen=True, slots=True)
class Document:
    """What the index needs of an article; the store maps rows to these."""

    doc_id: str
    title: str
    body: str
    tags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Hit:
    doc: Document
    score: float
    snippet: str


class KnowledgeIndex:
    """An immutable BM25 index over a set of documents."""

    def __init__(self, docs: Iterable[Document]) -> None:
        self._docs: list[Document] = sorted(docs, key=lambda d: d.doc_id)
        self._tfs: list[Counter[str]] = []
        self._lengths: list[int] = []
        df: Counter[str] = Counter()
        for doc in self._docs:
            terms = (
                tokenize(doc.title) * TITLE_WEIGHT
                + [t for tag in doc.tags for t in tokenize(tag)] * TAG_WEIGHT
                + tokenize(doc.body) * BODY_WEIGHT
            )
            tf = Counter(terms)
            self._tfs.append(tf)
            self._lengths.append(len(terms))
            df.update(tf.keys())
        n = len(self._docs)
        self._avg_length = (sum(self._lengths) / n) if n else 0.0
        # The "+1" form keeps idf positive even for terms in most documents.
        self._idf = {term: math.log(1.0 + (n - count + 0.5) / (count + 0.5)) for term, count in df.items()}

    def __len__(self) -> int:
        return len(self._docs)

    def search(self, query: str, limit: int) -> list[Hit]:
        """The best `limit` documents for `query`, best first; ties by id."""
        terms = {t: w for t, w in query_terms(query).items() if t in self._idf}
        if not terms or limit <= 0:
            return []
        scored: list[tuple[float, int]] = []
        for i, tf in enumerate(self._tfs):
            score = 0.0
            norm = K1 * (1.0 - B + B * self._lengths[i] / self._avg_length)
            for term, weight in terms.items():
                freq = tf.get(term, 0)
                if freq:
                    score += weight * self._idf[term] * freq * (K1 + 1.0) / (freq + norm)
            if score > 0.0:
                scored.append((score, i))
        scored.sort(key=lambda si: (-si[0], self._docs[si[1]].doc_id))
        return [
            Hit(doc=self._docs[i], score=score, snippet=self._snippet(self._docs[i], terms))
            for score, i in scored[:limit]
        ]

    def _snippet(self, doc: Document, terms: Mapping[str, float]) -> str:
        """The body sentence that covers the most informative query terms.

        Falls back to the first sentence when only the title or tags matched,
        since that sentence usually states what the article is about.
        """
        candidates = sentences(doc.body)
        if not candidates:
            return ""
        best, best_score = candidates[0], 0.0
        for sentence in candidates:
            score = sum(terms[t] * self._idf[t] for t in set(tokenize(sentence)) if t in terms)
            if score > best_score:
                best, best_score = sentence, score
        if len(best) > SNIPPET_MAX_CHARS:
            best = best[: SNIPPET_MAX_CHARS - 1].rstrip() + "…"
        return best
