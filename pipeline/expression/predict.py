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

FACE_DIR = "2_ClipsforFaceCrop"  # the release's face-crop frames: <Scene>/<Expression>/<NNNN>/<frames>.jpg
BATCH = 256  # faces per inference call
# WAR / UAR (%) on FERV39k's test split, models trained on FERV39k (as reported in the DFER-CLIP paper,
# Zhao and Liu, BMVC 2023); ours is zero-training, on this release's test split: a floor, not a peer
PUBLISHED = {"Former-DFER": (46.85, 37.20), "DFER-CLIP": (51.65, 41.27)}


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


def predict_release(release_dir: Path, models_dir: Path, margin: float = 0.4, stride: int = 1,
                    threads: int = 1) -> pd.DataFrame:
    """One row per test clip of ``release_dir``: ``path``, ``prediction`` and the mean probability per
    expression (columns named as the taxonomy's expressions)."""
    from pipeline.evaluate import read_test_list
    from pipeline.release.layout import sorted_frames

    release_dir = Path(release_dir)
    model = ExpressionModel(models_dir, threads)
    test = read_test_list(release_dir)
    rows = []
    for key in test["path"]:
        folder = release_dir / FACE_DIR / key
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} is missing: the release lists {key} as a test clip; rebuild it")
        rows.append(clip_probabilities(model, sorted_frames(folder), margin, stride))
    probs = np.array(rows).reshape(-1, len(EXPRESSIONS))
    out = pd.DataFrame(probs, columns=list(EXPRESSIONS))
    out.insert(0, "prediction", np.asarray(EXPRESSIONS)[probs.argmax(axis=1)] if len(probs) else [])
    out.insert(0, "path", test["path"].to_numpy())
    return out[["path", "prediction", *sorted(EXPRESSIONS)]]


def baseline(release_dir: Path, models_dir: Path, margin: float = 0.4, out_csv: Path | None = None) -> dict | None:
    """The baseline's figures for a release's report: WAR and UAR (%) of the expression model on the test
    split, its test clip count, and FERV39k's published baselines; None when the model is not fetched."""
    from pipeline.evaluate import evaluate
    from pipeline.models import model_path

    if not model_path("expression", models_dir).is_file():
        return None
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(out_csv) if out_csv else Path(tmp) / "predictions.csv"
        predict_release(release_dir, models_dir, margin).to_csv(csv, index=False)
        result = evaluate(release_dir, csv)
    return {"model": "fer 25.10.3 mini-Xception (FER2013, zero-training)", "war": 100 * result.war,
            "uar": 100 * result.uar, "n_clips": result.n_clips,
            "published": {name: {"war": war, "uar": uar} for name, (war, uar) in PUBLISHED.items()}}
