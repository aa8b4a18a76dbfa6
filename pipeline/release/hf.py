"""A release as a Hugging Face ``datasets`` folder: ``load_dataset(DIR)`` reads it, offline, without ``datasets``
being needed to write it.

``data/{train,test}/<Scene>_<Expression>_<NNNN>.mp4`` (the release's face-crop clips, checked to be
constant-frame-rate H.264) with a ``metadata.jsonl`` per split, and a ``README.md`` dataset card whose YAML
declares the ``configs`` (``data_files`` per split and ``features``: ``label`` a ClassLabel of the 7
expressions in FERV39k id order, ``scene`` a ClassLabel of the 22 scenes; the video column undecoded, so
loading needs no video decoder; decode ``video["path"]`` with PyAV, or cast it to ``Video()`` where
torchcodec is installed).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml

from pipeline.release import layout
from pipeline.release.files import sync_files, write_bytes
from pipeline.release.public import clip_record, flat_key
from pipeline.release.videos import split_clips
from schemas.taxonomy import TAXONOMY

MARKER = "<!-- ferv export: hf -->"
_STRING, _INT, _FLOAT = "string", "int64", "float64"
FIELDS = {  # metadata.jsonl columns (besides file_name) and their feature types; label and scene: ClassLabels
    "key": _STRING, "clip_id": _STRING, "split": _STRING, "label": None, "label_id": _INT, "dfew_id": _INT,
    "descriptor": _STRING, "scene": None, "scenario": _STRING, "source_id": _STRING, "source_url": _STRING,
    "annotators": _INT, "agreement": _FLOAT, "num_frames": _INT, "fps": _FLOAT,
}


def label_names() -> list[str]:
    """The 7 expressions in the release's label order (FERV39k ids: ``label_id``)."""
    return [e.name for e in sorted(TAXONOMY.expressions, key=lambda e: e.id)]


def _class_label(names: list[str]) -> dict:
    return {"class_label": {"names": {str(i): name for i, name in enumerate(names)}}}


def features() -> list[dict]:
    """The ``features`` of the card's config, in the YAML form ``datasets`` reads."""
    out = [{"name": "video", "dtype": {"video": {"decode": False}}}]
    for name, dtype in FIELDS.items():
        if name == "label":
            dtype = _class_label(label_names())
        elif name == "scene":
            dtype = _class_label(TAXONOMY.scene_names)
        out.append({"name": name, "dtype": dtype})
    return out


def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K")):
        if n < limit:
            return name
    return "100K<n<1M"


def card(release: Path, meta: pd.DataFrame) -> bytes:
    """The dataset card: YAML (task, configs with data files and features) and the release's datasheet."""
    name = (release / layout.README).read_text(encoding="utf-8").splitlines()[0].removeprefix("# Dataset Card for ")
    header = {
        "pretty_name": name, "license": "cc-by-nc-4.0", "task_categories": ["video-classification"],
        "tags": ["facial-expression-recognition", "ferv39k"], "size_categories": [_size_category(len(meta))],
        "configs": [{"config_name": "default",
                     "data_files": [{"split": s, "path": f"data/{s}/*"} for s in layout.SPLITS],
                     "features": features()}],
    }
    datasheet = (release / layout.README).read_text(encoding="utf-8").split("\n", 1)[1]
    usage = f"""{MARKER}
# Dataset Card for {name}

A ferv release exported for the Hugging Face `datasets` library:

```python
from datasets import load_dataset
clips = load_dataset("path/to/this/folder")  # splits train and test
clips["train"][0]["video"]["path"]  # the face-crop clip (H.264): decode it with PyAV
clips["train"].features["label"].int2str(clips["train"][0]["label"])
```

`data/<split>/<Scene>_<Expression>_<NNNN>.mp4` are the release's `{layout.FACE_CLIPS_DIR}` clips;
`data/<split>/metadata.jsonl` gives each its `label` ({", ".join(label_names())}), the
`descriptor` word annotators chose most, `scene`, `scenario`, `source_id`, `annotators` (valid votes) and
`agreement`, with `key` its path in the release.
"""
    return ("---\n" + yaml.safe_dump(header, sort_keys=False, allow_unicode=True) + "---\n" + usage
            + datasheet).encode("utf-8")


def export_hf(release: Path, dest: Path) -> list[Path]:
    """Write the Hugging Face folder of ``release`` into ``dest``; return the files written there."""
    release, dest = Path(release).resolve(), Path(dest)
    splits, meta = split_clips(release)
    plan: dict[str, Path | bytes] = {}
    for split, items in splits.items():
        lines = []
        for key, src, row in items:
            name = f"{flat_key(key)}.mp4"
            plan[f"data/{split}/{name}"] = src
            lines.append(json.dumps({"file_name": name, **clip_record(row)}, ensure_ascii=False))
        plan[f"data/{split}/metadata.jsonl"] = "".join(f"{line}\n" for line in lines).encode("utf-8")
    sync_files(dest, plan, ("data",))
    write_bytes(dest / layout.README, card(release, meta))
    return [dest / rel for rel in sorted(plan)] + [dest / layout.README]
