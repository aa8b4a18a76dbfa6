"""Typed records: one dataclass per manifest row. Field types define the Parquet schemas."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class SourceRecord:
    """One acquired source video (``sources.parquet``)."""

    source_id: str
    url: str
    origin: str  # search | url_list | local
    extractor: str
    scene: str
    scenario: str
    path: str  # relative to the work directory
    sha256: str
    fetched_at: datetime
    title: str | None = None
    uploader: str | None = None
    duration_s: float | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    num_frames: int | None = None
    license: str | None = None
    keyword: str | None = None


@dataclass
class ShotRecord:
    """One shot of a source (``shots.parquet``); ``end_frame`` is exclusive."""

    source_id: str
    shot_index: int
    start_frame: int
    end_frame: int
    start_s: float
    end_s: float


@dataclass
class TrackRow:
    """One face box of one track in one frame (``tracks.parquet``)."""

    track_id: str
    source_id: str
    shot_index: int
    frame: int
    x1: float
    y1: float
    x2: float
    y2: float
    score: float
    interpolated: bool
    predicted_expression: str | None = None  # the expression model's top class on this frame's face (detected
    # frames, when scoring is on)
    intensity: float | None = None  # 1 - P(Neutral) on this frame's face


@dataclass
class ClipRecord:
    """One accepted candidate clip and its files (``clips.parquet``); ``end_frame`` is exclusive."""

    clip_id: str
    source_id: str
    scene: str
    scenario: str
    track_id: str
    shot_index: int
    start_frame: int
    end_frame: int
    num_frames: int
    start_s: float
    end_s: float
    fps: float
    box_x1: float  # union of the smoothed track's boxes over the clip, source pixels
    box_y1: float
    box_x2: float
    box_y2: float
    face_px: float  # median short side of the face box, source pixels
    det_score: float  # mean detector score on detected frames
    detected_fraction: float  # share of the frames the detector ran on (every faces.stride-th) with a detection
    blur: float  # median variance of Laplacian of the detected face (box resized to 64x64 grey)
    scene_path: str  # the window's unmarked scene clip, shared by its targets (relative to the work directory;
    # a clip cut before scene clips were shared: its own, face marked)
    crop_path: str  # 224x224 face-crop clip
    frames_dir: str  # 224x224 face-crop JPEG frames
    scene_frames_dir: str  # scene JPEG frames (cut by the release, for the clips it ships)
    sha256: str  # of the face-crop frames, in order (for rebuild verification)
    predicted_expression: str | None = None  # the expression model's top class over the clip's scored frames (a
    # ranking hint, never a label); None where expression scoring was off
    predicted_prob: float | None = None  # its mean probability
    intensity: float | None = None  # 1 - mean P(Neutral)
    still_path: str | None = None  # the scene's middle frame with the target marked (None for a clip cut before
    # scene clips were shared: its scene clip is marked)


@dataclass
class RejectRecord:
    """A candidate that selection dropped, with its reason (``rejects.parquet``)."""

    candidate_id: str
    source_id: str
    track_id: str
    shot_index: int
    start_frame: int
    end_frame: int
    reason: str
    detail: str


@dataclass
class TaskRecord:
    """One Label Studio task made for a clip (``tasks.parquet``)."""

    clip_id: str
    project_id: int
    task_id: int
    project_role: str  # copy | redo | extra (crowd) | review | gold (experts)
    copy_index: int  # 0..N-1 for crowd copies, -1 for review and gold
    group_id: str
    is_gold: bool
    pushed_at: datetime
    attempt: int = 0  # 0 for a group copy's first push, k for its k-th re-push to another annotator


@dataclass
class PlanRecord:
    """One task ferv intends to have in Label Studio (``plan.parquet``), written before it is pushed, so
    that a push killed midway is completed, never repeated. ``task_key`` (also in the task's ``meta``)
    finds it there."""

    task_key: str
    clip_id: str
    project_role: str  # copy | redo | extra | review | gold
    group_id: str
    copy_index: int
    attempt: int
    position: int  # order within its group copy (the order tasks are imported in)
    is_gold: bool
    planned_at: datetime


@dataclass
class VoteRecord:
    """One version of one annotation (``votes.parquet``, append-only; latest ``synced_at`` wins)."""

    clip_id: str
    task_id: int
    project_id: int
    annotation_id: int
    annotator: str
    role: str  # crowd | expert
    label: str | None  # expression name or PASS
    descriptor: str | None
    lead_time_s: float | None
    created_at: datetime | None
    updated_at: datetime | None
    cancelled: bool
    deleted: bool
    synced_at: datetime
    group_id: str | None = None
    copy_index: int | None = None
    is_gold: bool = False
    attempt: int = 0
    server: str = ""  # the Label Studio instance (URL and organisation): with project_id and annotation_id, the key


@dataclass
class GoldRecord:
    """A clip whose label experts have settled, mixed into crowd groups to judge copies (``gold.parquet``)."""

    clip_id: str
    label: str  # expression name or PASS
    descriptor: str | None = None
    expert: str | None = None


@dataclass
class LabelRecord:
    """The aggregated label of a clip (``labels.parquet``)."""

    clip_id: str
    label: str | None
    confidence: float
    n_votes: int
    agreement: float
    method: str  # majority | dawid_skene
    status: str  # accepted | ambiguous | unusable | gold
    source: str = "crowd"  # who settled the label: crowd | expert | gold
    crowd_label: str | None = None  # the crowd's clear winner, before an expert's or gold override


@dataclass
class FailureRecord:
    """One input that a stage could not process (``failures.parquet``)."""

    stage: str
    input_id: str
    error_kind: str
    message: str
    at: datetime = field(default_factory=utcnow)
