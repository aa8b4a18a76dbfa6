"""Acquisition: source videos per scene keyword (yt-dlp search), from URL lists, or from local folders.

Files are named from source ids, never from titles. A source already in ``sources.parquet`` whose file is still
there with its recorded sha256 is not fetched again (a missing or changed file is); yt-dlp's download archive
(``videos/.ytdlp-archive.txt``) skips what it already downloaded; the generic extractor keys that archive by
file name, so ours keys generic downloads by source id instead.

Inputs are bounded: only http(s) URLs, and not to loopback, link-local or private addresses unless
``allow_private``; yt-dlp gets the size and duration caps of the config; every fetched file is probed and its
frame rate, duration (against its frame count) and pixel count checked. :class:`AcquireStage` fetches one
candidate per call, run by :mod:`pipeline.run`.
"""

from __future__ import annotations

import ctypes
import errno
import ipaddress
import multiprocessing
import os
import queue
import shutil
import signal
import socket
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlparse

import yt_dlp

from pipeline.media import OutOfBounds, VideoError, VideoInfo, ffmpeg_exe, probe
from pipeline.progress import ProgressFn, no_progress
from pipeline.run import Outcome, run_all
from schemas.config import AcquireConfig, BuildConfig
from schemas.errors import UserError
from schemas.ids import config_hash, file_sha256, source_id_for_content, source_id_for_url
from schemas.manifests import in_workdir, read_records
from schemas.records import SourceRecord, utcnow
from schemas.taxonomy import TAXONOMY

VIDEO_SUFFIXES = {".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v", ".mpg", ".mpeg", ".ts", ".flv", ".wmv"}
ARCHIVE = ".ytdlp-archive.txt"
_NETWORK_HINTS = ("getaddrinfo", "Failed to resolve", "Name or service not known", "Temporary failure in name resolution",
                  "Network is unreachable", "No address associated", "nodename nor servname", "Connection refused",
                  "timed out", "No route to host")


class AcquireError(UserError, RuntimeError):
    """A source that could not be fetched; the message names it and what to do."""


class NoNetworkError(AcquireError):
    """Keyword search needs the network and there is none."""


class BadSourceLine(AcquireError):
    """A line of a URL list, or a file of a local folder, that cannot be a source."""


class UnsafeUrl(AcquireError):
    """A URL that is not http(s), or that points at this machine or a private network."""


class DiskFull(AcquireError):
    """No space left for a download; the run stops (every later source would fail the same way)."""

    stops_run = True


@dataclass(frozen=True)
class SourceCandidate:
    """A source to fetch: a URL (search hit or URL list) or a local file."""

    source_id: str
    url: str
    origin: str  # search | url_list | local
    scene: str
    keyword: str | None = None
    title: str | None = None
    problem: str | None = None  # why it cannot be fetched (a bad line of a list): its failure row
    refetch: bool = False  # acquired before, but its file is missing or changed: fetched past yt-dlp's archive


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


def _bad(where: str, url: str, problem: str, scene: str | None = None) -> SourceCandidate:
    return SourceCandidate(source_id_for_url(url or where), url, "url_list", scene or "", problem=f"{where}: {problem}")


def read_url_list(path: str | Path, scene: str | None = None) -> list[SourceCandidate]:
    """One URL per line, optionally ``,scene`` after it (the last comma); blank lines and ``#`` comments are
    ignored. Each line stands alone: a bad line becomes a candidate with its ``problem`` (a failure row once
    run), the others are fetched."""
    out = []
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise AcquireError(f"{path}: not a UTF-8 text file; give one URL per line (url[,Scene])") from None
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        url, sep, row_scene = line.rpartition(",") if "," in line else (line, "", "")
        url, row_scene = url.strip(), row_scene.strip() or scene
        where = f"{path}:{lineno}"
        if not url.lower().startswith(("http://", "https://")) or any(c in url for c in '"<>\t'):
            out.append(_bad(where, url, f"{url!r} is not an http(s) URL; write one URL per line, url[,Scene]"))
        elif row_scene not in TAXONOMY.scene_names:
            out.append(_bad(where, url, f"unknown or missing scene {row_scene!r}; add ',Scene' (one of "
                                        f"{', '.join(TAXONOMY.scene_names)}) or pass --scene"))
        else:
            out.append(SourceCandidate(source_id_for_url(url), url, "url_list", row_scene))
    return out


def local_candidates(folder: str | Path, scene: str | None = None) -> list[SourceCandidate]:
    """Video files under ``folder``; the scene is the first sub-folder's name when it names a scene. A file
    that resolves outside ``folder`` (a symbolic link out of it) is refused."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AcquireError(f"{folder}: not a folder of videos; pass a folder with --local")
    root = folder.resolve()
    out = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES):
        real = path.resolve()
        if not real.is_relative_to(root):
            out.append(SourceCandidate(source_id_for_url(str(path)), str(path), "local", scene or "",
                                       problem=f"{path}: links to {real}, outside the folder {root}; copy the "
                                               "file into the folder instead"))
            continue
        parts = path.relative_to(folder).parts
        sub = parts[0] if len(parts) > 1 and parts[0] in TAXONOMY.scene_names else None
        out.append(SourceCandidate(source_id_for_content(file_sha256(real)), str(real), "local",
                                   _check_scene(sub or scene, str(path)), title=path.stem))
    return out


def check_url(url: str, allow_private: bool = False) -> None:
    """Refuse a URL that is not http(s), or whose host is (or resolves to) a loopback, link-local, private or
    otherwise non-public address, unless ``allow_private``."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise UnsafeUrl(f"{url}: only http(s) URLs with a host are fetched")
    if allow_private:
        return
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(parsed.hostname, parsed.port or None)}
    except (socket.gaierror, UnicodeError):
        return  # unresolvable: the download reports it
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if not ip.is_global or ip.is_multicast:
            raise UnsafeUrl(f"{url}: {parsed.hostname} is a loopback, link-local or private address ({ip}); "
                            "pass --allow-private to fetch from your own network")


def check_bounds(video: VideoInfo, acq: AcquireConfig, where: str) -> None:
    """Refuse a video whose frame rate, duration (also against its frame count) or pixel count is outside
    the config's bounds."""
    fps = float(video.fps)
    if not acq.min_fps <= fps <= acq.max_fps:
        raise OutOfBounds(f"{where}: frame rate {fps:g} fps is outside acquire.min_fps..max_fps "
                          f"({acq.min_fps:g}..{acq.max_fps:g}); re-encode it or remove it from the sources")
    if video.width * video.height > acq.max_pixels or min(video.width, video.height) < 32:
        raise OutOfBounds(f"{where}: {video.width}x{video.height} pixels is outside the bounds (at least 32 "
                          f"per side, at most acquire.max_pixels = {acq.max_pixels}); scale it or remove it")
    if video.duration_s > acq.max_duration_s:
        raise OutOfBounds(f"{where}: duration {video.duration_s:.0f} s exceeds acquire.max_duration_s "
                          f"({acq.max_duration_s:.0f} s); cut it or raise the limit")
    counted = video.num_frames / fps
    if abs(counted - video.duration_s) > max(2.0, acq.duration_tolerance * video.duration_s):
        raise OutOfBounds(f"{where}: its header declares {video.duration_s:.1f} s but it holds {video.num_frames} "
                          f"frames at {fps:g} fps ({counted:.1f} s); re-encode it or remove it from the sources")


def _ydl_options(cfg: AcquireConfig) -> dict:
    return {"quiet": True, "no_warnings": True, "noprogress": True, "logger": _SilentLogger(), "socket_timeout": cfg.socket_timeout_s,
            "retries": cfg.retries, "fragment_retries": cfg.retries, "extractor_retries": cfg.retries,
            "ffmpeg_location": ffmpeg_exe(), "max_filesize": cfg.max_file_mb * 2**20}


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


def _intact(workdir: Path) -> tuple[set[str], set[str]]:
    """Source ids of ``sources.parquet`` that are done (their file is there with the recorded sha256), and those
    whose file is missing or changed."""
    done, broken = set(), set()
    for record in read_records(workdir, "sources"):
        path = in_workdir(workdir, record.path)
        if path.is_file() and (not record.sha256 or file_sha256(path) == record.sha256):
            done.add(record.source_id)
        else:  # missing or changed: fetched again, without the old file (yt-dlp would keep a file it finds)
            broken.add(record.source_id)
            for old in Path(videos_dir(workdir)).glob(f"{record.source_id}.*"):
                old.unlink(missing_ok=True)
    return done, broken


def _todo(workdir: Path, candidates: list[SourceCandidate]) -> list[SourceCandidate]:
    done, broken = _intact(workdir)
    return [replace(c, refetch=c.source_id in broken) for c in candidates if c.source_id not in done]


def plan_sources(workdir: str | Path, cfg: BuildConfig, *, urls_file: str | Path | None = None,
                 local_dir: str | Path | None = None, scene: str | None = None, search: bool | None = None
                 ) -> list[SourceCandidate]:
    """Candidates not yet done (in ``sources.parquet`` with their file intact): from a URL list, a local folder,
    and/or keyword search (search runs when asked, or by default when neither a list nor a folder is given)."""
    return _todo(Path(workdir), _all_candidates(cfg, urls_file, local_dir, scene, search))


class _ArchiveById(yt_dlp.YoutubeDL):
    """yt-dlp keyed by our source id for generic downloads (its own key is the file name, which collides)."""

    def __init__(self, params: dict, source_id: str):
        super().__init__(params)
        self._source_id = source_id

    def _make_archive_id(self, info_dict):
        if (info_dict.get("extractor_key") or info_dict.get("ie_key")) == "Generic":
            return f"generic {self._source_id}"
        return super()._make_archive_id(info_dict)


def _die_with_parent(parent: int) -> None:
    """Have the kernel kill this process when its parent dies (Linux ``PR_SET_PDEATHSIG``); exit at once if the
    parent is already gone."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the parent still kills it at its deadline
        pass
    if os.getppid() != parent:
        os._exit(1)


def _download(url: str, source_id: str, params: dict, results: multiprocessing.Queue, parent: int = 0) -> None:
    """Child process: download one URL; put ('progress', bytes, total) while downloading, then ('ok', info)
    or ('error', message) on ``results``. It dies with its parent."""
    _die_with_parent(parent)

    def hook(d: dict) -> None:
        results.put(("progress", d.get("downloaded_bytes") or 0, d.get("total_bytes") or d.get("total_bytes_estimate")))

    max_duration = params.pop("max_duration_s", None)
    params = {**params, "retry_sleep_functions": {"http": _backoff, "fragment": _backoff}, "progress_hooks": [hook],
              **({"match_filter": yt_dlp.utils.match_filter_func(f"duration <=? {max_duration}")}
                 if max_duration else {})}
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
              **({} if candidate.refetch else {"download_archive": str(folder / ARCHIVE)}), "continuedl": True, "noplaylist": True,
              "ratelimit": acq.rate_limit_bytes, "sleep_interval": acq.sleep_between_s or None,
              "max_duration_s": acq.max_duration_s}
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    proc = ctx.Process(target=_download, args=(candidate.url, candidate.source_id, params, results, os.getpid()),
                       daemon=True)
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
        if "No space left on device" in payload or f"Errno {errno.ENOSPC}]" in payload:
            _remove_partial(folder, candidate.source_id)
            raise DiskFull(f"{candidate.url}: no space left on the device of {folder}; free space there and run "
                           "acquire again (finished sources are kept)")
        raise AcquireError(f"{candidate.url}: download failed: {payload}")
    path = _find_download(folder, candidate.source_id)
    if path is None:
        raise AcquireError(f"{candidate.url}: yt-dlp wrote no file: it may exceed acquire.max_file_mb "
                           f"({acq.max_file_mb}) or acquire.max_duration_s ({acq.max_duration_s:.0f}), or be in "
                           f"{folder / ARCHIVE} already (delete its line there and try again)")
    return path, payload


def _remove_partial(folder: Path, source_id: str) -> None:
    """Remove a download's temporary files."""
    for path in folder.glob(f"{source_id}.*"):
        if path.suffix in (".part", ".ytdl", ".tmp") or ".part-Frag" in path.name or ".temp." in path.name:
            path.unlink(missing_ok=True)
    for path in folder.glob(f".{source_id}.*.part"):
        path.unlink(missing_ok=True)


def _ingest_local(workdir: Path, candidate: SourceCandidate) -> Path:
    src = Path(candidate.url)
    dest = videos_dir(workdir) / f"{candidate.source_id}{src.suffix.lower()}"
    if not dest.exists():
        tmp = dest.with_name(f".{dest.name}.part")
        try:
            try:
                os.link(src, tmp)
            except OSError:
                shutil.copyfile(src, tmp)
            os.replace(tmp, dest)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            if exc.errno == errno.ENOSPC:
                raise DiskFull(f"{src}: no space left on the device of {dest.parent}; free space there and run "
                               "acquire again (finished sources are kept)") from None
            raise
    return dest


def fetch_source(workdir: str | Path, candidate: SourceCandidate, cfg: BuildConfig,
                 progress: ProgressFn = no_progress, allow_private: bool = False) -> SourceRecord:
    """Fetch one source (download or ingest), probe it, check its bounds, and return its record; raises a typed
    error on failure. ``progress`` gets the bytes downloaded under the task name ``source <source_id>``."""
    workdir = Path(workdir)
    if candidate.problem:
        raise BadSourceLine(candidate.problem)
    info: dict = {}
    if candidate.origin == "local":
        path = _ingest_local(workdir, candidate)
    else:
        check_url(candidate.url, allow_private)
        path, info = _fetch_url(workdir, candidate, cfg.acquire, progress)
    try:
        video = probe(path, count_frames=True)
        check_bounds(video, cfg.acquire, candidate.url)
    except OutOfBounds:
        path.unlink(missing_ok=True)
        raise
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


class AcquireStage:
    """Fetch one source candidate per call; its record goes to ``sources.parquet`` (by the runner)."""

    name = "acquire"
    parts: dict[str, list[str]] = {}
    into = "sources"
    key_columns = ["source_id"]

    def __init__(self, workdir: str | Path, cfg: BuildConfig, allow_private: bool = False,
                 progress: ProgressFn = no_progress):
        self.workdir, self.cfg, self.allow_private, self.progress = Path(workdir), cfg, allow_private, progress
        self.stamp = config_hash(cfg.acquire)

    def key(self, candidate: SourceCandidate) -> str:
        return candidate.source_id

    def __call__(self, candidate: SourceCandidate) -> Outcome:
        record = fetch_source(self.workdir, candidate, self.cfg, self.progress, self.allow_private)
        return Outcome(candidate.source_id, rows={"sources": [record]})


def acquire(workdir: str | Path, cfg: BuildConfig, *, urls_file: str | Path | None = None,
            local_dir: str | Path | None = None, scene: str | None = None, search: bool | None = None,
            allow_private: bool = False, progress: ProgressFn = no_progress) -> AcquireSummary:
    """Plan, fetch and record sources one by one (each recorded as soon as it is fetched: a crash later loses
    nothing); a failing source becomes a failure row and the run goes on."""
    workdir = Path(workdir)
    everything = _all_candidates(cfg, urls_file, local_dir, scene, search)
    candidates = _todo(workdir, everything)
    run = run_all(workdir, AcquireStage(workdir, cfg, allow_private, progress), candidates, progress=progress)
    fetched = [o.input_id for o in run.outcomes if o.ok]
    return AcquireSummary(fetched=len(fetched), skipped=len(everything) - len(candidates), failed=run.failed,
                          source_ids=fetched)
