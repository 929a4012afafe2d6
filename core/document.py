"""The seed text format (pure): writing, reading and cleaning documents.

A document is the title on the first line, a blank line, then one paragraph per block,
blocks separated by exactly one blank line; UTF-8, NFC, no trailing newline, no runs of
spaces, no empty paragraphs. See ``../shared/SEED_FORMAT.md``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence

# Controls and invisible format characters: soft hyphen, zero-width space/non-joiner/joiner,
# word joiner and invisible operators, BOM. They sit inside words ("tar\u00adiff") and break
# word matches (tagging) and token counts; none is visible in the text.
_CONTROL = re.compile(
    r"[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f\u00ad\u200b-\u200d\u2060-\u2064\ufeff]"
)


def normalize_paragraph(text: str) -> str:
    """NFC, no control or invisible characters, single spaces (NBSP too), trimmed."""
    text = unicodedata.normalize("NFC", text)
    # str.split() and re's \s agree on what whitespace is (str.isspace): one join is
    # cheaper than a substitution and a strip.
    return " ".join(_CONTROL.sub("", text).split())


def format_document(title: str, paragraphs: Iterable[str]) -> str:
    """Render the seed format. Empty paragraphs vanish; a body line equal to the title too."""
    head = normalize_paragraph(title)
    body = [p for p in (normalize_paragraph(p) for p in paragraphs) if p and p != head]
    return "\n\n".join([head, *body]) if head else "\n\n".join(body)


def read_document(text: str) -> tuple[str, list[str]]:
    """Read either seed layout back: blank-line blocks with a title line, or one paragraph
    per line with no title. Returns (title, paragraphs); the title may be empty."""
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n")).strip()
    if not text:
        return "", []
    blocks = [b for b in re.split(r"\n\s*\n", text) if b.strip()]
    if len(blocks) == 1:
        # One paragraph per line and no title line (the layout of seeds 003 and 004).
        return "", [normalize_paragraph(line) for line in blocks[0].split("\n") if line.strip()]
    paragraphs: list[str] = []
    for block in blocks:
        paragraphs.extend(normalize_paragraph(line) for line in block.split("\n") if line.strip())
    first = blocks[0].strip()
    if "\n" not in first:
        return normalize_paragraph(first), paragraphs[1:]
    return "", paragraphs


# One pass: a CJK character, a run of other letters, or a run of digits is one word each.
_CJK = "\u3400-\u9fff\uf900-\ufaff"
_WORD = re.compile(rf"[{_CJK}]|[^\W\d_{_CJK}]+|\d+")


def word_count(text: str) -> int:
    """Words for Latin and Cyrillic scripts; each CJK character counts as one word."""
    return len(_WORD.findall(text))


# --- Boilerplate: general classes of page chrome, not strings of particular sites ---------

_LANGUAGE_TOKENS = {
    "ua", "uk", "en", "ru", "de", "fr", "es", "it", "pt", "zh", "cn", "ja", "jp", "ko", "ar",
    "pl", "tr", "nl", "english", "русский", "українська", "中文", "deutsch", "español",
    "français", "日本語", "简体", "繁體", "繁体",
}  # fmt: skip
_PROMPT = re.compile(
    r"^(?:you are here\b|sign up\b|subscribe\b|follow us\b|join us on\b|share (?:this|on)\b"
    r"|download (?:our|the) app\b|your feedback is important|tell us what you think"
    r"|we use cookies|this (?:site|website) uses cookies|accept (?:all )?cookies"
    r"|read more\b|advertisement$|click here to\b|get notified of\b|email us at\b"
    r"|.{0,40}\bis now on (?:telegram|whatsapp|google news)"
    r"|copy link$|print$"
    # Paywall and teaser prompts: a teaser keeps its lead paragraphs, not its wall.
    r"|subscribe (?:now )?to (?:continue|keep) reading|already a subscriber\b"
    r"|to continue reading\b|to read the full (?:story|article)\b|create a free account\b"
    # German, French, Polish: the same prompts and "read also" lines.
    r"|jetzt (?:abonnieren|anmelden|registrieren)\b|lesen sie (?:auch|mehr)\b|mehr zum thema\b"
    r"|weiterlesen mit\b|folgen sie uns\b|teilen auf\b"
    r"|abonnez-vous\b|(?:à )?lire aussi\b|suivez-nous\b|partager sur\b|déjà abonné\b"
    r"|inscrivez-vous\b|nous utilisons des cookies"
    r"|czytaj (?:też|także|również|więcej)\b|zobacz (?:też|także|również)\b|udostępnij\b"
    r"|obserwuj nas\b|zaloguj się\b|wykup (?:dostęp|prenumeratę|subskrypcję)\b)",
    re.I,
)
# Rights and legal footers: "© 2019 Publisher", "Copyright 2008 ... All rights reserved.",
# "please read our Privacy Policy".
_RIGHTS = re.compile(
    r"^(?:©|\(c\)\s*\d{4}|copyright\s*(?:©|\(c\))?\s*\d{4})|all rights reserved"
    r"|alle rechte vorbehalten|tous droits réservés|wszelkie prawa zastrzeżone"
    r"|todos los derechos reservados"
    r"|\b(?:read|see) our (?:privacy policy|terms of (?:service|use))|datenschutzerklärung\b"
    r"|politique de confidentialité|polityk[aęi] prywatności",
    re.I,
)
# Lowercase words one of which every _RIGHTS match holds past its start: a plain substring
# test rules out nearly every paragraph at a tenth of the case-insensitive search's cost.
_RIGHTS_STARTS = ("©", "(c)", "copyright")
_RIGHTS_WORDS = (
    "reserv", "réserv", "vorbehalten", "zastrzeż", "privacy policy", "terms of",
    "datenschutzerklärung", "confidentialit", "prywatno",
)  # fmt: skip


def _is_rights(paragraph: str) -> bool:
    lower = paragraph.lower()
    if not (lower.startswith(_RIGHTS_STARTS) or any(w in lower for w in _RIGHTS_WORDS)):
        return False
    return bool(_RIGHTS.search(paragraph))


# Server errors printed into the page: PHP warnings and notices, stack trace lines.
_SERVER_ERROR = re.compile(
    r"^(?:(?:PHP )?(?:Warning|Notice|Deprecated|Strict Standards|(?:Fatal|Parse|Catchable "
    r"fatal) error)\s*:.{0,400}\bon line \d+|Stack trace:|#\d+ (?:/|[A-Z]:\\|\{main\}|"
    r"\[internal function\])|Traceback \(most recent call last\)|"
    r"(?:Uncaught )?(?:Exception|Error) in .{0,200}:\d+$|at [\w.$<>]+\([\w]+\.java:\d+\))",
)
_TEASER_HEADING = re.compile(
    r"^(?:you may also like|you might also like|related(?: articles| stories| news| posts)?"
    r"|more from\b.{0,40}|recommended(?: for you| stories)?|most read|most popular|trending"
    r"|read next|also read|more stories|latest news|editor'?s picks"
    r"|das könnte sie auch interessieren|meistgelesen|weitere artikel|mehr aus\b.{0,40}"
    r"|à lire (?:aussi|également)|sur le même sujet|les plus lus|dans la même rubrique"
    r"|polecamy|najczęściej czytane|najnowsze|podobne artykuły|zobacz również)\s*:?$",
    re.I,
)
_BREADCRUMB = re.compile(
    r"^(?:home|startseite|accueil|strona główna|главная|головна)\s*[›»>/|]", re.I
)


def is_server_error(text: str) -> bool:
    """A server error printed into the page: PHP warning or notice, stack trace line."""
    return bool(_SERVER_ERROR.match(text))


def is_language_switcher(paragraph: str) -> bool:
    tokens = [t for t in re.split(r"[\s|/·•,]+", paragraph.lower()) if t]
    return 1 < len(tokens) <= 8 and all(t in _LANGUAGE_TOKENS for t in tokens)


def is_boilerplate(paragraph: str) -> bool:
    """A short paragraph that is page chrome: switchers, breadcrumbs, prompts, cookie notes,
    rights footers; and server errors (PHP warnings, stack traces) of any length."""
    if is_server_error(paragraph):
        return True
    if len(paragraph) > 300:
        return False
    return bool(
        is_language_switcher(paragraph)
        or _BREADCRUMB.match(paragraph)
        or (_PROMPT.match(paragraph) and len(paragraph.split()) <= 25)
        or (_is_rights(paragraph) and len(paragraph.split()) <= 40)
    )


_DATELINE = re.compile(r"^[A-Z][A-Z .,'’/-]{1,40}\s*[—–-]$")


def _is_teaser(paragraph: str) -> bool:
    """A related-article teaser: a headline or a one-line standfirst, often cut with "…"."""
    return len(paragraph.split()) < 40 or paragraph.endswith(("…", "..."))


def strip_boilerplate(paragraphs: Sequence[str]) -> list[str]:
    """Drop chrome paragraphs; after a related-articles heading ("You May Also Like") drop
    the teasers that follow it, up to the next full-length paragraph. A dateline standing
    alone ("GENEVA —") joins the paragraph it introduces."""
    kept: list[str] = []
    dateline = ""
    in_teasers = False
    for paragraph in paragraphs:
        if _TEASER_HEADING.match(paragraph):
            in_teasers = True
            continue
        if in_teasers and _is_teaser(paragraph):
            continue
        in_teasers = False
        if is_boilerplate(paragraph):
            continue
        if _DATELINE.match(paragraph):
            dateline = paragraph + " "
            continue
        kept.append(dateline + paragraph)
        dateline = ""
    return kept
