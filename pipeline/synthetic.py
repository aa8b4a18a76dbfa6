"""Synthetic build material with known truth, for the tests and the benchmarks.

``make_workdir``: a small labelled work directory for releases: real H.264 source videos, clips cut from
them by the real clip exporter (``pipeline.export.cut_clip``: 224x224 face-crop JPEGs, scene frames, MP4s)
along known face tracks, and hand-written votes and labels with known truth. ``clip_row``: a clips.parquet
row with neutral defaults; ``truth_labels`` and ``gold_frame``: a hidden truth per clip and a gold table."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from pipeline.export import MARK_COLOUR, cut_clip
from pipeline.media import write_video
from schemas.config import ExportConfig
from schemas.ids import clip_id as make_clip_id
from schemas.ids import file_sha256, source_id_for_content, source_id_for_url, track_id as make_track_id
from schemas.manifests import to_table, write_manifest
from schemas.records import ClipRecord, GoldRecord, LabelRecord, SourceRecord, TrackRow, VoteRecord
from schemas.taxonomy import TAXONOMY

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
W, H, FPS = 96, 64, 10
_DEFAULTS = {str: "", int: 0, float: 0.0, bool: False}


def clip_row(clip_id: str, scene: str, **values: object) -> dict:
    """A ClipRecord row with the given values and neutral defaults for every other field."""
    hints = typing.get_type_hints(ClipRecord)
    row = {f.name: _DEFAULTS.get(hints[f.name], None) for f in dataclasses.fields(ClipRecord)}
    row.update(clip_id=clip_id, scene=scene, scenario=TAXONOMY.scene(scene).scenario, **values)
    return row


def truth_labels(clip_ids, seed: int = 0) -> dict[str, str]:
    """A hidden true expression per clip."""
    rng = np.random.default_rng(seed)
    names = TAXONOMY.expression_names
    return {c: names[i] for c, i in zip(clip_ids, rng.integers(0, len(names), len(clip_ids)))}


def gold_frame(labels: dict[str, str]) -> pd.DataFrame:
    """A gold table (as ``gold.parquet`` reads back) of clip id -> expression."""
    return to_table("gold", [GoldRecord(clip_id=c, label=l, expert="expert@x") for c, l in labels.items()]).to_pandas()


@dataclass(frozen=True)
class SourcePlan:
    name: str
    scene: str
    labels: tuple[str | None, ...]  # one clip per entry; None = PASS (unusable)
    status: str = "accepted"


def _source_frames(seed: int, n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, size=(H // 8, W // 8, 3), dtype=np.uint8)
    face = rng.integers(120, 255, size=(24, 24, 3), dtype=np.uint8)
    frames = []
    for i in range(n):
        img = np.kron(base, np.ones((8, 8, 1), dtype=np.uint8))
        img = np.roll(img, i, axis=1)
        img[20:44, 30 + i % 10:54 + i % 10] = np.roll(face, i, axis=0)  # a moving, changing "face"
        frames.append(img)
    return frames


LOCAL_DIR = "inbox"  # where local=True sources are "acquired" from, relative to the work directory


def make_workdir(root: Path, plans: list[SourcePlan], clip_len: int = 6, local: bool = False) -> Path:
    """Write sources, tracks, clips (with files), votes and labels for ``plans`` under ``root``. ``local``:
    sources acquired from local files under ``root/inbox/<Scene>/<name>.mp4`` (URL: the absolute path, id:
    the content hash, as ``ferv acquire --local`` records them), else from ``https://example.org/<name>``."""
    sources, tracks, clips, votes, labels = [], [], [], [], []
    for s_index, plan in enumerate(plans):
        n_frames = clip_len * len(plan.labels) + 2
        frames = _source_frames(s_index, n_frames)
        if local:
            original = root / LOCAL_DIR / plan.scene / f"{plan.name}.mp4"
            write_video(original, frames, fps=FPS)
            url, source_id = str(original.resolve()), source_id_for_content(file_sha256(original))
        else:
            url = f"https://example.org/{plan.name}"
            source_id = source_id_for_url(url)
        src_path = root / "sources" / f"{source_id}.mp4"
        write_video(src_path, frames, fps=FPS)
        scenario = TAXONOMY.scene(plan.scene).scenario
        sources.append(SourceRecord(source_id=source_id, url=url, origin="local" if local else "url_list",
                                    extractor="local" if local else "generic",
                                    scene=plan.scene, scenario=scenario, path=str(src_path.relative_to(root)),
                                    sha256=file_sha256(src_path), fetched_at=T0, title=plan.name, fps=FPS,
                                    width=W, height=H, num_frames=n_frames))
        tid = make_track_id(source_id, 0, 0)
        boxes = []
        for f in range(n_frames):
            x = 30.0 + f % 10
            boxes.append((x, 20.0, x + 24.0, 44.0))
            tracks.append(TrackRow(tid, source_id, 0, f, *boxes[-1], 0.9, f % 3 == 1))
        for c_index, label in enumerate(plan.labels):
            start, end = 1 + c_index * clip_len, 1 + (c_index + 1) * clip_len
            cid = make_clip_id(source_id, start, end, tid)
            files = cut_clip(src_path, start, np.array(boxes[start:end]), root / "clips" / source_id / cid,
                             ExportConfig(), Fraction(FPS))
            rel = lambda p: str(Path(p).relative_to(root))  # noqa: E731
            clips.append(ClipRecord(
                clip_id=cid, source_id=source_id, scene=plan.scene, scenario=scenario, track_id=tid, shot_index=0,
                start_frame=start, end_frame=end, num_frames=end - start, start_s=start / FPS, end_s=end / FPS,
                fps=float(FPS), box_x1=30.0, box_y1=20.0, box_x2=63.0, box_y2=44.0, face_px=24.0, det_score=0.9,
                detected_fraction=0.7, blur=100.0, scene_path=rel(files.scene_path), crop_path=rel(files.crop_path),
                still_path=rel(files.still_path),
                frames_dir=rel(files.frames_dir), scene_frames_dir=rel(files.scene_frames_dir), sha256=files.sha256))
            final = label or TAXONOMY.pass_label
            for a in range(3):
                votes.append(VoteRecord(clip_id=cid, task_id=len(votes), project_id=1, annotation_id=len(votes),
                                        annotator=f"ann{a}", role="crowd", label=final,
                                        descriptor=TAXONOMY.expression(label).descriptors[a // 2] if label else None,
                                        lead_time_s=3.0, created_at=T0, updated_at=T0, cancelled=False,
                                        deleted=False, synced_at=T0))
            labels.append(LabelRecord(clip_id=cid, label=label, confidence=1.0, n_votes=3, agreement=1.0,
                                      method="majority", status=plan.status if label else "unusable"))
    for name, rows in (("sources", sources), ("tracks", tracks), ("clips", clips), ("votes", votes),
                       ("labels", labels)):
        write_manifest(root, name, rows)
    return root


def screen_clip_files(root: Path, n: int, frames: int, fps: int) -> list[dict[str, str]]:
    """Files of ``n`` clips the size the clips stage cuts, whose pixels change every frame: a 640x360 scene clip,
    a 224x224 face-crop clip and a 640x360 still with a box marked, under ``root/clips/{scene,crop,still}``;
    per clip its scene_path, crop_path and still_path relative to ``root``."""
    y, x = np.mgrid[0:360, 0:640]
    out = []
    for i in range(n):
        paths = {kind: f"clips/{kind}/{i:03d}.{suffix}"
                 for kind, suffix in (("scene", "mp4"), ("crop", "mp4"), ("still", "jpg"))}
        for kind, (h, w) in (("scene", (360, 640)), ("crop", (224, 224))):
            write_video(root / paths[kind], (np.repeat(((x[:h, :w] + y[:h, :w] + 9 * f + 50 * i) % 256)
                                                       .astype(np.uint8)[..., None], 3, 2) for f in range(frames)),
                        fps=fps)
        still = np.repeat(((x + y + 50 * i) % 256).astype(np.uint8)[..., None], 3, 2)
        cv2.rectangle(still, (200 + 10 * i % 200, 100), (300 + 10 * i % 200, 220), MARK_COLOUR, 2)
        (root / paths["still"]).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / paths["still"]), still)
        out.append({f"{kind}_path": path for kind, path in paths.items()})
    return out


def default_plans() -> list[SourcePlan]:
    """Two scenes of two scenarios, several sources each, every expression, one PASS and one ambiguous."""
    ex = TAXONOMY.expression_names
    return [
        SourcePlan("talk-a", "Talkshow", (ex[3], ex[4], ex[4], ex[0], None)),
        SourcePlan("talk-b", "Talkshow", (ex[3], ex[5], ex[4])),
        SourcePlan("talk-c", "Talkshow", (ex[4], ex[3], ex[6])),
        SourcePlan("talk-d", "Talkshow", (ex[3], ex[4], ex[1])),
        SourcePlan("talk-e", "Talkshow", (ex[4], ex[3]), status="gold"),
        SourcePlan("inter-a", "Interview", (ex[2], ex[4], ex[3])),
        SourcePlan("inter-b", "Interview", (ex[4], ex[4], ex[5])),
        SourcePlan("inter-c", "Interview", (ex[3], ex[0]), status="ambiguous"),
    ]


def own_scene_plans(n: int) -> list[SourcePlan]:
    """``n`` sources, each alone in its scene (so no scene x expression cell can be split) with two clips of
    expressions taken in turn: the hardest case for a grouped split."""
    ex, scenes = TAXONOMY.expression_names, TAXONOMY.scene_names
    return [SourcePlan(f"solo-{i}", scenes[i % len(scenes)], (ex[(2 * i) % 7], ex[(2 * i + 1) % 7]))
            for i in range(n)]
