"""A zero-training baseline: the expression model over a release's face-crop frames (clip = the mean of its
frames' probabilities), written as the predictions file ``ferv evaluate`` reads (``path``, ``prediction`` and
one score column per expression), and its WAR/UAR beside FERV39k's published baselines for the report.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from pipeline.expression import EXPRESSIONS, ExpressionModel, face_input

BATCH = 256  # faces per inference call
# WAR / UAR (%) on FERV39k's test split, models trained on FERV39k (as reported in the DFER-CLIP paper,
# Zhao and Liu, BMVC 2023); ours is zero-training, on this release's test split: a floor, not a peer
PUBLISHED = {"Former-DFER": (46.85, 37.20), "DFER-CLIP": (51.65, 41.27)}
MODEL = "fer 25.10.3 mini-Xception (FER2013, zero-training)"


def clip_probabilities(model: ExpressionModel, frames: list[Path], margin: float, stride: int = 1) -> np.ndarray:
    """Mean probabilities over every ``stride``-th face-crop frame of a clip. A crop is the face box's long side
    times ``1 + margin`` (``export.crop_margin``), so the face is the central square of ``side / (1 + margin)``."""
    faces = []
    for path in frames[::stride]:
        gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if gray is None:
            raise ValueError(f"{path}: not a readable JPEG; rebuild the release or check the file")
        side = gray.shape[0] / (1.0 + margin)
        c = gray.shape[0] / 2
        faces.append(face_input(gray, (c - side / 2, c - side / 2, c + side / 2, c + side / 2)))
    if not faces:
        raise ValueError("a clip without face-crop frames; rebuild the release")
    probs = np.concatenate([model.probabilities(np.stack(faces[i:i + BATCH])) for i in range(0, len(faces), BATCH)])
    return probs.mean(axis=0)


def predict_clips(clips: dict[str, list[Path]], models_dir: Path, margin: float = 0.4, stride: int = 1,
                  threads: int = 1) -> pd.DataFrame:
    """One row per clip (key -> its face-crop frames in playing order): ``path`` (the key), ``prediction`` and
    the mean probability per expression (columns named as the taxonomy's expressions, alphabetical)."""
    model = ExpressionModel(models_dir, threads)
    probs = np.array([clip_probabilities(model, frames, margin, stride) for frames in clips.values()])
    probs = probs.reshape(-1, len(EXPRESSIONS))
    out = pd.DataFrame(probs, columns=list(EXPRESSIONS))
    out.insert(0, "prediction", np.asarray(EXPRESSIONS)[probs.argmax(axis=1)] if len(probs) else [])
    out.insert(0, "path", list(clips))
    return out[["path", "prediction", *sorted(EXPRESSIONS)]]


def predict_release(release_dir: Path, models_dir: Path, margin: float = 0.4, stride: int = 1,
                    threads: int = 1) -> pd.DataFrame:
    """:func:`predict_clips` over the test clips of a built release (the file ``ferv evaluate`` reads)."""
    from pipeline.evaluate import read_test_list
    from pipeline.release.layout import FACE_DIR, sorted_frames

    release_dir = Path(release_dir)
    clips = {}
    for key in read_test_list(release_dir)["path"]:
        folder = release_dir / FACE_DIR / key
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} is missing: the release lists {key} as a test clip; rebuild it")
        clips[key] = sorted_frames(folder)
    return predict_clips(clips, models_dir, margin, stride, threads)


def figures(predictions: pd.DataFrame, truth: pd.Series) -> dict:
    """WAR and UAR (%) of ``predictions`` (path, prediction) against ``truth`` (path -> expression), as
    ``ferv evaluate`` defines them, with FERV39k's published baselines."""
    right = predictions.set_index("path")["prediction"].reindex(truth.index) == truth
    return {"model": MODEL, "war": 100 * float(right.mean()), "uar": 100 * float(right.groupby(truth).mean().mean()),
            "n_clips": int(len(truth)),
            "published": {name: {"war": war, "uar": uar} for name, (war, uar) in PUBLISHED.items()}}


def report_section(meta: pd.DataFrame, plan: dict, cfg) -> str:
    """The release report's baseline section (markdown) for a release being built: the model over the test
    clips' face-crop frames as ``plan`` (release path -> source file) lays them out; "" when the model is not
    fetched or there is no test clip. ``cfg`` is the build config (models directory, crop margin, threads)."""
    from pipeline.faces import models_dir
    from pipeline.models import model_path
    from pipeline.release.layout import FACE_DIR

    folder = models_dir(cfg.faces)
    test = meta[meta["split"] == "test"].set_index("path")["expression"]
    if test.empty or not model_path("expression", folder).is_file():
        return ""
    frames: dict[str, list[Path]] = {key: [] for key in test.index}
    for name in sorted(plan):
        if name.startswith(FACE_DIR + "/"):
            key = name[len(FACE_DIR) + 1:].rsplit("/", 1)[0]
            if key in frames:
                frames[key].append(Path(plan[name]))
    predictions = predict_clips(frames, folder, cfg.export.crop_margin, threads=cfg.expression.threads)
    return baseline_section(figures(predictions, test))


def baseline(release_dir: Path, models_dir: Path, margin: float = 0.4) -> dict | None:
    """The baseline's figures for a built release (see :func:`figures`); None when the model is not fetched."""
    from pipeline.evaluate import read_test_list
    from pipeline.models import model_path

    if not model_path("expression", models_dir).is_file():
        return None
    truth = read_test_list(release_dir).set_index("path")["expression"]
    return figures(predict_release(release_dir, models_dir, margin), truth)


def baseline_section(found: dict) -> str:
    """The report's section on the baseline (markdown), from :func:`figures`."""
    rows = [f"| {found['model']} (this release's test split, {found['n_clips']} clips) | "
            f"{found['war']:.2f} | {found['uar']:.2f} |"]
    rows += [f"| {name} (FERV39k's test split, trained on FERV39k) | {f['war']:.2f} | {f['uar']:.2f} |"
             for name, f in found["published"].items()]
    return ("\n## Zero-training baseline\n\nThe expression model ferv uses as a ranking aid, run over the test "
            "face crops with no training on this release (what `ferv predict` then `ferv evaluate` give): a floor "
            "to beat. FERV39k's published figures (as reported in the DFER-CLIP paper) are for models trained on "
            "FERV39k.\n\n| model | WAR % | UAR % |\n|---|---|---|\n" + "\n".join(rows) + "\n")
