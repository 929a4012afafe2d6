"""Language of a text when the page does not say (pure, cheap: scripts and stopwords)."""

from __future__ import annotations

import re
from collections import Counter

_STOPWORDS: dict[str, frozenset[str]] = {
    "en": frozenset("the and of to in is that for on with was said by as from".split()),
    "de": frozenset("der die und das ist nicht mit von den auf für sich dem des".split()),
    "es": frozenset("el la de que y en los del se las por un una para con".split()),
    "fr": frozenset("le la les de des et est une dans que pour pas qui sur".split()),
}
_UKRAINIAN_LETTERS = re.compile(r"[іїєґІЇЄҐ]")
_RUSSIAN_LETTERS = re.compile(r"[ыэъЫЭЪё]")


def detect_language(text: str) -> str | None:
    """ISO 639-1 code, or None when the sample is too small to tell."""
    sample = text[:5000]
    cjk = len(re.findall(r"[\u4e00-\u9fff]", sample))
    cyrillic = len(re.findall(r"[\u0400-\u04ff]", sample))
    # Counting letters is most of the cost; a page with neither script needs no share.
    letters = (len(re.findall(r"[^\W\d_]", sample)) or 1) if cjk or cyrillic else 1
    if cjk / letters > 0.2:
        return "zh"
    if cyrillic / letters > 0.4:
        uk = len(_UKRAINIAN_LETTERS.findall(sample))
        ru = len(_RUSSIAN_LETTERS.findall(sample))
        return "uk" if uk > ru else "ru"
    words = re.findall(r"[a-zäöüßáéíóúñàèç]+", sample.lower())
    if len(words) < 5:
        return None
    counts = Counter(words)  # one count per word, then a look-up per stopword and language
    scores = {lang: sum(counts[w] for w in stops) for lang, stops in _STOPWORDS.items()}
    best = max(scores, key=lambda lang: scores[lang])
    return best if scores[best] >= 2 else None


def normalize_language_tag(tag: str | None) -> str | None:
    """'en-US' → 'en', 'zh_CN' → 'zh'; None for something that is not a language tag."""
    if not tag:
        return None
    primary = re.split(r"[-_]", tag.strip().lower())[0]
    return primary if re.fullmatch(r"[a-z]{2,3}", primary) else None
