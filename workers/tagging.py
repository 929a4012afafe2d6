"""US–China trade relevance, topics, entities and evidence (pure, rules from YAML).

The article must be *about* trade between the two countries, not merely mention both, so
the tagger weighs where the words stand: sentences and paragraphs that hold a US actor, a
China actor and trade vocabulary together, the title and the lead. See
``config/taxonomy.yaml`` for the rules and the score's terms.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from service.errors import ConfigError
from service.models import TagResult

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
    "paragraph_all_three",
    "title",
    "lead",
    "bilateral_phrase",
    "topic_density",
    "third_country",
    "negative_context",
)
_CJK = re.compile(r"[\u3400-\u9fff]")
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])[\"”’)»]*\s+|(?<=[。！？])")
MAX_EVIDENCE = 4


def compile_terms(terms: Iterable[str]) -> re.Pattern[str]:
    """One alternation for a list of terms, following the matching rules in taxonomy.yaml."""
    parts: list[str] = []
    for raw in sorted({str(t).strip() for t in terms if str(t).strip()}, key=len, reverse=True):
        prefix = raw.endswith("*")
        term = raw.rstrip("*")
        body = re.escape(term).replace(r"\ ", r"[\s\-–]+")
        if prefix:
            body += r"\w*"
        if term.lower() == term:
            body = f"(?i:{body})"
        if not _CJK.search(term):
            body = rf"(?<!\w){body}" + ("" if prefix else r"(?!\w)")
        parts.append(body)
    if not parts:
        return re.compile(r"(?!x)x")  # matches nothing
    return re.compile("|".join(parts))


@dataclasses.dataclass(frozen=True)
class Taxonomy:
    """The compiled rules of ``config/taxonomy.yaml``."""

    version: str
    threshold: float
    weights: Mapping[str, float]
    us: re.Pattern[str]
    china: re.Pattern[str]
    trade: re.Pattern[str]
    bilateral: re.Pattern[str]
    third_countries: re.Pattern[str]
    negative: Mapping[str, re.Pattern[str]]
    topics: Mapping[str, re.Pattern[str]]
    entities: Sequence[tuple[str, re.Pattern[str]]]


def load_taxonomy(path: Path) -> Taxonomy:
    """Read and compile the taxonomy; raise ConfigError naming what is wrong."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read taxonomy {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"taxonomy {path} is not valid YAML: {exc}") from exc
    return taxonomy_from_mapping(data, str(path))


def taxonomy_from_mapping(data: Any, source: str = "taxonomy") -> Taxonomy:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping")
    required = {"version", "threshold", "weights", "actors", "trade", "topics"}
    missing = sorted(required - set(data))
    if missing:
        raise ConfigError(f"{source}: missing key(s) {', '.join(missing)}")
    weights = {name: float(data["weights"].get(name, 0.0)) for name in _WEIGHT_NAMES}
    unknown_weights = set(data["weights"]) - set(_WEIGHT_NAMES)
    if unknown_weights:
        raise ConfigError(f"{source}: unknown weight(s) {sorted(unknown_weights)}")
    unknown_topics = set(data["topics"]) - set(TOPICS)
    if unknown_topics:
        raise ConfigError(f"{source}: unknown topic(s) {sorted(unknown_topics)}")
    actors = data["actors"]
    if not isinstance(actors, dict) or not {"us", "china"} <= set(actors):
        raise ConfigError(f"{source}: 'actors' needs 'us' and 'china' lists")
    return Taxonomy(
        version=str(data["version"]),
        threshold=float(data["threshold"]),
        weights=weights,
        us=compile_terms(actors["us"]),
        china=compile_terms(actors["china"]),
        # Topic vocabulary (export controls, soybeans, magnets, port fees...) is trade
        # vocabulary too: reporters write "chip curbs", not "trade in chips".
        trade=compile_terms(
            [*data["trade"], *(t for terms in data["topics"].values() for t in terms)]
        ),
        bilateral=compile_terms(data.get("bilateral_phrases", [])),
        third_countries=compile_terms(data.get("third_countries", [])),
        negative={k: compile_terms(v) for k, v in (data.get("negative_contexts") or {}).items()},
        topics={k: compile_terms(v) for k, v in data["topics"].items()},
        entities=[
            (name, compile_terms(aliases)) for name, aliases in (data.get("entities") or {}).items()
        ],
    )


@dataclasses.dataclass(frozen=True)
class _Sentence:
    text: str
    paragraph: int
    us: bool
    china: bool
    trade: bool

    @property
    def all_three(self) -> bool:
        return self.us and self.china and self.trade


def split_sentences(paragraphs: Sequence[str]) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for index, paragraph in enumerate(paragraphs):
        for sentence in _SENTENCE_END.split(paragraph):
            if sentence.strip():
                out.append((index, sentence.strip()))
    return out


def _marks(pattern: re.Pattern[str], text: str, starts: list[int]) -> set[int]:
    """Indexes of the sentences (by start offset) that contain a match."""
    return {bisect.bisect_right(starts, m.start()) - 1 for m in pattern.finditer(text)}


def tag_article(taxonomy: Taxonomy, title: str, paragraphs: Sequence[str]) -> TagResult:
    """Decide whether the article is about US–China trade, and why."""
    sentences_raw = split_sentences(paragraphs)
    joined = "\n".join(s for _, s in sentences_raw)
    starts: list[int] = []
    offset = 0
    for _, sentence in sentences_raw:
        starts.append(offset)
        offset += len(sentence) + 1
    us = _marks(taxonomy.us, joined, starts)
    china = _marks(taxonomy.china, joined, starts)
    trade = _marks(taxonomy.trade, joined, starts)
    sentences = [
        _Sentence(text, para, i in us, i in china, i in trade)
        for i, (para, text) in enumerate(sentences_raw)
    ]

    weights = taxonomy.weights
    strong = [s for s in sentences if s.all_three]
    paragraphs_all = {
        p
        for p in {s.paragraph for s in sentences}
        if all(
            any(getattr(s, side) for s in sentences if s.paragraph == p)
            for side in ("us", "china", "trade")
        )
    }
    weak_paragraphs = paragraphs_all - {s.paragraph for s in strong}
    title_us = bool(taxonomy.us.search(title))
    title_cn = bool(taxonomy.china.search(title))
    title_trade = bool(taxonomy.trade.search(title)) or bool(taxonomy.bilateral.search(title))
    title_hit = (title_trade and (title_us or title_cn)) or (title_us and title_cn)
    lead_hit = bool(paragraphs_all & {0, 1})
    both_sides = bool(us or title_us) and bool(china or title_cn)
    bilateral_hits = list(taxonomy.bilateral.finditer(title + "\n" + joined)) if both_sides else []

    trade_sentences = [s for s in sentences if s.trade]
    third = [s for s in trade_sentences if not s.china and taxonomy.third_countries.search(s.text)]
    third_ratio = len(third) / max(1, len(trade_sentences)) if len(third) > len(strong) else 0.0
    full_text = title + "\n" + joined
    negative_hits = sum(len(p.findall(full_text)) for p in taxonomy.negative.values())

    focus_text = " ".join([title, *(s.text for s in strong)]) if strong else ""
    focus_topics = [
        name for name, p in taxonomy.topics.items() if focus_text and p.search(focus_text)
    ]

    z = (
        weights["bias"]
        + weights["sentence_all_three"] * min(len(strong), 4)
        + weights["paragraph_all_three"] * min(len(weak_paragraphs), 4)
        + weights["title"] * title_hit
        + weights["lead"] * lead_hit
        + weights["bilateral_phrase"] * bool(bilateral_hits)
        + weights["topic_density"] * min(len(focus_topics), 4)
        + weights["third_country"] * third_ratio * 3
        + weights["negative_context"] * min(negative_hits, 3)
    )
    score = 1.0 / (1.0 + math.exp(-z))
    relevant = score >= taxonomy.threshold

    topics = _topics(taxonomy, full_text) if relevant else ()
    evidence: list[str] = []
    if title_hit:
        evidence.append(title)
    evidence.extend(_clip(s.text) for s in strong[: MAX_EVIDENCE - len(evidence)])
    if bilateral_hits and len(evidence) < MAX_EVIDENCE:
        evidence.append(bilateral_hits[0].group(0))
    return TagResult(
        us_china_trade=relevant,
        score=round(score, 4),
        topics=topics,
        entities=tuple(name for name, p in taxonomy.entities if p.search(full_text)),
        evidence=tuple(dict.fromkeys(evidence)),
        taxonomy_version=taxonomy.version,
    )


def _topics(taxonomy: Taxonomy, text: str) -> tuple[str, ...]:
    return tuple(
        name for name in TOPICS if name in taxonomy.topics and taxonomy.topics[name].search(text)
    )


def _clip(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
