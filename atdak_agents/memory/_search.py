"""Text segmentation and query parsing for recall (full-text search over stored messages).

Chinese, Japanese and Korean are written without spaces between words, so a word-based tokenizer
sees a whole sentence as one token, and SQLite's ``trigram`` tokenizer cannot match queries shorter
than three characters (two-character Chinese words such as 退款 or 订单 are the common case).
Recall therefore indexes every run of CJK characters as overlapping **bigrams** (the approach of
Lucene's CJK analyzer), plus the run's last character on its own::

    "申请退款" -> "申请 请退 退款 款"

Any query of two or more CJK characters becomes bigram terms that match exactly where those
characters appear; a one-character query becomes a prefix term (``"款"*`` matches 款 as the first
character of any bigram, and the trailing single character covers the end of a run). Text outside
CJK runs is left for the word tokenizer (``unicode61`` with Porter stemming in SQLite), so English
matches whole words. Terms are OR-ed and ranked by BM25, so a message containing more, rarer
query terms ranks first.

The same functions drive :class:`~atdak_agents.memory.InMemoryStore`'s search, through a small
BM25 scorer in Python, so every backend matches the same way.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["Term", "bm25_scores", "fts_match", "index_text", "parse_query", "tokens"]

# Han (with extensions and compatibility ideographs), kana, Hangul syllables, and the iteration
# marks 々〆〇 - all letters to SQLite's unicode61 tokenizer, none of them separated by spaces.
_CJK = (
    "\u3005-\u3007\u3041-\u3096\u309d-\u309f\u30a1-\u30fa\u30fc-\u30ff\u3400-\u4dbf"
    "\u4e00-\u9fff\uac00-\ud7a3\uf900-\ufaff\U00020000-\U0003134f"
)
_CJK_RUN = re.compile(f"[{_CJK}]+")
_WORD = re.compile(r"[^\W_]+")
_BM25_K1 = 1.2
_BM25_B = 0.75


@dataclass(frozen=True)
class Term:
    """One query term: a token, matched exactly or (``prefix=True``) as the start of a token."""

    token: str
    prefix: bool = False


def normalize(text: str) -> str:
    """NFKC (full-width letters and digits become ASCII) and case-folded."""
    return unicodedata.normalize("NFKC", text).casefold()


def _bigrams(run: str) -> list[str]:
    return [run[i : i + 2] for i in range(len(run) - 1)]


def index_text(text: str) -> str:
    """The text as stored in the full-text index: CJK runs replaced by their bigrams."""
    return _CJK_RUN.sub(lambda m: f" {' '.join([*_bigrams(m[0]), m[0][-1]])} ", normalize(text))


def tokens(text: str) -> list[str]:
    """The tokens of ``text`` as the index sees them (used by the in-memory scorer)."""
    return _WORD.findall(index_text(text))


def parse_query(query: str) -> list[Term]:
    """The distinct search terms of a free-text query, in order of appearance."""
    terms: list[Term] = []
    text = normalize(query)
    position = 0
    for run in _CJK_RUN.finditer(text):
        terms += [Term(word) for word in _WORD.findall(text[position : run.start()])]
        chars = run[0]
        terms += [Term(b) for b in _bigrams(chars)] if len(chars) > 1 else [Term(chars, True)]
        position = run.end()
    terms += [Term(word) for word in _WORD.findall(text[position:])]
    return list(dict.fromkeys(terms))


def fts_match(terms: Sequence[Term], column: str = "body") -> str:
    """An FTS5 MATCH expression: the terms OR-ed, each quoted, restricted to ``column``."""
    quoted = [f'"{t.token}"*' if t.prefix else f'"{t.token}"' for t in terms]
    return f"{column} : ({' OR '.join(quoted)})"


def _term_frequency(term: Term, doc: Sequence[str]) -> int:
    if term.prefix:
        return sum(1 for token in doc if token.startswith(term.token))
    return doc.count(term.token)


def bm25_scores(terms: Sequence[Term], docs: Iterable[Sequence[str]]) -> list[float]:
    """BM25 score of each tokenized document for the terms (0.0 when nothing matches)."""
    corpus = list(docs)
    if not corpus or not terms:
        return [0.0] * len(corpus)
    average = sum(len(d) for d in corpus) / len(corpus) or 1.0
    freqs = [[_term_frequency(t, d) for t in terms] for d in corpus]
    scores = [0.0] * len(corpus)
    for j in range(len(terms)):
        having = sum(1 for row in freqs if row[j])
        idf = math.log((len(corpus) - having + 0.5) / (having + 0.5) + 1.0)
        for i, doc in enumerate(corpus):
            tf = freqs[i][j]
            if tf:
                norm = 1 - _BM25_B + _BM25_B * len(doc) / average
                scores[i] += idf * tf * (_BM25_K1 + 1) / (tf + _BM25_K1 * norm)
    return scores
