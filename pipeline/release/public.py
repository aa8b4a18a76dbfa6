"""What a shared release or export says about each clip: source URLs without credentials, query strings or
machine paths; flat clip keys; the per-clip record of the Hugging Face and WebDataset exports; and the check
that a shipped clip is constant-frame-rate H.264."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

import av


_YOUTUBE_HOSTS = {"youtube.com", "www.youtube.com", "m.youtube.com", "music.youtube.com"}


def public_url(url: str, origin: str, local_roots: list[Path], sha256: str) -> str:
    """The source URL as a release may show it.

    Web URLs lose credentials, query string and fragment (a YouTube ``watch?v=ID`` becomes
    ``https://youtu.be/ID``, the id being the video). A local file becomes ``local:<path>`` relative to the
    configured folder holding it (``local_roots``), else ``local:sha256:<content hash>``: never a path of the
    machine that built the release."""
    if origin == "local" or "://" not in url:
        path = Path(url)
        for root in sorted(local_roots, key=lambda p: -len(p.parts)):
            if path.is_relative_to(root):
                return f"local:{path.relative_to(root).as_posix()}"
        return f"local:sha256:{sha256}"
    parts = urlsplit(url)
    host = parts.hostname or ""
    if host in _YOUTUBE_HOSTS and parts.path == "/watch" and parse_qs(parts.query).get("v"):
        return f"https://youtu.be/{parse_qs(parts.query)['v'][0]}"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def is_public_url(url: str) -> bool:
    """Whether a release's ``source_url`` is as :func:`public_url` makes them."""
    if url.startswith("local:"):
        return not url.startswith(("local:/", "local:~")) and ".." not in url.split("/")
    parts = urlsplit(url)
    return bool(parts.scheme and parts.hostname) and not (parts.username or parts.password or parts.query
                                                          or parts.fragment)


def flat_key(key: str) -> str:
    """A clip key ``<Scene>/<Expression>/<NNNN>`` as one file-name stem, ``<Scene>_<Expression>_<NNNN>``."""
    return key.replace("/", "_")


def clip_record(row) -> dict:
    """The per-clip fields the Hugging Face and WebDataset exports carry (a row of ``metadata.parquet``)."""
    return {
        "key": row.path, "clip_id": row.clip_id, "split": row.split,
        "label": row.expression, "label_id": int(row.label_id), "dfew_id": int(row.dfew_id),
        "descriptor": row.descriptor if isinstance(row.descriptor, str) else None,
        "scene": row.scene, "scenario": row.scenario, "source_id": row.source_id,
        "source_url": row.source_url, "annotators": int(row.n_votes), "agreement": float(row.agreement),
        "num_frames": int(row.num_frames), "fps": float(row.fps),
    }


def check_cfr_h264(path: Path, num_frames: int) -> None:
    """Raise ValueError unless ``path`` is H.264 with ``num_frames`` frames at one constant frame duration."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            codec = stream.codec_context.name
            pts = sorted(p.pts for p in container.demux(stream) if p.size and p.pts is not None)
    except (av.FFmpegError, OSError, IndexError) as exc:
        raise ValueError(f"{path}: cannot be read as a video ({exc}); rebuild the release") from exc
    steps = {b - a for a, b in zip(pts, pts[1:])}
    if codec != "h264" or len(pts) != num_frames or len(steps) > 1:
        raise ValueError(f"{path}: expected constant-frame-rate H.264 with {num_frames} frames, found {codec} with "
                         f"{len(pts)} frames and {len(steps)} frame durations; rebuild the release")
