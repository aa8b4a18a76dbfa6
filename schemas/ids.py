"""Deterministic identifiers: the same inputs give the same id on every run and machine."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def stable_hash(*parts: Any, length: int = 16) -> str:
    """Hex digest of ``parts`` serialised canonically (JSON, sorted keys)."""
    payload = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:length]


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def source_id_for_url(url: str) -> str:
    return "src-" + stable_hash("url", url.strip())


def source_id_for_content(sha256: str) -> str:
    return "src-" + stable_hash("content", sha256)


def track_id(source_id: str, shot_index: int, ordinal: int) -> str:
    return f"{source_id}-s{shot_index:04d}-t{ordinal:03d}"


def clip_id(source_id: str, start_frame: int, end_frame: int, track: str) -> str:
    return "clip-" + stable_hash("clip", source_id, int(start_frame), int(end_frame), track)


def config_hash(config: Any) -> str:
    """Hash of a config (pydantic model or plain data) for cache keys."""
    data = config.model_dump(mode="json") if hasattr(config, "model_dump") else config
    return stable_hash(data, length=12)
