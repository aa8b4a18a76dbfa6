"""A release as WebDataset shards, the form large-scale video loaders stream: ``<split>/NNNNN.tar`` holding
``<Scene>_<Expression>_<NNNN>.mp4`` (the face-crop clip, constant-frame-rate H.264) and ``<...>.json`` (the
clip's record: label, label ids, descriptor, scene, scenario, source, annotators, agreement) per clip.

Shards are byte-identical across runs: members in key order, every header fixed (mtime, owner, mode).
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import tempfile
from pathlib import Path

from pipeline.release import layout
from pipeline.release.files import FILE_MODE, make_dirs, write_bytes
from pipeline.release.public import clip_record, flat_key
from pipeline.release.videos import split_clips

MARKER = "<!-- ferv export: webdataset -->"
MTIME = 946684800  # 2000-01-01T00:00:00Z: a fixed member time, so the same clips give the same bytes


def _member(tar: tarfile.TarFile, name: str, data: bytes | Path) -> None:
    info = tarfile.TarInfo(name)
    info.size = data.stat().st_size if isinstance(data, Path) else len(data)
    info.mtime, info.mode = MTIME, FILE_MODE
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if isinstance(data, Path):
        with data.open("rb") as fh:
            tar.addfile(info, fh)
    else:
        tar.addfile(info, io.BytesIO(data))


def _write_shard(path: Path, members: list[tuple[str, bytes | Path]]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.fchmod(fd, FILE_MODE)
    with os.fdopen(fd, "wb") as fh, tarfile.open(fileobj=fh, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            _member(tar, name, data)
    os.replace(tmp, path)


def export_webdataset(release: Path, dest: Path, shard_clips: int = 1000) -> list[Path]:
    """Write ``dest/<split>/NNNNN.tar`` shards of at most ``shard_clips`` clips; return the shards."""
    release, dest = Path(release).resolve(), Path(dest)
    if shard_clips < 1:
        raise ValueError(f"shard size {shard_clips}: a shard holds at least one clip")
    splits, _ = split_clips(release)
    written = []
    for split, items in splits.items():
        folder = dest / split
        make_dirs(folder)
        ordered = sorted(items, key=lambda item: item[0])
        shards = [ordered[i:i + shard_clips] for i in range(0, len(ordered), shard_clips)]
        for index, shard in enumerate(shards):
            members = []
            for key, src, row in shard:
                record = json.dumps(clip_record(row), ensure_ascii=False, sort_keys=True).encode("utf-8")
                members += [(f"{flat_key(key)}.json", record), (f"{flat_key(key)}.mp4", src)]
            path = folder / f"{index:05d}.tar"
            _write_shard(path, members)
            written.append(path)
        for stale in sorted(set(folder.glob("*.tar")) - set(written)):
            stale.unlink()
    write_bytes(dest / layout.README, (
        f"{MARKER}\n# WebDataset shards of a ferv release\n\n`<split>/NNNNN.tar` (at most {shard_clips} clips each), "
        "one sample per clip: `<Scene>_<Expression>_<NNNN>.mp4` (the face-crop clip, constant-frame-rate H.264) and "
        "`<...>.json` (key, clip_id, split, label, label_id (FERV39k order), dfew_id, descriptor, scene, scenario, "
        "source_id, source_url, annotators, agreement, num_frames, fps). See the release's README.md for the "
        "datasheet.\n").encode("utf-8"))
    return written
