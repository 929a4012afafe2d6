"""The tagger's mechanisms for real news (issue 14): script normalisation, every country,
currency amounts, focus features, the fitted score and topics, and articles in the thin
languages (written for these tests; the real development set is never copied here)."""

from __future__ import annotations

import math
from typing import Any

import opencc
import pytest
import yaml

from core.errors import ConfigError
from tests.conftest import ROOT
from workers.countries import country_terms, subdivision_terms
from workers.lexicon import CJK, normalize_text, to_simplified
from workers.tagging import (
    _WEIGHT_NAMES,
    TOPIC_FEATURES,
    Taxonomy,
    article_features,
    load_taxonomy,
    tag_article,
    taxonomy_from_mapping,
    topic_values,
)

TAXONOMY_FILE = ROOT / "config" / "taxonomy.yaml"
RAW = yaml.safe_load(TAXONOMY_FILE.read_text(encoding="utf-8"))
S2T = opencc.OpenCC("s2t")


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    return load_taxonomy(TAXONOMY_FILE)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    return []


CHINESE_TERMS = sorted({s for s in _strings(RAW) if CJK.search(s) and len(s) < 30})


def test_the_taxonomy_has_chinese_terms_to_check() -> None:
    assert len(CHINESE_TERMS) > 50
    assert "关税" in CHINESE_TERMS and "美国" in CHINESE_TERMS


@pytest.mark.parametrize("term", CHINESE_TERMS)
def test_every_chinese_term_matches_in_both_scripts(taxonomy: Taxonomy, term: str) -> None:
    """Each term, written in traditional script (OpenCC s2t), labels text as the simplified
    term does: Hong Kong and Taiwan outlets are read like the mainland's."""
    classify = taxonomy.matcher.classify
    simplified = classify(normalize_text(term))
    traditional = classify(normalize_text(S2T.convert(term)))
    assert traditional == simplified
    assert simplified or term in _cancelling_terms()  # a not_term labels nothing itself


def _cancelling_terms() -> set[str]:
    return set(_strings(RAW.get("not_terms"))) | set(_strings(RAW["country_names"]["skip"]))


def test_traditional_article_is_read_like_a_simplified_one(taxonomy: Taxonomy) -> None:
    title = "美國宣布對中國商品加徵關稅 商務部：將採取反制措施"
    paragraphs = [
        "美國貿易代表辦公室周五宣布，對約2000億美元的中國進口商品加徵10%關稅。",
        "中國商務部發言人表示，美方的做法嚴重違反世貿組織規則，中方將採取必要的反制措施，"
        "堅決捍衛國家利益。",
        "分析人士指出，中美貿易戰持續升級，兩國企業的供應鏈將受到衝擊。",
    ]
    traditional = tag_article(taxonomy, title, paragraphs)
    simplified = tag_article(taxonomy, to_simplified(title), [to_simplified(p) for p in paragraphs])
    assert traditional.us_china_trade is True
    assert traditional.score == simplified.score
    assert "tariffs" in traditional.topics


def test_us_dollar_amounts_are_not_a_us_actor(taxonomy: Taxonomy) -> None:
    classify = taxonomy.matcher.classify
    for text in (
        "China's imports rose to US$2.6 trillion.",
        "China's imports rose to U.S.$2.6 trillion.",
        "Imports were worth 40 billion US dollars.",
        "Импорт Китая составил 40 млрд долларов США.",
        "中国进口额达2.6万亿美元。",
    ):
        assert "us" not in classify(normalize_text(text)), text
    assert "us" in classify(normalize_text("The US raised tariffs on steel."))


def test_china_trade_story_in_us_dollars_is_negative(taxonomy: Taxonomy) -> None:
    result = tag_article(
        taxonomy,
        "China's imports of iron ore hit a record as steel mills restock",
        [
            "China imported 1.2 billion tonnes of iron ore last year, worth US$130 billion, "
            "customs data showed on Tuesday.",
            "Shipments from Australia and Brazil rose, while imports from South Africa fell.",
            "Steel mills in Hebei and Jiangsu restocked ahead of the spring construction season.",
            "Analysts expect imports to ease this year as the property slump drags on.",
        ],
    )
    assert result.us_china_trade is False


def test_every_country_comes_from_pycountry_in_six_languages(taxonomy: Taxonomy) -> None:
    classify = taxonomy.matcher.classify
    for text in (
        "Kenya and Uruguay signed a trade pact.",  # not in any hand list
        "肯尼亚与乌拉圭签署贸易协定。",
        "肯亞與烏拉圭簽署貿易協定。",  # traditional
        "Kenia und Uruguay unterzeichnen ein Handelsabkommen.",
        "Kenia y Uruguay firmaron un acuerdo comercial.",
        "Соглашение подписали Кения и Уругвай, а также представители Кении.",
        "Угоду підписали Кенія та Уругвай.",
    ):
        assert classify(normalize_text(text)).get("third", 0) >= 2, text
    assert "third" not in classify(normalize_text("Rhode Island and Georgia farmers"))
    assert "third" not in classify(normalize_text("内蒙古和马里兰州的农民"))
    terms = country_terms(("de",), frozenset({"US", "CN"}), frozenset())
    assert "Kenia" in terms and "Vereinigte Staaten" not in terms and "China" not in terms


def test_us_states_name_the_us_side() -> None:
    states = subdivision_terms("US", frozenset({"Georgia"}))
    assert {"Iowa", "New York", "Texas"} <= set(states)
    assert "Georgia" not in states


def test_china_in_an_enumeration_is_not_the_subject(taxonomy: Taxonomy) -> None:
    """A US tariff round-up naming China as one country of many."""
    result = tag_article(
        taxonomy,
        "Trump sets new tariff rates for dozens of trading partners",
        [
            "President Donald Trump signed an order on Thursday setting tariffs of 10% to 41% "
            "on imports from dozens of countries, including Canada, Mexico, Vietnam, India, "
            "Switzerland and China.",
            "Canada will face a 35% tariff on goods not covered by the USMCA, while Swiss "
            "imports will be charged 39%.",
            "India's rate rises to 25%, and Vietnam agreed to a 20% levy last month.",
            "Brazil, Laos and Myanmar face some of the highest rates.",
            "The European Union and Japan secured 15% deals after weeks of talks.",
            "Economists at Yale estimated the average effective US tariff rate at 18%.",
        ],
    )
    features = article_features(taxonomy, "", ["Tariffs hit Canada, Mexico, Vietnam and China."])
    assert features.values["china_enumerated"] > 0
    assert result.us_china_trade is False


def test_focus_features_are_shares_of_the_article(taxonomy: Taxonomy) -> None:
    bilateral = "Washington and Beijing agreed to cut tariffs on each other's goods."
    filler = "The weather in the capital was mild and the markets were quiet."
    short = article_features(taxonomy, "US and China cut tariffs", [bilateral])
    long = article_features(taxonomy, "US and China cut tariffs", [bilateral] + [filler] * 9)
    assert short.values["title_pair"] == long.values["title_pair"] == 1.0
    assert short.values["bilateral_share"] == 1.0
    assert long.values["bilateral_share"] == pytest.approx(0.1)
    assert long.values["length"] > short.values["length"]
    assert set(long.values) == set(_WEIGHT_NAMES)


def test_the_shipped_weights_are_fitted_and_complete(taxonomy: Taxonomy) -> None:
    """Every feature has a weight (written by benchmarks/fit_tagger.py) and the topic model
    weighs every topic feature; the decision is the calibrated score's 0.5."""
    assert set(RAW["weights"]) == set(_WEIGHT_NAMES)
    assert all(math.isfinite(w) for w in taxonomy.weights.values())
    assert taxonomy.threshold == 0.5
    assert set(taxonomy.topic_weights) == set(TOPIC_FEATURES)
    assert set(taxonomy.topic_bias) == set(taxonomy.topic_names)
    assert "fit_tagger.py" in TAXONOMY_FILE.read_text(encoding="utf-8")


def test_a_passing_mention_does_not_make_a_topic(taxonomy: Taxonomy) -> None:
    result = tag_article(
        taxonomy,
        "US and China agree to extend tariff truce",
        [
            "Washington and Beijing agreed on Monday to extend their truce on tariffs for 90 "
            "days, US Trade Representative Jamieson Greer said after talks in Stockholm.",
            "The US will keep its 30% tariff on Chinese goods and China its 10% duty on "
            "American imports while negotiators work on a broader trade deal.",
            "Both sides said the talks on tariffs were constructive.",
            "Separately, shares in a Hong Kong shipping firm rose.",
        ],
    )
    assert result.us_china_trade is True
    assert {"tariffs", "negotiations"} <= set(result.topics)
    assert "shipping_logistics" not in result.topics


EXPORT_CONTROLS_EN = (
    "US tightens export controls on chips bound for China",
    [
        "Washington on Tuesday tightened export controls on advanced chips sold to China, "
        "adding 140 Chinese firms to the entity list.",
        "The Commerce Department said the export restrictions aim to stop China's military "
        "from using American technology.",
        "China's commerce ministry said it firmly opposed the export controls and would "
        "protect the rights of Chinese companies.",
        "Analysts said the new export licence requirements would hit American chipmakers' "
        "sales to China.",
        "Beijing has answered earlier US export curbs with its own controls on gallium.",
        "Separately, US farmers have urged Beijing to resume purchases of American soybeans.",
    ],
)
EXPORT_CONTROLS_ZH = (
    "美国加强对华芯片出口管制",
    [
        "美国商务部周二宣布加强对华先进芯片出口管制，将140家中国企业列入实体清单。",
        "美方称，出口管制旨在防止中国获取美国先进技术。",
        "中国商务部表示坚决反对美方滥用出口管制，将采取必要措施维护中国企业的正当权益。",
        "分析人士认为，新的出口管制将影响美国芯片企业对华销售。",
        "中方此前已对镓相关物项实施出口管制。",
        "另外，美国农民呼吁中国恢复采购美国大豆。",
    ],
)
SOYBEANS_EN = (
    "China resumes purchases of US soybeans",
    [
        "Chinese state buyers booked 12 shipments of US soybeans this week, the first "
        "purchases of American soybeans since the trade war began.",
        "US farmers, who lost their biggest buyer of soybeans, welcomed the orders from China.",
        "Agriculture officials in Washington expect China to buy 12 million tonnes this season.",
    ],
)
SOYBEANS_ZH = (
    "中国恢复采购美国大豆",
    [
        "中国国有企业本周采购了12船美国大豆，这是贸易战以来中方首次大规模采购美国农产品。",
        "美国农民对中方恢复采购大豆表示欢迎。",
        "美国农业部预计，中国本季将采购1200万吨美国大豆。",
    ],
)


def in_script(
    script: str, english: tuple[str, list[str]], chinese: tuple[str, list[str]]
) -> tuple[str, list[str]]:
    """The English article, or the Chinese one in simplified or traditional script."""
    title, paragraphs = english if script == "en" else chinese
    if script == "zh-Hant":
        return S2T.convert(title), [S2T.convert(p) for p in paragraphs]
    return title, paragraphs


@pytest.mark.parametrize("script", ["en", "zh", "zh-Hant"])
def test_a_passing_sentence_in_a_trade_article_makes_no_topic(
    taxonomy: Taxonomy, script: str
) -> None:
    """One sentence on soybeans (naming both sides with a purchase) and one clause on a
    rare metal, in an article about export controls, are mentions, not topics; the earlier
    rule gave a topic for one strong term in such a sentence."""
    result = tag_article(taxonomy, *in_script(script, EXPORT_CONTROLS_EN, EXPORT_CONTROLS_ZH))
    assert result.us_china_trade is True
    assert "export_controls" in result.topics
    assert "agriculture" not in result.topics
    assert "rare_earths" not in result.topics


@pytest.mark.parametrize("script", ["en", "zh", "zh-Hant"])
def test_an_article_about_a_topic_gets_it(taxonomy: Taxonomy, script: str) -> None:
    result = tag_article(taxonomy, *in_script(script, SOYBEANS_EN, SOYBEANS_ZH))
    assert result.us_china_trade is True
    assert "agriculture" in result.topics
    assert "export_controls" not in result.topics


def test_every_topic_has_a_sentence_naming_it_in_the_evidence(taxonomy: Taxonomy) -> None:
    """The soybean sentences come after four tariff sentences (all the evidence the score
    keeps): the topic brings its own sentence, so a reader can check every topic."""
    paragraphs = [
        "Washington and Beijing kept their tariff truce in place on Monday, with US tariffs "
        "on Chinese goods held at 30%.",
        "China's 10% tariff on American goods also stays, the commerce ministry said.",
        "US officials said the tariffs would rise again if China failed to keep its word.",
        "Chinese exporters said the US tariffs still weighed on orders.",
        "Under the deal, China will buy 12 million tonnes of US soybeans this season.",
        "American farmers, who lost their biggest buyer of soybeans during the trade war, "
        "welcomed the purchases.",
        "Soybean futures in Chicago rose 2% on the news.",
        # A fourth soybean sentence: refits on the real set (2026.12.9) put three of seven
        # sentences, none in the title, just under the topic threshold.
        "The first cargoes of American soybeans are due to leave for China in June.",
    ]
    result = tag_article(taxonomy, "US and China keep tariff truce", paragraphs)
    assert "agriculture" in result.topics
    classify = taxonomy.matcher.classify
    for topic in result.topics:
        assert any(
            {f"topic:{topic}", f"weak:{topic}"} & set(classify(normalize_text(sentence)))
            for sentence in result.evidence
        ), topic
    assert paragraphs[4] in result.evidence


def test_topic_features_measure_the_share_of_the_article(taxonomy: Taxonomy) -> None:
    title, paragraphs = EXPORT_CONTROLS_EN
    values, _ = topic_values(taxonomy, article_features(taxonomy, title, paragraphs))
    controls, farming = values["export_controls"], values["agriculture"]
    assert set(TOPIC_FEATURES) <= set(controls)
    assert controls["title"] == 1.0 and farming["title_other"] == 1.0
    assert controls["rank"] == 1.0 and farming["rank"] < 1.0
    assert controls["sentence_share"] > 0.5 > farming["sentence_share"]
    assert controls["first"] == 0.0 and farming["first"] == pytest.approx(5 / 6)
    assert 0.0 < farming["relative"] < controls["relative"] == 1.0


def test_topics_of_equal_weight_rank_by_first_mention(taxonomy: Taxonomy) -> None:
    """The rank never depends on the order in which labels were found in a sentence."""
    for first, second in (("tariffs", "agriculture"), ("agriculture", "tariffs")):
        words = {"tariffs": "tariffs", "agriculture": "soybeans"}
        paragraphs = [
            f"The US and China discussed {words[first]} on Monday.",
            f"The US and China discussed {words[second]} on Tuesday.",
        ]
        values, _ = topic_values(taxonomy, article_features(taxonomy, "", paragraphs))
        assert values[first]["points"] == values[second]["points"]
        assert (values[first]["rank"], values[second]["rank"]) == (1.0, 0.5)


def test_topic_not_terms_cancel_a_topic(taxonomy: Taxonomy) -> None:
    classify = taxonomy.matcher.classify
    assert "topic:tariffs" in classify(normalize_text("Tariffs on steel rose."))
    assert "topic:tariffs" not in classify(normalize_text("Non-tariff barriers remain high."))
    assert "topic:tariffs" in classify(normalize_text("美国加征关税"))
    assert "topic:tariffs" not in classify(normalize_text("取消非關稅壁壘"))
    assert "weak:export_controls" not in classify(normalize_text("中國的外匯管制"))
    with pytest.raises(ConfigError, match=r"not_terms\.weather"):
        taxonomy_from_mapping({**RAW, "not_terms": {"weather": ["rain"]}})


def test_new_taxonomy_keys_are_validated() -> None:
    base = {"version": "1", "threshold": 0.5, "weights": {},
            "actors": {"us": [], "china": []}, "trade": [], "topics": {}}  # fmt: skip
    with pytest.raises(ConfigError, match="country_names"):
        taxonomy_from_mapping({**base, "country_names": {"langs": ["de"]}})
    with pytest.raises(ConfigError, match="topic_model"):
        taxonomy_from_mapping({**base, "topic_model": {"weights": {"colour": 1.0}}})
    with pytest.raises(ConfigError, match="unknown weight"):
        taxonomy_from_mapping({**base, "weights": {"vibes": 1.0}})


# --- The thin languages: carefully written articles ----------------------------------------


def test_german_positive_and_negative(taxonomy: Taxonomy) -> None:
    positive = tag_article(
        taxonomy,
        "USA und China einigen sich auf Zollpause",
        [
            "Die USA und China haben sich in Genf auf eine Senkung ihrer gegenseitigen Zölle "
            "geeinigt. Washington senkt die Strafzölle auf chinesische Waren für 90 Tage.",
            "Peking reduziert im Gegenzug die Zölle auf amerikanische Importe und setzt "
            "Exportbeschränkungen für seltene Erden teilweise aus.",
            "Beide Seiten wollen die Handelsgespräche in London fortsetzen.",
        ],
    )
    negative = tag_article(
        taxonomy,
        "Studie: Chinesische Importe in die EU steigen kaum",
        [
            "Die Einfuhren aus China in die Europäische Union sind im ersten Quartal nur "
            "leicht gestiegen, zeigt eine Studie des Kieler Instituts für Weltwirtschaft.",
            "Befürchtungen, wegen der US-Zölle würden chinesische Waren nach Europa umgeleitet, "
            "hätten sich bislang nicht bestätigt.",
            "Besonders Deutschland, Frankreich und Italien beobachten die Entwicklung im Handel "
            "mit Stahl und Elektroautos genau.",
            "Die EU-Kommission prüft weitere Schutzmaßnahmen.",
        ],
    )
    assert positive.us_china_trade is True
    assert "tariffs" in positive.topics
    assert negative.us_china_trade is False


def test_spanish_positive(taxonomy: Taxonomy) -> None:
    result = tag_article(
        taxonomy,
        "Estados Unidos y China pactan una tregua comercial de 90 días",
        [
            "Estados Unidos y China acordaron en Ginebra rebajar los aranceles que se impusieron "
            "mutuamente durante la guerra comercial.",
            "Washington reducirá los aranceles a los productos chinos del 145% al 30%, y Pekín "
            "bajará los suyos a las importaciones estadounidenses al 10%.",
            "Ambos países seguirán negociando en las próximas semanas.",
        ],
    )
    assert result.us_china_trade is True
    assert "tariffs" in result.topics


def test_spanish_negative_latin_american_trade(taxonomy: Taxonomy) -> None:
    result = tag_article(
        taxonomy,
        "México y Brasil buscan ampliar su comercio bilateral",
        [
            "Los gobiernos de México y Brasil firmaron un acuerdo para reducir aranceles a "
            "productos agrícolas y automotrices.",
            "El comercio entre ambos países alcanzó 13.000 millones de dólares el año pasado.",
            "Argentina, Chile y Colombia siguen de cerca las negociaciones.",
        ],
    )
    assert result.us_china_trade is False


def test_russian_negative_third_country_trade(taxonomy: Taxonomy) -> None:
    result = tag_article(
        taxonomy,
        "Товарооборот России и Индии вырос на 10%",
        [
            "Товарооборот между Россией и Индией по итогам года вырос на 10%, сообщила таможня.",
            "Основу экспорта составляют нефть и удобрения, импорт — фармацевтика.",
            "Стороны обсуждают расчёты в национальных валютах.",
        ],
    )
    assert result.us_china_trade is False


def test_ukrainian_negative_security_story(taxonomy: Taxonomy) -> None:
    result = tag_article(
        taxonomy,
        "США і Китай провели військові переговори",
        [
            "Представники військових відомств США та Китаю зустрілися на Гаваях для розмови "
            "про безпеку на морі.",
            "Сторони обговорили інциденти між військовими кораблями в Південнокитайському морі.",
            "Питання торгівлі на зустрічі не порушували.",
        ],
    )
    assert result.us_china_trade is False
