"""``check_release``: everything a loader of the FERV39k layout relies on, checked on a release folder."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from PIL import Image

from pipeline.export import frames_digest
from pipeline.release import layout
from pipeline.release.files import verify_sums
from pipeline.release.metadata import read_metadata
from pipeline.release.public import is_public_url
from schemas.taxonomy import TAXONOMY


def read_list(path: Path) -> list[tuple[str, str]]:
    """``(key, expression)`` pairs of a split list; raises ValueError naming the first bad line."""
    pairs = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        key, sep, expression = line.partition(" ")
        match = layout.KEY_RE.match(key)
        if not sep or " " in expression or not match or match["expression"] != expression:
            raise ValueError(f"{path}:{n}: expected '<Scene>/<Expression>/<NNNN> <Expression>', got {line!r}")
        pairs.append((key, expression))
    return pairs


def read_splits(out: Path) -> dict[str, list[tuple[str, str]]]:
    """``(key, expression)`` pairs of the train and test All lists of the release ``out``; raises ValueError on a
    missing, malformed or empty list (what an export must not derive from)."""
    splits = {}
    for split in layout.SPLITS:
        path = out / layout.all_list(split)
        if not path.is_file():
            raise ValueError(f"{path}: missing; is {out} a ferv release? (`ferv release build` makes one)")
        splits[split] = read_list(path)
        if not splits[split]:
            raise ValueError(f"{path}: empty split list; nothing to export for {split}: build the release from at "
                             "least two sources (whole source videos per split) and export again")
    return splits


def empty_lists(out: Path) -> list[str]:
    """One line per empty split list of the release ``out``: DFER loaders crash on them (or train on nothing)."""
    return [f"{path}: empty split list; a release needs clips in both train and test (whole source videos per "
            "split, so at least two sources): add sources and build the release again"
            for path in sorted((out / layout.SETUPS_DIR).rglob("*.csv")) if path.stat().st_size == 0]


def _frame_problems(folder: Path, size: int | None) -> list[str]:
    if not folder.is_dir():
        return [f"{folder}: missing"]
    names = sorted(p.name for p in folder.iterdir())
    if not names:
        return [f"{folder}: no frames"]
    expected = [layout.frame_name(i) for i in range(len(names))]
    if names != expected:
        return [f"{folder}: frames must be named {expected[0]}..{expected[-1]}, found {names[:3]}..."]
    if size is not None:
        for name in names:
            with Image.open(folder / name) as img:
                if img.format != "JPEG" or img.size != (size, size):
                    return [f"{folder / name}: {img.format} {img.size[0]}x{img.size[1]}, expected JPEG {size}x{size}"]
    return []


def _contiguous(root: Path, suffix: str = "") -> list[str]:
    """Inside every <Scene>/<Expression> folder, entries are exactly 0000..n-1 (plus ``suffix``)."""
    problems = []
    for cell in sorted(p for p in root.glob("*/*") if p.is_dir()):
        scene, expression = cell.parent.name, cell.name
        if scene not in TAXONOMY.scene_names or expression not in TAXONOMY.expression_names:
            problems.append(f"{cell}: not a <Scene>/<Expression> folder of the taxonomy")
        names = sorted(p.name for p in cell.iterdir())
        if names != [f"{i:04d}{suffix}" for i in range(len(names))]:
            problems.append(f"{cell}: entries are not 0000{suffix}..{len(names) - 1:04d}{suffix} without gaps")
    return problems


def _crop_size(out: Path) -> int:
    """The face-crop side the release was cut with (its metadata's export settings), else FERV39k's 224."""
    try:
        _, kv = read_metadata(out / layout.METADATA_PARQUET)
        return int(json.loads(kv["ferv.export_config"])["crop_size"])
    except (OSError, ValueError, KeyError):
        return 224


def check_release(out: Path, frame_size: int | None = None) -> list[str]:
    """Problems found in the release ``out`` (empty list: it is sound). Face-crop frames must be JPEGs of
    ``frame_size`` square (default: the release's crop size, 224 for FERV39k)."""
    out = Path(out)
    problems: list[str] = []
    for rel in (layout.FACE_DIR, layout.all_list("train"), layout.all_list("test"), layout.METADATA_PARQUET,
                layout.SUMS, layout.README):
        if not (out / rel).exists():
            problems.append(f"{out / rel}: missing")
    if problems:
        return problems
    frame_size = frame_size or _crop_size(out)
    lists: dict[str, list[tuple[str, str]]] = {}
    for split in layout.SPLITS:
        try:
            lists[split] = read_list(out / layout.all_list(split))
        except ValueError as exc:
            problems.append(str(exc))
            lists[split] = []
    problems += empty_lists(out)
    keys = Counter(k for pairs in lists.values() for k, _ in pairs)
    problems += [f"{k}: listed {n} times in the All lists" for k, n in sorted(keys.items()) if n > 1]
    folders = {p.relative_to(out / layout.FACE_DIR).as_posix() for p in (out / layout.FACE_DIR).glob("*/*/*")}
    problems += [f"{layout.FACE_DIR}/{k}: a clip folder in no split list" for k in sorted(folders - set(keys))]
    problems += _contiguous(out / layout.FACE_DIR)
    scene_dir = out / layout.SCENE_DIR
    if scene_dir.exists():
        problems += _contiguous(scene_dir)
    for sub in ("FaceCrop", "Scene"):
        if (out / layout.CLIPS_DIR / sub).exists():
            problems += _contiguous(out / layout.CLIPS_DIR / sub, ".mp4")
    for key in sorted(keys):
        problems += _frame_problems(out / layout.FACE_DIR / key, frame_size)
        if scene_dir.exists():
            problems += _frame_problems(scene_dir / key, None)
    problems += _per_scene_lists(out, lists)
    problems += _metadata_problems(out, lists)
    problems += verify_sums(out)
    return problems


def _per_scene_lists(out: Path, lists: dict[str, list[tuple[str, str]]]) -> list[str]:
    """The per-scene and per-scenario lists split the All lists exactly."""
    problems = []
    for split, pairs in lists.items():
        for scene in sorted({k.split("/")[0] for k, _ in pairs}):
            path = out / layout.scene_list(split, scene)
            want = sorted(p for p in pairs if p[0].split("/")[0] == scene)
            try:
                if sorted(read_list(path)) != want:
                    problems.append(f"{path}: does not hold exactly the {split} clips of {scene}")
            except (OSError, ValueError) as exc:
                problems.append(f"{path}: {exc}")
        for scenario in TAXONOMY.scenarios:
            path = out / layout.scenario_list(split, scenario.code)
            want = sorted(p for p in pairs if p[0].split("/")[0] in scenario.scenes)
            if not path.exists() and not want:
                continue
            try:
                if sorted(read_list(path)) != want:
                    problems.append(f"{path}: does not hold exactly the {split} clips of {scenario.code}")
            except (OSError, ValueError) as exc:
                problems.append(f"{path}: {exc}")
    return problems


def _metadata_problems(out: Path, lists: dict[str, list[tuple[str, str]]]) -> list[str]:
    try:
        meta, _ = read_metadata(out / layout.METADATA_PARQUET)
    except (OSError, ValueError) as exc:
        return [f"{out / layout.METADATA_PARQUET}: {exc}"]
    problems = []
    listed = {k: split for split, pairs in lists.items() for k, _ in pairs}
    if dict(zip(meta["path"], meta["split"])) != listed:
        problems.append(f"{layout.METADATA_PARQUET}: paths and splits differ from the All lists")
    problems += [f"{layout.METADATA_PARQUET}: source {s} has a URL that is not public ({u!r}: a machine path, "
                 "credentials or a query string); rebuild the release with this version of ferv"
                 for s, u in sorted(set(zip(meta["source_id"], meta["source_url"]))) if not is_public_url(u)]
    both = meta.groupby("source_id")["split"].nunique()
    problems += [f"source {s}: has clips in both train and test" for s in sorted(both[both > 1].index)]
    for path, n, digest in zip(meta["path"], meta["face_frames"], meta["face_sha256"]):
        folder = out / layout.FACE_DIR / path
        if folder.is_dir() and (len(layout.sorted_frames(folder)) != n or frames_digest(folder) != digest):
            problems.append(f"{layout.FACE_DIR}/{path}: frames differ from metadata's face_frames / face_sha256")
    return problems
