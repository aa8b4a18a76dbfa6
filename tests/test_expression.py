"""The expression model (pipeline.expression) on real faces, and expression-aware candidates on a video made
from photographs: a calm face, then (after a dissolve, in one long shot) a smiling one."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.clips import make_clips
from pipeline.expression import EXPRESSIONS, ExpressionModel, face_input, face_scorer
from pipeline.expression.convert import onnx_model
from pipeline.media import write_video
from pipeline.models import fetch_model
from pipeline.samples import photo
from schemas.config import BuildConfig
from schemas.manifests import read_manifest
from tests.clips_support import make_workdir

CALM, SMILING = 0, 3  # t1.jpg's faces, in pipeline.samples' order: 0, 1, 4 are calm (no smile), 2 and 3 laugh


@pytest.fixture(scope="session")
def expression_models_dir(request, centerface_models_dir, tmp_path_factory) -> Path:
    """A models directory with CenterFace and the expression model (apart from the CenterFace-only one, so
    other tests keep expression scoring off)."""
    cache = getattr(request.config, "cache", None)
    folder = Path(cache.mkdir("ferv-models-expression")) if cache is not None else tmp_path_factory.mktemp("m")
    for name in ("centerface.onnx", "centerface.int8.onnx", "centerface.int8.json"):
        if (centerface_models_dir / name).is_file() and not (folder / name).is_file():
            shutil.copyfile(centerface_models_dir / name, folder / name)
    fetch_model("expression", folder)
    return folder


@pytest.fixture(scope="session")
def model(expression_models_dir) -> ExpressionModel:
    return ExpressionModel(expression_models_dir)


def _top(model: ExpressionModel, image: np.ndarray, box) -> tuple[str, np.ndarray]:
    p = model.probabilities(face_input(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), box)[None])[0]
    return EXPRESSIONS[int(p.argmax())], p


def test_the_smiling_astronaut_is_happy_and_calm_faces_are_not(model):
    astronaut = photo("astronaut")
    top, p = _top(model, astronaut.image, astronaut.faces[0])
    assert top == "Happy" and p.sum() == pytest.approx(1, abs=1e-4)
    t1 = photo("t1")
    tops = [_top(model, t1.image, box)[0] for box in t1.faces]
    assert tops[2] == tops[3] == "Happy"  # the two laughing men
    assert tops[0] == tops[1] == tops[4] == "Neutral"  # the calm faces (eyes down, mouth closed)


def test_the_graph_is_built_once_per_models_directory(expression_models_dir):
    first = onnx_model(expression_models_dir)
    stamp = first.stat().st_mtime_ns
    assert onnx_model(expression_models_dir).stat().st_mtime_ns == stamp


def test_scoring_is_off_with_one_info_line_when_the_model_is_absent(tmp_path, caplog):
    cfg = BuildConfig.model_validate({"faces": {"models_dir": str(tmp_path)}})
    with caplog.at_level(logging.INFO, logger="pipeline.expression"):
        scorer = face_scorer(cfg)
    assert not scorer.enabled and scorer.columns(np.zeros((10, 10), np.uint8), np.zeros((2, 4))).shape == (2, 0)
    assert [r.levelno for r in caplog.records] == [logging.INFO]
    assert "ferv models fetch expression" in caplog.records[0].getMessage()


def _placed(name: str, box, centre=(320, 180), height=150, size=(640, 360)) -> np.ndarray:
    """The photo scaled so that face ``box`` is ``height`` pixels tall, centred on ``centre``."""
    x1, y1, x2, y2 = box
    s = height / (y2 - y1)
    matrix = np.array([[s, 0, centre[0] - s * (x1 + x2) / 2], [0, s, centre[1] - s * (y1 + y2) / 2]])
    return cv2.warpAffine(photo(name).image, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def calm_then_smiling(path: Path, calm: int = 125, dissolve: int = 25, smiling: int = 150) -> int:
    """One 12 s shot at 25 fps: a calm face, a slow dissolve, a smiling face at the same place; the first
    frame of the smiling part."""
    a, b = _placed("t1", photo("t1").faces[CALM]), _placed("astronaut", photo("astronaut").faces[0])
    mix = lambda t: cv2.addWeighted(a, 1 - t, b, t, 0)  # noqa: E731
    frames = [a] * calm + [mix((i + 1) / (dissolve + 1)) for i in range(dissolve)] + [b] * smiling
    write_video(path, frames, fps=25, crf=18)
    return calm + dissolve


@pytest.fixture(scope="module")
def long_shot(expression_models_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("expression-work")
    video = root / "calm_then_smiling.mp4"
    smile_from = calm_then_smiling(video)
    make_workdir(root, [(video, "Interview")])
    cfg = BuildConfig.model_validate({"faces": {"models_dir": str(expression_models_dir), "device": "cpu"},
                                      "expression": {"enabled": "on"}, "clips": {"workers": 1}})
    summary = make_clips(root, cfg, workers=1)
    assert summary.failed == 0, summary.failures
    return root, smile_from


def test_candidates_cover_both_parts_of_one_long_shot_and_the_model_tells_them_apart(long_shot):
    root, smile_from = long_shot
    assert len(read_manifest(root, "shots")) == 1
    clips = read_manifest(root, "clips").sort_values("start_frame")
    calm = clips[clips["end_frame"] <= smile_from - 25]  # before the dissolve
    smiling = clips[clips["start_frame"] >= smile_from]
    assert len(calm) and len(smiling), clips[["start_frame", "end_frame", "predicted_expression"]]
    assert (smiling["predicted_expression"] == "Happy").all()
    assert not (calm["predicted_expression"] == "Happy").any()
    assert smiling["intensity"].min() > calm["intensity"].max()
    assert clips["predicted_prob"].between(0, 1).all()
    tracks = read_manifest(root, "tracks")
    scored = tracks[tracks["predicted_expression"].notna()]
    assert len(scored) and not scored["interpolated"].any()
    assert tracks.loc[tracks["interpolated"], "intensity"].isna().all()
    assert (scored.loc[scored["frame"] >= smile_from, "predicted_expression"] == "Happy").mean() > 0.9
    print("clip frames:", clips["num_frames"].tolist(), clips["predicted_expression"].tolist(),
          clips["intensity"].round(2).tolist())


def _release(root: Path, margin: float = 0.4) -> Path:
    """A hand-made release: face-crop frames (cut as the exporter cuts them: the box's long side times
    ``1 + margin``, 224x224) of faces with known expressions, listed as its test split."""
    from pipeline.export import crop_square

    clips = [("Talkshow/Happy/0000", "astronaut", 0), ("Talkshow/Happy/0001", "t1", 2),
             ("Talkshow/Happy/0002", "t1", 3), ("Interview/Neutral/0000", "t1", 0),
             ("Interview/Neutral/0001", "t1", 1), ("Interview/Neutral/0002", "t1", 4)]
    for key, name, face in clips:
        image = cv2.cvtColor(photo(name).image, cv2.COLOR_RGB2BGR)
        folder = root / "2_ClipsforFaceCrop" / key
        folder.mkdir(parents=True)
        for i, shift in enumerate((-3, 0, 3)):  # a little motion from frame to frame
            x, y, side = crop_square(np.add(photo(name).faces[face], shift), margin)
            padded = cv2.copyMakeBorder(image, side, side, side, side, cv2.BORDER_CONSTANT)
            crop = padded[y + side:y + 2 * side, x + side:x + 2 * side]
            cv2.imwrite(str(folder / f"{i + 1:05d}.jpg"), cv2.resize(crop, (224, 224), interpolation=cv2.INTER_AREA))
    lists = root / "4_setups" / "All_scenes"
    lists.mkdir(parents=True)
    (lists / "test_All.csv").write_text("".join(f"{k} {k.split('/')[1]}\n" for k, _, _ in clips))
    return root


def test_predict_on_a_release_then_evaluate_gives_war_and_uar(expression_models_dir, tmp_path):
    from typer.testing import CliRunner

    from cli.app import app
    from pipeline.expression.predict import baseline, baseline_section

    release, out = _release(tmp_path / "release"), tmp_path / "predictions.csv"
    runner = CliRunner()
    result = runner.invoke(app, ["predict", str(release), "-o", str(out), "--models-dir", str(expression_models_dir)])
    assert result.exit_code == 0, result.output
    import pandas as pd

    table = pd.read_csv(out)
    assert table["prediction"].tolist() == ["Happy"] * 3 + ["Neutral"] * 3
    assert np.allclose(table[sorted(EXPRESSIONS)].sum(axis=1), 1, atol=1e-4)
    result = runner.invoke(app, ["evaluate", str(release), str(out), "--out", str(tmp_path / "eval")])
    assert result.exit_code == 0, result.output
    figures = baseline(release, expression_models_dir)
    assert figures["war"] == figures["uar"] == 100.0 and figures["n_clips"] == 6
    assert "DFER-CLIP" in figures["published"]
    assert baseline(release, tmp_path / "no-models") is None
    assert "| 100.00 | 100.00 |" in baseline_section(figures)


def test_the_release_report_section_scores_the_test_clips_it_is_given(expression_models_dir, tmp_path):
    import pandas as pd

    from pipeline.expression.predict import report_section

    release = _release(tmp_path / "release")
    plan = {str(p.relative_to(release)): p for p in sorted((release / "2_ClipsforFaceCrop").rglob("*.jpg"))}
    keys = sorted({k.split("/", 1)[1].rsplit("/", 1)[0] for k in plan})
    meta = pd.DataFrame({"path": keys, "expression": [k.split("/")[1] for k in keys], "split": "test"})
    meta.loc[meta["path"] == "Talkshow/Happy/0000", "split"] = "train"  # not scored
    cfg = BuildConfig.model_validate({"faces": {"models_dir": str(expression_models_dir)}})
    section = report_section(meta, plan, cfg)
    assert "(this release's test split, 5 clips) | 100.00 | 100.00 |" in section
    off = BuildConfig.model_validate({"faces": {"models_dir": str(tmp_path / "none")}})
    assert report_section(meta, plan, off) == ""


def test_a_clips_manifest_written_before_expression_scores_still_reads(tmp_path):
    import pyarrow.parquet as pq

    from schemas.manifests import SCHEMAS

    schema = SCHEMAS["clips"]
    old = schema.empty_table().drop_columns(["predicted_expression", "predicted_prob", "intensity"])
    pq.write_table(old, tmp_path / "clips.parquet")
    clips = read_manifest(tmp_path, "clips")
    assert {"predicted_expression", "predicted_prob", "intensity"} <= set(clips.columns)
