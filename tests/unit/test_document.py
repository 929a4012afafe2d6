"""The seed format: writing it, reading both layouts back, and removing chrome."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.document import format_document, is_boilerplate, read_document, strip_boilerplate
from tests.conftest import SEEDS_DIR

SEEDS = sorted(SEEDS_DIR.glob("*.txt"))


def test_format_is_title_blank_line_paragraphs() -> None:
    """NFC, single spaces, no empty paragraphs, no trailing newline, title not repeated."""
    text = format_document(
        "  A  title ", ["A title", "First\u00a0 para.", "", "  ", "Cafe\u0301 second."]
    )
    assert text == "A title\n\nFirst para.\n\nCafé second."


def test_seeds_are_present() -> None:
    assert len(SEEDS) == 5


@pytest.mark.parametrize("seed", SEEDS, ids=lambda p: p.name)
def test_every_seed_reads_back_as_a_document(seed: Path) -> None:
    """Both layouts (blank-line blocks, one paragraph per line) read back."""
    title, paragraphs = read_document(seed.read_text(encoding="utf-8"))
    assert len(paragraphs) >= 8
    assert all(p and "\n" not in p and "  " not in p for p in paragraphs)
    if seed.name.startswith(("003", "004")):
        assert title == ""  # one paragraph per line, no title line
    else:
        assert title


def test_round_trip() -> None:
    text = format_document("Title", ["One.", "Two."])
    assert read_document(text) == ("Title", ["One.", "Two."])
    assert format_document(*read_document(text)) == text


@pytest.mark.parametrize(
    "line",
    [
        "ua en ru",
        "EN | 中文 | RU",
        "You are here",
        "You are here: Home › World",
        "Home › Business › Trade",
        "Your feedback is important to us",
        "Tell us what you think. Email us at",
        "BT is now on Telegram!",
        "Sign Up for Our Newsletters",
        "Subscribe to our daily briefing",
        "We use cookies to personalise content and ads.",
        "Share on X",
    ],
)
def test_boilerplate_classes(line: str) -> None:
    assert is_boilerplate(line)


@pytest.mark.parametrize(
    "line",
    [
        "China’s key trade negotiator, Li Chenggang, will visit the US this week.",
        "Sign-ups for the programme rose 20 percent, the ministry said in a statement on Monday "
        "that was read out to reporters in Beijing and repeated in a longer written version.",
        "The talks will restart at a sensitive political moment.",
        "US officials have played down the likelihood of a quick deal with China.",
    ],
)
def test_story_text_is_not_boilerplate(line: str) -> None:
    assert not is_boilerplate(line)


def test_seed_boilerplate_is_removed_and_story_kept() -> None:
    """Cleaning the seeds drops their chrome and teasers but keeps every story paragraph."""
    cleaned = {}
    for seed in SEEDS:
        title, paragraphs = read_document(seed.read_text(encoding="utf-8"))
        cleaned[seed.name[:3]] = strip_boilerplate([title, *paragraphs])
    assert "ua en ru" not in cleaned["000"]
    assert cleaned["000"][0] == "China to send senior trade negotiator to US"
    assert "You are here" not in cleaned["001"]
    assert not any("feedback is important" in p or "Telegram" in p for p in cleaned["001"])
    assert "Sign Up for Our Newsletters" not in cleaned["002"]
    assert not any("North Korea" in p for p in cleaned["002"])  # teasers after "You May Also Like"
    assert any("cancel all tariffs imposed on Chinese goods" in p for p in cleaned["002"])
    assert len(cleaned["003"]) == 12 and len(cleaned["004"]) == 10


def test_invisible_characters_leave_the_text_and_nbsp_is_a_space() -> None:
    """Soft hyphens, zero-width space/non-joiner/joiner, word joiner and BOMs inside words
    break word matches (tagging) and token counts; NBSP stays a plain space."""
    title = "\ufeffTar\u00adiffs"
    body = [
        "Ex\u200bport con\u200ctrols\u200d on chips\u2060.",
        "Rare\u00a0earths and\u00a0\u00a0magnets",
    ]
    assert format_document(title, body) == (
        "Tariffs\n\nExport controls on chips.\n\nRare earths and magnets"
    )


@pytest.mark.parametrize(
    "line",
    [
        "Warning: mysqli_connect(): Connection refused in /var/www/html/db.php on line 14",
        "Notice: Undefined index: id in /home/site/public_html/story.php on line 88",
        "Stack trace:",
        "#0 /var/www/html/article.php(18): load_article('48213')",
        "Traceback (most recent call last):",
        "© 2007 The Blade. By using this service, you accept the terms of our visitor agreement.",
        "Copyright 2019 Dow Jones & Company, Inc. All Rights Reserved",
        "Subscribe to continue reading",
        "Already a subscriber? Log in",
        "For more information on this site, please read our Privacy Policy and Terms of Service.",
    ],
)
def test_server_errors_paywall_prompts_and_rights_footers_are_boilerplate(line: str) -> None:
    assert is_boilerplate(line)


@pytest.mark.parametrize(
    ("lang", "line"),
    [
        ("de", "Lesen Sie auch: Frachtraten im Pazifikverkehr sinken weiter"),
        ("de", "Jetzt abonnieren und weiterlesen"),
        ("de", "© 2025 Tagesblatt Verlag. Alle Rechte vorbehalten."),
        ("de", "Startseite › Wirtschaft › Handel"),
        ("fr", "Lire aussi : la Chine riposte aux nouveaux droits de douane"),
        ("fr", "Abonnez-vous pour lire la suite"),
        ("fr", "Tous droits réservés – Le Quotidien 2025"),
        ("fr", "Accueil > Économie > Commerce"),
        ("pl", "Czytaj także: Cła na stal z Chin w górę"),
        ("pl", "Zaloguj się, aby czytać dalej"),
        ("pl", "© 2025 Gazeta Portowa. Wszelkie prawa zastrzeżone."),
        ("pl", "Strona główna › Gospodarka"),
        # Rights and legal lines that do not start with ©: found past the line's start.
        ("de", "Hinweise zur Datenschutzerklärung des Verlags"),
        ("fr", "Le Quotidien, tous droits réservés"),
        ("fr", "Consultez notre politique de confidentialité"),
        ("pl", "Gazeta Portowa – wszelkie prawa zastrzeżone"),
        ("pl", "Serwis: polityka prywatności i regulamin"),
        ("es", "Diario del Puerto. Todos los derechos reservados."),
        ("en", "The Daily Ledger. ALL RIGHTS RESERVED."),
        ("en", "(C) 2024 The Daily Ledger"),
    ],
)
def test_language_specific_boilerplate(lang: str, line: str) -> None:
    """Every language-specific list (prompts, rights footers, breadcrumbs) in its language."""
    assert is_boilerplate(line), lang


@pytest.mark.parametrize(
    ("lang", "heading", "teaser"),
    [
        ("de", "Das könnte Sie auch interessieren", "Autozulieferer warten auf Lizenzen"),
        ("fr", "Sur le même sujet", "Les exportations de soja reculent"),
        ("pl", "Najczęściej czytane", "Port w Gdańsku bije rekord"),
    ],
)
def test_language_specific_teaser_headings(lang: str, heading: str, teaser: str) -> None:
    story = "Ein langer Absatz. " * 30
    assert strip_boilerplate([story, heading, teaser]) == [story], lang


@pytest.mark.parametrize(
    "line",
    [
        # Story sentences in French, German and Polish that share words with the lists.
        "Les partenaires commerciaux de la Chine lisent aussi les nouvelles règles de Pékin.",
        "Die Regierung will die Partnerschaft mit China abonnieren, sagte der Minister nicht.",
        "Czytelnicy zobaczą też, jak cła zmieniły handel stalą w ubiegłym roku.",
        "Copyright lawsuits rose sharply in 2019, the court said in its annual report.",
        "Warning signs in the data appeared on line 14 of the customs table, analysts said.",
        "en de fr sont des mots courts",
    ],
)
def test_story_sentences_in_other_languages_are_not_boilerplate(line: str) -> None:
    assert not is_boilerplate(line)


@pytest.mark.parametrize(
    "footer",
    [
        "© 2024 The Daily Planet",
        "(c) 2019 Example Media",
        "Copyright © 2008 Example Media",
        "Example Media. All rights reserved.",
        "Alle Rechte vorbehalten.",
        "Tous droits réservés.",
        "Wszelkie prawa zastrzeżone.",
        "Todos los derechos reservados.",
        "Please read our Privacy Policy.",
        "See our terms of use.",
        "Mehr in unserer Datenschutzerklärung",
        "Consultez notre politique de confidentialité",
        "Polityka prywatności serwisu",
    ],
)
def test_every_rights_footer_passes_the_cheap_prefilter(footer: str) -> None:
    """The substring prefilter in front of the rights regex must let through one sample of
    each of its alternatives: an alternative added to the regex alone would never match."""
    assert is_boilerplate(footer)
