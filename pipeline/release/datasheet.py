"""``README.md``: the release's datasheet, in the sections of a Hugging Face dataset card (summary, structure,
creation: curation rationale, source data, annotation process, personal information; licence, citation)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
import yaml

from pipeline.release import layout
from pipeline.release.report import split_note
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


def public_config(cfg: BuildConfig) -> dict:
    """The build configuration as a release may show it: no work directory, Label Studio or runner settings,
    and no absolute path of the machine that built it."""
    data = cfg.model_dump(mode="json", exclude={"workdir", "labelstudio", "runner"})

    def clean(value):
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        if isinstance(value, str) and (Path(value).is_absolute() or value.startswith("~")):
            return "<local path>"
        return value

    return clean(data)


def _counts(counts: dict) -> str:
    return ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "none"


def _labelling(cfg: BuildConfig, labelling: dict) -> str:
    ann, agg = cfg.annotation, cfg.aggregate
    figures = labelling.get("agreement", {})
    shown = ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in sorted(figures.items())
                      if isinstance(v, (int, float)) and not isinstance(v, bool)) or "not computed"
    dropped = "its votes dropped" + ("" if agg.trusted_copies else "; not applied in this build")
    statuses = " / ".join(cfg.release.statuses)
    return f"""Trusted labelling, as FERV39k's: annotators chose one of 26 descriptor words (mapped to 7
expressions) or PASS in Label Studio, each clip seen by {ann.annotators_per_clip} annotators working in independent
copies of groups of {ann.group_size} clips. {ann.gold_fraction:.0%} of every group (at least {ann.min_gold_per_group}) were
gold clips whose label experts had settled: a copy with a gold accuracy of at least {ann.accept_gold_rate:.0%}
was accepted, at least {ann.improper_gold_rate:.0%} improper, below that unacceptable ({dropped}). Expert
review: {"on" if ann.expert_review else "off"}. Votes were aggregated with {agg.method} (winning share at least
{agg.min_agreement}, at least {agg.min_votes} votes); only clips with status {statuses} and one of the 7
expressions are released.

- valid votes: {labelling.get("votes", 0)} from {_counts(labelling.get("annotators", {}))} annotators
- labels: {_counts(labelling.get("labels", {}))}
- agreement (crowd votes): {shown}"""


def datasheet(meta: pd.DataFrame, cfg: BuildConfig, built_at: datetime, labelling: dict | None = None) -> bytes:
    """The datasheet text; ``built_at`` appears on one line only (the one part that differs between builds).
    ``labelling`` holds the trusted-labelling figures: ``votes`` (valid votes), ``annotators`` (per role),
    ``labels`` (clips per label status) and ``agreement`` (the aggregate stage's figures)."""
    test = int((meta["split"] == "test").sum())
    config = yaml.safe_dump(public_config(cfg), sort_keys=False, allow_unicode=True)
    scenes = ", ".join(sorted(set(meta["scene"])))
    crop = cfg.export.crop_size
    licences = meta.drop_duplicates("source_id")["source_license"].fillna("not stated").value_counts().to_dict()
    text = f"""# Dataset Card for {cfg.release.name}

Facial expressions in video clips, in the layout of FERV39k (Wang et al., CVPR 2022), built with ferv.

Built: {built_at.isoformat()}

## Dataset Summary

- {len(meta)} clips ({len(meta) - test} train, {test} test) from {meta["source_id"].nunique()} source videos
- task: video classification of the facial expression of one tracked face, 7 classes
- scenes: {scenes}
- taxonomy version {TAXONOMY.version} (7 expressions, 4 scenarios, 22 scenes)
- statistics and plots next to FERV39k's published figures: [REPORT.md]({layout.REPORT})

## Dataset Structure

### Data Instances

A clip is one face track of 0.5 to 2 s in one shot of a source video: its face-crop frames, its scene frames, its
face-crop and scene clips (H.264, constant frame rate), one line in the split lists and one row of metadata.

- `{layout.FACE_DIR}/<Scene>/<Expression>/<NNNN>/00001.jpg ...`: face-crop frames, {crop}x{crop} JPEG
- `{layout.SCENE_DIR}/<Scene>/<Expression>/<NNNN>/00001.jpg ...`: scene frames (original framing)
- `{layout.FACE_CLIPS_DIR}/<Scene>/<Expression>/<NNNN>.mp4`: the face-crop clip (H.264)
- `{layout.SCENE_CLIPS_DIR}/<Scene>/<Expression>/<NNNN>.mp4`: the scene clip, unmarked (every face of
  its window shares it; the clip's face is its `track_boxes`; clips cut before ferv shared scene clips have it marked)
- `{layout.ALL_SCENES_DIR}/train_All.csv`, `test_All.csv`: the split lists
- `{layout.SCENES_DIR}/train_<Scene>.csv`, `test_<Scene>.csv`: per scene with clips in that split
- `{layout.SCENARIOS_DIR}/train_<DL|WIS|SIA|AI>.csv`, `test_...`: per scenario with clips in that split
- `{layout.METADATA_PARQUET}`, `{layout.METADATA_CSV}`: one row per clip (see Data Fields)
- `{layout.REPORT}`, `{layout.REPORT_DIR}/*.png`: statistics and plots
- `{layout.SUMS}`: SHA-256 of every file but this README

`<NNNN>` runs 0000..n-1 inside each Scene/Expression folder, ordered by source id, start frame and clip id.
Frames are named `00001.jpg`, `00002.jpg`, ... in playing order (5 digits, from 1): loaders that sort the
file names as strings read them in playing order. Clip folders hold nothing but their frames.

Split lists: one line per clip, `<Scene>/<Expression>/<NNNN> <Expression>`, a single space, **no header line**,
as the published FERV39k lists. Some public loaders skip the first line of these files (they expect a header):
with such a loader, add a header line to your copy, or you lose one clip. Paths are relative to `{layout.FACE_DIR}/`
(or `{layout.SCENE_DIR}/`). No list is empty: a scene or scenario with no clip in a split has no list for it.

`ferv release export --format FORMAT --dest DIR RELEASE` derives, outside `{layout.SUMS}`:
`dfer-clip` (`<path> <frames> <DFEW id>`) and `mae-dfer` (`<path> <DFEW id>`) lists with absolute paths,
`hf` (a Hugging Face `datasets` folder: `load_dataset(DIR)`) and `webdataset` (`NNNNN.tar` shards of
`<key>.mp4` + `<key>.json` per split).

{_label_table()}

### Data Fields

`{layout.METADATA_PARQUET}` has one row per clip: release `path`, `clip_id`, `split`, scene, scenario, expression and
both label ids, the source (`source_id`, `source_url` without credentials or query string, local files as
`local:<path in the source folder>`, `source_sha256`, title, licence), the face track (`track_id`, shot, source
frame range `start_frame`..`end_frame` (end exclusive), times, `fps`, the union box and `track_boxes`: JSON
`[[frame, x1, y1, x2, y2, interpolated], ...]` in source pixels), quality figures, the label (`label_method`,
`label_status`, `confidence`, `n_votes`, `agreement`, `votes`: JSON counts per label, `descriptor`: the word
most voted for the label) and `face_sha256`, the digest of the face-crop frames in order. The Parquet file's
key-value metadata holds the export settings (`ferv.export_config`, `ferv.scene_frames`). With the source
videos, `ferv release rebuild metadata.parquet SOURCES OUT` re-cuts every clip and checks the face crops against
`face_sha256`.

### Data Splits

About {cfg.release.test_fraction:g} of every scene x expression cell is test, whole source videos at a time (no source
in both splits), chosen greedily over sources in a seeded hash order (seed {cfg.release.seed}). Where that leaves a
split empty or the test share more than 5 points off, the test sources are also chosen over the whole release
(test no larger than train, every expression kept in train where possible, share closest to
{cfg.release.test_fraction:g}) and the better choice kept. A build with one source is not split.

{split_note(meta, cfg.release.test_fraction)}

## Dataset Creation

### Curation Rationale

Facial expression recognition in the wild needs video clips of real scenes, each labelled by several people
with their agreement recorded, and split so that no source video is in both train and test. This release
follows the design of FERV39k so that code written for FERV39k trains and evaluates on it unchanged.

### Source Data

Source videos were acquired by yt-dlp search of per-scene keywords, from URL lists or from local files
(each source's URL, id and SHA-256 are in `{layout.METADATA_PARQUET}`). Shots were found with PySceneDetect, faces
detected (backend `{cfg.faces.backend}`) and tracked within shots. Candidate clips of {cfg.select.min_duration_s} to
{cfg.select.max_duration_s} s were kept when the face was large, sharp and detected in most frames, and cut as a scene
clip (one per window, shared by its faces), a {cfg.export.crop_size}x{cfg.export.crop_size} face-crop clip with JPEG
frames and a still of the scene with the face marked (what annotators saw).

### Annotations

{_labelling(cfg, labelling or {})}

### Personal and Sensitive Information

The clips show the faces of real people, taken from the source videos; they are biometric data in many
jurisdictions. No names or other identity labels are added, but a person may be recognisable. Use the clips
for research on facial expressions only; do not try to identify people. Whoever appears in a clip or owns a
source may ask the publisher of this release to remove it: drop the clip's row and rebuild.

## Considerations for Using the Data

Scenes and expressions are not balanced (see [REPORT.md]({layout.REPORT})); labels are the perceived expression,
as judged by the annotators, not the felt emotion.

## Additional Information

### Licensing Information

The annotations (labels, split lists, metadata, report) are released under Creative Commons
Attribution-NonCommercial 4.0 International (CC BY-NC 4.0). The video frames and clips are excerpts of
third-party videos listed in `{layout.METADATA_PARQUET}`; their rights stay with their owners, and they are
provided for non-commercial research only. Licences the sources state: {_counts(licences)} (source videos).

### Citation Information

This release follows the design of FERV39k; please cite it:

```bibtex
{CITATION}
```

### Checksums

`sha256sum -c {layout.SUMS}` checks every file but this README (it carries the build time) and
`{layout.EXPORTS_DIR}/`. `ferv release check RELEASE` checks the layout, the lists and the checksums.
Building again from the same inputs with the same seed gives byte-identical files (this README aside).

### Build Configuration

```yaml
{config}```
"""
    return text.encode("utf-8")
