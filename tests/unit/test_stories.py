"""Stories (pure core and the in-memory store): invented articles, never the dev set."""

from __future__ import annotations

import dataclasses
import io
import json
from itertools import combinations
from pathlib import Path

import pytest

from core.errors import ConfigError
from core.settings import Settings, load_settings
from service.stories import cluster_command, cluster_lines, duration_s
from tests.conftest import DATA, ROOT
from workers.recluster import _membership_changed
from workers.stories import (
    PAIR_FEATURES,
    Model,
    Profile,
    anchors_of,
    assign,
    could_join,
    new_story_id,
    pair_features,
    rank_candidates,
    raw_features,
    same_story,
    score_bound,
    script_of,
    term_counts,
)
from workers.story_store import MemoryStories, day_of, load_model
from workers.tagging import load_taxonomy

ARTICLES = [
    json.loads(line) for line in (DATA / "stories" / "articles.jsonl").read_text().splitlines()
]
TAXONOMY = load_taxonomy(ROOT / "config" / "taxonomy.yaml")
MODEL = load_model()


def clustered(rows: list[dict[str, str]], model: Model = MODEL) -> dict[str, str]:
    lines = [
        json.dumps(r, ensure_ascii=False) for r in sorted(rows, key=lambda r: r["published_at"])
    ]
    return {d["id"]: d["story_id"] for d in cluster_lines(lines, TAXONOMY, model, 100)}


def test_same_language_reports_join_and_nothing_else_does() -> None:
    story = clustered(ARTICLES)
    event = {r["id"]: r["event"] for r in ARTICLES}
    lang = {r["id"]: r["lang"] for r in ARTICLES}
    wrong = [(a, b) for a, b in combinations(story, 2)
             if story[a] == story[b] and event[a] != event[b]]  # fmt: skip
    assert wrong == []
    same_language_gold = [(a, b) for a, b in combinations(story, 2)
                          if event[a] == event[b] and lang[a] == lang[b]]  # fmt: skip
    assert same_language_gold and all(story[a] == story[b] for a, b in same_language_gold)


def test_singletons_stay_alone_and_the_reaction_is_its_own_story() -> None:
    story = clustered(ARTICLES)
    for row in ARTICLES:
        if row["event"].startswith("single-"):
            assert list(story.values()).count(story[row["id"]]) == 1, row["id"]
    # The tariff announcement and, two days later, Beijing's reaction: one topic, two events.
    assert story["ev-en-1"] != story["re-en-1"]
    assert story["ev-zh-1"] != story["re-zh-1"]


def test_cross_language_joins_on_anchors() -> None:
    story = clustered(ARTICLES)
    # The Chinese report names the White House, Trump, 100%, 25% and $18 billion (180亿).
    assert story["ev-zh-1"] == story["ev-en-1"]


def test_a_new_story_is_named_after_its_first_article() -> None:
    story = clustered(ARTICLES)
    assert story["sg-en-2"] == new_story_id("sg-en-2")
    assert story["ev-en-2"] == new_story_id("ev-en-1")


def test_the_same_text_far_apart_in_time_is_another_story() -> None:
    first = dict(ARTICLES[0], id="a1", published_at="2026-05-01T00:00:00Z")
    copy = dict(ARTICLES[0], id="a2", published_at="2026-05-09T00:00:00Z")
    near = dict(ARTICLES[0], id="a3", published_at="2026-05-09T06:00:00Z")
    story = clustered([first, copy, near])
    assert story["a2"] != story["a1"]  # beyond the 7-day window
    assert story["a3"] == story["a2"]


def test_anchors_are_language_independent() -> None:
    english = anchors_of("Tariffs rise to 100% on $18 billion of goods, 25 per cent before")
    chinese = anchors_of("关税从25%提高到100%，涉及约180亿美元")
    russian = anchors_of("пошлины с 25% до 100%, импорт на 18 млрд долларов")
    for anchor in ("n:100%", "n:25%", "n:18bn"):
        assert anchor in english and anchor in chinese and anchor in russian
    assert anchors_of("Some text", ["Li Chenggang"]) == {"e:li chenggang"}
    assert anchors_of("In 2025 there were 12 meetings") == set()  # bare numbers say little


def test_names_are_capitalised_words_the_text_never_writes_in_lower_case() -> None:
    found = anchors_of(
        "Although talks stalled, Li Chenggang met Jamieson Greer. Talks resume although slowly."
    )
    assert {"c:li chenggang", "c:chenggang", "c:jamieson greer", "c:greer"} <= found
    assert not any("although" in a or "talks" in a for a in found)


def test_script_of() -> None:
    assert script_of("美国将中国电动汽车关税提高 to 100%") == "cjk"
    assert script_of("Белый дом объявил") == "cyrillic"
    assert script_of("The White House") == "latin"
    assert script_of("Белый дом объявил — the “White House”") == "cyrillic"  # 15 letters to 13
    assert script_of("Белый дом — the “White House”") == "latin"  # 8 to 13
    assert script_of("") == "latin"


def test_candidates_are_bounded_by_the_posting_lists() -> None:
    store = MemoryStories(posting_limit=5)
    raw = raw_features("Soybean exports", "Soybean exports to China fell sharply in May.")
    for i in range(50):
        assign(store, MODEL, f"x{i:02d}", 20000.0, raw)
    assert all(len(p) <= 5 for p in store.postings.values())
    assert len(store.candidates_with_profiles(["t:soybean"], "new", 40, (20000.0, 7.0))) == 5
    # Outside the window: ranked among the limit, not returned (decide would skip them).
    assert store.candidates_with_profiles(["t:soybean"], "new", 40, (20008.0, 7.0)) == []
    assert rank_candidates([["b", "a"], ["a"], ["c"]], "c", 2) == ["a", "b"]


def test_every_article_of_a_run_gets_a_story_even_without_anchors() -> None:
    rows = [{"id": "z", "title": "", "text": "zzz", "published_at": "2026-05-01", "source": "s"}]
    assert clustered(rows) == {"z": new_story_id("z")}


def test_cluster_command_reads_and_writes_json_lines() -> None:
    settings = Settings(taxonomy_file=ROOT / "config" / "taxonomy.yaml")
    rows = [json.dumps({k: r[k] for k in ("id", "title", "text", "published_at", "source")})
            for r in ARTICLES[:3]]  # fmt: skip
    out = io.StringIO()
    assert cluster_command(settings, io.StringIO("\n".join(rows) + "\n"), out) == 0
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [set(line) for line in lines] == [{"id", "story_id"}] * 3
    with pytest.raises(ConfigError, match="line 1"):
        list(cluster_lines(["not json"], TAXONOMY, MODEL, 100))
    with pytest.raises(ConfigError, match="published_at"):
        bad = dict(json.loads(rows[0]), published_at="yesterday")
        list(cluster_lines([json.dumps(bad)], TAXONOMY, MODEL, 100))


def test_the_shipped_model_names_every_feature(tmp_path: Path) -> None:
    assert len(MODEL.weights) == len(PAIR_FEATURES) == len(MODEL.cross_weights)
    assert 0 < MODEL.threshold < 1 and 0 < MODEL.cross_threshold < 1
    broken = tmp_path / "stories.yaml"
    broken.write_text("weights: {text_cos: 1}\nbias: 0\nthreshold: 0.5\n")
    with pytest.raises(ConfigError, match="weights must name"):
        load_model(broken)
    broken.write_text("weights: {}\nbias: 0\nthreshold: 0.5\nwindow: 3\n")
    with pytest.raises(ConfigError, match="unknown keys"):
        load_model(broken)


def test_durations_and_times() -> None:
    assert duration_s("24h") == 86400 and duration_s("90m") == 5400 and duration_s("30") == 30
    with pytest.raises(ValueError, match="duration"):
        duration_s("soon")
    assert day_of("2026-05-12") == day_of("2026-05-12T00:00:00Z")


def test_membership_changes_are_per_article() -> None:
    old = {"a": "s1", "b": "s1", "c": "s2", "d": None}
    new = {"a": "t1", "b": "t1", "c": "t1", "d": "t4"}
    assert _membership_changed(old, new) == {"a", "b", "c"}  # d was and is alone


def test_story_settings_are_validated(tmp_path: Path) -> None:
    config = tmp_path / "settings.yaml"
    config.write_text("story_update_interval_s: 0\n")
    with pytest.raises(ConfigError, match="story_update_interval_s must be positive"):
        load_settings({}, config)
    assert dataclasses.replace(Settings(), stories_enabled=False).stories_enabled is False


def test_seeds_000_and_004_are_one_story_and_no_other_pair_is() -> None:
    from tests.conftest import SEEDS_DIR

    rows = [
        {"id": p.name[:3], "title": "", "text": p.read_text(encoding="utf-8"),
         "published_at": "2025-08-27", "source": p.name[:3]}
        for p in sorted(SEEDS_DIR.glob("*.txt"))
    ]  # fmt: skip
    story = clustered(rows)
    joined = [(a, b) for a, b in combinations(sorted(story), 2) if story[a] == story[b]]
    assert joined == [("000", "004")]


def test_memory_store_counts_each_article_once_per_term() -> None:
    store = MemoryStories()
    for i in range(3):
        raw = raw_features("Soybean tariffs", "Soybean tariffs rise again as talks stall.")
        assign(store, MODEL, f"a{i}", 20000.0 + i / 24, raw)
    df, docs = store.document_frequencies(["soybean", "tariff", "@unknown"], 20000.5)
    assert (df, docs) == ({"soybean": 3, "tariff": 3, "@unknown": 0}, 3)


def test_term_counts_fold_case_and_keep_cjk_bigrams() -> None:
    counts = term_counts("Tariffs and TARIFFS: tariffs’ toll. 关税上调关税")
    assert counts["tariff"] == 3 and counts["toll"] == 1
    assert counts["关税"] == 2 and counts["税上"] == 1
    assert "and" not in counts  # a stop word


def test_capitalised_words_written_in_lower_case_elsewhere_are_not_names() -> None:
    # "Facing" opens a sentence; the text writes "facing" too: not part of the name.
    text = (
        "Facing Beijing Talks, officials met. The team is facing pressure. Beijing Talks resumed."
    )
    for found in (anchors_of(text), raw_features("", text).anchors):  # both ways of asking
        assert "c:beijing talks" in found and not any("facing" in a for a in found)


def _stored_profiles() -> list[Profile]:
    store = MemoryStories()
    for row in sorted(ARTICLES, key=lambda r: r["published_at"]):
        raw = raw_features(row["title"], row["text"])
        assign(store, MODEL, row["id"], day_of(row["published_at"]), raw, row["source"])
    return [found for found, _ in store.stored.values()]


def test_the_score_bound_is_never_below_the_score_and_rules_out_unrelated_pairs() -> None:
    """``could_join`` may skip a candidate only if it could never have joined: over every
    ordered same-script pair of the invented articles (and a hand-made profile whose term
    weights are not normalised), the bound is at least the model's score, every pair that
    joins passes, and some unrelated pairs are ruled out (it saves work)."""
    profiles = _stored_profiles()
    odd = dataclasses.replace(profiles[0], article_id="odd", terms={"tariff": 3.0, "soybean": 4.0})
    profiles.append(odd)
    ruled_out = 0
    pairs = [(a, b) for a in profiles for b in profiles if a is not b and a.script == b.script]
    assert any(b is odd for _, b in pairs)
    for a, b in pairs:
        score = MODEL.bias + sum(
            w * x for w, x in zip(MODEL.weights, pair_features(a, b), strict=True)
        )
        assert score_bound(MODEL, a, b) >= score - 1e-9, (a.article_id, b.article_id)
        if same_story(MODEL, a, b)[1]:
            assert could_join(MODEL, a, b)
        ruled_out += not could_join(MODEL, a, b)
    assert 0 < ruled_out < len(pairs)
    assert any(same_story(MODEL, a, b)[1] for a, b in pairs)  # joins were checked
