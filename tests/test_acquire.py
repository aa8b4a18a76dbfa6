"""Acquisition against a real HTTP server on 127.0.0.1 (yt-dlp's generic extractor) and local folders."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cli.app import app
from pipeline import acquire as stage
from pipeline.media import write_video
from schemas.config import BuildConfig
from schemas.ids import file_sha256, source_id_for_url
from schemas.manifests import read_manifest, read_records

FPS, W, H, N = 25, 64, 48, 30  # 1.2 s


def _video(path: Path, shade: int, frames: int = N) -> Path:
    write_video(path, (np.full((H, W, 3), (shade + i) % 256, np.uint8) for i in range(frames)), fps=FPS)
    return path


class _Handler(SimpleHTTPRequestHandler):
    log: list[str] = []

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        type(self).log.append(self.path)
        if self.path.startswith("/hang"):
            time.sleep(30)
            return
        super().do_GET()

    def do_HEAD(self):
        type(self).log.append("HEAD " + self.path)
        if self.path.startswith("/hang"):
            time.sleep(30)
            return
        super().do_HEAD()

    def guess_type(self, path):
        return "video/mp4" if str(path).endswith(".mp4") else super().guess_type(path)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    (root / "x").mkdir()
    (root / "y").mkdir()
    _video(root / "x" / "a.mp4", 10)
    _video(root / "y" / "a.mp4", 120, frames=40)  # same basename, other path, other content
    _video(root / "good.mp4", 200)
    whole = _video(root / "whole.mp4", 60, frames=50).read_bytes()
    (root / "truncated.mp4").write_bytes(whole[: len(whole) // 3])
    # The URL below decodes to "t'; $(rm -rf ~) ../../x 🎬.mp4", which http.server normalises to this file.
    _video(root / "x 🎬.mp4", 90)
    handler = type("Handler", (_Handler,), {"log": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: handler(*a, directory=str(root)))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    yield base, root, handler
    server.shutdown()


def _cfg(**acquire) -> BuildConfig:
    return BuildConfig.model_validate({"acquire": {"search": False, "retries": 0, "socket_timeout_s": 2,
                                                   "source_timeout_s": 20, **acquire}})


def test_url_list_downloads_probes_and_is_idempotent(site, tmp_path):
    base, root, handler = site
    urls = [f"{base}/x/a.mp4", f"{base}/y/a.mp4", f"{base}/good.mp4"]
    (tmp_path / "urls.txt").write_text("# sources\n" + "\n".join(f"{u},War" for u in urls) + "\n")
    work = tmp_path / "work"
    calls: list[tuple] = []
    summary = stage.acquire(work, _cfg(), allow_private=True, urls_file=tmp_path / "urls.txt", progress=lambda *a: calls.append(a))
    assert (summary.fetched, summary.failed) == (3, 0)
    assert calls[0] == ("acquire", 0, 3) and calls[-1] == ("acquire", 3, 3)
    last = {task: (done, total) for task, done, total in calls}
    for url, src in ((urls[0], root / "x/a.mp4"), (urls[2], root / "good.mp4")):
        size = src.stat().st_size
        assert last[f"source {source_id_for_url(url)}"] == (size, size)  # per-source bytes bar
    rows = {r.url: r for r in read_records(work, "sources")}
    assert set(rows) == set(urls)
    for url, frames, src in ((urls[0], N, root / "x/a.mp4"), (urls[1], 40, root / "y/a.mp4"), (urls[2], N, root / "good.mp4")):
        r = rows[url]
        assert r.source_id == source_id_for_url(url)
        assert (r.width, r.height, r.fps, r.num_frames) == (W, H, 25.0, frames)
        assert r.duration_s == pytest.approx(frames / FPS, abs=0.05)
        assert r.sha256 == file_sha256(work / r.path) == file_sha256(src)
        assert (r.scene, r.scenario, r.origin) == ("War", "AI", "url_list")
        assert Path(r.path).name.startswith(r.source_id)
    mtimes = {p: p.stat().st_mtime_ns for p in (work / "videos").iterdir()}
    handler.log.clear()
    again = stage.acquire(work, _cfg(), allow_private=True, urls_file=tmp_path / "urls.txt")
    assert (again.fetched, again.skipped) == (0, 3)
    assert handler.log == []  # nothing requested, nothing downloaded twice
    assert {p: p.stat().st_mtime_ns for p in (work / "videos").iterdir()} == mtimes


def test_failures_are_recorded_and_the_good_ones_land(site, tmp_path):
    base, _, _ = site
    work = tmp_path / "work"
    first = [f"{base}/good.mp4"]
    (tmp_path / "one.txt").write_text("\n".join(first))
    stage.acquire(work, _cfg(), allow_private=True, urls_file=tmp_path / "one.txt", scene="Crime")
    bad = {f"{base}/missing.mp4": "404", f"{base}/truncated.mp4": "truncated or corrupt",
           f"{base}/hang.mp4": "timed out"}
    (tmp_path / "all.txt").write_text("\n".join([*first, *bad, f"{base}/x/a.mp4"]))
    summary = stage.acquire(work, _cfg(socket_timeout_s=1, source_timeout_s=15), allow_private=True, urls_file=tmp_path / "all.txt",
                            scene="Crime")
    assert (summary.fetched, summary.skipped, summary.failed) == (1, 1, 3)
    assert set(read_manifest(work, "sources")["url"]) == {f"{base}/good.mp4", f"{base}/x/a.mp4"}
    failures = read_manifest(work, "failures").set_index("input_id")
    for url, reason in bad.items():
        row = failures.loc[source_id_for_url(url)]
        assert row["stage"] == "acquire" and reason in row["message"] and url in row["message"]
    assert not any(p.name.startswith(source_id_for_url(f"{base}/truncated.mp4"))
                   for p in (work / "videos").iterdir())


def test_per_source_timeout_ends_a_hanging_download(site, tmp_path):
    base, _, _ = site
    url = f"{base}/hang-forever.mp4"
    (tmp_path / "urls.txt").write_text(f"{url},War\n")
    work = tmp_path / "work"
    started = time.monotonic()
    summary = stage.acquire(work, _cfg(socket_timeout_s=60, source_timeout_s=4), allow_private=True, urls_file=tmp_path / "urls.txt")
    assert summary.failed == 1 and time.monotonic() - started < 15
    message = read_manifest(work, "failures").iloc[0]["message"]
    assert url in message and "source_timeout_s" in message


def test_hostile_names_cannot_escape_videos_dir(site, tmp_path):
    base, _, _ = site
    url = f"{base}/t'; $(rm -rf ~) ..%2F..%2Fx %F0%9F%8E%AC.mp4"
    (tmp_path / "urls.txt").write_text(f"{url},Talkshow\n")
    work = tmp_path / "work"
    assert stage.acquire(work, _cfg(), allow_private=True, urls_file=tmp_path / "urls.txt").fetched == 1
    files = [p for p in work.rglob("*") if p.is_file() and p.suffix == ".mp4"]
    assert files == [work / "videos" / f"{source_id_for_url(url)}.mp4"]
    assert "'" in read_records(work, "sources")[0].title  # the hostile title is kept as data only


def test_local_folder_scene_from_subfolder_or_flag(tmp_path):
    src = tmp_path / "incoming"
    _video(src / "Interview" / "one.mp4", 30)
    _video(src / "Speech" / "deep" / "two.mp4", 70)
    _video(src / "loose.mp4", 150)
    (src / "Interview" / "notes.mp4").write_bytes(b"not a video")
    work = tmp_path / "work"
    summary = stage.acquire(work, _cfg(), local_dir=src, scene="Business")
    assert (summary.fetched, summary.failed) == (3, 1)
    rows = {Path(r.url).name: r for r in read_records(work, "sources")}
    assert {k: v.scene for k, v in rows.items()} == {"one.mp4": "Interview", "two.mp4": "Speech",
                                                     "loose.mp4": "Business"}
    assert all(r.origin == "local" and r.num_frames == N for r in rows.values())
    failure = read_manifest(work, "failures").iloc[0]
    assert "notes.mp4" in failure["message"] and "not a readable video" in failure["message"]
    assert stage.acquire(work, _cfg(), local_dir=src, scene="Business").fetched == 0


def test_local_file_without_scene_is_a_clear_error(tmp_path):
    _video(tmp_path / "in" / "clip.mp4", 30)
    with pytest.raises(stage.AcquireError, match="no scene given"):
        stage.plan_sources(tmp_path / "work", _cfg(), local_dir=tmp_path / "in")


def test_keyword_search_without_network_fails_fast(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", offline)
    cfg = BuildConfig.model_validate({"scenes": ["War"], "acquire": {"retries": 0, "socket_timeout_s": 2}})
    started = time.monotonic()
    with pytest.raises(stage.NoNetworkError, match="needs network access"):
        stage.acquire(tmp_path / "work", cfg)
    assert time.monotonic() - started < 20


def test_cli_prints_one_clear_message_without_network(tmp_path, monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: (_ for _ in ()).throw(socket.gaierror("offline")))
    result = CliRunner().invoke(app, ["acquire", str(tmp_path / "work"), "--scene", "War", "--search"])
    assert result.exit_code == 2
    assert "needs network access" in result.output and "Traceback" not in result.output


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, IndexError):
        return False


def test_a_killed_acquire_takes_its_download_child_with_it(site, tmp_path):
    """SIGKILL to acquire (no handler can run) while its download child hangs on a server: the child dies too."""
    base, _, _ = site
    (tmp_path / "urls.txt").write_text(f"{base}/hang-killed.mp4,War\n")
    code = ("import sys; from pipeline.acquire import acquire; from schemas.config import BuildConfig; "
            "acquire(sys.argv[1], BuildConfig.model_validate({'acquire': {'search': False, 'source_timeout_s': 300, "
            "'socket_timeout_s': 120}}), urls_file=sys.argv[2], allow_private=True)")
    parent = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "work"), str(tmp_path / "urls.txt")],
                              cwd=Path(__file__).resolve().parents[1])
    try:
        deadline = time.monotonic() + 60
        while not (children := [c for c in _children(parent.pid) if _alive(c) and b"spawn_main" in
                                Path(f"/proc/{c}/cmdline").read_bytes()]) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert children, "the download child never started"
        time.sleep(2)  # the child is past its start-up, inside the download
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 20
        while any(_alive(c) for c in children) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_alive(c) for c in children)
    finally:
        if parent.poll() is None:
            parent.kill()


@pytest.fixture
def tiny_disk(tmp_path):
    """A 1 MiB tmpfs (needs root: mount); skipped where it cannot be mounted."""
    folder = tmp_path / "tiny"
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not root)")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def test_a_full_disk_during_a_download_leaves_no_partial_file_and_one_line(site, tiny_disk, tmp_path):
    base, root, _ = site
    (root / "big.mp4").write_bytes(np.random.default_rng(2).integers(0, 256, 3 * 2**20, np.uint8).tobytes())
    (tmp_path / "urls.txt").write_text(f"{base}/big.mp4,War\n{base}/good.mp4,War\n")
    work = tiny_disk / "work"
    result = CliRunner().invoke(app, ["acquire", str(work), "--urls", str(tmp_path / "urls.txt"), "--no-search",
                                      "--allow-private", "--config", str(_config_file(tmp_path))])
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.exit_code == 2 and len(errors) == 1 and "no space left" in errors[0], result.output
    assert "Traceback" not in result.output
    assert sorted(p.name for p in (work / "videos").iterdir() if p.name != stage.ARCHIVE) == []
    assert read_manifest(work, "failures")["error_kind"].tolist() == ["DiskFull"]


def _config_file(tmp_path: Path) -> Path:
    path = tmp_path / "build.yaml"
    path.write_text("acquire:\n  retries: 0\n  socket_timeout_s: 5\n  source_timeout_s: 60\n")
    return path
