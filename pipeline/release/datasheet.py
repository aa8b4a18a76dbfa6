"""``README.md``: the release's datasheet (how it was built, layout, formats, config, licence, citation)."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import yaml

from pipeline.release import layout
from schemas.config import BuildConfig
from schemas.taxonomy import TAXONOMY

CITATION = """@inproceedings{wang2022ferv39k,
  title     = {FERV39k: A Large-Scale Multi-Scene Dataset for Facial Expression Recognition in Videos},
  author    = {Wang, Yan and Sun, Yixuan and Huang, Yiwen and Liu, Zhongying and Gao, Shuyong and
               Zhang, Wei and Ge, Weifeng and Zhang, Wenqiang},
  booktitle = {Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  pages     = {20922--20931},
  year      = {2022}
}"""


def _label_table() -> str:
    rows = [f"| {e.name} | {e.id} | {e.dfew_id} |" for e in sorted(TAXONOMY.expressions, key=lambda e: e.id)]
    return "\n".join(["| expression | FERV39k id (alphabetical) | DFEW id |", "|---|---|---|", *rows])


def datasheet(meta: pd.DataFrame, cfg: BuildConfig, built_at: datetime) -> bytes:
    """The datasheet text; ``built_at`` appears on one line only (the one part that differs between builds)."""
    test = int((meta["split"] == "test").sum())
    config = yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
    scenes = ", ".join(sorted(set(meta["scene"])))
    text = f"""# {cfg.release.name}

A facial-expression-in-video dataset in the layout of FERV39k (Wang et al., CVPR 2022), built with ferv.

Built: {built_at.isoformat()}

- {len(meta)} clips ({len(meta) - test} train, {test} test) from {meta["source_id"].nunique()} source videos
- scenes: {scenes}
- taxonomy version {TAXONOMY.version} (7 expressions, 4 scenarios, 22 scenes)
- statistics and plots next to FERV39k's published figures: [REPORT.md]({layout.REPORT})

## How it was built

1. Source videos were acquired (yt-dlp search of per-scene keywords, URL lists or local files); each source's
   URL, id and SHA-256 are in `{layout.METADATA_PARQUET}`.
2. Shots were found with PySceneDetect, faces detected (backend `{cfg.faces.backend}`) and tracked within shots.
3. Candidate clips of {cfg.select.min_duration_s} to {cfg.select.max_duration_s} s were kept when the face was large,
   sharp and detected in most frames; each was cut (H.264, constant frame rate) as a scene clip with the face
   marked and as a {cfg.export.crop_size}x{cfg.export.crop_size} face-crop clip and JPEG frames.
4. Annotators chose one of 26 descriptor words (mapped to 7 expressions) or PASS in Label Studio, with gold clips
   and expert review; votes were aggregated ({cfg.aggregate.method}, minimum agreement {cfg.aggregate.min_agreement}).
   Only clips with status {" / ".join(cfg.release.statuses)} and one of the 7 expressions are released.
5. Split: about {cfg.release.test_fraction:g} of every scene x expression cell is test, whole source videos at a time
   (no source in both splits), chosen greedily over sources in a seeded hash order (seed {cfg.release.seed}).
   A cell fed by a single source cannot be split (it usually lands wholly in train).

## Layout

- `{layout.FACE_DIR}/<Scene>/<Expression>/<NNNN>/00001.jpg ...`: face-crop frames, {cfg.export.crop_size}x{cfg.export.crop_size} JPEG
- `{layout.SCENE_DIR}/<Scene>/<Expression>/<NNNN>/00001.jpg ...`: scene frames (original framing)
- `{layout.FACE_CLIPS_DIR}/<Scene>/<Expression>/<NNNN>.mp4`: the face-crop clip (H.264)
- `{layout.SCENE_CLIPS_DIR}/<Scene>/<Expression>/<NNNN>.mp4`: the scene clip, the face marked (as annotators saw it)
- `{layout.ALL_SCENES_DIR}/train_All.csv`, `test_All.csv`: the split lists
- `{layout.SCENES_DIR}/train_<Scene>.csv`, `test_<Scene>.csv`: per scene in this release
- `{layout.SCENARIOS_DIR}/train_<DL|WIS|SIA|AI>.csv`, `test_...`: per scenario in this release
- `{layout.METADATA_PARQUET}`, `{layout.METADATA_CSV}`: one row per clip (see below)
- `{layout.REPORT}`, `{layout.REPORT_DIR}/*.png`: statistics and plots
- `{layout.SUMS}`: SHA-256 of every file but this README

- `<NNNN>` runs 0000..n-1 inside each Scene/Expression folder, ordered by source id, start frame and clip id.
- Frames are named `00001.jpg`, `00002.jpg`, ... in playing order (5 digits, from 1): loaders that sort the
  file names as strings read them in playing order.
- Scene and scenario lists exist only for the scenes and scenarios in this release; one of a pair is empty when
  all of its clips fell in the other split.

## Split lists

One line per clip, `<Scene>/<Expression>/<NNNN> <Expression>`, a single space, **no header line**, as the
published FERV39k lists. Some public loaders skip the first line of these files (they expect a header): with
such a loader, add a header line to your copy, or you lose one clip. Paths are relative to `{layout.FACE_DIR}/`
(or `{layout.SCENE_DIR}/`).

`ferv release export --format dfer-clip|mae-dfer RELEASE` writes the lists popular DFER code reads, with
absolute paths, into `{layout.EXPORTS_DIR}/<format>/` (outside `{layout.SUMS}`, being machine-specific):
`dfer-clip` lines are `<path> <frames> <DFEW id>`, `mae-dfer` lines are `<path> <DFEW id>`.

{_label_table()}

## metadata.parquet / metadata.csv

One row per clip: release `path`, `clip_id`, `split`, scene, scenario, expression and both label ids, the
source (`source_id`, `source_url`, `source_sha256`, title, licence), the face track (`track_id`, shot, source
frame range `start_frame`..`end_frame` (end exclusive), times, `fps`, the union box and `track_boxes`: JSON
`[[frame, x1, y1, x2, y2, interpolated], ...]` in source pixels), quality figures, the label (`label_method`,
`label_status`, `confidence`, `n_votes`, `agreement`, `votes`: JSON counts per label) and `face_sha256`, the
digest of the face-crop frames in order. The Parquet file's key-value metadata holds the export settings
(`ferv.export_config`, `ferv.scene_frames`). With the source videos, `ferv release rebuild metadata.parquet
SOURCES OUT` re-cuts every clip (face crops, and scene frames where shipped) and checks the face crops
against `face_sha256`.

## Checksums

`sha256sum -c {layout.SUMS}` checks every file but this README (it carries the build time) and
`{layout.EXPORTS_DIR}/`. `ferv release check RELEASE` checks the layout, the lists and the checksums.
Building again from the same inputs with the same seed gives byte-identical files (this README aside).

## Licence

The annotations (labels, split lists, metadata, report) are released under Creative Commons
Attribution-NonCommercial 4.0 International (CC BY-NC 4.0). The video frames and clips are excerpts of
third-party videos listed by URL in `{layout.METADATA_PARQUET}`; their rights stay with their owners, and they
are provided for non-commercial research only.

## Citation

This release follows the design of FERV39k; please cite it:

```bibtex
{CITATION}
```

## Build configuration

```yaml
{config}```
"""
    return text.encode("utf-8")
