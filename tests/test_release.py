"""Release in the FERV39k layout: exact layout, a loader written from the format description, grouped
split, byte-identical rebuilds, checks, derived lists and the CLI."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import subprocess
import sys
from collections import Counter
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from cli.app import app
from pipeline.release import build_release, check_release, export_lists, export_release
from pipeline.release.metadata import read_metadata
from pipeline.release.public import check_cfr_h264, is_public_url, public_url
from pipeline.release.rebuild import rebuild_release
from pipeline.release.split import assign_split
from schemas.config import BuildConfig
from schemas.manifests import read_manifest, write_manifest
from schemas.taxonomy import TAXONOMY
from pipeline.synthetic import LOCAL_DIR, default_plans, make_workdir, own_scene_plans

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
    lists = sorted(p.relative_to(release / "4_setups").as_posix() for p in (release / "4_setups").rglob("*.csv"))
    assert lists == sorted(
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


OLD_RELEASE = Path(__file__).parent / "data" / "release-before-shared-scenes"


def test_rebuild_of_a_release_made_before_scene_clips_were_shared_matches_its_checksums(tmp_path):
    """A release built by ferv before scene clips were shared per window (two sample sources: two faces side by
    side, a 6-face group; its metadata, metadata.csv, SHA256SUMS and sources kept as they were): ``ferv release
    rebuild`` re-cuts every face-crop and scene frame with the checksum the release lists."""
    result = CliRunner().invoke(app, ["release", "rebuild", str(OLD_RELEASE / "metadata.parquet"),
                                      str(OLD_RELEASE / "sources"), str(tmp_path / "rebuilt")])
    assert result.exit_code == 0, result.output
    listed = dict(reversed(line.split("  ", 1)) for line in (OLD_RELEASE / "SHA256SUMS").read_text().splitlines())
    frames = {rel: digest for rel, digest in listed.items()
              if rel.startswith(("2_ClipsforFaceCrop/", "3_ClipsforScenImages/"))}
    assert len(frames) > 500 and {rel.split("/")[0] for rel in frames} == {"2_ClipsforFaceCrop", "3_ClipsforScenImages"}
    rebuilt = tmp_path / "rebuilt"
    assert {rel: hashlib.sha256((rebuilt / rel).read_bytes()).hexdigest() for rel in frames} == frames
    for rel in ("metadata.parquet", "metadata.csv", *[r for r in listed if r.startswith("4_setups/")]):
        assert hashlib.sha256((rebuilt / rel).read_bytes()).hexdigest() == listed[rel], rel
    assert check_release(rebuilt) == []


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


@pytest.mark.parametrize(("n", "test_clips"), [(2, 2), (3, 2), (10, 4)])
def test_builds_of_few_sources_have_non_empty_train_and_test(n, test_clips, tmp_path):
    """Each source alone in its scene with two clips: no cell can be split, yet both splits get whole sources,
    the test share as near 20% as whole sources allow (50%, 33%, 20%)."""
    plans = own_scene_plans(n)
    work = make_workdir(tmp_path / "work", plans)
    summary = build_release(work, tmp_path / "out", BuildConfig())
    assert (summary.clips, summary.train, summary.test) == (2 * n, 2 * n - test_clips, test_clips)
    for split in ("train", "test"):
        assert (tmp_path / f"out/4_setups/All_scenes/{split}_All.csv").read_text().strip()
    meta, _ = read_metadata(tmp_path / "out/metadata.parquet")
    assert meta.groupby("source_id")["split"].nunique().max() == 1
    if n == 10:  # enough sources to keep every expression in train
        assert set(meta.loc[meta["split"] == "train", "expression"]) == set(TAXONOMY.expression_names)
    share = 100 * test_clips / (2 * n)
    report = (tmp_path / "out/REPORT.md").read_text()
    assert f"Test share {share:.1f}% against a target of 20% ({share - 20:+.1f} points)" in report
    assert f"With {n} sources the share can only move in steps of whole sources" in report
    assert check_release(tmp_path / "out") == []
    assert assign_split(meta, 0.2, seed=0).tolist() == meta["split"].tolist()  # deterministic for the seed


def test_a_single_source_is_refused_with_one_clear_line(tmp_path):
    work = make_workdir(tmp_path / "work", own_scene_plans(1))
    result = CliRunner().invoke(app, ["release", "build", str(work), str(tmp_path / "out")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    meta = read_manifest(work, "sources")
    line = (f"all 2 released clips come from one source video ({meta['source_id'][0]}): a grouped train/test split "
            "needs at least two sources; add sources and build again")
    assert line in " ".join(result.output.split())  # one line, which the console may wrap
    assert not (tmp_path / "out").exists()


def test_check_and_export_fail_on_an_empty_split_list(release, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(release, broken)
    (broken / "4_setups/All_scenes/test_All.csv").write_text("")
    problems = check_release(broken)
    assert any(p.endswith("empty split list; a release needs clips in both train and test (whole source videos "
                          "per split, so at least two sources): add sources and build the release again")
               and "test_All.csv" in p for p in problems), problems
    runner = CliRunner()
    assert runner.invoke(app, ["release", "check", str(broken)]).exit_code == 1
    for fmt in ("mae-dfer", "dfer-clip", "hf", "webdataset"):
        result = runner.invoke(app, ["release", "export", "--format", fmt, "--dest", str(tmp_path / fmt), str(broken)])
        assert result.exit_code == 1 and "test_All.csv: empty split list" in result.output, (fmt, result.output)
        assert not (tmp_path / fmt).exists() or not any((tmp_path / fmt).rglob("*.*")), fmt


def _modes(root: Path) -> tuple[set[str], set[str]]:
    files = {oct(p.stat().st_mode & 0o777) for p in root.rglob("*") if p.is_file()}
    folders = {oct(p.stat().st_mode & 0o777) for p in [root, *root.rglob("*")] if p.is_dir()}
    return files, folders


def test_release_files_are_shareable_whatever_the_umask(workdir, tmp_path):
    old = os.umask(0o077)  # a private umask (as the Label Studio side runs under) must not leak into a release
    try:
        out = tmp_path / "out"
        build_release(workdir, out, BuildConfig())
        lists = export_lists(out, "mae-dfer")
        hf_files = export_release(out, "hf", tmp_path / "hf")
        shards = export_release(out, "webdataset", tmp_path / "wds")
    finally:
        os.umask(old)
    assert _modes(out) == ({"0o644"}, {"0o755"})
    assert {oct(p.stat().st_mode & 0o777) for p in lists} == {"0o644"}
    assert _modes(tmp_path / "hf") == ({"0o644"}, {"0o755"}) and len(hf_files) > 4
    assert _modes(tmp_path / "wds") == ({"0o644"}, {"0o755"}) and shards
    # clip folders hold only their frame images
    names = {p.name for p in (out / "2_ClipsforFaceCrop").glob("*/*/*/*")}
    assert names and all(re.fullmatch(r"\d{5}\.jpg", n) for n in names)
    assert all(p.is_dir() for p in (out / "2_ClipsforFaceCrop").glob("*/*/*"))


def test_public_urls_carry_no_credentials_query_or_machine_path(tmp_path):
    roots = [tmp_path / "videos"]
    assert public_url("https://user:secret@example.org:8443/v/1.mp4?token=abc#t=3", "url_list", roots, "ab") == \
        "https://example.org:8443/v/1.mp4"
    assert public_url("https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=42&list=x", "search", roots, "ab") == \
        "https://youtu.be/dQw4w9WgXcQ"
    assert public_url(str(tmp_path / "videos/Talkshow/a.mp4"), "local", roots, "ab") == "local:Talkshow/a.mp4"
    assert public_url("/elsewhere/a.mp4", "local", roots, "ab") == "local:sha256:ab"
    raw = ["https://user:secret@example.org/v.mp4", "https://example.org/v.mp4?sig=1", "/home/me/v.mp4",
           "local:/home/me/v.mp4"]
    assert not any(map(is_public_url, raw))
    assert all(is_public_url(public_url(u, "url_list" if "://" in u else "local", roots, "ab")) for u in raw)


def test_the_same_local_sources_in_other_folders_give_identical_checksums(tmp_path):
    """Two machines (folders) acquire the same local videos: metadata and SHA256SUMS are byte-identical."""
    plans = own_scene_plans(3)
    first = make_workdir(tmp_path / "a" / "work", plans, local=True)
    second = tmp_path / "b" / "elsewhere" / "work"
    shutil.copytree(first, second)
    sources = read_manifest(second, "sources")
    sources["url"] = [u.replace(str(first.resolve()), str(second.resolve())) for u in sources["url"]]
    write_manifest(second, "sources", sources)
    cfg = BuildConfig(sources=[{"kind": "local", "path": LOCAL_DIR}],
                      faces={"models_dir": str(tmp_path / "models")})
    outs = [build_release(w, w.parent / "release", cfg).out for w in (first, second)]
    for name in ("SHA256SUMS", "metadata.parquet", "metadata.csv"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name
    meta, _ = read_metadata(outs[0] / "metadata.parquet")
    assert sorted(meta["source_url"].unique()) == sorted(f"local:{p.scene}/{p.name}.mp4" for p in plans)
    for out in outs:  # no path of the building machine in any shared file, the datasheet included
        for path in out.rglob("*"):
            if path.is_file() and path.suffix in (".md", ".csv", ".parquet", "") and path.name != "SHA256SUMS":
                data = path.read_bytes()
                assert str(tmp_path).encode() not in data, path
    readme = (outs[0] / "README.md").read_text()
    assert "<local path>" in readme  # faces.models_dir, an absolute path, is not shown


def test_datasheet_has_the_dataset_card_sections(release):
    text = (release / "README.md").read_text()
    headings = [line for line in text.splitlines() if line.startswith("#")]
    for heading in ("## Dataset Summary", "## Dataset Structure", "### Data Fields", "### Data Splits",
                    "## Dataset Creation", "### Curation Rationale", "### Source Data", "### Annotations",
                    "### Personal and Sensitive Information", "### Licensing Information",
                    "### Citation Information"):
        assert heading in headings, heading
    assert "@inproceedings{wang2022ferv39k" in text and "CC BY-NC 4.0" in text
    votes = sum(len([x for x in p.labels]) for p in PLANS) * 3
    assert f"- valid votes: {votes} from 3 crowd annotators" in text
    assert "- labels: 19 accepted, 2 ambiguous, 2 gold, 1 unusable" in text
    assert "Test share " in text and "Licences the sources state: 7 not stated (source videos)" in text


def _loaded_hf(folder: Path, cache: Path) -> dict:
    """``datasets.load_dataset(folder)`` in a fresh offline interpreter (the offline switch is read at import)."""
    code = f"""
import json, datasets
ds = datasets.load_dataset({str(folder)!r}, cache_dir={str(cache)!r})
train = ds["train"]
print(json.dumps({{"splits": {{k: v.num_rows for k, v in ds.items()}},
                   "labels": train.features["label"].names, "scenes": train.features["scene"].names,
                   "video": type(train.features["video"]).__name__,
                   "rows": {{s: [{{k: r[k] for k in ("key", "label", "scene", "descriptor", "annotators", "agreement",
                                                    "source_id")}} | {{"video": r["video"]["path"]}}
                                for r in ds[s]] for s in ds}}}}))
"""
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_HOME": str(cache)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_hf_export_loads_offline_with_datasets(release, tmp_path):
    pytest.importorskip("datasets")
    dest = tmp_path / "hf"
    result = CliRunner().invoke(app, ["release", "export", "--format", "hf", "--dest", str(dest), str(release)])
    assert result.exit_code == 0, result.output
    card = (dest / "README.md").read_text()
    header = yaml.safe_load(card.split("---\n")[1])
    assert header["task_categories"] == ["video-classification"]
    assert header["configs"][0]["data_files"] == [{"split": "train", "path": "data/train/*"},
                                                  {"split": "test", "path": "data/test/*"}]
    loaded = _loaded_hf(dest, tmp_path / "cache")
    meta, _ = read_metadata(release / "metadata.parquet")
    assert loaded["splits"] == {s: int((meta["split"] == s).sum()) for s in ("train", "test")}
    assert loaded["labels"] == [e.name for e in sorted(TAXONOMY.expressions, key=lambda e: e.id)]
    assert loaded["labels"] == TAXONOMY.expression_names and loaded["scenes"] == TAXONOMY.scene_names
    assert loaded["video"] == "Video"
    by_key = meta.set_index("path")
    for split, rows in loaded["rows"].items():
        for row in rows:
            truth = by_key.loc[row["key"]]
            assert truth["split"] == split
            assert loaded["labels"][row["label"]] == truth["expression"] and row["label"] == truth["label_id"]
            assert loaded["scenes"][row["scene"]] == truth["scene"]
            assert (row["annotators"], row["agreement"], row["source_id"]) == (3, 1.0, truth["source_id"])
            assert row["descriptor"] == truth["descriptor"] == TAXONOMY.expression(truth["expression"]).descriptors[0]
            video = Path(row["video"])
            assert video.parent == dest / "data" / split
            assert video.read_bytes() == (release / "1_Clips/FaceCrop" / f"{row['key']}.mp4").read_bytes()
    check_cfr_h264(Path(loaded["rows"]["test"][0]["video"]), 6)


def test_webdataset_shards_read_back_with_tarfile(release, tmp_path):
    meta, _ = read_metadata(release / "metadata.parquet")
    shards = export_release(release, "webdataset", tmp_path / "wds", shard_clips=4)
    test_clips = int((meta["split"] == "test").sum())
    assert [p.relative_to(tmp_path / "wds").as_posix() for p in shards if p.parent.name == "test"] == [
        f"test/{i:05d}.tar" for i in range(-(-test_clips // 4))]
    by_key = meta.set_index("path")
    seen = []
    for shard in shards:
        with tarfile.open(shard) as tar:
            members = tar.getmembers()
            assert all((m.mtime, m.uid, m.gid, m.mode) == (members[0].mtime, 0, 0, 0o644) for m in members)
            stems = [m.name.rsplit(".", 1)[0] for m in members]
            assert stems[::2] == stems[1::2] and len(set(stems)) <= 4  # pairs: key.json, key.mp4
            for json_member, mp4_member in zip(members[::2], members[1::2]):
                record = json.loads(tar.extractfile(json_member).read())
                truth = by_key.loc[record["key"]]
                assert json_member.name == f"{record['key'].replace('/', '_')}.json"
                assert mp4_member.name == f"{record['key'].replace('/', '_')}.mp4"
                assert (record["label"], record["label_id"], record["split"]) == (
                    truth["expression"], truth["label_id"], shard.parent.name)
                with av.open(io.BytesIO(tar.extractfile(mp4_member).read())) as container:
                    frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
                assert len(frames) == truth["num_frames"] and frames[0].shape == (224, 224, 3)
                seen.append(record["key"])
    assert sorted(seen) == sorted(meta["path"])
    again = export_release(release, "webdataset", tmp_path / "wds2", shard_clips=4)
    assert [p.read_bytes() for p in again] == [p.read_bytes() for p in shards]  # byte-identical across runs
    fewer = export_release(release, "webdataset", tmp_path / "wds", shard_clips=100)  # stale shards go
    left = sorted(p.relative_to(tmp_path / "wds").as_posix() for p in (tmp_path / "wds").rglob("*.tar"))
    assert left == ["test/00000.tar", "train/00000.tar"] and len(fewer) == 2
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="holds no ferv webdataset export"):
        export_release(release, "webdataset", foreign)
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
