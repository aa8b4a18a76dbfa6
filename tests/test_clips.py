"""Clip generation against ground truth: a video made from real photographs with known cuts and face boxes,
the real CenterFace model, real ffmpeg; plus broken sources and an idempotent re-run through the CLI."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pandas as pd
import pytest
import skimage.data
import yaml
from typer.testing import CliRunner

from cli.app import app
from pipeline import yuv
from pipeline.clips import ClipsStage
from pipeline.decode import decode_range, fit_width, open_info, read_frames
from pipeline.export import (cut_scene_frames, cut_window, frames_digest, range_frames, recut_face_frames,
                             scene_clip_path, verify_clip)
from pipeline.media import VideoError, probe, write_video
from pipeline.samples import demo_sources
from pipeline.shots import ShotScorer
from pipeline.tracks import build_tracks
from schemas.config import ClipsConfig, ShotsConfig, TracksConfig, load_config
from pipeline.run import Outcome, run_one
from schemas.manifests import read_manifest, read_records
from tests.clips_support import iou, make_workdir

runner = CliRunner()


@dataclass
class Run:
    workdir: Path
    ids: dict[str, str]  # file name -> source id
    config: Path
    first_output: str


@pytest.fixture(scope="module")
def run(standard_video, broken_videos, centerface_models_dir, tmp_path_factory) -> Run:  # noqa: F811
    """``ferv clips`` once (two worker processes) over the standard video and two broken ones."""
    root = tmp_path_factory.mktemp("clips-work")
    ids = make_workdir(root, [(standard_video.path, "Talkshow"), (broken_videos["corrupt"], "Interview"),
                              (broken_videos["truncated"], "Interview")])
    config = root / "build.yaml"
    config.write_text(yaml.safe_dump({"faces": {"models_dir": str(centerface_models_dir), "device": "cpu"}}))
    result = runner.invoke(app, ["clips", str(root), "--config", str(config), "--workers", "2"])
    assert result.exit_code == 0, result.output
    return Run(root, ids, config, result.output)


def process_source(workdir: Path, source_id: str, cfg) -> Outcome:
    """One source through the runner, as ``ferv clips`` runs it."""
    record = next(r for r in read_records(workdir, "sources") if r.source_id == source_id)
    return run_one(workdir, ClipsStage(workdir, cfg), record)


def _good(run: Run, name: str) -> pd.DataFrame:
    frame = read_manifest(run.workdir, name)
    return frame[frame["source_id"] == run.ids["standard.mp4"]]


def test_every_true_cut_is_found(run, standard_video):
    starts = _good(run, "shots")["start_frame"].tolist()
    found = [c for c in starts if c > 0]
    for cut in standard_video.cuts:
        assert min(abs(c - cut) for c in found) <= 2, (cut, found)
    false = [c for c in found if min(abs(c - t) for t in standard_video.cuts) > 2]
    assert len(false) <= 1, false
    assert _good(run, "shots")["end_frame"].max() == standard_video.num_frames


@pytest.mark.parametrize("detector", ["adaptive", "content"])
def test_shot_detectors_on_shared_frames(standard_video, detector):
    info = open_info(standard_video.path)
    scorer = ShotScorer(ShotsConfig(detector=detector), info.fps)
    size = fit_width(info.width, info.height, 256)
    cuts = [c for frame in read_frames(standard_video.path) for c in scorer.add(frame.index, yuv.to_bgr(
        yuv.Pyramid(frame.planes).resize(*size)))]
    cuts += scorer.finish()
    assert cuts == sorted(set(cuts))  # handed out once each, in order
    assert all(min(abs(c - t) for c in cuts) <= 2 for t in standard_video.cuts), cuts
    assert len(cuts) <= len(standard_video.cuts) + 1


@pytest.mark.parametrize("shot", ["astro_pan", "astro_zoom"])
def test_face_track_follows_the_true_box(run, standard_video, shot):
    truth = standard_video.shot(shot)
    tracks = _good(run, "tracks")
    inside = tracks[(tracks["frame"] >= truth.start) & (tracks["frame"] < truth.end)]
    main = inside.groupby("track_id").size().idxmax()
    boxes = inside[inside["track_id"] == main].set_index("frame")[["x1", "y1", "x2", "y2"]]
    good = sum(f in boxes.index and iou(boxes.loc[f], truth.boxes[f - truth.start][0]) >= 0.5
               for f in range(truth.start, truth.end))
    assert good >= 0.9 * truth.num_frames, f"{good} of {truth.num_frames} frames with IoU >= 0.5"
    assert inside["track_id"].nunique() == 1  # one face, one track
    shots = set(tracks.groupby("track_id")["shot_index"].nunique())
    assert shots == {1}  # no track crosses a cut


def test_no_clip_from_face_free_or_too_short_shots(run, standard_video):
    clips, rejects = _good(run, "clips"), _good(run, "rejects")
    shots = _good(run, "shots").reset_index(drop=True)
    name_of = {i: standard_video.shots[i].name for i in shots["shot_index"]}  # every cut found: same indices
    used = {name_of[i] for i in clips["shot_index"]}
    assert used.isdisjoint({"coffee", "rocket", "astro_short"}), used
    assert {"astro_pan", "astro_zoom", "two_faces", "t1_group"} <= used, used
    short = rejects[rejects["shot_index"].map(name_of) == "astro_short"]
    assert set(short["reason"]) == {"too_short"}
    assert (clips["face_px"] >= 48).all() and not (clips["shot_index"].map(name_of) == "small_face").any()
    assert set(rejects.loc[rejects["shot_index"].map(name_of) == "small_face", "reason"]) == {"small_face"}
    assert clips["num_frames"].between(13, 50).all()


def _pts_steps(path: Path) -> set[int]:
    with av.open(str(path)) as container:
        pts = sorted(p.pts for p in container.demux(container.streams.video[0]) if p.pts is not None)
    return set(np.diff(pts).tolist())


def test_clip_files_are_cfr_h264_with_expected_frames(run):
    clips = _good(run, "clips")
    assert len(clips) >= 5
    for row in clips.itertuples():
        for rel, size in ((row.crop_path, (224, 224)), (row.scene_path, None)):
            path = run.workdir / rel
            info = probe(path, count_frames=True)
            assert (info.codec, info.num_frames, info.fps) == ("h264", row.num_frames, Fraction(25))
            assert size is None or (info.width, info.height) == size
            assert len(_pts_steps(path)) == 1  # constant frame rate
            head = path.read_bytes()[:4096]
            assert b"moov" in head  # +faststart: the index comes first
        frames = sorted((run.workdir / row.frames_dir).glob("*.jpg"))
        assert len(frames) == row.num_frames and not (run.workdir / row.scene_frames_dir).exists()  # release cuts
        assert frames_digest(run.workdir / row.frames_dir) == row.sha256
        assert row.clip_id.startswith("clip-") and row.start_s == pytest.approx(row.start_frame / 25)


def test_recut_from_stored_boxes_is_byte_identical(run, tmp_path):
    clip = _good(run, "clips").iloc[-1]
    tracks = read_manifest(run.workdir, "tracks")
    rows = tracks[(tracks["track_id"] == clip["track_id"])
                  & tracks["frame"].between(clip["start_frame"], clip["end_frame"] - 1)]
    boxes = [[int(r.frame), r.x1, r.y1, r.x2, r.y2, int(r.interpolated)] for r in rows.itertuples()]
    boxes = json.loads(json.dumps(boxes))  # as the release metadata stores them
    sources = read_manifest(run.workdir, "sources").set_index("source_id")
    digest = recut_face_frames(run.workdir / sources.loc[clip["source_id"], "path"], int(clip["start_frame"]),
                               int(clip["end_frame"]), boxes, tmp_path / "again", load_config(run.config).export)
    assert digest == clip["sha256"]
    first = sorted((run.workdir / clip["frames_dir"]).glob("*.jpg"))[0]
    assert (tmp_path / "again" / first.name).read_bytes() == first.read_bytes()


def test_broken_sources_are_failures_and_others_go_on(run):
    failures = read_manifest(run.workdir, "failures")
    failed = set(failures.loc[failures["stage"] == "clips", "input_id"])
    assert failed == {run.ids["corrupt.mp4"], run.ids["truncated.mp4"]}
    kinds = failures.set_index("input_id")["error_kind"]  # typed: a broken file told from a truncated one
    assert kinds[run.ids["corrupt.mp4"]] == "VideoOpenError" and kinds[run.ids["truncated.mp4"]] == "TruncatedVideo"
    messages = " ".join(failures["message"])
    assert "corrupt" in messages or "cannot" in messages
    assert "truncated" in messages
    assert set(read_manifest(run.workdir, "clips")["source_id"]) == {run.ids["standard.mp4"]}
    assert "failed" in run.first_output
    # the truncated copy's first shots were exported before its end showed it short: their files are gone
    left = [p for name in ("corrupt.mp4", "truncated.mp4") for p in (run.workdir / "clips" / run.ids[name]).glob("*")]
    assert left == []


def test_second_run_does_no_work_and_keeps_ids(run):
    before_ids = sorted(read_manifest(run.workdir, "clips")["clip_id"])
    files = sorted(p for p in (run.workdir / "clips").rglob("*") if p.is_file())
    stamps = {p: p.stat().st_mtime_ns for p in files}
    marker = next((run.workdir / "parts").glob("*/DONE"))
    marker_stamp = marker.stat().st_mtime_ns
    result = runner.invoke(app, ["clips", str(run.workdir), "--config", str(run.config), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert sorted(read_manifest(run.workdir, "clips")["clip_id"]) == before_ids
    assert {p: p.stat().st_mtime_ns for p in files} == stamps and marker.stat().st_mtime_ns == marker_stamp
    assert process_source(run.workdir, run.ids["standard.mp4"], load_config(run.config)).skipped


def test_decode_errors_are_raised_in_the_caller(broken_videos):
    with pytest.raises(VideoError, match="corrupt.mp4"):
        list(read_frames(broken_videos["corrupt"]))


def test_tracker_interpolates_gaps_and_stays_in_its_shot():
    det = lambda x: np.array([[x, 20, x + 60, 80, 0.9, 50.0]])  # noqa: E731
    detections = {f: det(100 + f) for f in range(0, 40, 2) if f not in (10, 12)}
    detections.update({f: det(400) for f in range(40, 60, 2)})  # another shot, same place as nothing before
    cfg = TracksConfig(min_track_frames=5)
    first = build_tracks(detections, (0, 40), cfg, stride=2)
    assert len(first) == 1 and first[0].frames.tolist() == list(range(0, 40))
    track = first[0]
    assert track.interpolated[10] and track.interpolated[11] and not track.interpolated[8]
    assert track.boxes[11, 0] == pytest.approx(111, abs=0.01)  # linear in between, smoothing keeps a line
    second = build_tracks(detections, (40, 60), cfg, stride=2)
    assert len(second) == 1 and second[0].frames[0] == 40
    apart = {0: np.vstack([det(0), det(300)]), 2: np.vstack([det(2), det(302)])}
    assert len(build_tracks(apart, (0, 4), TracksConfig(min_track_frames=1), stride=2)) == 2


def test_demo_sources_are_scene_folders(tmp_path):
    paths = demo_sources(tmp_path, n=1)
    assert [p.parent.name for p in paths] == ["Talkshow"]
    info = probe(paths[0])
    assert (info.width, info.height, info.fps) == (640, 360, Fraction(25)) and info.num_frames == 225


def test_clip_verification_rejects_a_short_or_broken_file(tmp_path):
    path = tmp_path / "clip.mp4"
    write_video(path, (np.full((64, 96, 3), i * 20, np.uint8) for i in range(5)), fps=25)
    verify_clip(path, 5, Fraction(25))
    with pytest.raises(VideoError, match="written clip has 5 frames"):
        verify_clip(path, 6, Fraction(25))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # cut short: its index is at the front
    with pytest.raises(VideoError):
        verify_clip(path, 5, Fraction(25))


def test_range_decode_is_frame_accurate(standard_video):
    path, start = standard_video.path, standard_video.shot("astro_pan").start + 37
    wanted = {f.index: yuv.join(*f.planes) for f in read_frames(path) if start - 1 <= f.index <= start + 1}
    got = [yuv.join(*planes) for planes in decode_range(path, start, start + 2)]
    assert len(got) == 2 and np.array_equal(got[0], wanted[start]) and np.array_equal(got[1], wanted[start + 1])
    assert not np.array_equal(got[0], wanted[start - 1])
    with pytest.raises(VideoError, match="outside its"):
        list(decode_range(path, standard_video.num_frames - 1, standard_video.num_frames + 1))


def _edge_and_inside(marked: np.ndarray, unmarked: np.ndarray, box: tuple[int, int, int, int]) -> tuple[float, float]:
    """Mean colour difference on a box's left edge and around its centre."""
    x1, y1, x2, y2 = box
    diff = np.abs(marked.astype(int) - unmarked.astype(int)).sum(axis=2)
    return (float(diff[y1 + 4:y2 - 4, max(0, x1 - 1):x1 + 1].mean()),
            float(diff[(y1 + y2) // 2 - 8:(y1 + y2) // 2 + 8, (x1 + x2) // 2 - 8:(x1 + x2) // 2 + 8].mean()))


def _tracks(run: Run) -> pd.DataFrame:
    return read_manifest(run.workdir, "tracks").set_index(["track_id", "frame"])


def _box_at(tracks: pd.DataFrame, track_id: str, frame: int) -> tuple[int, int, int, int]:
    """A track's box at ``frame`` (``tracks``: from :func:`_tracks`), in whole pixels."""
    return tuple(int(round(v)) for v in tracks.loc[(track_id, frame), ["x1", "y1", "x2", "y2"]])


def test_scene_frames_are_cut_unmarked_at_scene_size(run, tmp_path):
    """The release's scene frames and the shared scene clip are unmarked; the clip's still marks its face."""
    clip = _good(run, "clips").iloc[0]
    sources = read_manifest(run.workdir, "sources").set_index("source_id")
    cut_scene_frames(run.workdir / sources.loc[clip["source_id"], "path"], int(clip["start_frame"]),
                     int(clip["end_frame"]), tmp_path / "scene", load_config(run.config).export)
    frames = sorted((tmp_path / "scene").glob("*.jpg"))
    assert len(frames) == clip["num_frames"]
    unmarked = cv2.imread(str(frames[0]))
    info = probe(run.workdir / clip["scene_path"])
    assert unmarked.shape[:2] == (info.height, info.width) == (360, 640)  # a 640x360 source is not shrunk
    with av.open(str(run.workdir / clip["scene_path"])) as container:
        scene = next(container.decode(video=0)).to_ndarray(format="bgr24")
    tracks = _tracks(run)
    edge, inside = _edge_and_inside(scene, unmarked, _box_at(tracks, clip["track_id"], int(clip["start_frame"])))
    assert edge < 20 and inside < 20, (edge, inside)  # the scene clip is unmarked
    middle = clip["num_frames"] // 2
    still = cv2.imread(str(run.workdir / clip["still_path"]))
    assert still.shape == unmarked.shape
    edge, inside = _edge_and_inside(still, cv2.imread(str(frames[middle])),
                                    _box_at(tracks, clip["track_id"], int(clip["start_frame"]) + middle))
    assert edge > 60 and inside < 20, (edge, inside)  # the still marks the face at the window's middle frame


def test_a_window_with_several_faces_has_one_scene_clip_and_a_crop_and_still_per_face(run, tmp_path):
    """The 6-face group and the two faces side by side: every window's targets share one scene clip (and the
    source's scenes folder holds one per window, nothing else); each target has its own crop clip and a still
    marking its own face, not the others'."""
    clips = _good(run, "clips")
    windows = clips.groupby(["start_frame", "end_frame"])
    assert len(clips) > windows.ngroups and windows.size().max() >= 5  # faces of the group share windows
    scenes = run.workdir / "clips" / run.ids["standard.mp4"] / "scenes"
    assert sorted(p.name for p in scenes.iterdir()) == sorted({Path(p).name for p in clips["scene_path"]})
    sources = read_manifest(run.workdir, "sources").set_index("source_id")
    source = run.workdir / sources.loc[run.ids["standard.mp4"], "path"]
    tracks, shared = _tracks(run), 0
    for (start, end), window in windows:
        assert window["scene_path"].nunique() == 1
        assert window["crop_path"].nunique() == window["still_path"].nunique() == len(window)
        if len(window) == 1:
            continue
        shared += 1
        middle = start + (end - start) // 2
        cut_scene_frames(source, middle, middle + 1, tmp_path / f"mid{start}", load_config(run.config).export)
        unmarked = cv2.imread(str(next((tmp_path / f"mid{start}").glob("*.jpg"))))
        boxes = {row.clip_id: _box_at(tracks, row.track_id, middle) for row in window.itertuples()}
        for row in window.itertuples():
            still = cv2.imread(str(run.workdir / row.still_path))
            for other, box in boxes.items():
                edge, _ = _edge_and_inside(still, unmarked, box)
                assert (edge > 60) == (other == row.clip_id), (row.clip_id, other, edge)
    assert shared >= 3


def test_clips_cut_before_scene_clips_were_shared_are_kept(run, tmp_path):
    """A window cut again next to a clip folder of the older layout (its own marked scene.mp4, no still): that
    folder is kept as it is and keeps its marked scene clip; only the new target and the shared scene clip are
    written."""
    clip = _good(run, "clips").iloc[0]
    source = run.workdir / read_manifest(run.workdir, "sources").set_index("source_id").loc[clip["source_id"], "path"]
    start, end = int(clip["start_frame"]), int(clip["end_frame"])
    old = tmp_path / "src" / "clip-old"
    shutil.copytree(run.workdir / clip["frames_dir"], old / "face")
    shutil.copy(run.workdir / clip["crop_path"], old / "face.mp4")
    shutil.copy(run.workdir / clip["scene_path"], old / "scene.mp4")  # stands in for its marked scene clip
    tracks = _tracks(run)
    boxes = tracks.loc[[(clip["track_id"], f) for f in range(start, end)], ["x1", "y1", "x2", "y2"]].to_numpy()
    scene = scene_clip_path(tmp_path / "src", start, end)
    info = open_info(source)
    files, wrote = cut_window(scene, [(old, boxes), (tmp_path / "src" / "clip-new", boxes)], info.width,
                              info.height, info.fps, load_config(run.config).export,
                              lambda: range_frames(source, start, end))
    assert (files[0].scene_path, files[0].still_path, files[0].sha256) == (old / "scene.mp4", None, clip["sha256"])
    assert (files[1].scene_path, files[1].still_path) == (scene, tmp_path / "src" / "clip-new" / "still.jpg")
    assert wrote == [scene, tmp_path / "src" / "clip-new"] and files[1].sha256 == clip["sha256"]
    assert sorted(p.name for p in old.iterdir()) == ["face", "face.mp4", "scene.mp4"]
    scene.unlink()  # a scene clip gone from under its targets is written again; the targets are kept
    again, wrote = cut_window(scene, [(tmp_path / "src" / "clip-new", boxes)], info.width, info.height, info.fps,
                              load_config(run.config).export, lambda: range_frames(source, start, end))
    assert wrote == [scene] and again == files[1:] and probe(scene, count_frames=True).num_frames == end - start
    scene.unlink()  # a window of older clips only needs no shared scene clip
    kept, wrote = cut_window(scene, [(old, boxes)], info.width, info.height, info.fps, load_config(run.config).export,
                             lambda: range_frames(source, start, end))
    assert wrote == [] and kept == files[:1] and not scene.exists()


def test_a_long_shot_beyond_the_frame_buffer_gives_the_same_clips(run, standard_video, tmp_path):
    """With a buffer of a few dozen frames most clips are cut by seeking: same ids, same face-crop bytes."""
    work = tmp_path / "small-buffer"
    ids = make_workdir(work, [(standard_video.path, "Talkshow")])
    cfg = load_config(run.config).model_copy(update={"clips": ClipsConfig(workers=1, buffer_mb=16)})
    result = process_source(work, ids["standard.mp4"], cfg)
    assert not result.skipped and result.counts["clips"] == len(_good(run, "clips"))
    small = read_manifest(work / "parts" / ids["standard.mp4"], "clips").set_index("clip_id")
    assert small["sha256"].to_dict() == _good(run, "clips").set_index("clip_id")["sha256"].to_dict()


def test_pending_clips_hold_the_decode_pass_rather_than_lose_frames(run, standard_video, tmp_path, monkeypatch):
    """A buffer that holds any one shot, not the video: the decode pass waits for exports, so no clip is cut
    by seeking (which re-decodes from a keyframe); the clips are the same."""
    def no_seek(*args):
        raise AssertionError(f"a clip was cut by seeking: {args}")

    monkeypatch.setattr("pipeline.clips.range_frames", no_seek)
    work = tmp_path / "held"
    ids = make_workdir(work, [(standard_video.path, "Talkshow")])
    longest = max(s.end - s.start for s in standard_video.shots)
    frame_mb = standard_video.width * standard_video.height * 1.5 * 1.5 / 2**20  # with its shrunk copies
    budget = int(longest * frame_mb * 1.3) + 1
    assert budget < len(standard_video.shots) * longest * frame_mb / 2  # the video does not fit
    cfg = load_config(run.config).model_copy(update={"clips": ClipsConfig(workers=1, buffer_mb=budget)})
    result = process_source(work, ids["standard.mp4"], cfg)
    held = read_manifest(work / "parts" / ids["standard.mp4"], "clips").set_index("clip_id")
    assert result.counts["clips"] == len(held) and held["sha256"].to_dict() == _good(run, "clips").set_index(
        "clip_id")["sha256"].to_dict()


def test_frame_buffer_reuses_freed_slots_first_and_drops_only_what_it_cannot_hold():
    from pipeline.frames import FrameBuffer, FrameRing

    frames = [np.full((72, 64), i, np.uint8) for i in range(6)]  # I420 64x48, every pixel = the frame's index
    ring = FrameRing(64, 48, 3 * (64 * 72 + 32 * 36))
    assert ring.slots == 3 and ring.shapes == [(72, 64), (36, 32)]  # the frame and its first halving
    buffer = FrameBuffer(ring)  # nothing pending: make_room frees nothing
    for i in range(3):
        buffer.push(i, yuv.planes(frames[i]))
    assert buffer.slots(0, 3) == [0, 1, 2] and buffer.full()
    buffer.drop_before(2)  # frames 0 and 1 exported: slot 1 was freed last, so it is reused first
    buffer.push(3, yuv.planes(frames[3]))
    assert buffer.slots(2, 4) == [2, 1]
    buffer.push(4, yuv.planes(frames[4]))
    buffer.push(5, yuv.planes(frames[5]))  # full, nothing to wait for: the oldest frame (2) goes
    assert buffer.slots(2, 6) is None and buffer.slots(3, 6) == [1, 0, 2]
    for index, slot in zip(range(3, 6), buffer.slots(3, 6)):
        frame = ring.frame(slot)
        assert (yuv.join(*frame.level(0)) == index).all() and (yuv.join(*frame.level(1)) == index).all()


def test_exporters_run_at_a_lower_priority_than_the_decode_pass():
    import os

    from pipeline.clips import EXPORTER_NICENESS, _exporters
    from pipeline.frames import FrameRing

    pool, _ = _exporters(1, FrameRing(64, 48, 2**20))
    with pool:
        assert pool.submit(os.nice, 0).result() == os.nice(0) + EXPORTER_NICENESS


@pytest.mark.parametrize("side", [100, 300, 500])
def test_face_crop_from_the_frame_pyramid_matches_a_full_resolution_crop(side):
    """Large faces are cut from a halved level of the frame; the crop shows the same pixels as the same square
    cut from the full frame (a wrong level scale or offset would shift it by many pixels)."""
    from pipeline.export import crop_square, face_crop

    image = cv2.resize(skimage.data.astronaut(), (1280, 720))[:, :, ::-1].copy()  # BGR
    frame = yuv.Pyramid(cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420))
    box = (640 - side / 2, 360 - side / 2, 640 + side / 2, 360 + side / 2)
    got = yuv.to_bgr(face_crop(frame, box, 0.4, 224))
    x, y, s = crop_square(box, 0.4)
    assert len(frame.levels) == (2 if s >= 448 else 1)  # halved only where the crop still spans 224 pixels
    step = 2 << (len(frame.levels) - 1)  # a level-k square sits on even level-k pixels: 2^(k+1) full ones
    x, y, s = (int(round(v / step)) * step for v in (x, y, s))
    want = cv2.resize(image[y:y + s, x:x + s], (224, 224), interpolation=cv2.INTER_AREA)
    assert np.abs(got.astype(int) - want.astype(int)).mean() < 4


def test_a_header_counting_three_percent_more_frames_than_it_plays_is_processed(run, standard_video, tmp_path):
    """A real, playable file whose header declares about 3% more frames than it decodes (a stream-copy cut:
    ffmpeg keeps the packets from the keyframe before the cut and hides them with an edit list) is acquired and
    gives clips; it is not taken for a truncated file."""
    import subprocess

    from pipeline.acquire import acquire
    from pipeline.media import ffmpeg_exe
    from pipeline.run import run_all

    cut = tmp_path / "in" / "Talkshow" / "cut.mp4"
    cut.parent.mkdir(parents=True)
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-ss", "0.6", "-i", str(standard_video.path), "-c", "copy",
                    str(cut)], check=True)
    declared, decoded = open_info(cut).declared_frames, sum(1 for _ in read_frames(cut))
    assert 0.95 < decoded / declared < 0.98  # about 3% short of its header's count
    work = tmp_path / "work"
    cfg = load_config(run.config).model_copy(update={"clips": ClipsConfig(workers=1)})
    assert acquire(work, cfg, local_dir=cut.parent.parent, search=False).fetched == 1
    summary = run_all(work, ClipsStage(work, cfg), read_records(work, "sources"))
    assert (summary.processed, summary.failed) == (1, 0), summary.failures
    assert summary.counts["clips"] >= 3 and read_manifest(work, "shots")["end_frame"].max() == decoded
