"""Evaluate predictions on a release's test split: WAR, UAR (overall, per scenario, per scene), confusion.

The test clips are the lines of ``RELEASE/4_setups/All_scenes/test_All.csv`` (``<Scene>/<Expression>/<NNNN>
<Expression>``, no header). Predictions are a CSV with a ``path`` (that key) or ``clip_id`` column
(looked up in ``RELEASE/metadata.parquet``) and either a ``prediction`` column (expression name) or one
score column per expression (the highest score wins; on equal scores the first expression in
alphabetical order). Every test clip must be predicted exactly once.

WAR (weighted average recall) is the share of test clips predicted right; UAR (unweighted average
recall) is the mean over the expressions present in the test clips of each one's recall.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.release.check import read_list
from schemas.errors import UserError
from schemas.taxonomy import TAXONOMY

TEST_LIST = "4_setups/All_scenes/test_All.csv"
METADATA = "metadata.parquet"
EXPRESSIONS = TAXONOMY.expression_names  # alphabetical: the confusion matrix order


class EvaluationError(UserError, ValueError):
    """Predictions or a release that cannot be evaluated; the message says which clips and what to do."""


@dataclass(frozen=True)
class EvalResult:
    war: float
    uar: float
    n_clips: int
    per_scenario: pd.DataFrame  # scenario, n_clips, war, uar
    per_scene: pd.DataFrame  # scene, scenario, n_clips, war, uar
    confusion: pd.DataFrame  # rows true, columns predicted, both in EXPRESSIONS order
    files: dict[str, Path] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "war": self.war, "uar": self.uar, "n_clips": self.n_clips,
            "per_scenario": self.per_scenario.to_dict(orient="records"),
            "per_scene": self.per_scene.to_dict(orient="records"),
            "confusion": {"labels": EXPRESSIONS, "matrix": self.confusion.to_numpy().tolist()},
        }


def _examples(values) -> str:
    values = sorted(map(str, values))
    return ", ".join(values[:5]) + (f" and {len(values) - 5} more" if len(values) > 5 else "")


def read_test_list(release_dir: Path) -> pd.DataFrame:
    """The test clips of a release: path, expression, scene, scenario."""
    path = Path(release_dir) / TEST_LIST
    if not path.is_file():
        raise EvaluationError(f"{path} does not exist; pass a release folder built by `ferv release`")
    try:
        pairs = read_list(path)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EvaluationError(f"{exc}; rebuild the release with `ferv release`") from None
    if not pairs:
        raise EvaluationError(f"{path} lists no test clips: the release has an empty test split; build it with "
                              "more labelled clips (or a larger release.test_fraction)")
    test = pd.DataFrame(pairs, columns=["path", "expression"])
    unknown_expressions = set(test["expression"]) - set(EXPRESSIONS)
    if unknown_expressions:
        raise EvaluationError(f"{path}: expressions {_examples(unknown_expressions)} are not taxonomy expressions")
    test["scene"] = test["path"].str.split("/").str[0]
    unknown = set(test["scene"]) - set(TAXONOMY.scene_names)
    if unknown:
        raise EvaluationError(f"{path}: scenes {_examples(unknown)} are not taxonomy scenes")
    test["scenario"] = test["scene"].map({s.name: s.scenario for s in TAXONOMY.scenes})
    dup = test.loc[test["path"].duplicated(), "path"]
    if len(dup):
        raise EvaluationError(f"{path}: clips listed twice: {_examples(set(dup))}")
    return test


def read_predictions(predictions_csv: Path, release_dir: Path) -> pd.DataFrame:
    """Predictions as (path, prediction), keys resolved and names checked."""
    what = "write a CSV with a header (path or clip_id, then prediction or one score column per expression)"
    try:
        with open(predictions_csv, "rb") as fh:
            if b"\0" in fh.read(8192):
                raise UnicodeDecodeError("utf-8", b"", 0, 1, "NUL byte")
        pred = pd.read_csv(predictions_csv, dtype={"path": str, "clip_id": str, "prediction": str},
                           encoding="utf-8")
    except FileNotFoundError:
        raise EvaluationError(f"predictions file {predictions_csv} does not exist; {what}") from None
    except pd.errors.EmptyDataError:
        raise EvaluationError(f"predictions file {predictions_csv} is empty; {what}") from None
    except UnicodeDecodeError:
        raise EvaluationError(f"predictions file {predictions_csv} is binary, not UTF-8 text; "
                              f"{what}") from None
    except pd.errors.ParserError as exc:
        raise EvaluationError(f"predictions file {predictions_csv} is not a well-formed CSV "
                              f"({' '.join(str(exc).split())}); check its quotes and commas") from None
    if pred.empty:
        raise EvaluationError(f"predictions file {predictions_csv} has a header but no rows; {what}")
    if "path" in pred.columns:
        key = pred["path"]
    elif "clip_id" in pred.columns:
        meta_path = Path(release_dir) / METADATA
        if not meta_path.is_file():
            raise EvaluationError(f"{meta_path} is missing: it maps clip_id to path; predict by `path` instead")
        meta = pd.read_parquet(meta_path, columns=["clip_id", "path"]).set_index("clip_id")["path"]
        unknown = pred.loc[~pred["clip_id"].isin(meta.index), "clip_id"]
        if len(unknown):
            raise EvaluationError(f"{predictions_csv}: clip ids not in the release: {_examples(set(unknown))}")
        key = pred["clip_id"].map(meta)
    else:
        raise EvaluationError(f"{predictions_csv}: needs a `path` or a `clip_id` column, has {list(pred.columns)}")
    if "prediction" in pred.columns:
        label = pred["prediction"]
        wrong = set(label[~label.isin(EXPRESSIONS)].astype(str))
        if wrong:
            raise EvaluationError(f"{predictions_csv}: unknown expressions {_examples(wrong)}; expected one of "
                                  f"{EXPRESSIONS}")
    else:
        missing = [e for e in EXPRESSIONS if e not in pred.columns]
        if missing:
            raise EvaluationError(f"{predictions_csv}: needs a `prediction` column or one score column per "
                                  f"expression; missing {missing}")
        scores = pred[EXPRESSIONS].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
        text = pred[EXPRESSIONS].notna().to_numpy() & np.isnan(scores)
        if text.any():
            rows = sorted({int(r) + 2 for r in np.flatnonzero(text.any(axis=1))})  # file lines (header is 1)
            raise EvaluationError(f"{predictions_csv}: scores that are not numbers on lines {_examples(rows)}; "
                                  "write each expression's score as a number")
        if np.isnan(scores).any():
            rows = np.flatnonzero(np.isnan(scores).any(axis=1))
            raise EvaluationError(f"{predictions_csv}: empty scores in rows {_examples(rows)}")
        label = pd.Series(np.asarray(EXPRESSIONS)[scores.argmax(axis=1)], index=pred.index)
    return pd.DataFrame({"path": key.to_numpy(), "prediction": label.to_numpy()})


def _check_coverage(test: pd.DataFrame, pred: pd.DataFrame, where: Path) -> None:
    dup = pred.loc[pred["path"].duplicated(), "path"]
    if len(dup):
        raise EvaluationError(f"{where}: test clips predicted more than once: {_examples(set(dup))}; keep one "
                              "prediction per clip")
    extra = set(pred["path"]) - set(test["path"])
    if extra:
        raise EvaluationError(f"{where}: predictions for clips that are not test clips: {_examples(extra)}")
    missing = set(test["path"]) - set(pred["path"])
    if missing:
        raise EvaluationError(f"{where}: {len(missing)} of {len(test)} test clips have no prediction: "
                              f"{_examples(missing)}")


def _scores(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """n_clips, WAR and UAR per group of ``by`` (vectorised: recall per group and expression, then mean)."""
    recall = frame.groupby([*by, "expression"])["correct"].mean()
    out = frame.groupby(by).agg(n_clips=("correct", "size"), war=("correct", "mean"))
    out["uar"] = recall.groupby(level=list(range(len(by)))).mean()
    return out.reset_index()


def _confusion_png(confusion: pd.DataFrame, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = confusion.to_numpy()
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
    fig, ax = plt.subplots(figsize=(6.5, 5.5), dpi=100)
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for (i, j), n in np.ndenumerate(counts):
        ax.text(j, i, str(n), ha="center", va="center", color="white" if share[i, j] > 0.5 else "black", fontsize=8)
    ax.set_xticks(range(len(EXPRESSIONS)), EXPRESSIONS, rotation=45, ha="right")
    ax.set_yticks(range(len(EXPRESSIONS)), EXPRESSIONS)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="share of the true expression")
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def evaluate(release_dir: Path, predictions_csv: Path, out_dir: Path | None = None) -> EvalResult:
    """Score ``predictions_csv`` against the test split of ``release_dir``; with ``out_dir``, write
    ``results.json``, ``per_scenario.csv``, ``per_scene.csv``, ``confusion.csv`` and ``confusion.png``."""
    release_dir, predictions_csv = Path(release_dir), Path(predictions_csv)
    test = read_test_list(release_dir)
    pred = read_predictions(predictions_csv, release_dir)
    _check_coverage(test, pred, predictions_csv)
    frame = test.merge(pred, on="path", validate="one_to_one")
    frame["correct"] = frame["expression"] == frame["prediction"]
    overall = _scores(frame.assign(all="all"), ["all"]).iloc[0]
    per_scenario = _scores(frame, ["scenario"])
    order = {sc.code: i for i, sc in enumerate(TAXONOMY.scenarios)}
    per_scenario = per_scenario.sort_values("scenario", key=lambda s: s.map(order), ignore_index=True)
    per_scene = _scores(frame, ["scenario", "scene"])[["scene", "scenario", "n_clips", "war", "uar"]]
    per_scene = per_scene.sort_values("scene", key=lambda s: s.map(TAXONOMY.scene_names.index), ignore_index=True)
    confusion = pd.crosstab(frame["expression"], frame["prediction"]).reindex(
        index=EXPRESSIONS, columns=EXPRESSIONS, fill_value=0).rename_axis(index="true", columns="predicted")
    result = EvalResult(float(overall["war"]), float(overall["uar"]), int(len(frame)), per_scenario, per_scene,
                        confusion)
    if out_dir is None:
        return result
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {name: out_dir / name for name in
             ("results.json", "per_scenario.csv", "per_scene.csv", "confusion.csv", "confusion.png")}
    payload = {"release": str(release_dir), "predictions": str(predictions_csv), **result.to_dict()}
    files["results.json"].write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    per_scenario.to_csv(files["per_scenario.csv"], index=False)
    per_scene.to_csv(files["per_scene.csv"], index=False)
    confusion.to_csv(files["confusion.csv"])
    _confusion_png(confusion, files["confusion.png"], f"WAR {result.war:.3f}  UAR {result.uar:.3f}")
    return EvalResult(result.war, result.uar, result.n_clips, per_scenario, per_scene, confusion, files)
