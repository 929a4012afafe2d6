"""Matching taxonomy terms in text (pure): the word-level engine behind the tagger.

Matching works on words, not one big regular expression: each sentence is split into words
once, and each distinct word is looked up once per taxonomy (the result is cached), so the
cost per article is about one dictionary look-up per word. Chinese terms are found by
substring search, as Chinese has no spaces. See ``config/taxonomy.yaml`` for how terms are
written (case, ``*`` prefixes and suffixes, ``not_terms``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence
from itertools import compress

import opencc  # type: ignore[import-untyped]

_CACHE_LIMIT = 200_000

CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
# A word is a run of letters and digits in one script: Chinese runs and Latin runs are
# separate words, as Chinese text glues Latin names to the characters around them
# ("妥善解决TikTok问题", "对Nvidia芯片"); one \w+ run would hide TikTok and Nvidia there.
TOKEN = re.compile(r"[^\W\u3400-\u9fff\uf900-\ufaff]+|[\u3400-\u9fff\uf900-\ufaff]+")
# "U.S." -> "US", "U.S.A." -> "USA", "E.U." -> "EU": dotted initials become one word, so
# they neither end a sentence nor split into letters. The pattern starts at the first dot
# (a literal, which the regex engine finds fast); _join_initials checks the letter before.
_INITIALS = re.compile(r"\.(?:[^\W\d_]\.)+")
# An amount in US dollars names a currency, not the United States: "US$", "U.S.$", "US $"
# become the code "USD", which no actor term matches.
_US_DOLLAR = re.compile(r"\bU\.?S\.?\s?\$")
# Hong Kong and Taiwan write traditional characters; the taxonomy's Chinese terms are
# simplified, so text (and terms) are read in simplified script (OpenCC's t2s tables).
_T2S = opencc.OpenCC("t2s")


def _traditional_characters() -> frozenset[str]:
    """The characters t2s changes on their own: text holding none of them is already
    simplified and skips the (costlier) conversion."""
    chars = [chr(code) for code in range(0x3400, 0xA000)]
    converted = str(_T2S.convert("\n".join(chars))).split("\n")
    if len(converted) != len(chars):  # never seen; convert everything rather than guess
        return frozenset(chars)
    return frozenset(a for a, b in zip(chars, converted, strict=True) if a != b)


_TRADITIONAL = _traditional_characters()
# --- Terms ---------------------------------------------------------------------------------

_EXACT, _PREFIX, _SUFFIX, _INFIX = 0, 1, 2, 3


def _word_matches(token: str, word: str, mode: int) -> bool:
    if mode == _EXACT:
        return token == word
    if mode == _PREFIX:
        return token.startswith(word)
    if mode == _SUFFIX:
        return token.endswith(word)
    return word in token


@dataclasses.dataclass(frozen=True)
class _Term:
    """One taxonomy term as a sequence of word patterns, with the label it marks."""

    label: str
    words: tuple[tuple[str, int], ...]  # (word, mode); lower case unless case-sensitive
    case_sensitive: bool

    def rest_matches(self, words: Sequence[str], i: int) -> bool:
        """Whether the term's second and later words follow word ``i`` (whose own match
        is already known)."""
        patterns = self.words
        if i + len(patterns) > len(words):
            return False
        for offset in range(1, len(patterns)):
            word, mode = patterns[offset]
            token = words[i + offset]
            if not _word_matches(token if self.case_sensitive else token.lower(), word, mode):
                return False
        return True


def _join_initials(match: re.Match[str]) -> str:
    text, start = match.string, match.start()
    if start and text[start - 1].isalpha() and (start < 2 or not text[start - 2].isalnum()):
        return match.group(0).replace(".", "")
    return match.group(0)


def to_simplified(text: str) -> str:
    """Traditional Chinese characters in simplified script; other text unchanged."""
    if text.isascii() or _TRADITIONAL.isdisjoint(text):
        return text
    return str(_T2S.convert(text))


def normalize_text(text: str) -> str:
    """Simplified Chinese script, "US$" as "USD", dotted initials as one word ("U.S." ->
    "US"); tokenising does the rest."""
    if "$" in text:
        text = _US_DOLLAR.sub("USD ", text)
    return _INITIALS.sub(_join_initials, to_simplified(text))


def _parse_term(raw: str, label: str) -> _Term | str | None:
    """A term as word patterns, or (for Chinese) the plain string to look for."""
    text = raw.strip()
    if not text:
        return None
    if CJK.search(text):
        return to_simplified(text)
    case_sensitive = text != text.lower()
    words: list[tuple[str, int]] = []
    for piece in normalize_text(text).split():
        tokens = TOKEN.findall(piece)
        for k, token in enumerate(tokens):
            prefix = piece.endswith("*") and k == len(tokens) - 1
            suffix = piece.startswith("*") and k == 0
            mode = (
                _INFIX
                if prefix and suffix
                else _PREFIX
                if prefix
                else _SUFFIX
                if suffix
                else _EXACT
            )
            words.append((token if case_sensitive else token.lower(), mode))
    return _Term(label, tuple(words), case_sensitive) if words else None


class _Followers:
    """Terms of two or more words sharing a first word, indexed by their second word."""

    __slots__ = ("by_second", "others")

    def __init__(self, terms: Sequence[_Term]) -> None:
        self.by_second: dict[str, list[_Term]] = {}
        self.others: list[_Term] = []
        for term in terms:
            word, mode = term.words[1] if len(term.words) > 1 else ("", _PREFIX)
            if mode == _EXACT:
                self.by_second.setdefault(word.lower(), []).append(term)
            else:
                self.others.append(term)

    def could_follow(self, following: str) -> bool:
        """Whether some term may go on with ``following`` (the next word, lower case)."""
        return bool(self.others) or following in self.by_second

    def matching(self, words: Sequence[str], i: int, following: str) -> list[_Term]:
        """The terms that match at word ``i`` (whose first word is known to match)."""
        found = [t for t in self.others if t.rest_matches(words, i)] if self.others else []
        for term in self.by_second.get(following, ()):
            if term.rest_matches(words, i):
                found.append(term)
        return found


class _AffixIndex:
    """The terms whose first word is a prefix, suffix or infix pattern ("tariff*"), indexed
    by that pattern: a new word is checked against the few whose pattern it could hold
    (one look-up per pattern length) instead of all of them (hundreds of country names,
    demonyms and their inflections; on real articles, most words are new to a worker)."""

    __slots__ = ("infixes", "order", "prefixes", "suffixes")

    def __init__(self, terms: Sequence[_Term]) -> None:
        self.order = {id(term): k for k, term in enumerate(terms)}
        self.prefixes: dict[int, dict[str, list[_Term]]] = {}
        self.suffixes: dict[int, dict[str, list[_Term]]] = {}
        self.infixes: list[_Term] = []
        for term in terms:
            word, mode = term.words[0]
            by_length = self.prefixes if mode == _PREFIX else self.suffixes
            if mode == _INFIX:
                self.infixes.append(term)
                continue
            by_length.setdefault(len(word), {}).setdefault(word.lower(), []).append(term)

    def candidates(self, lowered: str) -> list[_Term]:
        """The terms that may match ``lowered`` (a word in lower case), in taxonomy order:
        a superset of the matches, which the caller checks with each term's case rule."""
        found = list(self.infixes)
        size = len(lowered)
        for length, terms in self.prefixes.items():
            if length <= size:
                found.extend(terms.get(lowered[:length], ()))
        for length, terms in self.suffixes.items():
            if length <= size:
                found.extend(terms.get(lowered[size - length :], ()))
        if len(found) > 1:
            found.sort(key=lambda term: self.order[id(term)])
        return found


# What a word can start: (cancelling terms, labels of one-word terms, longer terms), or ()
_Entry = tuple[()] | tuple[_Followers | None, tuple[str, ...], _Followers | None]


class TermMatcher:
    """All terms of a taxonomy, indexed by first word; labels the words of a sentence."""

    def __init__(self, terms: Iterable[tuple[str, str]]) -> None:
        self._exact: dict[str, list[_Term]] = {}
        self._other: list[_Term] = []
        self._cjk: list[tuple[str, str]] = []
        # First character -> the Chinese terms starting with it: a sentence is searched
        # only for terms whose first character it holds (hundreds of country names).
        self._cjk_by_first: dict[str, list[tuple[str, str]]] = {}
        self._cjk_cancels: dict[str, list[str]] = {}  # label -> Chinese strings it skips
        seen: set[tuple[str, str]] = set()
        for label, raw in terms:
            if (label, raw) in seen:
                continue
            seen.add((label, raw))
            parsed = _parse_term(raw, label)
            if parsed is None:
                continue
            if isinstance(parsed, str):
                if label[0] == "!":
                    self._cjk_cancels.setdefault(label[1:], []).append(parsed)
                else:
                    self._cjk.append((parsed, label))
                    self._cjk_by_first.setdefault(parsed[0], []).append((parsed, label))
                continue
            if parsed.words[0][1] != _EXACT:
                self._other.append(parsed)
            else:
                self._exact.setdefault(parsed.words[0][0].lower(), []).append(parsed)
        self._affixes = _AffixIndex(self._other)
        # Distinct word (as written) -> what it can start: (cancelling terms, labels of
        # one-word terms, longer terms to check). Vocabulary repeats across articles, so
        # most words are classified once per process.
        self._cache: dict[str, _Entry] = {}

    def _entry(self, token: str) -> _Entry:
        lowered = token.lower()
        items: list[_Term] = []
        if not CJK.match(token):  # a run of Chinese holds no word terms
            for term in [*self._exact.get(lowered, ()), *self._affixes.candidates(lowered)]:
                word, mode = term.words[0]
                if _word_matches(token if term.case_sensitive else lowered, word, mode):
                    items.append(term)
        entry: _Entry = ()
        if items:
            cancels = [t for t in items if t.label[0] == "!"]
            longer = [t for t in items if t.label[0] != "!" and len(t.words) > 1]
            entry = (
                _Followers(cancels) if cancels else None,
                # A word counts once per label ("Vietnam" and "vietnam*" are one country).
                tuple(
                    dict.fromkeys(t.label for t in items if t.label[0] != "!" and len(t.words) == 1)
                ),
                _Followers(longer) if longer else None,
            )
        if len(token) <= 64:  # long runs (Chinese, junk) are rare and not worth keeping
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[token] = entry
        return entry

    def classify(self, text: str) -> dict[str, int]:
        """Labels found in ``text`` (already normalised), with their number of hits."""
        hits: dict[str, int] = {}
        words = TOKEN.findall(text)
        entries: list[_Entry | None] = list(map(self._cache.get, words))
        if None in entries:  # words not seen before
            for i, entry in enumerate(entries):
                if entry is None:
                    entries[i] = self._entry(words[i])
        blocked: dict[str, int] = {}  # label -> index of the first word it may match again
        # Only the words that can start a term (most cannot).
        for i in compress(range(len(words)), entries):
            entry = entries[i]
            if not entry:  # (never: compress kept only non-empty entries)
                continue
            cancels, settled, longer = entry
            if cancels is not None or longer is not None:
                following = words[i + 1].lower() if i + 1 < len(words) else ""
                if cancels is not None and cancels.could_follow(following):
                    for term in cancels.matching(words, i, following):
                        label, end = term.label[1:], i + len(term.words)
                        if blocked.get(label, 0) < end:
                            blocked[label] = end
                if longer is not None and not longer.could_follow(following):
                    longer = None
            if blocked:
                for label in settled:
                    if blocked.get(label, 0) <= i:
                        hits[label] = hits.get(label, 0) + 1
                if longer is not None:
                    for term in longer.matching(words, i, following):
                        if blocked.get(term.label, 0) <= i:
                            hits[term.label] = hits.get(term.label, 0) + 1
                continue
            for label in settled:
                hits[label] = hits.get(label, 0) + 1
            if longer is not None:
                for term in longer.matching(words, i, following):
                    hits[term.label] = hits.get(term.label, 0) + 1
        if self._cjk and not text.isascii() and CJK.search(text):
            self._classify_chinese(text, hits)
        return hits

    def _classify_chinese(self, text: str, hits: dict[str, int]) -> None:
        """Chinese terms by substring. A match inside a longer match of the same label
        ("印度" in "印度尼西亚", "贸易" in "贸易战") is one mention, not two; a cancelling
        string ("中美洲", Central America, is not "中美") removes the matches inside it."""
        by_first = self._cjk_by_first
        spans: dict[str, list[tuple[int, int]]] = {}
        for c in set(text).intersection(by_first):
            for chinese, label in by_first[c]:
                for start in _find_all(text, chinese):
                    spans.setdefault(label, []).append((start, start + len(chinese)))
        for label, found in spans.items():
            cancels = self._cjk_cancels.get(label, ())
            if len(found) == 1 and not cancels:
                hits[label] = hits.get(label, 0) + 1
                continue
            blocked = [
                (start, start + len(cancel))
                for cancel in cancels
                for start in _find_all(text, cancel)
            ]
            count = sum(
                1
                for a, b in found
                if not any(x <= a and b <= y and (x, y) != (a, b) for x, y in found)
                and not any(x <= a and b <= y for x, y in blocked)
            )
            if count:
                hits[label] = hits.get(label, 0) + count


def _find_all(text: str, part: str) -> Iterable[int]:
    start = text.find(part)
    while start >= 0:
        yield start
        start = text.find(part, start + 1)
