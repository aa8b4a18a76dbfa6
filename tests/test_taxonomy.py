"""The taxonomy is FERV39k's, and ``ferv taxonomy --json`` prints it whole."""

import json

from typer.testing import CliRunner

from cli.app import app
from schemas.config import load_config
from schemas.taxonomy import TAXONOMY

FERV39K_SCENES = {
    "DL": ["Conflict", "School", "DailyLife", "Argue", "Medicine", "Social"],
    "WIS": ["Action", "ScholarReport", "Speech", "Liveshow", "ElegantArt", "Talkshow"],
    "SIA": ["Business", "Experiment", "OfficialEvent", "Crime", "Interview", "Contest"],
    "AI": ["History", "Terror", "War", "Crisis"],
}


def test_taxonomy_json_lists_the_whole_hierarchy():
    result = CliRunner().invoke(app, ["taxonomy", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert {s["code"]: s["scenes"] for s in data["scenarios"]} == FERV39K_SCENES
    assert len(data["scenes"]) == 22
    assert [(e["name"], e["id"]) for e in data["expressions"]] == [
        ("Angry", 0), ("Disgust", 1), ("Fear", 2), ("Happy", 3), ("Neutral", 4), ("Sad", 5), ("Surprise", 6)]
    dfew = sorted(data["expressions"], key=lambda e: e["dfew_id"])
    assert [e["name"] for e in dfew] == ["Happy", "Sad", "Neutral", "Angry", "Surprise", "Disgust", "Fear"]
    assert len(data["descriptors"]) == 26
    by_expression = {}
    for d in data["descriptors"]:
        by_expression.setdefault(d["expression"], []).append(d["name"])
    assert by_expression["Neutral"] == ["Poker-faced", "Calm", "Unbiased"]
    assert by_expression["Happy"] == ["Pride", "Cheerful", "Thrill"]
    assert by_expression["Fear"] == ["Distress", "Panic", "Worry", "Terror"]


def test_taxonomy_table_prints():
    result = CliRunner().invoke(app, ["taxonomy"])
    assert result.exit_code == 0
    assert "ScholarReport" in result.output and "Poker-faced" in result.output


def test_reference_figures_add_up():
    ref = TAXONOMY.reference
    assert sum(ref["expressions"].values()) == ref["clips"] == 38935
    assert sum(ref["scenes"].values()) == ref["clips"]
    assert ref["splits"]["train"] + ref["splits"]["test"] == ref["clips"]
    for scenario in TAXONOMY.scenarios:
        assert sum(ref["scenes"][s] for s in scenario.scenes) == ref["scenarios"][scenario.code]


def test_descriptor_map_covers_every_word_and_pass():
    mapping = TAXONOMY.descriptor_to_expression()
    assert len(mapping) == 27 and mapping["PASS"] == "PASS"
    assert mapping["Poker-faced"] == "Neutral" and mapping["Terror"] == "Fear"


def test_config_keywords_override_without_code(tmp_path):
    path = tmp_path / "build.yaml"
    path.write_text("scenes: [War, Talkshow]\nkeywords:\n  War: [trench drama]\n")
    cfg = load_config(path)
    assert cfg.scene_keywords("War") == ["trench drama"]
    assert cfg.scene_keywords("Talkshow") == list(TAXONOMY.scene("Talkshow").keywords)


def test_config_rejects_unknown_scene(tmp_path):
    path = tmp_path / "build.yaml"
    path.write_text("scenes: [Wars]\n")
    try:
        load_config(path)
    except ValueError as exc:
        assert "Wars" in str(exc)
    else:
        raise AssertionError("an unknown scene must be rejected")


def test_shipped_configs_load():
    from pathlib import Path

    for path in sorted(Path(__file__).parents[1].joinpath("configs").glob("*.yaml")):
        load_config(path)
