"""Acquisition: source videos per scene keyword (yt-dlp search), from URL lists, or from local folders.

Files are named from source ids, never from titles. A source already in ``sources.parquet`` is not fetched
again, and yt-dlp's download archive (``videos/.ytdlp-archive.txt``) skips what it already downloaded; the
generic extractor keys that archive by file name, so ours keys generic downloads by source id instead.
"""

from __future__ import annotations

import csv
import multiprocessing
import os
import queue
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import yt_dlp

from pipeline.media import VideoError, ffmpeg_exe, probe
from pipeline.progress import ProgressFn, no_progress
from schemas.config import AcquireConfig, BuildConfig
from schemas.ids import file_sha256, source_id_for_content, source_id_for_url
from schemas.manifests import append_manifest, clear_failure, read_manifest, record_failure
from schemas.records import FailureRecord, SourceRecord, utcnow
from schemas.taxonomy import TAXONOMY

VIDEO_SUFFIXES = {".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v", ".mpg", ".mpeg", ".ts", ".flv", ".wmv"}
ARCHIVE = ".ytdlp-archive.txt"
_NETWORK_HINTS = ("getaddrinfo", "Failed to resolve", "Name or service not known", "Temporary failure in name resolution",
                  "Network is unreachable", "No address associated", "nodename nor servname", "Connection refused",
                  "timed out", "No route to host")


class AcquireError(RuntimeError):
    """A source that could not be fetched; the message names it and what to do."""


class NoNetworkError(AcquireError):
    """Keyword search needs the network and there is none."""


@dataclass(frozen=True)
class SourceCandidate:
    """A source to fetch: a URL (search hit or URL list) or a local file."""

    source_id: str
    url: str
    origin: str  # search | url_list | local
    scene: str
    keyword: str | None = None
    title: str | None = None


@dataclass
class AcquireSummary:
    fetched: int = 0
    skipped: int = 0  # already in sources.parquet
    failed: int = 0
    source_ids: list[str] = field(default_factory=list)


def videos_dir(workdir: str | Path) -> Path:
    path = Path(workdir) / "videos"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _check_scene(scene: str | None, where: str) -> str:
    if scene is None:
        raise AcquireError(f"{where}: no scene given; put it in a sub-folder named after a scene, add a scene "
                           f"column, or pass --scene (one of {TAXONOMY.scene_names})")
    if scene not in TAXONOMY.scene_names:
        raise AcquireError(f"{where}: unknown scene {scene!r}; expected one of {TAXONOMY.scene_names}")
    return scene


def read_url_list(path: str | Path, scene: str | None = None) -> list[SourceCandidate]:
    """One URL per line, optionally ``,scene`` after it; blank lines and ``#`` comments are ignored."""
    out = []
    with open(path, newline="", encoding="utf-8") as fh:
        for lineno, row in enumerate(csv.reader(fh), 1):
            if not row or not row[0].strip() or row[0].lstrip().startswith("#"):
                continue
            url = row[0].strip()
            row_scene = row[1].strip() if len(row) > 1 and row[1].strip() else scene
            out.append(SourceCandidate(source_id_for_url(url), url, "url_list",
                                       _check_scene(row_scene, f"{path}:{lineno}")))
    return out


def local_candidates(folder: str | Path, scene: str | None = None) -> list[SourceCandidate]:
    """Video files under ``folder``; the scene is the first sub-folder's name when it names a scene."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AcquireError(f"{folder}: not a folder of videos")
    out = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES):
        parts = path.relative_to(folder).parts
        sub = parts[0] if len(parts) > 1 and parts[0] in TAXONOMY.scene_names else None
        out.append(SourceCandidate(source_id_for_content(file_sha256(path)), str(path.resolve()), "local",
                                   _check_scene(sub or scene, str(path)), title=path.stem))
    return out


def _ydl_options(cfg: AcquireConfig) -> dict:
    return {"quiet": True, "no_warnings": True, "noprogress": True, "logger": _SilentLogger(), "socket_timeout": cfg.socket_timeout_s,
            "retries": cfg.retries, "fragment_retries": cfg.retries, "extractor_retries": cfg.retries,
            "ffmpeg_location": ffmpeg_exe()}


def _backoff(attempt: int) -> float:
    """Seconds to wait before retry ``attempt`` of a download: 1, 2, 4, ... at most 30."""
    return min(2.0 ** attempt, 30.0)


class _SilentLogger:
    """yt-dlp's messages go nowhere: its errors come back to us as exceptions, which we report."""

    def debug(self, msg: str) -> None: ...

    def warning(self, msg: str) -> None: ...

    def error(self, msg: str) -> None: ...


def _is_network_error(message: str) -> bool:
    return any(hint in message for hint in _NETWORK_HINTS)


def search_candidates(cfg: BuildConfig, scenes: list[str] | None = None) -> list[SourceCandidate]:
    """Search each scene's keywords with yt-dlp and keep hits that pass the duration and live filters."""
    acq = cfg.acquire
    out, seen = [], set()
    opts = {**_ydl_options(acq), "extract_flat": "in_playlist", "retries": 0, "extractor_retries": 0}
    with yt_dlp.YoutubeDL(opts) as ydl:
        for scene in scenes or cfg.scenes:
            for keyword in cfg.scene_keywords(scene):
                query = f"{acq.search_prefix}{acq.results_per_keyword}:{keyword}"
                try:
                    result = ydl.extract_info(query, download=False)
                except yt_dlp.utils.DownloadError as exc:
                    if _is_network_error(str(exc)):
                        raise NoNetworkError(
                            f"keyword search ({acq.search_prefix}) needs network access and there is none "
                            f"({str(exc).splitlines()[0]}); fetch from a URL list (--urls) or a local folder "
                            "(--local) instead, or set acquire.search: false") from None
                    raise AcquireError(f"search {query!r} failed: {exc}") from exc
                for entry in (result or {}).get("entries") or []:
                    url = entry.get("webpage_url") or entry.get("url")
                    duration = entry.get("duration")
                    live = entry.get("live_status") in ("is_live", "is_upcoming") or entry.get("is_live")
                    if not url or live or url in seen:
                        continue
                    if duration is not None and not acq.min_duration_s <= duration <= acq.max_duration_s:
                        continue
                    seen.add(url)
                    out.append(SourceCandidate(source_id_for_url(url), url, "search", scene, keyword,
                                               entry.get("title")))
    return out


def _all_candidates(cfg: BuildConfig, urls_file, local_dir, scene, search) -> list[SourceCandidate]:
    candidates: list[SourceCandidate] = []
    if urls_file:
        candidates += read_url_list(urls_file, scene)
    if local_dir:
        candidates += local_candidates(local_dir, scene)
    if search if search is not None else (cfg.acquire.search and not urls_file and not local_dir):
        candidates += search_candidates(cfg, [scene] if scene else None)
    return list({c.source_id: c for c in candidates}.values())


def plan_sources(workdir: str | Path, cfg: BuildConfig, *, urls_file: str | Path | None = None,
                 local_dir: str | Path | None = None, scene: str | None = None, search: bool | None = None
                 ) -> list[SourceCandidate]:
    """Candidates not yet in ``sources.parquet``: from a URL list, a local folder, and/or keyword search
    (search runs when asked, or by default when neither a list nor a folder is given)."""
    done = set(read_manifest(workdir, "sources")["source_id"])
    return [c for c in _all_candidates(cfg, urls_file, local_dir, scene, search) if c.source_id not in done]


class _ArchiveById(yt_dlp.YoutubeDL):
    """yt-dlp keyed by our source id for generic downloads (its own key is the file name, which collides)."""

    def __init__(self, params: dict, source_id: str):
        super().__init__(params)
        self._source_id = source_id

    def _make_archive_id(self, info_dict):
        if (info_dict.get("extractor_key") or info_dict.get("ie_key")) == "Generic":
            return f"generic {self._source_id}"
        return super()._make_archive_id(info_dict)


def _download(url: str, source_id: str, params: dict, results: multiprocessing.Queue) -> None:
    """Child process: download one URL; put ('progress', bytes, total) while downloading, then ('ok', info)
    or ('error', message) on ``results``."""
    def hook(d: dict) -> None:
        results.put(("progress", d.get("downloaded_bytes") or 0, d.get("total_bytes") or d.get("total_bytes_estimate")))

    params = {**params, "retry_sleep_functions": {"http": _backoff, "fragment": _backoff}, "progress_hooks": [hook]}
    try:
        with _ArchiveById(params, source_id) as ydl:
            info = ydl.extract_info(url, download=True)
        keep = ("extractor", "extractor_key", "title", "uploader", "license", "duration", "width", "height", "fps")
        results.put(("ok", {k: info.get(k) for k in keep} if info else {}))
    except BaseException as exc:  # reported to the parent, which records it
        results.put(("error", f"{type(exc).__name__}: {exc}"))


def _find_download(folder: Path, source_id: str) -> Path | None:
    found = [p for p in folder.glob(f"{source_id}.*") if p.suffix not in (".part", ".ytdl", ".tmp")]
    return found[0] if found else None


def _fetch_url(workdir: Path, candidate: SourceCandidate, acq: AcquireConfig,
               progress: ProgressFn) -> tuple[Path, dict]:
    folder = videos_dir(workdir)
    params = {**_ydl_options(acq), "outtmpl": str(folder / f"{candidate.source_id}.%(ext)s"),
              "format": acq.format.format(h=acq.max_height), "merge_output_format": "mp4",
              "download_archive": str(folder / ARCHIVE), "continuedl": True, "noplaylist": True,
              "ratelimit": acq.rate_limit_bytes, "sleep_interval": acq.sleep_between_s or None}
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    proc = ctx.Process(target=_download, args=(candidate.url, candidate.source_id, params, results), daemon=True)
    proc.start()
    deadline = time.monotonic() + acq.source_timeout_s
    try:
        while True:
            status, *payload = results.get(timeout=max(deadline - time.monotonic(), 0.01))
            if status != "progress":
                break
            progress(f"source {candidate.source_id}", payload[0], payload[1])
        payload = payload[0]
    except queue.Empty:
        proc.kill()
        raise AcquireError(f"{candidate.url}: no result within {acq.source_timeout_s:.0f} s "
                           "(acquire.source_timeout_s); the server may hang, try again later") from None
    finally:
        proc.join(5)
        if proc.is_alive():
            proc.kill()
    if status == "error":
        raise AcquireError(f"{candidate.url}: download failed: {payload}")
    path = _find_download(folder, candidate.source_id)
    if path is None:
        raise AcquireError(f"{candidate.url}: yt-dlp reported success but wrote no file; delete "
                           f"{folder / ARCHIVE} lines for it and try again")
    return path, payload


def _ingest_local(workdir: Path, candidate: SourceCandidate) -> Path:
    src = Path(candidate.url)
    dest = videos_dir(workdir) / f"{candidate.source_id}{src.suffix.lower()}"
    if not dest.exists():
        tmp = dest.with_name(f".{dest.name}.part")
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
    return dest


def fetch_source(workdir: str | Path, candidate: SourceCandidate, cfg: BuildConfig,
                 progress: ProgressFn = no_progress) -> SourceRecord:
    """Fetch one source (download or ingest), probe it, and return its record; raises on failure.
    ``progress`` gets the bytes downloaded under the task name ``source <source_id>``."""
    workdir = Path(workdir)
    info: dict = {}
    if candidate.origin == "local":
        path = _ingest_local(workdir, candidate)
    else:
        path, info = _fetch_url(workdir, candidate, cfg.acquire, progress)
    try:
        video = probe(path, count_frames=True)
    except VideoError as exc:
        path.unlink(missing_ok=True)
        raise AcquireError(f"{candidate.url}: the file is not a readable video (truncated or corrupt: {exc}); "
                           "check the source and fetch it again") from None
    return SourceRecord(
        source_id=candidate.source_id, url=candidate.url, origin=candidate.origin,
        extractor=(info.get("extractor") or "generic") if candidate.origin != "local" else "local",
        scene=candidate.scene, scenario=TAXONOMY.scene(candidate.scene).scenario,
        path=str(path.relative_to(workdir)), sha256=file_sha256(path), fetched_at=utcnow(),
        title=info.get("title") or candidate.title, uploader=info.get("uploader"),
        duration_s=video.duration_s, width=video.width, height=video.height, fps=video.fps_float,
        num_frames=video.num_frames, license=info.get("license"), keyword=candidate.keyword)


def record_sources(workdir: str | Path, records: list[SourceRecord]) -> None:
    """Add fetched sources to ``sources.parquet`` (keyed by source id) and forget their old failures."""
    if records:
        append_manifest(workdir, "sources", records, key=["source_id"])
    for r in records:
        clear_failure(workdir, "acquire", r.source_id)


def acquire(workdir: str | Path, cfg: BuildConfig, *, urls_file: str | Path | None = None,
            local_dir: str | Path | None = None, scene: str | None = None, search: bool | None = None,
            progress: ProgressFn = no_progress) -> AcquireSummary:
    """Plan, fetch and record sources one by one; a failing source becomes a failure row and the run goes on."""
    workdir = Path(workdir)
    everything = _all_candidates(cfg, urls_file, local_dir, scene, search)
    done = set(read_manifest(workdir, "sources")["source_id"])
    candidates = [c for c in everything if c.source_id not in done]
    summary = AcquireSummary(skipped=len(everything) - len(candidates))
    progress("acquire", 0, len(candidates))
    for i, candidate in enumerate(candidates):
        try:
            record = fetch_source(workdir, candidate, cfg, progress)
        except (AcquireError, OSError) as exc:
            record_failure(workdir, FailureRecord.from_exception("acquire", candidate.source_id, exc))
            summary.failed += 1
        else:
            record_sources(workdir, [record])  # one at a time: a crash later loses nothing fetched
            summary.fetched += 1
            summary.source_ids.append(record.source_id)
        progress("acquire", i + 1, len(candidates))
    return summary
