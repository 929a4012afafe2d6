"""Tagger verdicts: the seeds and demo positives are in, the hard negatives out."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from service.demo import SITE_DIR
from service.errors import ConfigError
from tests.conftest import ROOT, SEEDS_DIR
from workers.pipeline import page_to_extraction, tag_document
from workers.tagging import TOPICS, Taxonomy, load_taxonomy, taxonomy_from_mapping

TAXONOMY_FILE = ROOT / "config" / "taxonomy.yaml"


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    return load_taxonomy(TAXONOMY_FILE)


@pytest.mark.parametrize("seed", sorted(SEEDS_DIR.glob("*.txt")), ids=lambda p: p.name[:3])
def test_every_seed_is_us_china_trade(taxonomy: Taxonomy, seed: Path) -> None:
    result = tag_document(taxonomy, seed.read_text(encoding="utf-8"))
    assert result.us_china_trade
    assert result.score >= 0.7
    assert result.evidence  # a person can see why
    assert set(result.topics) <= set(TOPICS)
    assert result.taxonomy_version == "2026.11.1"


def test_seed_topics_and_entities(taxonomy: Taxonomy) -> None:
    """Seeds 000 and 004 get the topics a reader would give them."""
    seed0 = tag_document(taxonomy, next(SEEDS_DIR.glob("000_*.txt")).read_text(encoding="utf-8"))
    assert {"negotiations", "tariffs", "fentanyl", "sanctions"} <= set(seed0.topics)
    assert {"Li Chenggang", "Jamieson Greer"} <= set(seed0.entities)
    seed4 = tag_document(taxonomy, next(SEEDS_DIR.glob("004_*.txt")).read_text(encoding="utf-8"))
    assert {
        "rare_earths",
        "tariffs",
        "agriculture",
        "fentanyl",
        "export_controls",
        "technology",
    } <= set(seed4.topics)
    assert {"Li Chenggang", "Nvidia", "Boeing"} <= set(seed4.entities)


@pytest.mark.parametrize("name", sorted(json.loads((SITE_DIR / "expected.json").read_text())))
def test_demo_pages_verdicts(taxonomy: Taxonomy, name: str) -> None:
    expected = json.loads((SITE_DIR / "expected.json").read_text())[name]
    body = (SITE_DIR / "articles" / name).read_bytes()
    text = page_to_extraction(body, "text/html", "https://ledger.example/a", 80, "").text
    assert tag_document(taxonomy, text).us_china_trade is expected["us_china_trade"]


@pytest.mark.parametrize(
    ("title", "text"),
    [
        (
            "Lakers trade veteran guard to Nets",
            "The Los Angeles Lakers traded their guard to Brooklyn before the trade deadline. He played a preseason game in China last year and the NBA is popular in Beijing.",
        ),
        (
            "Stocks climb as investors weigh Fed path",
            "US stocks rose in a choppy trading session as shares rose on bank earnings. Chinese tech shares fell in Hong Kong.",
        ),
        (
            "US and Japan agree on auto tariffs",
            "Washington and Tokyo agreed to a 15 percent tariff on Japanese cars. Japan will invest in the United States. The deal follows months of trade talks between the two allies.",
        ),
    ],
)
def test_hard_negatives(taxonomy: Taxonomy, title: str, text: str) -> None:
    assert not tag_document(taxonomy, f"{title}\n\n{text}").us_china_trade


def test_taxonomy_errors_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="missing key"):
        taxonomy_from_mapping({"version": "1"})
    with pytest.raises(ConfigError, match="unknown topic"):
        taxonomy_from_mapping(
            {"version": "1", "threshold": 0.5, "weights": {}, "actors": {"us": [], "china": []},
             "trade": [], "topics": {"weather": ["rain"]}}
        )  # fmt: skip
    bad = tmp_path / "t.yaml"
    bad.write_text("version: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_taxonomy(bad)


def test_cli_tag_reads_and_writes_json_lines() -> None:
    seed = next(SEEDS_DIR.glob("003_*.txt")).read_text(encoding="utf-8")
    lines = [
        json.dumps(
            {"id": "a", "title": "US and China meet in London for trade talks", "text": seed}
        ),
        json.dumps(
            {"id": "b", "title": "Rain expected", "text": "Light rain is forecast for Tuesday."}
        ),
    ]
    done = subprocess.run(
        [sys.executable, "-m", "service", "tag"],
        input="\n".join(lines) + "\n", capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["id"] for r in rows] == ["a", "b"]
    assert rows[0]["us_china_trade"] is True and rows[1]["us_china_trade"] is False
    assert set(rows[0]) >= {"id", "us_china_trade", "score", "topics", "entities", "evidence"}
