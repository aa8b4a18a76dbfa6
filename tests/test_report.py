"""The QC report on a small hand-checked example: verdicts, gold accuracy, peer and expert agreement,
time per clip, progress per scene and scenario, the same over time, flags, the plots and the numbers they
draw, the Prefect artifact's markdown, CSV/PNG/HTML files and the CLI command."""

import base64
import io

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from annotation.report import artifact_markdown, figures, qc_report, write_qc_report
from cli.annotation_report import add_report_command
from schemas.config import AnnotationConfig
from schemas.manifests import to_table, write_manifest
from schemas.records import TaskRecord
from pipeline.synthetic import gold_frame
from tests.trust_support import T0, vote

CFG = AnnotationConfig()  # 3 annotators per clip, flag gold accuracy below 0.6
GOLD = {"G1": "Happy", "G2": "Sad", "G3": "Angry"}
# group g1: three gold clips and r1, r2; copy 0 by A, copy 1 by B, copy 2 by C; G1, G2 answered on
# 1 January, G3, r1, r2 on 2 January
DAY = 86_400
ANSWERS = {  # annotator: (copy, {clip: label}, lead times)
    "A": (0, {"G1": "Happy", "G2": "Sad", "G3": "Angry", "r1": "Happy", "r2": "Fear"}, [1, 2, 3, 4, 5]),
    "B": (1, {"G1": "Happy", "G2": "Sad", "G3": "Fear", "r1": "Happy", "r2": "Sad"}, [10, 20, 30, 40, 50]),
    "C": (2, {"G1": "Happy", "G2": "Fear", "G3": "Fear", "r1": "Sad", "r2": "Sad"}, [2, 2, 2, 4, 100]),
}
# group g2: gold G1 and r3, copies by X, Y, Z: all right on gold, no majority on r3
ANSWERS_G2 = {"X": (0, "Neutral"), "Y": (1, "Sad"), "Z": (2, "Happy")}
TASK_IDS: dict[tuple[str, str, int], int] = {}


def _task(group: str, clip: str, copy: int) -> int:
    return TASK_IDS.setdefault((group, clip, copy), len(TASK_IDS) + 1)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    wd = tmp_path_factory.mktemp("qc")
    rows = []
    for ann, (copy, labels, times) in ANSWERS.items():
        for i, ((clip, label), t) in enumerate(zip(labels.items(), times)):
            kw = {} if ann == "B" else {"group_id": "g1", "copy_index": copy}  # B's group comes from tasks
            rows.append(vote(clip, ann, label, task_id=_task("g1", clip, copy), lead_time_s=t,
                             at_s=DAY if i >= 2 else 0, **kw))
    first = rows[3]  # A's r1: an earlier version said Sad, the latest says Happy
    rows.append(vote("r1", "A", "Sad", task_id=first.task_id, annotation_id=first.annotation_id, synced_s=-60,
                     group_id="g1", copy_index=0))
    rows.append(vote("r2", "C", "Happy", task_id=_task("g1", "r2", 2), deleted=True, group_id="g1", copy_index=2))
    for ann, (copy, label) in ANSWERS_G2.items():
        rows += [vote("G1", ann, "Happy", task_id=_task("g2", "G1", copy), group_id="g2", copy_index=copy),
                 vote("r3", ann, label, task_id=_task("g2", "r3", copy), group_id="g2", copy_index=copy)]
    rows += [vote("r1", "E", "Happy", role="expert", task_id=_task("g1", "r1", -1), lead_time_s=7),
             vote("r2", "E", "Sad", role="expert", task_id=_task("g1", "r2", -1), lead_time_s=9)]
    write_manifest(wd, "votes", rows)
    tasks = [TaskRecord(clip_id=clip, project_id=10 + copy, task_id=tid, project_role="copy" if copy >= 0 else "review",
                        copy_index=copy, group_id=group, is_gold=clip in GOLD, pushed_at=T0)
             for (group, clip, copy), tid in TASK_IDS.items()]
    write_manifest(wd, "tasks", tasks)
    write_manifest(wd, "gold", gold_frame(GOLD))
    clips = pd.DataFrame({"clip_id": ["r1", "r2", "r3", "G1"], "scene": ["War", "School", "School", "War"],
                          "scenario": ["AI", "DL", "DL", "AI"]})
    write_manifest(wd, "clips", _clip_rows(clips))
    return wd


def _clip_rows(clips: pd.DataFrame) -> pd.DataFrame:
    """Full clips.parquet rows around the columns the report reads."""
    filler = {f.name: (0.0 if str(f.type) == "double" else 0 if "int" in str(f.type) else "x")
              for f in to_table("clips", []).schema if f.name not in clips.columns}
    return clips.assign(**filler)


@pytest.fixture(scope="module")
def report(workdir):
    return qc_report(workdir, CFG)


def test_copy_verdicts_and_requeue(report):
    copies = report.copies.set_index("annotator")
    assert copies.loc[["A", "B", "C"], "gold_rate"].round(3).tolist() == [1.0, 0.667, 0.333]
    assert copies["verdict"].to_dict() == {"A": "Accept", "B": "Improper", "C": "Unacceptable",
                                           "X": "Accept", "Y": "Accept", "Z": "Accept"}
    assert copies.loc["B", ["group_id", "copy_index"]].tolist() == ["g1", 1]  # filled in from tasks.parquet
    assert report.requeue.to_dict("records") == [{"group_id": "g1", "copy_index": 2, "rejected": "C"}]
    assert report.needs_more["clip_id"].tolist() == ["r3"]  # Neutral / Sad / Happy


def test_annotator_gold_accuracy_agreement_and_time_by_hand(report):
    a = report.annotators.set_index("annotator")
    assert a.loc[["A", "B", "C"], "gold_accuracy"].round(3).tolist() == [1.0, 0.667, 0.333]
    # others' unique majority on the same clip of the same group, ties left out:
    # A agrees on G1, not on G3 (others Fear, Fear) nor r2 (Sad, Sad) -> 1/3; B only compares on G1 -> 1/1;
    # C agrees on G1, not on G2 (Sad, Sad) nor r1 (Happy, Happy) -> 1/3
    assert a.loc[["A", "B", "C"], "peer_compared"].tolist() == [3, 1, 3]
    assert a.loc[["A", "B", "C"], "peer_agreement"].round(3).tolist() == [0.333, 1.0, 0.333]
    # expert said r1 Happy, r2 Sad
    assert a.loc[["A", "B", "C"], "expert_agreement"].tolist() == [0.5, 1.0, 0.5]
    assert a.loc[["A", "B", "C", "E"], "median_time_s"].tolist() == [3.0, 30.0, 2.0, 8.0]
    assert a.loc["A", "n_votes"] == 5  # the edited annotation counts once
    assert a.loc["C", "n_votes"] == 5  # the deleted one not at all
    assert report.flagged == ["C"]
    assert a.loc["E", "role"] == "expert" and not a.loc["E", "flagged"]
    assert a.loc["C", "copies_Unacceptable"] == 1 and a.loc["A", "copies_Accept"] == 1


def test_progress_per_scene_and_scenario(report):
    scene = report.progress_scene.set_index("scene")
    # r1 (War): A, B (C discarded) -> started, not complete, expert-reviewed; gold G1 is not counted.
    # School: r2 like r1; r3 has X, Y, Z -> complete.
    assert scene.loc["War", ["clips", "started", "complete", "reviewed"]].tolist() == [1, 1, 0, 1]
    assert scene.loc["School", ["clips", "started", "complete", "reviewed"]].tolist() == [2, 2, 1, 1]
    scenario = report.progress_scenario.set_index("scenario")
    assert scenario["share_complete"].to_dict() == {"AI": 0.0, "DL": 0.5}


def test_gold_accuracy_and_peer_agreement_over_time_by_hand(report):
    t = report.over_time.set_index(["annotator", report.over_time["period"].dt.strftime("%m-%d")])
    # gold: A right on all; B right on G1, G2 (day 1), wrong on G3 (day 2); C wrong on G2 and G3
    assert t.loc[("A", "01-01"), ["gold_answered", "gold_accuracy"]].tolist() == [2, 1.0]
    assert t.loc[("B", "01-02"), ["gold_answered", "gold_accuracy"]].tolist() == [1, 0.0]
    assert t.loc[("C", "01-01"), ["gold_answered", "gold_accuracy"]].tolist() == [2, 0.5]
    # peers (see above): A agrees on G1 (day 1), not on G3, r2 (day 2); C agrees on G1, not G2 (day 1), not r1
    assert t.loc[("A", "01-01"), ["peer_compared", "peer_agreement"]].tolist() == [1, 1.0]
    assert t.loc[("A", "01-02"), ["peer_compared", "peer_agreement"]].tolist() == [2, 0.0]
    assert t.loc[("C", "01-01"), ["peer_compared", "peer_agreement"]].tolist() == [2, 0.5]
    assert "E" not in t.index.get_level_values(0)  # experts are not judged against the crowd


def _is_png(data: bytes) -> bool:
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    return image.format == "PNG" and image.width > 200 and image.height > 100


def test_plots_draw_the_known_counts(report):
    plots = figures(report)
    assert list(plots) == ["progress_scene", "progress_scenario", "gold_accuracy", "peer_agreement", "verdicts"]
    assert all(_is_png(p.png) for p in plots.values())
    scene = plots["progress_scene"].data.set_index("scene")
    # War: r1 started by A, B (C discarded), not complete; School: r3 complete, r2 in progress
    assert scene.loc["War", ["complete", "in_progress", "not_started", "reviewed"]].tolist() == [0, 1, 0, 1]
    assert scene.loc["School", ["complete", "in_progress", "not_started", "reviewed"]].tolist() == [1, 1, 0, 1]
    scenario = plots["progress_scenario"].data.set_index("scenario")
    assert scenario[["clips", "complete"]].to_dict("index") == {"AI": {"clips": 1, "complete": 0},
                                                              "DL": {"clips": 2, "complete": 1}}
    gold = plots["gold_accuracy"].data
    assert list(gold.columns[:2]) == ["2026-01-01", "2026-01-02"]
    assert gold.loc["B", "2026-01-01"] == 1.0 and gold.loc["B", "2026-01-02"] == 0.0
    assert gold.loc["C", "2026-01-01 gold_answered"] == 2 and pd.isna(gold.loc["X", "2026-01-02"])
    assert sorted(gold.index) == ["A", "B", "C", "X", "Y", "Z"]
    peers = plots["peer_agreement"].data
    assert peers.loc["A", "2026-01-02"] == 0.0 and peers.loc["B", "2026-01-01 peer_compared"] == 1
    verdicts = plots["verdicts"].data.set_index("verdict")["copies"].to_dict()
    assert verdicts == {"Accept": 4, "Improper": 1, "Unacceptable": 1, "Pending": 0}


def test_artifact_markdown_has_every_plot_and_the_headline_counts(report):
    plots = figures(report)
    md = artifact_markdown(report, plots)
    assert "Clips: 3 (gold excluded); started 3, complete 1, expert-reviewed 2." in md
    assert "Group copies: Accept 4, Improper 1, Unacceptable 1, Pending 0." in md
    assert "Flagged annotators: C." in md
    for plot in plots.values():
        assert f"## {plot.title}" in md and f"]({plot.data_uri()})" in md
        assert _is_png(base64.b64decode(plot.data_uri().split(",", 1)[1]))


def test_written_report_is_self_contained(report, tmp_path):
    paths = write_qc_report(report, tmp_path / "qc")
    names = sorted(p.name for p in paths)
    assert names == sorted(["copies.csv", "annotators.csv", "progress_scene.csv", "progress_scenario.csv",
                            "over_time.csv", "requeue.csv", "needs_more.csv",
                            "progress_scene.png", "progress_scenario.png", "gold_accuracy.png",
                            "peer_agreement.png", "verdicts.png", "qc_report.html"])
    assert pd.read_csv(tmp_path / "qc" / "annotators.csv").set_index("annotator").loc["C", "flagged"]
    page = (tmp_path / "qc" / "qc_report.html").read_text()
    assert page.count("<table") == 7 and "Flagged annotators: C" in page
    assert page.count("<img") == 5 and page.count("src='data:image/png;base64,") == 5
    assert not any(s in page for s in ("<script", "<link", "http://", "https://"))


def test_cli_report_prints_and_writes(workdir, tmp_path):
    app = typer.Typer()
    add_report_command(app)
    app.command("noop")(lambda: None)  # a group with two commands keeps "report" as a sub-command
    result = CliRunner().invoke(app, ["report", str(workdir), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "Unacceptable" in result.output and "flagged annotators" in result.output
    assert (tmp_path / "out" / "qc_report.html").exists()
    bad = CliRunner().invoke(app, ["report", str(tmp_path / "missing")])
    assert bad.exit_code != 0
