"""Every country's name in the tagger's languages, from pycountry (ISO 3166-1 and its
maintained translations), as taxonomy terms for third countries.

A hand-picked list of trading partners misses the smaller ones, and their trade then
counts for the US–China pair. pycountry ships the ISO names (official, common, short) and
the iso-codes project's gettext translations; those give the names in Chinese, German,
Spanish, Russian and Ukrainian. Demonyms and blocs ("EU", "ASEAN", "Japanese") are not
in ISO 3166 and stay in the taxonomy's hand list.
"""

from __future__ import annotations

import gettext
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache

import pycountry

# Russian and Ukrainian decline names ("Япония", "Японии", "Японию"): a Cyrillic word
# longer than this loses its final vowel or soft sign and matches as a prefix (shorter
# stems would match other words: "сам*" from "Самоа").
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_CYRILLIC_ENDINGS = "аяоеиіїйьыуюєё"
_STEM_MIN = 5
# "Korea, Republic of" -> "Korea"; "Bolivia (Plurinational State of)" -> "Bolivia".
_QUALIFIER = re.compile(r"\s*[,(].*$")


@lru_cache(maxsize=8)
def country_terms(
    languages: tuple[str, ...], exclude_codes: frozenset[str], skip: frozenset[str]
) -> tuple[str, ...]:
    """Taxonomy terms naming every country but ``exclude_codes`` (alpha-2), in English and
    the gettext ``languages`` (e.g. "zh_CN", "de"); names in ``skip`` (as written, any
    case) are left out, for names that are also common words or US states."""
    english: list[str] = []
    for country in pycountry.countries:
        if country.alpha_2 in exclude_codes:
            continue
        for attribute in ("name", "common_name", "official_name"):
            value = getattr(country, attribute, None)
            if value:
                english.append(str(value))
    terms: set[str] = set()
    for name in english:
        terms.update(_variants(name))
    for language in languages:
        translate = gettext.translation(
            "iso3166-1", pycountry.LOCALES_DIR, languages=[language], fallback=True
        ).gettext
        for name in english:
            translated = translate(name)
            if translated != name:
                terms.update(_variants(translated))
    lowered = {name.lower() for name in skip}
    return tuple(sorted(t for t in terms if t.lower() not in lowered and t.rstrip("*")))


def _variants(name: str) -> Iterable[str]:
    """The name as written and without its qualifier, Cyrillic words as stems."""
    for form in {name.strip(" -"), _QUALIFIER.sub("", name).strip(" -")}:
        if len(form) < 2:
            continue
        if _CYRILLIC.search(form):
            yield " ".join(_stem(word) for word in form.lower().split())
        else:
            yield form


def _stem(word: str) -> str:
    if len(word) > _STEM_MIN and word[-1] in _CYRILLIC_ENDINGS:
        return word[:-1] + "*"
    return word


def terms_from_spec(spec: dict[str, Sequence[str]]) -> tuple[str, ...]:
    """``country_terms`` for the taxonomy's ``country_names`` mapping."""
    return country_terms(
        tuple(str(x) for x in spec.get("languages", ())),
        frozenset(str(x) for x in spec.get("exclude_codes", ())),
        frozenset(str(x) for x in spec.get("skip", ())),
    )


@lru_cache(maxsize=8)
def subdivision_terms(country_code: str, skip: frozenset[str]) -> tuple[str, ...]:
    """The English names of a country's ISO 3166-2 subdivisions (US states), as written
    (so they match case-sensitively: "Iowa", "New York"), less ``skip``."""
    lowered = {name.lower() for name in skip}
    names = {
        _QUALIFIER.sub("", str(s.name)).strip()
        for s in pycountry.subdivisions
        if s.country_code == country_code
    }
    return tuple(sorted(n for n in names if n and n.lower() not in lowered))
