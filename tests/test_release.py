"""Release in the FERV39k layout: exact layout, a loader written from the format description, grouped
split, byte-identical rebuilds, checks, derived lists and the CLI."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from cli.app import app
from pipeline.release import build_release, check_release, export_lists
from pipeline.release.metadata import read_metadata
from pipeline.release.rebuild import rebuild_release
from pipeline.release.split import assign_split
from schemas.config import BuildConfig
from schemas.manifests import read_manifest, write_manifest
from schemas.taxonomy import TAXONOMY
from tests.release_support import default_plans, make_workdir

PLANS = default_plans()
RELEASED = [(p.scene, label) for p in PLANS if p.status in ("accepted", "gold") for label in p.labels if label]
LINE = re.compile(r"^(?P<scene>[A-Za-z]+)/(?P<expr>[A-Za-z]+)/(?P<n>\d{4}) (?P=expr)$")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return make_workdir(tmp_path_factory.mktemp("release") / "work", PLANS)


@pytest.fixture(scope="module")
def release(workdir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("release-out") / "ferv"
    summary = build_release(workdir, out, BuildConfig())
    assert (summary.clips, summary.skipped) == (len(RELEASED), 0)
    return out


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_release_has_exactly_the_ferv39k_layout(release, workdir):
    assert sorted(p.name for p in release.iterdir()) == [
        "1_Clips", "2_ClipsforFaceCrop", "3_ClipsforScenImages", "4_setups", "README.md", "REPORT.md",
        "SHA256SUMS", "metadata.csv", "metadata.parquet", "report"]
    cells = Counter(RELEASED)
    for top, suffix in (("2_ClipsforFaceCrop", ""), ("3_ClipsforScenImages", ""), ("1_Clips/FaceCrop", ".mp4"),
                        ("1_Clips/Scene", ".mp4")):
        found = {(c.parent.name, c.name): sorted(p.name for p in c.iterdir()) for c in (release / top).glob("*/*")}
        assert found == {cell: [f"{i:04d}{suffix}" for i in range(n)] for cell, n in cells.items()}, top
    for folder in (release / "2_ClipsforFaceCrop").glob("*/*/*"):
        names = sorted(p.name for p in folder.iterdir())
        assert names == [f"{i:05d}.jpg" for i in range(1, 7)]
        for name in names:
            with Image.open(folder / name) as img:
                assert (img.format, img.size) == ("JPEG", (224, 224))
    meta, kv = read_metadata(release / "metadata.parquet")
    present = meta.drop_duplicates(["split", "scene"])  # a list per scene and scenario with clips in the split
    assert sorted(p.relative_to(release / "4_setups").as_posix() for p in (release / "4_setups").rglob("*.csv")) == sorted(
        ["All_scenes/test_All.csv", "All_scenes/train_All.csv"]
        + [f"22_scenes/{s}_{scene}.csv" for s, scene in zip(present["split"], present["scene"])]
        + [f"4_scenarios/{s}_{code}.csv" for s, code in set(zip(present["split"], present["scenario"]))])
    assert len(present) >= 3 and {"Talkshow", "Interview"} <= set(present["scene"])
    lines = []
    for split in ("train", "test"):
        text = (release / f"4_setups/All_scenes/{split}_All.csv").read_text()
        assert text.endswith("\n") and "\r" not in text
        lines += text.splitlines()
    assert all(LINE.match(line) for line in lines), "one space, no header, <Scene>/<Expression>/<NNNN> <Expression>"
    assert Counter((m["scene"], m["expr"]) for m in map(LINE.match, lines)) == cells
    assert kv["ferv.taxonomy_version"] == TAXONOMY.version and "crop_size" in kv["ferv.export_config"]
    assert sorted(meta["path"]) == sorted(line.split(" ")[0] for line in lines)
    assert set(meta["label_status"]) == {"accepted", "gold"}
    # the release frames are the work directory's frames, byte for byte and in playing order
    clips = read_manifest(workdir, "clips").set_index("clip_id")
    row = meta.iloc[0]
    src = sorted((workdir / clips.loc[row["clip_id"], "frames_dir"]).glob("*.jpg"))
    dst = sorted((release / "2_ClipsforFaceCrop" / row["path"]).glob("*.jpg"))
    assert [p.read_bytes() for p in src] == [p.read_bytes() for p in dst]
    assert row["source_url"].startswith("https://example.org/") and row["track_boxes"].startswith("[[")
    assert check_release(release) == []


def test_a_loader_written_from_the_format_description_reads_every_clip(release):
    """Read 4_setups/All_scenes/*_All.csv with no header, open each frame folder, load every frame."""
    read = []
    for split in ("train", "test"):
        for line in (release / f"4_setups/All_scenes/{split}_All.csv").read_text().splitlines():
            path, label = line.split(" ")
            frames = sorted((release / "2_ClipsforFaceCrop" / path).glob("*.jpg"))
            video = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in frames])
            assert video.shape == (6, 224, 224, 3) and video.std() > 0
            read.append((path.split("/")[0], label))
        # MAE-DFER's own reading: pandas, no header, space-delimited
        frame = pd.read_csv(release / f"4_setups/All_scenes/{split}_All.csv", header=None, delimiter=" ")
        assert frame.shape[1] == 2
    assert Counter(read) == Counter(RELEASED)


def test_no_source_video_is_in_both_splits(release):
    meta, _ = read_metadata(release / "metadata.parquet")
    assert meta.groupby("source_id")["split"].nunique().max() == 1
    assert set(meta["split"]) == {"train", "test"}
    for split in ("train", "test"):
        listed = {line.split(" ")[0] for line in (release / f"4_setups/All_scenes/{split}_All.csv").read_text().splitlines()}
        assert listed == set(meta.loc[meta["split"] == split, "path"])


def _synthetic_clips(n_sources: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    weights = np.array([TAXONOMY.reference["expressions"][e] for e in TAXONOMY.expression_names], dtype=float)
    rows = []
    for s in range(n_sources):
        scene = TAXONOMY.scene_names[s % 22]
        for e in rng.choice(TAXONOMY.expression_names, size=int(rng.integers(3, 40)), p=weights / weights.sum()):
            rows.append((f"src-{s:05d}", scene, e))
    return pd.DataFrame(rows, columns=["source_id", "scene", "expression"])


def test_split_is_grouped_about_a_fifth_of_every_populous_cell_and_deterministic():
    clips = _synthetic_clips(1500, seed=1)
    split = assign_split(clips, 0.2, seed=7)
    assert clips.assign(split=split).groupby("source_id")["split"].nunique().max() == 1
    share = (split == "test").groupby([clips["scene"], clips["expression"]]).mean()
    size = clips.groupby(["scene", "expression"]).size()
    populous = share[size >= 100]
    assert len(populous) > 50
    assert populous.between(0.15, 0.25).all(), populous[~populous.between(0.15, 0.25)]
    assert abs((split == "test").mean() - 0.2) < 0.01
    shuffled = clips.sample(frac=1, random_state=3)
    assert assign_split(shuffled, 0.2, seed=7).sort_index().equals(split)  # row order does not matter
    assert not assign_split(clips, 0.2, seed=8).equals(split)  # the seed does


def test_two_builds_are_byte_identical_but_for_the_datasheet_time(workdir, release, tmp_path):
    again = tmp_path / "again"  # built by `ferv release` in another process: no shared plotting state
    done = subprocess.run([sys.executable, "-c", "from cli.app import main; main()", "release", str(workdir),
                           str(again)], cwd=Path(__file__).parents[1], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    first, second = _files(release), _files(again)
    assert sorted(first) == sorted(second)
    different = [rel for rel in first if first[rel] != second[rel]]
    assert different in ([], ["README.md"])
    a, b = (f["README.md"].decode().splitlines() for f in (first, second))
    assert [x for x, y in zip(a, b) if x != y] in ([], [a[4]]) and a[4].startswith("Built: ")
    sums = first["SHA256SUMS"].decode()
    assert "README.md" not in sums and "  metadata.parquet\n" in sums and "  report/scenes.png\n" in sums


def test_rebuilding_in_place_writes_nothing_then_follows_a_relabel(workdir, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(workdir, work)
    out = tmp_path / "out"
    build_release(work, out, BuildConfig())
    assert build_release(work, out, BuildConfig()).files_written == 0
    labels = read_manifest(work, "labels")
    meta, _ = read_metadata(out / "metadata.parquet")
    moved = meta[meta["path"] == "Talkshow/Happy/0000"].iloc[0]
    labels.loc[labels["clip_id"] == moved["clip_id"], "label"] = "Angry"
    write_manifest(work, "labels", labels)
    summary = build_release(work, out, BuildConfig())
    assert summary.files_written > 0
    meta, _ = read_metadata(out / "metadata.parquet")
    assert meta.set_index("clip_id").loc[moved["clip_id"], "path"].startswith("Talkshow/Angry/")
    happy = Counter(RELEASED)[("Talkshow", "Happy")]
    assert sorted(p.name for p in (out / "2_ClipsforFaceCrop/Talkshow/Happy").iterdir()) == [
        f"{i:04d}" for i in range(happy - 1)]
    assert check_release(out) == []


def test_check_release_reports_broken_releases(release, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(release, broken)
    frame = broken / "2_ClipsforFaceCrop/Talkshow/Neutral/0001/00002.jpg"
    frame.write_bytes(frame.read_bytes()[:-10])
    shutil.rmtree(broken / "2_ClipsforFaceCrop/Talkshow/Happy/0000")
    problems = "\n".join(check_release(broken))
    assert "Talkshow/Neutral/0001/00002.jpg: checksum differs" in problems
    assert "2_ClipsforFaceCrop/Talkshow/Happy: entries are not 0000" in problems
    assert "Talkshow/Happy/0000: missing" in problems
    train = broken / "4_setups/All_scenes/train_All.csv"
    train.write_text("path label\n" + train.read_text())
    assert "expected '<Scene>/<Expression>/<NNNN> <Expression>'" in "\n".join(check_release(broken))


def test_clips_with_missing_files_are_recorded_as_failures(workdir, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(workdir, work)
    clips = read_manifest(work, "clips")
    released = set(read_manifest(work, "labels").query("status in ['accepted', 'gold'] and label.notna()")["clip_id"])
    victim = clips[clips["clip_id"].isin(released)].iloc[0]
    shutil.rmtree(work / victim["frames_dir"])
    summary = build_release(work, tmp_path / "out", BuildConfig())
    assert (summary.clips, summary.skipped) == (len(RELEASED) - 1, 1)
    failures = read_manifest(work, "failures")
    row = failures[(failures["stage"] == "release") & (failures["input_id"] == victim["clip_id"])]
    assert len(row) == 1 and "face-crop frames" in row.iloc[0]["message"]
    assert check_release(tmp_path / "out") == []
    shutil.copytree(workdir / victim["frames_dir"], work / victim["frames_dir"])  # fixed: the failure goes
    assert build_release(work, tmp_path / "out", BuildConfig()).clips == len(RELEASED)
    assert not (read_manifest(work, "failures")["stage"] == "release").any()


def test_cli_builds_checks_and_exports(workdir, tmp_path):
    out = tmp_path / "cli-out"
    runner = CliRunner()
    result = runner.invoke(app, ["release", str(workdir), str(out)])
    assert result.exit_code == 0, result.output
    assert f"{len(RELEASED)} clips" in result.output
    assert runner.invoke(app, ["release", "check", str(out)]).exit_code == 0
    result = runner.invoke(app, ["release", "export", "--format", "mae-dfer", str(out)])
    assert result.exit_code == 0, result.output
    test_list = pd.read_csv(out / "5_exports/mae-dfer/test.csv", header=None, delimiter=" ")
    expected = [line.split(" ") for line in (out / "4_setups/All_scenes/test_All.csv").read_text().splitlines()]
    assert test_list[0].tolist() == [str(out.resolve() / "2_ClipsforFaceCrop" / p) for p, _ in expected]
    assert test_list[1].tolist() == [TAXONOMY.expression(e).dfew_id for _, e in expected]
    paths = export_lists(out, "dfer-clip", root=Path("/data/FERV39k"))
    first = paths[0].read_text().splitlines()[0].split(" ")
    assert first[0].startswith("/data/FERV39k/2_ClipsforFaceCrop/") and first[1] == "6"
    assert runner.invoke(app, ["release", "check", str(out)]).exit_code == 0  # exports lie outside SHA256SUMS
    occupied = tmp_path / "occupied"
    (occupied / "2_ClipsforFaceCrop").mkdir(parents=True)
    (occupied / "2_ClipsforFaceCrop" / "notes.txt").write_text("mine")
    result = runner.invoke(app, ["release", "build", str(workdir), str(occupied)])
    assert result.exit_code == 1 and "holds no ferv release" in result.output
    assert (occupied / "2_ClipsforFaceCrop" / "notes.txt").read_text() == "mine"
    (out / "metadata.csv").write_text("tampered")
    result = runner.invoke(app, ["release", "check", str(out)])
    assert result.exit_code == 1 and "metadata.csv: checksum differs" in result.output


def test_rebuild_from_metadata_reproduces_the_same_frames(workdir, release, tmp_path):
    """Needs the real clip exporter (pipeline.export.recut_face_frames): re-cut every clip from the sources
    using metadata.parquet only; the frames' checksums match the release's."""
    sources = tmp_path / "downloads"
    sources.mkdir()
    for i, path in enumerate(sorted((workdir / "sources").glob("*.mp4"))):  # renamed: found by SHA-256
        shutil.copy(path, sources / f"video-{i}.mp4")
    summary = rebuild_release(release / "metadata.parquet", sources, tmp_path / "rebuilt")
    assert summary.problems == ()
    assert (summary.clips, summary.matched) == (len(RELEASED), len(RELEASED))
    rebuilt = _files(tmp_path / "rebuilt")
    original = _files(release)
    frames = [rel for rel in original if rel.startswith(("2_ClipsforFaceCrop/", "3_ClipsforScenImages/"))]
    assert {rel.split("/")[0] for rel in frames} == {"2_ClipsforFaceCrop", "3_ClipsforScenImages"}
    assert all(rebuilt[rel] == original[rel] for rel in frames)
    assert all(rebuilt[rel] == original[rel] for rel in original if rel.startswith("4_setups/"))
    assert check_release(tmp_path / "rebuilt") == []


def test_rebuild_names_missing_and_altered_sources(workdir, release, tmp_path):
    videos = sorted((workdir / "sources").glob("*.mp4"))
    sources = tmp_path / "sources"
    sources.mkdir()
    shutil.copy(videos[0], sources / videos[0].name)
    (sources / videos[1].name).write_bytes(videos[1].read_bytes() + b"\0")  # same name, other bytes
    result = CliRunner().invoke(app, ["release", "rebuild", str(release / "metadata.parquet"), str(sources),
                                      str(tmp_path / "out")])
    assert result.exit_code == 1
    assert f"source {videos[1].stem}:" in result.output and "other bytes" in result.output
    assert f"source {videos[2].stem}: no file" in result.output
    meta, _ = read_metadata(release / "metadata.parquet")
    assert f"{(meta['source_id'] == videos[0].stem).sum()} of {len(meta)} clips re-cut" in result.output
