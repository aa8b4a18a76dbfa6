"""Lists in the formats popular DFER code reads, derived from a release.

- ``dfer-clip`` (DFER-CLIP, Former-DFER and their kin): ``<abs frame folder> <frames> <DFEW id>`` per line,
  files ``FERV39K_train.txt`` / ``FERV39K_test.txt`` (the loader splits on a space, lists the folder and
  sorts the frame names).
- ``mae-dfer`` (MAE-DFER / VideoMAE ``VideoClsDatasetFrame``): ``<abs frame folder> <DFEW id>`` per line,
  files ``train.csv`` / ``test.csv``, read with ``pandas.read_csv(header=None, delimiter=' ')``.
Both use the DFEW label order (Happy 0, Sad 1, Neutral 2, Angry 3, Surprise 4, Disgust 5, Fear 6), as the
public FERV39k preprocessing of both projects does.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.release import layout
from pipeline.release.check import read_splits
from pipeline.release.files import write_bytes
from schemas.taxonomy import TAXONOMY

FORMATS = {"dfer-clip": "FERV39K_{split}.txt", "mae-dfer": "{split}.csv"}


def export_lists(release: Path, fmt: str, dest: Path | None = None, root: Path | None = None) -> list[Path]:
    """Write ``fmt`` lists for the train and test split of ``release`` into ``dest`` (default
    ``release/5_exports/<fmt>``), with frame folders under ``root`` (default: the release, absolute)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown list format {fmt!r}; choose one of {sorted(FORMATS)}")
    release = Path(release).resolve()
    dest = Path(dest) if dest else release / layout.EXPORTS_DIR / fmt
    base = (Path(root) if root else release) / layout.FACE_DIR
    written = []
    for split, pairs in read_splits(release).items():
        lines = []
        for key, expression in pairs:
            label = TAXONOMY.expression(expression).dfew_id
            folder = base / key
            if fmt == "dfer-clip":
                frames = len(layout.sorted_frames(release / layout.FACE_DIR / key))
                lines.append(f"{folder} {frames} {label}")
            else:
                lines.append(f"{folder} {label}")
        path = dest / FORMATS[fmt].format(split=split)
        write_bytes(path, "".join(f"{line}\n" for line in lines).encode("utf-8"))
        written.append(path)
    return written
