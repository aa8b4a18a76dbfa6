"""Paths and naming of a release in the published FERV39k layout.

A clip's key is ``<Scene>/<Expression>/<NNNN>``; ``NNNN`` runs 0000..n-1 inside each Scene/Expression
folder. Frames are ``00001.jpg, 00002.jpg, ...`` (5 digits, from 1, in playing order): public FERV39k
loaders list a clip folder and sort the names as strings (DFER-CLIP ``glob(path/*)`` + ``sort()``,
MAE-DFER ``sorted(glob(path/*.jpg))``), so zero padding is what keeps playing order.
"""

from __future__ import annotations

import re
from pathlib import Path

from pipeline.export import frame_name  # noqa: F401 (the exporter names the frames; FRAME_DIGITS matches it)

FACE_DIR = "2_ClipsforFaceCrop"  # <Scene>/<Expression>/<NNNN>/<frames>.jpg, 224x224
SCENE_DIR = "3_ClipsforScenImages"  # <Scene>/<Expression>/<NNNN>/<frames>.jpg, original framing
CLIPS_DIR = "1_Clips"  # FaceCrop/<key>.mp4 and Scene/<key>.mp4 (the scene clip is its window's, unmarked)
FACE_CLIPS_DIR = f"{CLIPS_DIR}/FaceCrop"
SCENE_CLIPS_DIR = f"{CLIPS_DIR}/Scene"
SETUPS_DIR = "4_setups"
ALL_SCENES_DIR = f"{SETUPS_DIR}/All_scenes"
SCENES_DIR = f"{SETUPS_DIR}/22_scenes"
SCENARIOS_DIR = f"{SETUPS_DIR}/4_scenarios"
EXPORTS_DIR = "5_exports"  # machine-specific lists with absolute paths; not covered by SHA256SUMS
METADATA_PARQUET = "metadata.parquet"
METADATA_CSV = "metadata.csv"
README = "README.md"  # carries the build time, so it is the one file outside SHA256SUMS
REPORT = "REPORT.md"
REPORT_DIR = "report"
SUMS = "SHA256SUMS"
SPLITS = ("train", "test")

FRAME_DIGITS = 5
KEY_RE = re.compile(r"^(?P<scene>[A-Za-z]+)/(?P<expression>[A-Za-z]+)/(?P<index>\d{4,})$")
FRAME_RE = re.compile(r"^\d{%d}\.jpg$" % FRAME_DIGITS)


def clip_key(scene: str, expression: str, index: int) -> str:
    return f"{scene}/{expression}/{index:04d}"


def all_list(split: str) -> str:
    return f"{ALL_SCENES_DIR}/{split}_All.csv"


def scene_list(split: str, scene: str) -> str:
    return f"{SCENES_DIR}/{split}_{scene}.csv"


def scenario_list(split: str, code: str) -> str:
    return f"{SCENARIOS_DIR}/{split}_{code}.csv"


def sorted_frames(folder: Path) -> list[Path]:
    """JPEG frames of a folder in playing order: by the number in their name, then by name."""
    def order(p: Path) -> tuple[int, str]:
        digits = re.findall(r"\d+", p.stem)
        return (int(digits[-1]) if digits else -1, p.name)

    return sorted((p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg")), key=order)


def split_line(key: str, expression: str) -> str:
    """One line of a split list: ``<Scene>/<Expression>/<NNNN> <Expression>`` (one space, no header)."""
    return f"{key} {expression}"
