"""Topic vocabulary in every language the tagger reads (issue 14): Latin names inside
Chinese text, terms each topic was missing per language, and not_terms for words that name
a topic in another sense. Sentences are invented for these tests."""

from __future__ import annotations

import opencc
import pytest

from tests.conftest import ROOT
from workers.lexicon import TOKEN, normalize_text
from workers.tagging import Taxonomy, load_taxonomy

S2T = opencc.OpenCC("s2t")


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    return load_taxonomy(ROOT / "config" / "taxonomy.yaml")


def labels(taxonomy: Taxonomy, text: str) -> set[str]:
    return set(taxonomy.matcher.classify(normalize_text(text)))


def scripts(text: str) -> list[str]:
    """Chinese text in simplified and in traditional script; other text as it is."""
    converted = S2T.convert(text)
    return [text, converted] if converted != text else [text]


def test_latin_and_chinese_runs_are_separate_words() -> None:
    assert TOKEN.findall("妥善解决TikTok问题") == ["妥善解决", "TikTok", "问题"]
    assert TOKEN.findall("对Nvidia H20芯片") == ["对", "Nvidia", "H20", "芯片"]
    assert TOKEN.findall("US-China trade") == ["US", "China", "trade"]


@pytest.mark.parametrize(
    "text", ["双方就妥善解决TikTok问题达成基本框架共识", "中方将依法对TikTok技术出口进行审批"]
)
def test_a_latin_name_glued_to_chinese_text_is_found(taxonomy: Taxonomy, text: str) -> None:
    """Chinese text writes TikTok, Nvidia or Trump with no space around them; read as one
    word with the characters, they matched nothing."""
    for variant in scripts(text):
        assert "topic:technology" in labels(taxonomy, variant), variant


def test_a_latin_actor_inside_chinese_text_names_its_side(taxonomy: Taxonomy) -> None:
    for variant in scripts("美方表示Nvidia将向中国出售芯片"):
        found = labels(taxonomy, variant)
        assert {"us", "china", "topic:technology"} <= found, variant


# (topic, strong or weak, sentence): one invented sentence per term a topic was missing.
NEW_TERMS = [
    # English
    ("agriculture", "topic", "China refused to buy American soyabeans this autumn."),
    ("agriculture", "topic", "Beijing pledged to buy more US farm products."),
    ("agriculture", "weak", "Poultry exports have stalled."),
    ("export_controls", "topic", "Washington froze restrictions on chip exports to China."),
    ("export_controls", "topic", "The chip ban hurt the company's sales."),
    ("export_controls", "topic", "Curbs on technology exports were eased."),
    ("export_controls", "weak", "The revised export policy applies to older processors."),
    ("export_controls", "topic", "ZTE was denied export privileges for seven years."),
    ("investment", "topic", "The Committee on Foreign Investment in the United States met."),
    ("investment", "topic", "Foreign direct investment fell by half."),
    ("investment", "weak", "FDI flows dried up."),
    ("negotiations", "topic", "The two sides issued a joint statement on Tuesday."),
    ("negotiations", "weak", "Some hoped for a grand bargain."),
    ("technology", "topic", "The US lifted its ban on ZTE."),
    ("shipping_logistics", "weak", "New maritime fees took effect."),
    # Chinese (checked in both scripts)
    ("agriculture", "topic", "中国对美国高粱加征关税。"),
    ("agriculture", "topic", "美国农业部发布报告。"),
    ("agriculture", "topic", "中国减少进口美国黄豆。"),
    ("agriculture", "weak", "双方讨论了家禽贸易。"),
    ("export_controls", "topic", "华为仍在实体名单上。"),
    ("export_controls", "topic", "美国对华出口限制不断升级。"),
    ("export_controls", "topic", "美方解除出口禁令。"),
    ("export_controls", "topic", "中兴同意美方提出的7年出口特权禁令。"),
    ("technology", "topic", "美国商务部宣布制裁华为。"),
    ("technology", "topic", "美方允许企业恢复向中兴供货。"),
    ("technology", "topic", "辉达的人工智慧芯片。"),
    ("currency", "topic", "美方指责中国货币操纵。"),
    ("currency", "weak", "中国的外汇储备保持稳定。"),
    ("investment", "weak", "美资企业持续深耕中国市场。"),
    ("negotiations", "topic", "中美发布联合声明。"),
    ("negotiations", "weak", "双方通过平等协商解决分歧。"),
    ("shipping_logistics", "topic", "自中国出口至美国的货运订单大增。"),
    ("shipping_logistics", "topic", "海运价格上涨。"),
    ("shipping_logistics", "topic", "美对华海事物流和造船业采取301措施。"),
    ("shipping_logistics", "weak", "集装箱运量回升。"),
    ("shipping_logistics", "weak", "货柜码头繁忙。"),
    # Russian
    ("agriculture", "topic", "Китай сократил закупки американской сельхозпродукции."),
    ("currency", "topic", "Вашингтон обвинил Пекин в валютных манипуляциях."),
    ("shipping_logistics", "topic", "Стоимость логистики и фрахта выросла."),
    ("shipping_logistics", "weak", "Число контейнеров сократилось."),
    # Ukrainian
    ("agriculture", "topic", "Китай скоротив закупівлі американської сільгосппродукції."),
    ("currency", "topic", "Вашингтон звинуватив Пекін у валютних маніпуляціях."),
    ("shipping_logistics", "topic", "Витрати на логістику зросли."),
    # German
    ("export_controls", "topic", "Peking verschärft die Ausfuhrkontrollen."),
    ("export_controls", "topic", "Neue Ausfuhrbeschränkungen für Chips."),
    ("agriculture", "topic", "Die amerikanische Landwirtschaft leidet."),
    ("agriculture", "weak", "Getreide aus den USA."),
    ("currency", "topic", "Der Wechselkurs des Yuan fiel."),
    ("shipping_logistics", "topic", "Die Hafengebühren für chinesische Schiffe steigen."),
    ("shipping_logistics", "topic", "Der Schiffbau in China wächst."),
    ("shipping_logistics", "topic", "Logistik und Frachtraten."),
    # Spanish
    ("negotiations", "topic", "La negociación comercial se reanudó en Ginebra."),
    ("export_controls", "topic", "Washington amplió la lista de entidades."),
    ("export_controls", "topic", "Nuevas restricciones a las exportaciones de chips."),
    ("agriculture", "topic", "China compra productos agrícolas y sorgo de EE UU."),
    ("agriculture", "weak", "Los granos estadounidenses."),
    ("shipping_logistics", "topic", "Suben las tasas portuarias y la logística."),
    ("shipping_logistics", "weak", "Los buques y contenedores esperan."),
]


@pytest.mark.parametrize(("topic", "kind", "text"), NEW_TERMS)
def test_topic_terms_in_every_language(
    taxonomy: Taxonomy, topic: str, kind: str, text: str
) -> None:
    for variant in scripts(text):
        assert f"{kind}:{topic}" in labels(taxonomy, variant), variant


def test_a_bargaining_chip_is_no_negotiation(taxonomy: Taxonomy) -> None:
    """Only the "grand bargain" names a deal; rare earths as "a key bargaining chip" do not."""
    assert "weak:negotiations" not in labels(taxonomy, "Rare earths are a key bargaining chip.")
    assert "weak:negotiations" in labels(taxonomy, "Some hoped for a grand bargain.")


@pytest.mark.parametrize(
    ("topic", "cancelled", "kept"),
    [
        ("topic:sanctions", "美国贸易代表署公布301制裁清单。", "美国宣布制裁华为。"),
        ("weak:export_controls", "受美国投资禁令影响。", "美国的禁令影响深远。"),
        ("weak:investment", "A high-stakes meeting in Busan.", "Oracle took a 12% stake."),
        ("weak:investment", "The stakes are high for both.", "Investors sold their stakes."),
        ("weak:negotiations", "中国人民政治协商会议开幕。", "双方将继续协商。"),
        ("weak:currency", "国际货币基金组织发出警告。", "中国的货币政策保持稳健。"),
    ],
)
def test_topic_not_terms_cancel_another_sense(
    taxonomy: Taxonomy, topic: str, cancelled: str, kept: str
) -> None:
    """HK media call the Section 301 tariff lists "301制裁"; an investment ban is no
    export control; "high stakes" are no shareholding; the CPPCC is no consultation; the
    IMF is no currency."""
    for variant in scripts(cancelled):
        assert topic not in labels(taxonomy, variant), variant
    for variant in scripts(kept):
        assert topic in labels(taxonomy, variant), variant
