"""Finding a release's source videos in a folder: by source id in the file name, else by SHA-256."""

from __future__ import annotations

from pathlib import Path

from schemas.ids import file_sha256

VIDEO_SUFFIXES = {".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v", ".flv", ".ts"}


def find_sources(folder: Path, wanted: dict[str, str]) -> tuple[dict[str, Path], list[str]]:
    """Map source ids to files whose SHA-256 is the one ``wanted`` (source id -> sha256) asks for.

    A file named after its source id (``<source_id>.<ext>``, any sub-folder) is checked first; every other
    video file is hashed only when some source is still unmatched. Returns the matches and one problem line
    per source not found (or found with other bytes)."""
    files = sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
    found: dict[str, Path] = {}
    problems: dict[str, str] = {}
    for source_id, sha in wanted.items():
        for path in (p for p in files if p.stem == source_id):
            if file_sha256(path) == sha:
                found[source_id] = path
                break
            problems[source_id] = (f"source {source_id}: {path} has other bytes than the release's source "
                                   f"(sha256 {sha}); a re-download or re-encode cannot give the same frames")
    missing = {sha: s for s, sha in wanted.items() if s not in found}
    if missing:
        for path in (p for p in files if p not in found.values()):
            source_id = missing.pop(file_sha256(path), None)
            if source_id:
                found[source_id] = path
                problems.pop(source_id, None)
            if not missing:
                break
    for source_id in wanted:
        if source_id not in found and source_id not in problems:
            problems[source_id] = (f"source {source_id}: no file in {folder} with sha256 {wanted[source_id]} "
                                   f"(looked for {source_id}.* and hashed every video file)")
    return found, [problems[s] for s in sorted(problems)]
