"""US–China trade relevance, topics, entities and evidence (pure, rules from YAML).

The article must be *about* trade between the two countries, not merely mention both, so
the tagger weighs where the words stand: sentences and paragraphs that hold a US actor, a
China actor and trade vocabulary together, the title and the lead, how much of the article
talks trade at all, whether that trade talk is about a third country, and whether "trade"
means a sports trade or stock trading. See ``config/taxonomy.yaml`` for the rules and the
score's terms.

Focus matters as much as co-occurrence: the share of the article's sentences that are
US–China trade sentences, China standing in an enumeration of countries, a bilateral
title, trade with third countries (every country, from ``workers.countries``), security
and "world" vocabulary as counterweights. The weights of these features, and of the topic
model, are fitted on real labelled news by ``benchmarks/fit_tagger.py`` (scikit-learn,
never imported here): the service computes a dot product and a sigmoid.

Term matching (words, prefixes, Chinese substrings in simplified script, cancelling
``not_terms``) lives in ``workers.lexicon``; this module turns matches into features, a
score and a verdict.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from core.models import TagResult
from core.yamlfile import read_mapping
from workers.countries import subdivision_terms, terms_from_spec
from workers.lexicon import CJK, TermMatcher, normalize_text

TOPICS = (
    "tariffs",
    "negotiations",
    "export_controls",
    "rare_earths",
    "agriculture",
    "technology",
    "sanctions",
    "currency",
    "investment",
    "shipping_logistics",
    "fentanyl",
)
_WEIGHT_NAMES = (
    "bias",
    "sentence_all_three",
    "sentence_commerce",
    "paragraph_all_three",
    "title_all_three",
    "lead",
    "trade_share",
    "side_balance",
    "side_trade_balance",
    "topic_density",
    "third_country",
    "negative_context",
    # Focus: how much of the article the pair is, against the rest of the world.
    "bilateral_share",
    "china_enumerated",
    "title_pair",
    "title_third",
    "length",
    "third_share",
    "china_share",
    "us_share",
    "china_third_trade",
    "us_third_trade",
    "trade_focus",
    "first_position",
    "politics_share",
    "world_share",
)
# not_terms keys -> the label whose matches they cancel.
_NOT_TERM_LABELS = {
    "us": "us",
    "china": "china",
    "trade": "trade",
    "commerce": "commerce",
    "third_countries": "third",
}
MAX_EVIDENCE = 4
# Topic points rank an article's topics (`relative`, `rank`) and, without a fitted topic
# model, decide them: a strong term in the title scores 3 (a weak one 1), each sentence
# with a strong term 1, or 2 when the sentence talks trade or commerce; a sentence with
# only weak terms half that. Without a topic model, a topic is assigned at TOPIC_POINTS.
TOPIC_POINTS = 2.0
# What the fitted topic model reads of each topic with a term in the article
# (topic_values). A topic is what the article is about, not what it mentions, so these
# measure how much of the article the topic is: a strong term in the title, the title
# naming other topics and not this one, a term in the first paragraph, the share of the
# article's trade sentences (trade or commerce words) holding a strong term (and holding
# only weak ones), the share of all its sentences holding a strong term, where the first
# of those stands (0 = first sentence, 1 = none), the topic's points against the
# article's top topic's, 1 / (1 + its rank by points), and log(1 + sentences with a strong
# term).
TOPIC_FEATURES = (
    "title",
    "title_other",
    "lead",
    "trade_share",
    "trade_share_weak",
    "sentence_share",
    "first",
    "relative",
    "rank",
    "hits",
)
# A China sentence naming this many third countries lists China as one of many.
_ENUMERATION = 2

# A sentence ends at . ! ? (and closing quotes) followed by a space and a word starting
# with a capital letter (or CJK); at 。！？； always. Abbreviations ("Mr.", "Dec.",
# "Calif.") and initials ("Donald J. Trump") do not end a sentence.
_BOUNDARY = re.compile(r"[.!?][\"”’)»]*\s+(?=[\"“‘(«]?(\w))|[。！？；][\"”’」』)]*\s*")
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr st sen rep gov gen lt col capt sgt corp inc co ltd jr sr vs prof "
    "jan feb mar apr jun jul aug sep sept oct nov dec calif wash wyo ariz fla mass penn "
    "mich minn conn ore tex ill ind ky la md mo nev okla tenn va wis ave blvd dept est "
    "approx fig cf etc al bzw ca ggf nr vgl sog usw ст г гг им".split()
)


# --- Taxonomy ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Taxonomy:
    """The compiled rules of ``config/taxonomy.yaml``."""

    version: str
    threshold: float
    weights: Mapping[str, float]
    matcher: TermMatcher
    topic_names: tuple[str, ...]
    entity_names: tuple[str, ...]
    labels: Mapping[str, tuple[str, str]]  # "topic:tariffs" -> ("topic", "tariffs"), ...
    # The fitted topic model: weights of TOPIC_FEATURES, a bias per topic, a threshold.
    # Without one, a topic is assigned at TOPIC_POINTS.
    topic_weights: Mapping[str, float] = dataclasses.field(default_factory=dict)
    topic_bias: Mapping[str, float] = dataclasses.field(default_factory=dict)
    topic_threshold: float = 0.5


def load_taxonomy(path: Path) -> Taxonomy:
    """Read and compile the taxonomy; raise ConfigError naming what is wrong."""
    return taxonomy_from_mapping(read_mapping(path, "taxonomy"), str(path))


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping")
    return value


def taxonomy_from_mapping(data: Any, source: str = "taxonomy") -> Taxonomy:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping")
    required = {"version", "threshold", "weights", "actors", "trade", "topics"}
    missing = sorted(required - set(data))
    if missing:
        raise ConfigError(f"{source}: missing key(s) {', '.join(missing)}")
    weights, threshold = _weights(data, source)
    topics = _mapping(data["topics"], f"{source}: topics")
    unknown_topics = set(topics) - set(TOPICS)
    if unknown_topics:
        raise ConfigError(f"{source}: unknown topic(s) {sorted(unknown_topics)}")
    entities = _mapping(data.get("entities"), f"{source}: entities")
    terms = _TermList(source)
    _collect_terms(terms, data, topics, entities)
    topic_weights, topic_bias, topic_threshold = _topic_model(data, source)
    return Taxonomy(
        version=str(data["version"]),
        threshold=threshold,
        weights=weights,
        topic_weights=topic_weights,
        topic_bias=topic_bias,
        topic_threshold=topic_threshold,
        matcher=TermMatcher(terms.pairs),
        topic_names=tuple(t for t in TOPICS if t in topics),
        entity_names=tuple(str(name) for name in entities),
        labels={
            label: (kind, name)
            for label in {label for label, _ in terms.pairs}
            for kind, _, name in [label.partition(":")]
            if kind in ("topic", "weak", "entity")
        },
    )


def _weights(data: dict[str, Any], source: str) -> tuple[dict[str, float], float]:
    given = _mapping(data["weights"], f"{source}: weights")
    unknown = set(given) - set(_WEIGHT_NAMES)
    if unknown:
        raise ConfigError(f"{source}: unknown weight(s) {sorted(unknown)}")
    try:
        weights = {name: float(given.get(name, 0.0)) for name in _WEIGHT_NAMES}
        return weights, float(data["threshold"])
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: weights and threshold must be numbers ({exc})") from exc


def _topic_model(
    data: dict[str, Any], source: str
) -> tuple[dict[str, float], dict[str, float], float]:
    model = _mapping(data.get("topic_model"), f"{source}: topic_model")
    if not model:
        return {}, {}, 0.5
    weights = _mapping(model.get("weights"), f"{source}: topic_model.weights")
    bias = _mapping(model.get("bias"), f"{source}: topic_model.bias")
    unknown = (set(weights) - set(TOPIC_FEATURES)) | (set(bias) - set(TOPICS))
    if unknown or set(model) - {"weights", "bias", "threshold"}:
        raise ConfigError(f"{source}: topic_model: unknown key(s) {sorted(unknown)}")
    try:
        return (
            {name: float(weights.get(name, 0.0)) for name in TOPIC_FEATURES},
            {name: float(value) for name, value in bias.items()},
            float(model.get("threshold", 0.5)),
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: topic_model: weights must be numbers ({exc})") from exc


class _TermList:
    """(label, term) pairs gathered from the taxonomy, with errors naming where."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.pairs: list[tuple[str, str]] = []

    def add(self, labels: Sequence[str], values: Any, where: str) -> None:
        if values is None:
            return
        if not isinstance(values, list):
            raise ConfigError(f"{self.source}: {where}: expected a list of terms")
        for value in values:
            self.pairs.extend((label, str(value)) for label in labels)


def _collect_terms(
    terms: _TermList, data: dict[str, Any], topics: dict[str, Any], entities: dict[str, Any]
) -> None:
    source, add = terms.source, terms.add
    actors = data["actors"]
    if not isinstance(actors, dict) or not {"us", "china"} <= set(actors):
        raise ConfigError(f"{source}: 'actors' needs 'us' and 'china' lists")
    add(["us"], actors["us"], "actors.us")
    states = _mapping(data.get("us_states"), f"{source}: us_states")
    if states:
        skip = frozenset(str(x) for x in states.get("skip", ()))
        add(["us"], list(subdivision_terms("US", skip)), "us_states")
    add(["china"], actors["china"], "actors.china")
    add(["trade"], data["trade"], "trade")
    add(["commerce"], data.get("commerce"), "commerce")
    add(["trade", "pair"], data.get("bilateral_phrases"), "bilateral_phrases")
    add(["pair"], data.get("bilateral_references"), "bilateral_references")
    add(["third"], data.get("third_countries"), "third_countries")
    add(["politics"], data.get("politics"), "politics")
    add(["world"], data.get("world"), "world")
    names = _mapping(data.get("country_names"), f"{source}: country_names")
    if names:
        unknown = set(names) - {"languages", "exclude_codes", "skip"}
        if unknown:
            raise ConfigError(f"{source}: country_names: unknown key(s) {sorted(unknown)}")
        add(["third"], list(terms_from_spec(names)), "country_names")
    for key, values in _mapping(data.get("not_terms"), f"{source}: not_terms").items():
        if key in TOPICS:
            # A topic's not_terms cancel its strong and weak terms ("non-tariff barriers"
            # are not tariffs, "外汇管制" is no export control).
            add([f"!topic:{key}", f"!weak:{key}"], values, f"not_terms.{key}")
            continue
        if key not in _NOT_TERM_LABELS:
            raise ConfigError(
                f"{source}: not_terms.{key}: expected a topic or one of {sorted(_NOT_TERM_LABELS)}"
            )
        add(["!" + _NOT_TERM_LABELS[key]], values, f"not_terms.{key}")
    negatives = _mapping(data.get("negative_contexts"), f"{source}: negative_contexts")
    for name, values in negatives.items():
        add(["negative", f"negative:{name}"], values, f"negative_contexts.{name}")
    for name, spec in topics.items():
        if isinstance(spec, dict):
            unknown = set(spec) - {"terms", "weak"}
            if unknown:
                raise ConfigError(f"{source}: topics.{name}: unknown key(s) {sorted(unknown)}")
            add([f"topic:{name}"], spec.get("terms"), f"topics.{name}.terms")
            add([f"weak:{name}"], spec.get("weak"), f"topics.{name}.weak")
        else:
            add([f"topic:{name}"], spec, f"topics.{name}")
    for name, aliases in entities.items():
        add([f"entity:{name}"], aliases, f"entities.{name}")


# --- Sentences -----------------------------------------------------------------------------


def split_sentences(paragraphs: Sequence[str]) -> list[tuple[int, str]]:
    """(paragraph index, sentence) pairs, normalised ("U.S." is "US")."""
    out: list[tuple[int, str]] = []
    for index, paragraph in enumerate(paragraphs):
        text = normalize_text(paragraph)
        start = 0
        for m in _BOUNDARY.finditer(text):
            following = m.group(1)
            if following is not None:
                if not following.isupper() and not CJK.match(following):
                    continue  # "rose 2.7%. analysts said"
                end = m.start()
                space = text.rfind(" ", start, end)
                word = text[space + 1 if space >= 0 else start : end]
                if len(word) <= 6 and (
                    word.lstrip("(\"'“‘«").lower() in _ABBREVIATIONS
                    or (len(word) == 1 and word.isalpha())
                ):
                    continue  # "Mr. Li", "Dec. 5", "Donald J. Trump"
            piece = text[start : m.end()].strip()
            if piece:
                out.append((index, piece))
            start = m.end()
        piece = text[start:].strip() if start else text.strip()
        if piece:
            out.append((index, piece))
    return out


class _Sentence:
    """A sentence (or the title, paragraph -1) and what it holds."""

    __slots__ = ("china", "commerce", "hits", "paragraph", "text", "third", "trade", "us", "where")

    def __init__(self, text: str, paragraph: int, hits: dict[str, int]) -> None:
        self.text = text
        self.paragraph = paragraph
        self.hits = hits
        self.us = "us" in hits
        self.china = "china" in hits
        self.trade = "trade" in hits
        self.commerce = "commerce" in hits
        self.third = "third" in hits
        self.where = "other"  # "focus": it names both sides with trade or commerce words

    @property
    def econ(self) -> bool:
        """Trade or commerce vocabulary."""
        return self.trade or self.commerce


@dataclasses.dataclass
class Features:
    """The score's inputs, and the sentences behind them."""

    values: dict[str, float]
    title: _Sentence
    sentences: list[_Sentence]
    evidence: list[_Sentence]  # sentences naming both sides with trade, then with commerce
    rejecting: list[_Sentence]  # negative-context and third-country trade sentences


_US, _CHINA, _TRADE, _ECON = 1, 2, 4, 8


def article_features(taxonomy: Taxonomy, title: str, paragraphs: Sequence[str]) -> Features:
    classify = taxonomy.matcher.classify
    if not any(p.strip() for p in paragraphs):
        paragraphs = [title]  # a title alone is all there is to read
    title_text = normalize_text(title).strip()
    title_s = _Sentence(title_text, -1, classify(title_text) if title_text else {})
    sentences = [_Sentence(text, p, classify(text)) for p, text in split_sentences(paragraphs)]
    everything = [title_s, *sentences]
    us_named = sum(s.us for s in everything)
    china_named = sum(s.china for s in everything)
    negative = [s for s in everything if "negative" in s.hits]
    _resolve_pair_references(everything, us_named, china_named)
    _discount_negative_contexts(sentences, negative)
    talk = _trade_talk(sentences)
    if title_s.econ and title_s.third and not (title_s.us and title_s.china):
        talk.third_count += 2.0  # a title naming a third country and not both sides
    title_s.where = "focus"
    econ_paragraphs, spread = _paragraph_spread(talk)
    focus_topics = {
        key
        for s in (title_s, *talk.strong, *talk.commerce)
        if s.paragraph >= 0 or (s.us and s.china and s.econ)
        for key in s.hits
        if key.startswith("topic:")
    }
    n = max(1, len(sentences))
    values = {
        "bias": 1.0,
        "sentence_all_three": float(min(len(talk.strong), 4)),
        "sentence_commerce": float(min(len(talk.commerce), 4)),
        "paragraph_all_three": float(min(spread, 4)),
        "title_all_three": float(title_s.us and title_s.china and title_s.econ),
        "lead": float(0 in econ_paragraphs or 1 in econ_paragraphs),
        "trade_share": talk.trade_share / n,
        "side_balance": min(us_named, china_named) / n,
        "side_trade_balance": min(talk.econ_us, talk.econ_china) / n,
        "topic_density": float(min(len(focus_topics), 4)),
        "third_country": talk.third_count / (talk.third_count + talk.bilateral_count + 1.0),
        "negative_context": len(negative)
        / (len(negative) + len(talk.strong) + len(talk.commerce) + 1),
        **_focus_values(title_s, sentences, talk),
    }
    rejecting = negative + [s for s in everything if s.third and s.trade]
    return Features(values, title_s, sentences, [*talk.strong, *talk.commerce], rejecting)


def _focus_values(
    title: _Sentence, sentences: list[_Sentence], talk: _TradeTalk
) -> dict[str, float]:
    """Whether the pair is the article's subject or one item of a wider story: shares of
    the sentences (so a long feature's scattered lines count for little), China listed
    among other countries, trade with third countries, and where the pair first meets."""
    n = max(1, len(sentences))
    # china, enumerated, us, third, china-third trade, us-third trade, econ, politics, world
    c = [0] * 9
    first = n
    for i, s in enumerate(sentences):
        third = s.third
        if s.china:
            c[0] += 1
            c[1] += s.hits.get("third", 0) >= _ENUMERATION
            c[4] += third and s.trade and not s.us
        if s.us:
            c[2] += 1
            c[5] += third and s.trade and not s.china
        c[3] += third
        c[6] += s.trade or s.commerce
        c[7] += "politics" in s.hits
        c[8] += "world" in s.hits
        if first == n and s.where == "focus":
            first = i
    both_title = title.us and title.china
    return {
        "bilateral_share": sum(1 for s in talk.strong if not s.third) / n,
        "china_enumerated": c[1] / (c[0] + 1),
        "title_pair": float(both_title),
        "title_third": float(title.third and not both_title),
        "length": math.log1p(len(sentences)),
        "third_share": c[3] / n,
        "china_share": c[0] / n,
        "us_share": c[2] / n,
        "china_third_trade": c[4] / n,
        "us_third_trade": c[5] / n,
        "trade_focus": (len(talk.strong) + len(talk.commerce)) / (c[6] + 1),
        "first_position": first / n,
        "politics_share": c[7] / n,
        "world_share": c[8] / n,
    }


def _resolve_pair_references(everything: list[_Sentence], us_named: int, china_named: int) -> None:
    """ "The two countries", "双方", "trade war": when each side is named at least twice and
    more often than third countries, these name both (unless a third country stands in the
    same paragraph)."""
    third_named = sum(s.third for s in everything)
    if min(us_named, china_named) < max(2, third_named + 1):
        return
    third_paragraphs = {s.paragraph for s in everything if s.third}
    for s in everything:
        if "pair" in s.hits and s.paragraph not in third_paragraphs:
            s.us = s.china = True


def _discount_negative_contexts(sentences: list[_Sentence], negative: list[_Sentence]) -> None:
    """Sports trades and stock trading: where such sentences outnumber the other sentences
    holding both sides and trade or commerce words, their trade words do not count."""
    if not negative:
        return
    clean = sum(1 for s in sentences if s.us and s.china and s.econ and s not in negative)
    if len(negative) > clean:
        for s in negative:
            s.trade = s.commerce = False


@dataclasses.dataclass
class _TradeTalk:
    """What the body's sentences with trade or commerce words add up to."""

    strong: list[_Sentence] = dataclasses.field(default_factory=list)  # both sides + trade
    commerce: list[_Sentence] = dataclasses.field(default_factory=list)  # both + commerce
    strong_paragraphs: set[int] = dataclasses.field(default_factory=set)
    paragraph_sides: dict[int, int] = dataclasses.field(default_factory=dict)
    trade_share: float = 0.0
    third_count: float = 0.0
    bilateral_count: float = 0.0
    econ_us: int = 0
    econ_china: int = 0


def _trade_talk(sentences: list[_Sentence]) -> _TradeTalk:
    talk = _TradeTalk()
    for s in sentences:
        econ = s.trade or s.commerce
        sides = s.us * _US | s.china * _CHINA | s.trade * _TRADE | econ * _ECON
        talk.paragraph_sides[s.paragraph] = talk.paragraph_sides.get(s.paragraph, 0) | sides
        if not econ:
            continue
        talk.econ_us += s.us
        talk.econ_china += s.china
        if s.us and s.china:
            s.where = "focus"
            if s.trade:
                talk.strong.append(s)
                talk.strong_paragraphs.add(s.paragraph)
            else:
                talk.commerce.append(s)
        if not s.third:
            talk.trade_share += 1.0 if s.trade else 0.5
        elif s.trade:
            # Trade talk naming a third country, against US–China trade talk; a sentence
            # naming all three counts half to each.
            both = s.us and s.china
            talk.third_count += 0.5 if both else 1.0
            talk.bilateral_count += 0.5 if both else 0.0
        if s.trade and s.us and s.china and not s.third:
            talk.bilateral_count += 1.0
    return talk


def _paragraph_spread(talk: _TradeTalk) -> tuple[set[int], int]:
    """The paragraphs naming both sides with trade or commerce words, and how many name
    both sides and trade without one sentence holding all three."""
    econ_paragraphs = set()
    spread = 0
    for paragraph, sides in talk.paragraph_sides.items():
        if sides & (_US | _CHINA) == _US | _CHINA:
            if sides & _ECON:
                econ_paragraphs.add(paragraph)
            if sides & _TRADE and paragraph not in talk.strong_paragraphs:
                spread += 1
    return econ_paragraphs, spread


def score(taxonomy: Taxonomy, features: Features) -> float:
    """The relevance probability: a logistic of the weighted features, the weights fitted
    by benchmarks/fit_tagger.py (calibrated on held-out folds of the real set)."""
    z = sum(taxonomy.weights[name] * value for name, value in features.values.items())
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


def topic_values(
    taxonomy: Taxonomy, features: Features
) -> tuple[dict[str, dict[str, float]], set[str]]:
    """Per topic with a term in the article, TOPIC_FEATURES (and its points); the entities."""
    counts, entities = _topic_counts(taxonomy, features)
    return _topic_features(counts, features.sentences), entities


class _TopicTally:
    """Where one topic's terms stand in an article, and the sentence that best shows it."""

    __slots__ = ("evidence", "first", "lead", "mention", "points", "rank", "strong",
                 "strong_trade", "title", "weak_trade")  # fmt: skip

    def __init__(self) -> None:
        self.title = 0.0  # 1: a strong term in the title
        self.lead = 0.0  # 1: a term in the first paragraph
        self.strong = 0  # body sentences with a strong term
        self.strong_trade = 0  # ... that talk trade or commerce
        self.weak_trade = 0  # trade sentences with only weak terms
        self.first = -1  # index of the first body sentence with a strong term
        self.mention = -2  # index of the first sentence with a term (-1: the title)
        self.points = 0.0
        self.evidence: _Sentence | None = None
        self.rank = 4  # of self.evidence: 0 title, 1 strong trade, 2 strong, 3 weak

    def add(self, s: _Sentence, index: int, strong: bool) -> None:
        if self.mention == -2:
            self.mention = index
        if s.paragraph < 0:
            self.title = float(strong)
            self.points += 3.0 if strong else 1.0
            rank = 0 if strong else 3
        else:
            self.lead = max(self.lead, float(s.paragraph == 0))
            if strong:
                self.strong += 1
                self.strong_trade += s.econ
                self.first = index if self.first < 0 else self.first
            else:
                self.weak_trade += s.econ
            self.points += (1.0 + s.econ) * (1.0 if strong else 0.5)
            rank = (1 if s.econ else 2) if strong else 3
        if rank < self.rank:
            self.evidence, self.rank = s, rank


def _topic_counts(
    taxonomy: Taxonomy, features: Features
) -> tuple[dict[str, _TopicTally], set[str]]:
    counts: dict[str, _TopicTally] = {}
    entities: set[str] = set()
    labels = taxonomy.labels
    for index, s in enumerate((features.title, *features.sentences), -1):
        strength: dict[str, bool] = {}
        for key in s.hits:
            info = labels.get(key)
            if info is None:
                continue
            kind, name = info
            if kind == "entity":
                entities.add(name)
            else:
                strength[name] = strength.get(name, False) or kind == "topic"
        for name, strong in strength.items():
            tally = counts.get(name)
            if tally is None:
                tally = counts[name] = _TopicTally()
            tally.add(s, index, strong)
    return counts, entities


def _topic_features(
    counts: Mapping[str, _TopicTally], sentences: Sequence[_Sentence]
) -> dict[str, dict[str, float]]:
    n = max(1, len(sentences))
    trade = max(1, sum(s.econ for s in sentences))
    # Ties go to the topic named first (then by name): the rank never depends on the order
    # in which a sentence's labels were found.
    order = sorted(counts, key=lambda name: (-counts[name].points, counts[name].mention, name))
    rank = {name: k for k, name in enumerate(order)}
    best = (counts[order[0]].points if order else 1.0) or 1.0
    titled = any(c.title for c in counts.values())
    return {
        name: {
            "title": c.title,
            "title_other": float(titled and not c.title),
            "lead": c.lead,
            "trade_share": c.strong_trade / trade,
            "trade_share_weak": c.weak_trade / trade,
            "sentence_share": c.strong / n,
            "first": c.first / n if c.first >= 0 else 1.0,
            "relative": c.points / best,
            "rank": 1.0 / (1 + rank[name]),
            "hits": math.log1p(c.strong),
            "points": c.points,
        }
        for name, c in counts.items()
    }


def topic_score(taxonomy: Taxonomy, name: str, values: Mapping[str, float]) -> float:
    """The fitted topic model's probability that the article is about topic ``name``."""
    weights = taxonomy.topic_weights
    z = taxonomy.topic_bias.get(name, 0.0) + sum(weights[f] * values[f] for f in weights)
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


def tag_article(taxonomy: Taxonomy, title: str, paragraphs: Sequence[str]) -> TagResult:
    """Decide whether the article is about US–China trade, and why."""
    features = article_features(taxonomy, title, paragraphs)
    probability = score(taxonomy, features)
    relevant = probability >= taxonomy.threshold
    counts, entities = _topic_counts(taxonomy, features)
    evidence: list[str] = []
    topics: tuple[str, ...] = ()
    if relevant:
        topics = assign_topics(taxonomy, _topic_features(counts, features.sentences))
        evidence = _relevant_evidence(features, topics, counts)
    else:
        evidence = list(dict.fromkeys(_clip(s.text) for s in features.rejecting if s.text))
        del evidence[MAX_EVIDENCE:]
    return TagResult(
        us_china_trade=relevant,
        score=round(probability, 4),
        topics=topics,
        entities=tuple(name for name in taxonomy.entity_names if name in entities),
        evidence=tuple(evidence),
        taxonomy_version=taxonomy.version,
    )


def _relevant_evidence(
    features: Features, topics: Sequence[str], counts: Mapping[str, _TopicTally]
) -> list[str]:
    """The title and the US–China trade sentences (MAX_EVIDENCE of them), then, for each
    topic none of those names, the sentence that best shows it: every topic in the event
    has a sentence a reader can check."""
    title = features.title
    chosen = [title] if title.text and title.econ and (title.us or title.china) else []
    for s in features.evidence:
        if len(chosen) >= MAX_EVIDENCE:
            break
        if s not in chosen:
            chosen.append(s)
    for name in topics:
        keys = (f"topic:{name}", f"weak:{name}")
        named = any(key in s.hits for s in chosen for key in keys)
        shown = counts[name].evidence
        if not named and shown is not None and shown not in chosen:
            chosen.append(shown)
    return list(dict.fromkeys(_clip(s.text) for s in chosen))


def assign_topics(taxonomy: Taxonomy, values: Mapping[str, Mapping[str, float]]) -> tuple[str, ...]:
    """The topics the fitted model gives at least its threshold (without a model: the
    topics with TOPIC_POINTS)."""
    if not taxonomy.topic_weights:
        return tuple(
            t for t in taxonomy.topic_names if values.get(t, {}).get("points", 0.0) >= TOPIC_POINTS
        )
    return tuple(
        t
        for t in taxonomy.topic_names
        if t in values and topic_score(taxonomy, t, values[t]) >= taxonomy.topic_threshold
    )


def _clip(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
