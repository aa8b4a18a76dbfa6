"""``ferv release export``: every format derived from a built release, into a folder outside ``SHA256SUMS``.

- ``dfer-clip``, ``mae-dfer``: train/test lists DFER code reads (:mod:`pipeline.release.export_lists`)
- ``hf``: a Hugging Face ``datasets`` folder (:mod:`pipeline.release.hf`)
- ``webdataset``: ``NNNNN.tar`` shards per split (:mod:`pipeline.release.webdataset`)

Every export refuses a release with an empty or missing split list, and writes files 0644 in folders 0755.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.release import hf, layout, webdataset
from pipeline.release.export_lists import FORMATS as LIST_FORMATS
from pipeline.release.export_lists import export_lists

FORMATS = (*LIST_FORMATS, "hf", "webdataset")
_MARKERS = {"hf": hf.MARKER, "webdataset": webdataset.MARKER}


def _claim(dest: Path, fmt: str) -> None:
    """Refuse a non-empty folder that holds no earlier export of ``fmt``: exporting removes stale files there."""
    readme = dest / layout.README
    if dest.is_dir() and any(dest.iterdir()) and not (
            readme.is_file() and _MARKERS[fmt] in readme.read_text(encoding="utf-8", errors="replace")):
        raise ValueError(f"{dest} is not empty and holds no ferv {fmt} export; pick an empty or new folder")


def export_release(release: Path, fmt: str, dest: Path | None = None, root: Path | None = None,
                   shard_clips: int = 1000) -> list[Path]:
    """Export ``release`` as ``fmt`` into ``dest`` (default ``release/5_exports/<fmt>``); ``root`` (list formats):
    where the release will live, for the paths in the lists; ``shard_clips``: clips per WebDataset shard.
    Returns the files written."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt in LIST_FORMATS:
        return export_lists(release, fmt, dest, root)
    dest = Path(dest) if dest else Path(release).resolve() / layout.EXPORTS_DIR / fmt
    _claim(dest, fmt)
    if fmt == "hf":
        return hf.export_hf(release, dest)
    return webdataset.export_webdataset(release, dest, shard_clips)
