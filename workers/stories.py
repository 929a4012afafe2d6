"""Stories (pure): which earlier article, if any, tells the same event as this one.

An editor joins two reports of one event when they share what is distinctive about it: rare
words (TF-IDF over a rolling document-frequency table), the same named people, places and
organisations, the same figures (a 25% tariff, $50 billion), a similar headline, and when
they were published close together. Each of those is one pair feature; a logistic model
fitted on real gold (``benchmarks/fit_stories.py``, ``config/stories.yaml``) turns them
into the probability that the pair is one story, and the article joins the story of its
most probable earlier article when that probability clears the fitted threshold, else it
starts a new story. The taxonomy's entity names (six languages, one canonical spelling)
and numbers are language-independent, so a Chinese or Russian report can join an English
story on those anchors alone.

The work per article is bounded whatever the store holds: an article is compared only with
the ``max_candidates`` earlier articles that share most of its index keys (its top terms
and anchors), found through posting lists the store caps and expires.
"""

from __future__ import annotations

import dataclasses
import math
import re
import string
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from core.urls import short_hash

_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?")
_CJK_RUN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]+")
_CJK_CHAR = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_CAP_NAME = re.compile(r"(?=[A-Z])\b(?:[A-Z][\w'’.-]*\s+){0,3}[A-Z][\w'’-]+")
_LOWER_WORD = re.compile(r"\b[a-z][a-z]+\b")
# The leading lookaheads name the character every match starts with anyway: the regex
# engine then skips other positions at once (half the cost on a long article).
_NUMBER = re.compile(
    r"(?=[$€£¥\d])([$€£¥]\s?)?(\d+(?:[.,]\d+)?)\s?"
    r"(%|percent\b|per cent\b|billion\b|million\b|trillion\b|bn\b|mn\b"
    r"|万亿|亿|млрд|млн|трлн|процент)?",
    re.IGNORECASE,
)
_STOP = frozenset(
    """a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during each few
    for from further had has have having he her here hers herself him himself his how i if
    in into is it its itself just me more most my no nor not now of off on once only or other
    our ours out over own same she should so some such than that the their theirs them then
    there these they this those through to too under until up very was we were what when
    where which while who whom why will with would you your said says say new one two also
    year years week day days time told according people would could may might like get got
    monday tuesday wednesday thursday friday saturday sunday last first since still many much
    even back well made make including just although however earlier meanwhile facing amid
    despite while yet instead later today yesterday tonight because though whether""".split()
)
# Units to one spelling, with the factor that brings the number to it: a Chinese or
# Russian "$18 billion" (180亿美元, 18 млрд) is the same anchor as the English one.
_UNITS = {"%": ("%", 1.0), "percent": ("%", 1.0), "per cent": ("%", 1.0), "процент": ("%", 1.0),
          "billion": ("bn", 1.0), "bn": ("bn", 1.0), "млрд": ("bn", 1.0), "亿": ("bn", 0.1),
          "million": ("mn", 1.0), "mn": ("mn", 1.0), "млн": ("mn", 1.0),
          "trillion": ("bn", 1000.0), "трлн": ("bn", 1000.0), "万亿": ("bn", 1000.0)}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Model:
    """The fitted decision: weights of the pair features (``PAIR_FEATURES`` order), bias,
    the join threshold, and the bounds on work and memory per article."""

    weights: tuple[float, ...]
    bias: float
    threshold: float
    window_days: float = 7.0
    top_terms: int = 40
    index_terms: int = 12
    index_anchors: int = 10
    max_candidates: int = 15
    idf_prior_docs: float = 50.0
    # Pairs in two scripts share no words: their own model over the anchors and time only.
    cross_weights: tuple[float, ...] = ()
    cross_bias: float = 0.0
    cross_threshold: float = 1.1  # above any probability: no cross-script joins

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Model:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"stories model: unknown keys {sorted(unknown)}")
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            if field.name not in data:
                continue
            value = data[field.name]
            if field.name in ("weights", "cross_weights"):
                value = _weight_vector(value, field.name)
            elif field.name in ("top_terms", "index_terms", "index_anchors", "max_candidates"):
                value = int(value)
            else:
                value = float(value)
            values[field.name] = value
        return cls(**values)

    @property
    def bound_weights(self) -> tuple[float, ...]:
        """``weights`` as ``score_bound`` uses them: a cosine's weight where it is positive,
        else 0 (a cosine is at least 0); the exact features' own."""
        cached: Any = self.__dict__.get("_bound_weights")  # beside the fields, as in Profile
        if cached is None:
            cached = self.__dict__["_bound_weights"] = tuple(
                w if i in _EXACT_FEATURES else max(w, 0.0) for i, w in enumerate(self.weights)
            )
        return cached  # type: ignore[no-any-return]


def _weight_vector(value: Any, name: str) -> tuple[float, ...]:
    if not isinstance(value, Mapping) or set(value) != set(PAIR_FEATURES):
        raise ValueError(f"stories model: {name} must name exactly {list(PAIR_FEATURES)}")
    return tuple(float(value[feature]) for feature in PAIR_FEATURES)


@dataclasses.dataclass(frozen=True)
class Profile:
    """What is kept of an article to compare later ones with (small: bounded term list)."""

    article_id: str
    day: float  # days since the epoch, fractional
    terms: dict[str, float]  # top TF-IDF terms, L2-normalised weights
    title: dict[str, float]  # title terms with their idf
    anchors: dict[str, float]  # entity / name / number anchors with their idf
    source: str = ""
    lead: dict[str, float] = dataclasses.field(default_factory=dict)  # title + lead: terms, anchors
    script: str = "latin"  # the text's main script: latin, cyrillic or cjk

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def lead_anchors(self) -> dict[str, float]:
        return self.norms_and_lead_anchors()[1]

    @property
    def norms(self) -> tuple[float, float, float, float]:
        """Of title, anchors, lead and lead anchors, once: the article is one side of up to
        ``max_candidates`` pairs."""
        return self.norms_and_lead_anchors()[0]

    def norms_and_lead_anchors(self) -> tuple[tuple[float, float, float, float], dict[str, float]]:
        # Kept beside the fields, not as one: neither compared, nor stored, nor an argument.
        # (functools.cached_property takes a lock per read: a tenth of the pair's cost.)
        cached: Any = self.__dict__.get("_derived")
        if cached is None:
            lead_anchors = _anchors(self.lead)
            norms = (_norm(self.title), _norm(self.anchors), _norm(self.lead), _norm(lead_anchors))
            cached = self.__dict__["_derived"] = (norms, lead_anchors)
        return cached  # type: ignore[no-any-return]

    @property
    def squares(self) -> tuple[dict[str, float], ...]:
        """The squared weights of terms, title, anchors, lead and lead anchors, once: what
        ``score_bound`` sums for each of up to ``max_candidates`` candidates."""
        cached: Any = self.__dict__.get("_squares")  # beside the fields, as ``_derived``
        if cached is None:
            lists = (self.terms, self.title, self.anchors, self.lead, self.lead_anchors)
            cached = self.__dict__["_squares"] = tuple(
                {k: v * v for k, v in weights.items()} for weights in lists
            )
        return cached  # type: ignore[no-any-return]

    @property
    def terms_norm(self) -> float:
        cached: Any = self.__dict__.get("_terms_norm")  # beside the fields, as ``_derived``
        if cached is None:
            cached = self.__dict__["_terms_norm"] = _norm(self.terms)
        return cached  # type: ignore[no-any-return]

    def key_lists(self) -> tuple[Iterable[str], Iterable[str], Iterable[str], Iterable[str]]:
        return self.terms, self.title, self.anchors, self.lead

    def parsed(self) -> Profile:
        return self

    def with_norms(self, terms_norm: float, norms: Sequence[float]) -> Profile:
        """This profile with ``terms_norm`` and ``norms`` known already (a stored record
        carries them, computed from these weights in this order: the same floats)."""
        title, anchors, lead, lead_anchors = norms
        self.__dict__["_terms_norm"] = terms_norm
        self.__dict__["_derived"] = ((title, anchors, lead, lead_anchors), _anchors(self.lead))
        return self

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Profile:
        return cls(**data)

    def index_keys(self, n_terms: int, n_anchors: int = 10) -> list[str]:
        """Posting-list keys: the most distinctive terms and the rarest anchors (entities
        and figures first: they are what another language's report can share)."""
        top = sorted(self.terms, key=lambda t: (-self.terms[t], t))[:n_terms]
        anchors = sorted(
            self.anchors, key=lambda a: (a[:2] not in ("e:", "n:"), -self.anchors[a], a)
        )[:n_anchors]
        return [f"t:{t}" for t in top] + [f"a:{a}" for a in anchors]


@dataclasses.dataclass(frozen=True)
class RawFeatures:
    """Terms and anchors counted from the text, before idf weighting."""

    term_counts: dict[str, int]
    title_terms: frozenset[str]
    anchors: frozenset[str]
    script: str = "latin"
    lead: frozenset[str] = frozenset()  # terms and anchors of the title and first words

    def df_terms(self) -> set[str]:
        anchors = self.anchors | {k for k in self.lead if k[1:2] == ":"}
        return set(self.term_counts) | set(self.title_terms) | {f"@{a}" for a in anchors}

    def sorted_df_terms(self) -> list[str]:
        """``sorted(df_terms())``, made once: the lookup and the store both send them."""
        cached: Any = self.__dict__.get("_sorted_df_terms")  # beside the fields, as in Profile
        if cached is None:
            cached = self.__dict__["_sorted_df_terms"] = sorted(self.df_terms())
        return cached  # type: ignore[no-any-return]


def terms_of(text: str) -> list[str]:
    """Lower-cased content words (a crude plural strip) and Chinese character bigrams."""
    out = [t for t in map(_term_of, _WORD.findall(text.lower())) if t]
    for run in _CJK_RUN.findall(text):
        out.extend(run[i : i + 2] for i in range(len(run) - 1))
    return out


def term_counts(text: str, words: Mapping[str, int] | None = None) -> dict[str, int]:
    """``Counter(terms_of(text))``, each distinct word normalised once: a long article
    repeats most of its words. ``words``: the text's ``word_counts``, when made already."""
    counts: dict[str, int] = {}
    for word, n in (word_counts(text) if words is None else words).items():
        term = _term_of(word.lower())
        if term:
            counts[term] = counts.get(term, 0) + n
    runs = _CJK_RUN.findall(text)
    if runs:
        bigrams = Counter(run[i : i + 2] for run in runs for i in range(len(run) - 1))
        for pair, n in bigrams.items():
            counts[pair] = counts.get(pair, 0) + n
    return counts


def word_counts(text: str) -> Counter[str]:
    """The text's words as written (case kept: ``anchors_of`` asks which are lower case)."""
    return Counter(_WORD.findall(text))


def _lower_words(words: Iterable[str]) -> set[str]:
    """The words written in lower case (each part of a contraction or possessive on its
    own): what ``_LOWER_WORD`` finds in the text, without reading the text again."""
    lower = {w for w in words if w.islower()}
    for word in [w for w in lower if "'" in w or "’" in w]:
        lower.discard(word)
        lower.update(word.replace("’", "'").split("'"))
    return lower


# The term of each word seen lately: a word costs a dict lookup the second time, and news
# repeats its vocabulary. Cleared when full, so it stays bounded in a long-lived worker.
_TERMS_KEPT = 200_000
_terms: dict[str, str] = {}


def _term_of(word: str) -> str:
    term = _terms.get(word)
    if term is None:
        if len(_terms) >= _TERMS_KEPT:
            _terms.clear()
        term = _terms[word] = _term(word)
    return term


def _term(word: str) -> str:
    word = word.replace("’", "'").split("'")[0]
    if len(word) < 3 or word in _STOP:
        return ""
    if len(word) > 4 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def anchors_of(
    text: str, entities: Iterable[str] = (), lower_words: set[str] | None = None
) -> set[str]:
    """Language-independent anchors: taxonomy entities (one spelling across languages),
    figures with their unit, and capitalised multi-word names with their last word.
    ``lower_words``: the text's words written in lower case, when known already."""
    found = {f"e:{name.lower()}" for name in entities}
    # Each distinct match once: the anchors are a set, and names and figures repeat.
    for groups in set(_NUMBER.findall(text)):
        found.update(_figure(*groups))
    if lower_words is None:
        lower_words = set(_LOWER_WORD.findall(text))
    for name in set(_CAP_NAME.findall(text)):
        words = [_name_word(w) for w in name.split()]
        # A capitalised word the text also writes in lower case is an ordinary word that
        # began a sentence or a headline ("Although", "Facing"), not part of a name.
        while words and (words[0] in lower_words or words[0] in _STOP):
            words.pop(0)
        while words and (words[-1] in lower_words or words[-1] in _STOP):
            words.pop()
        if len(words) >= 2:
            found.add("c:" + " ".join(words))
        if words and len(words[-1]) >= 3:
            found.add("c:" + words[-1])
    return found


def _name_word(word: str) -> str:
    word = word.replace("’", "'")
    word = word[:-2] if word.endswith("'s") else word
    return word.strip(".'-").lower()


def _figure(currency: str | None, number: str, unit: str | None) -> list[str]:
    """The anchor of a figure with a currency or a unit; bare numbers say too little."""
    if not (currency or unit):
        return []
    name, factor = _UNITS.get((unit or "").lower(), ("", 1.0))
    text = number.replace(",", ".") if unit else number.replace(",", "")
    try:
        value = float(text) * factor
    except ValueError:
        return []
    return [f"n:{value:g}{name}"]


def raw_features(title: str, text: str, entities: Iterable[str] = ()) -> RawFeatures:
    body = text if not title or text.startswith(title) else f"{title}\n\n{text}"
    entities = list(entities)
    words = word_counts(body)  # one pass over the text for the terms and the anchors
    return RawFeatures(
        lead=_lead(title, text, entities),
        term_counts=term_counts(body, words),
        title_terms=frozenset(terms_of(title)),
        anchors=frozenset(anchors_of(body, entities, _lower_words(words))),
        script=script_of(body),
    )


LEAD_CHARS = 400  # the title and about the first two sentences: what the story is about


def _lead(title: str, text: str, entities: Sequence[str]) -> frozenset[str]:
    """What the headline and the first sentences name: a report is about what it opens
    with, while background paragraphs name whatever else the topic involves. Entities
    count here only when one of their names (or the canonical one) appears in the lead."""
    head = f"{title}\n{text[:LEAD_CHARS]}"
    folded = head.lower()
    named = [e for e in entities if e.lower() in folded]
    return frozenset(terms_of(head)) | anchors_of(head, named)


def script_of(text: str) -> str:
    """The script most of the letters are in. Counted on the UTF-8 bytes (one pass each in
    C, no match objects): an ASCII letter is its own byte, a Cyrillic letter (U+0400-U+04FF)
    the only character whose lead byte is 0xD0-0xD3; the CJK count needs the regex, run
    only when a lead byte of those blocks is there."""
    data = text.encode("utf-8", "surrogatepass")
    latin = len(data.translate(None, _NOT_LATIN_BYTES))
    cyrillic = len(data.translate(None, _NOT_CYRILLIC_LEADS))
    cjk = len(_CJK_CHAR.findall(text)) if data.translate(None, _NOT_CJK_LEADS) else 0
    best = max((latin, "latin"), (cyrillic, "cyrillic"), (cjk, "cjk"))
    return best[1]


_ALL_BYTES = bytes(range(256))
_NOT_LATIN_BYTES = _ALL_BYTES.translate(None, string.ascii_letters.encode())
_NOT_CYRILLIC_LEADS = _ALL_BYTES.translate(None, bytes(range(0xD0, 0xD4)))
_NOT_CJK_LEADS = _ALL_BYTES.translate(None, bytes([*range(0xE3, 0xEA), 0xEF]))


def profile(
    article_id: str, day: float, raw: RawFeatures, df: Mapping[str, int], n_docs: int,
    model: Model, source: str = "",
) -> Profile:  # fmt: skip
    # Smoothed idf, log((n_docs + prior + 1) / (df + 1)) + 1, with the constant part taken
    # once: it runs for every distinct term of the article. ``idf_prior_docs`` keeps a young
    # table (few documents) from calling every word rare or every word common.
    log, seen, top_idf = math.log, df.get, math.log(n_docs + model.idf_prior_docs + 1.0) + 1.0

    def w(term: str) -> float:
        return top_idf - log(seen(term, 0) + 1.0)

    weighted = {t: (1.0 + log(c)) * w(t) for t, c in raw.term_counts.items()}
    top = dict(sorted(weighted.items(), key=lambda kv: (-kv[1], kv[0]))[: model.top_terms])
    return Profile(
        article_id=article_id,
        day=day,
        terms=_normalised(top),
        title={t: round(w(t), 3) for t in sorted(raw.title_terms)},
        anchors={a: round(w(f"@{a}"), 3) for a in sorted(raw.anchors)},
        source=source,
        lead={k: round(w(k if k[1:2] != ":" else f"@{k}"), 3) for k in sorted(raw.lead)},
        script=raw.script,
    )


def _normalised(weights: Mapping[str, float]) -> dict[str, float]:
    norm = math.sqrt(sum(v * v for v in weights.values())) or 1.0
    return {t: round(v / norm, 4) for t, v in weights.items()}


PAIR_FEATURES = (
    "text_cos", "title_cos", "anchor_cos", "shared_anchors", "entity_shared",
    "days_apart", "recency", "lead_cos", "lead_anchor_cos", "figures_shared",
)  # fmt: skip
# The features a pair's keys give exactly (counts and time); the others are cosines.
_EXACT_FEATURES = frozenset({3, 4, 5, 6, 9})


def pair_features(a: Profile, b: Profile, *, cross: bool = False) -> list[float]:
    """The features of "a and b tell the same event", each cheap and bounded. ``cross``:
    the view of a pair in two scripts, which can share only language-independent anchors
    (taxonomy entities and figures): no words, no capitalised names."""
    if cross:
        a, b = _independent(a), _independent(b)
    b_terms = b.terms
    # Only the shared terms, in a's order: the same sum as over all of a's terms (the others
    # add 0.0), at a fraction of the cost.
    text_cos = (
        0.0 if cross else sum((v * b_terms[t] for t, v in a.terms.items() if t in b_terms), 0.0)
    )
    (a_title, a_anchors, a_lead, a_lead_anchors), (b_title, b_anchors, b_lead, b_lead_anchors) = (
        a.norms,
        b.norms,
    )
    title_cos = 0.0 if cross else _cos(a.title, b.title, a_title, b_title)
    shared = a.anchors.keys() & b.anchors.keys()
    anchor_cos = _cos(a.anchors, b.anchors, a_anchors, b_anchors)
    entity_shared = sum(1 for s in shared if s.startswith("e:"))
    days = abs(a.day - b.day)
    lead_anchor_cos = _cos(a.lead_anchors, b.lead_anchors, a_lead_anchors, b_lead_anchors)
    return [text_cos, title_cos, anchor_cos, min(len(shared), 8) / 8.0,
            min(entity_shared, 4) / 4.0, min(days, 14.0), math.exp(-days),
            _cos(a.lead, b.lead, a_lead, b_lead), lead_anchor_cos,
            min(sum(1 for s in shared if s.startswith("n:")), 3) / 3.0]  # fmt: skip


def _anchors(weights: Mapping[str, float]) -> dict[str, float]:
    return {k: v for k, v in weights.items() if k[1:2] == ":"}


def _independent(p: Profile) -> Profile:
    def keep(weights: Mapping[str, float]) -> dict[str, float]:
        return {k: v for k, v in weights.items() if k[:2] in ("e:", "n:")}

    return dataclasses.replace(p, anchors=keep(p.anchors), lead=keep(p.lead))


def _norm(weights: Mapping[str, float]) -> float:
    return math.sqrt(sum(v * v for v in weights.values()))


def _cos(a: Mapping[str, float], b: Mapping[str, float], norm_a: float, norm_b: float) -> float:
    if not a or not b:
        return 0.0
    if len(a) > len(b):  # the shared keys are found from the smaller side
        a, b = b, a
    dot = sum(v * b[k] for k, v in a.items() if k in b)
    return dot / (norm_a * norm_b)


def probability(model: Model, features: Sequence[float], *, cross: bool = False) -> float:
    weights, bias = (
        (model.cross_weights, model.cross_bias) if cross else (model.weights, model.bias)
    )
    if not weights:
        return 0.0
    z = bias + sum(w * x for w, x in zip(weights, features, strict=True))
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


def same_story(model: Model, a: Profile, b: Profile) -> tuple[float, bool]:
    """The probability that a and b tell one event, and whether it clears the threshold
    (the cross-script model's own for a pair in two scripts)."""
    cross = a.script != b.script
    p = probability(model, pair_features(a, b, cross=cross), cross=cross)
    return p, p >= (model.cross_threshold if cross else model.threshold)


@dataclasses.dataclass(frozen=True)
class Decision:
    story_id: str
    probability: float  # of the best earlier article scored (the one joined, if any)


class Unparsed(Protocol):
    """An earlier article a lookup found, its stored record not parsed yet: the keys of its
    term lists (what ``could_join`` reads) and its profile on demand. Parsing a record is
    most of what a candidate costs, and most candidates cannot join."""

    @property
    def article_id(self) -> str: ...

    @property
    def day(self) -> float: ...

    @property
    def script(self) -> str: ...

    @property
    def terms_norm(self) -> float: ...

    def key_lists(self) -> tuple[Iterable[str], Iterable[str], Iterable[str], Iterable[str]]:
        """The keys of its terms, title, anchors and lead."""
        ...

    def parsed(self) -> Profile: ...


Candidate = Profile | Unparsed  # a Profile is an Unparsed whose record is parsed already


def could_join(model: Model, me: Profile, other: Unparsed) -> bool:
    """False only when the pair cannot clear the threshold whatever the other's weights
    (``score_bound``). A pair in two scripts is always scored in full (its own model; rare)."""
    if other.script != me.script or not model.weights:
        return True
    # A hair of slack for rounding: the bound and the score sum in different orders.
    return score_bound(model, me, other) >= _logit(model.threshold) - 1e-6


def score_bound(model: Model, me: Profile, other: Unparsed) -> float:
    """An upper bound of the model's score (before the logistic) of a same-script pair,
    from which of this article's keys the other holds. Counts and time are exact; each
    cosine is at least 0 and at most the norm of this side's shared part over its whole
    norm (Cauchy-Schwarz), the text's at most that times the other's norm."""
    terms, title, anchors, lead = other.key_lists()
    sq_terms, sq_title, sq_anchors, sq_lead, sq_lead_anchors = me.squares
    title_n, anchors_n, lead_n, lead_anchors_n = me.norms
    w = model.bound_weights
    # dict_keys & an iterable: the shared keys found in C, the sums only over those few.
    shared = sq_anchors.keys() & anchors
    lead_shared = sq_lead.keys() & lead
    days = abs(me.day - other.day)
    return (
        model.bias
        + w[0] * _root(sq_terms, sq_terms.keys() & terms) * other.terms_norm
        + w[1] * _part(_root(sq_title, sq_title.keys() & title), title_n)
        + w[2] * _part(_root(sq_anchors, shared), anchors_n)
        + w[3] * min(len(shared), 8) / 8.0
        + w[4] * min(sum(1 for k in shared if k.startswith("e:")), 4) / 4.0
        + w[5] * min(days, 14.0)
        + w[6] * math.exp(-days)
        + w[7] * _part(_root(sq_lead, lead_shared), lead_n)
        + w[8] * _part(_root(sq_lead_anchors, sq_lead_anchors.keys() & lead_shared), lead_anchors_n)
        + w[9] * min(sum(1 for k in shared if k.startswith("n:")), 3) / 3.0
    )


def _root(squares: Mapping[str, float], shared: Iterable[str]) -> float:
    """The norm of the part of this side (``squares``: its squared weights) that the
    ``shared`` keys name, each one of its keys."""
    return math.sqrt(sum([squares[k] for k in shared]))


def _part(shared: float, whole: float) -> float:
    return shared / whole if whole else 0.0


def _logit(p: float) -> float:
    if p <= 0.0:
        return -math.inf
    if p >= 1.0:
        return math.inf
    return math.log(p / (1.0 - p))


def decide(model: Model, me: Profile, candidates: Iterable[tuple[Candidate, str]]) -> Decision:
    """Join the story of the most probable earlier article within the window, else start a
    story named after this article. Ties go to the earlier-stored candidate. A candidate is
    scored (its record parsed, if it is not yet) only when ``could_join`` allows a join:
    ``probability`` is the highest of those scored."""
    best: tuple[float, Profile, str] | None = None
    top = 0.0
    for found, story_id in candidates:
        if found.article_id == me.article_id or abs(me.day - found.day) > model.window_days:
            continue
        if not could_join(model, me, found):
            continue
        other = found.parsed()
        p, joins = same_story(model, me, other)
        top = max(top, p)
        if joins and (best is None or p > best[0]):
            best = (p, other, story_id)
    if best is not None:
        return Decision(best[2], best[0])
    return Decision(new_story_id(me.article_id), top)


def new_story_id(article_id: str) -> str:
    """Stable, so a retried job that starts a story names it the same way."""
    return short_hash(f"story:{article_id}")


def posting_minute(day: float) -> int:
    """An article's score in a posting list: the minute it was published. Whole minutes
    keep the Redis sorted set's scores small integers (compact), and a window read by
    minutes, then checked by exact day, finds what an exact read would."""
    return math.floor(day * 1440.0)


def posting_range(day: float, days: float) -> tuple[int, int]:
    """The minutes a lookup reads: every article published within ``days`` of ``day``."""
    return posting_minute(day - days), posting_minute(day + days)


def rank_candidates(hits: Iterable[Iterable[str]], me: str, limit: int) -> list[str]:
    """The earlier articles found under most of the new one's index keys, at most ``limit``;
    ties go to the one found first (keys in order, each posting list most recently
    published first). The Redis store ranks the same way in Lua (``workers.story_redis``)."""
    counts: dict[str, int] = {}
    for posting in hits:
        for article_id in posting:
            if article_id != me:
                counts[article_id] = counts.get(article_id, 0) + 1
    # dicts keep the order of discovery and sorted() is stable: ties stay in that order.
    return sorted(counts, key=lambda a: -counts[a])[:limit]


class StoryStore(Protocol):
    """Where profiles, posting lists, document frequencies and stories live: Redis for the
    service (``workers.story_store``), a dict for ``tradewire cluster`` and the tests."""

    def document_frequencies(
        self, terms: Sequence[str], day: float
    ) -> tuple[dict[str, int], int]: ...

    def candidates_with_profiles(
        self, index_keys: Sequence[str], me: str, limit: int, window: tuple[float, float]
    ) -> list[tuple[Profile, str]]:
        """The stored profiles (and story ids) of the ``limit`` earlier articles posted
        within ``window[1]`` days of day ``window[0]`` (by ``posting_range``'s minutes) that
        share the most ``index_keys`` with this one, as ``rank_candidates`` orders them,
        less those whose exact day is outside the window (``decide`` would skip them).
        Articles outside the window take no place among the ``limit``: a lookup reads
        only the part of each posting list inside the window."""
        ...

    def lookup(
        self, index_keys: Sequence[str], me: str, limit: int, window: tuple[float, float]
    ) -> Sequence[tuple[Candidate, str]]:
        """``candidates_with_profiles``, each record parsed only if the decision needs it."""
        ...

    def add(
        self, me: Profile, story_id: str, index_keys: Sequence[str], terms: Sequence[str]
    ) -> None:
        """Store the article and its posting entries, and count it as a document holding
        ``terms`` (none: a near-duplicate, whose text its original counted)."""
        ...


def assign(
    store: StoryStore, model: Model, article_id: str, day: float, raw: RawFeatures,
    source: str = "",
) -> Decision:  # fmt: skip
    """The one clustering path, for the tag job, ``recluster`` and ``tradewire cluster``."""
    terms = raw.sorted_df_terms()
    frequencies = store.document_frequencies(terms, day)
    decision, me, index_keys = choose(store, model, article_id, day, raw, source, frequencies)
    store.add(me, decision.story_id, index_keys, terms)
    return decision


def choose(
    store: StoryStore, model: Model, article_id: str, day: float, raw: RawFeatures,
    source: str, frequencies: tuple[Mapping[str, int], int],
) -> tuple[Decision, Profile, list[str]]:  # fmt: skip
    """``assign`` up to storing the article, from the document frequencies of its
    ``raw.df_terms()``: the tag job reads those with its retry check and stores the article
    with its story's bookkeeping, one round trip each (``workers.story_redis``)."""
    df, n_docs = frequencies
    me = profile(article_id, day, raw, df, n_docs, model, source)
    index_keys = me.index_keys(model.index_terms, model.index_anchors)
    found = store.lookup(index_keys, article_id, model.max_candidates, (day, model.window_days))
    return decide(model, me, found), me, index_keys
