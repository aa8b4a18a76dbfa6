"""Bad inputs at the prompt, table-driven: each ends with one line naming the input and what to do (exit code 2
for a user error that stops the command), never a traceback; a bad source is a failure row of its kind and the
good sources of the same run are still processed."""

from __future__ import annotations

import errno
import os
import shutil
import threading
from dataclasses import dataclass, field
from fractions import Fraction
from functools import partial
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from cli.app import app
from pipeline.media import write_video
from schemas.ids import source_id_for_url
from schemas.manifests import read_manifest

GOOD = "good.mp4"


def _video(path: Path, fps=25, size=(64, 48), frames=30, shade=90) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_video(path, (np.full((size[1], size[0], 3), (shade + i) % 256, np.uint8) for i in range(frames)), fps=fps)
    return path


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A local HTTP server with one good video (the tests fetch from it with --allow-private)."""
    root = tmp_path_factory.mktemp("site")
    _video(root / GOOD)
    (root / "big.mp4").write_bytes(bytes(2 * 2**20 + 1))  # over a 2 MiB cap (its content never matters)
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class _RefusesTokens(BaseHTTPRequestHandler):
    """Answers every request 401, as Label Studio does for a wrong token."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"detail": "Invalid token."}')


def _error_lines(result) -> list[str]:
    """The error lines on stderr (progress bars aside); the error is the last thing printed."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert not errors or lines[-1] == errors[-1], result.stderr
    return errors


@dataclass
class Case:
    name: str
    setup: Callable[[Path, str], list[str]]  # (tmp folder, site URL) -> CLI arguments
    exit_code: int
    message: str  # in the one line
    failure: tuple[str, str] | None = None  # (stage, error_kind) of the row it leaves
    good: int = 0  # good sources fetched in the same run
    env: dict = field(default_factory=dict)


def _config(tmp: Path, text: str) -> Path:
    path = tmp / "build.yaml"
    path.write_text(text)
    return path


def _acq(tmp: Path, site: str, lines: list[str], *extra: str, config: str | None = None) -> list[str]:
    urls = tmp / "urls.txt"
    urls.write_text("\n".join([f"{site}/{GOOD},Talkshow", *lines]) + "\n")
    cfg = ["--config", str(_config(tmp, config))] if config else []
    return ["acquire", str(tmp / "work"), "--urls", str(urls), "--no-search", *cfg, *extra]


def _local(tmp: Path, site: str, bad: Callable[[Path], None], config: str | None = None) -> list[str]:
    folder = tmp / "in" / "Talkshow"
    _video(folder / GOOD)
    bad(folder)
    cfg = ["--config", str(_config(tmp, config))] if config else []
    return ["acquire", str(tmp / "work"), "--local", str(tmp / "in"), "--no-search", *cfg]


def _release(tmp: Path, lines: list[str]) -> Path:
    release = tmp / "release"
    (release / "4_setups" / "All_scenes").mkdir(parents=True)
    (release / "4_setups" / "All_scenes" / "test_All.csv").write_text("".join(f"{line}\n" for line in lines))
    return release


def _evaluate(tmp: Path, predictions: bytes, lines=("Talkshow/Happy/0000 Happy", "Talkshow/Sad/0000 Sad")):
    path = tmp / "predictions.csv"
    path.write_bytes(predictions)
    return ["evaluate", str(_release(tmp, list(lines))), str(path)]


def _symlink_out(folder: Path) -> None:
    outside = _video(folder.parents[2] / "outside" / "secret.mp4", shade=10)
    (folder / "link.mp4").symlink_to(outside)


def _corrupt(folder: Path) -> None:
    (folder / "corrupt.mp4").write_bytes(np.random.default_rng(1).integers(0, 256, 50_000, np.uint8).tobytes())


CASES = [
    Case("config-unknown-key", lambda t, s: ["clips", str(t), "-c", str(_config(t, "acquire:\n  colour: 1\n"))],
         2, "acquire.colour: unknown setting"),
    Case("config-wrong-type", lambda t, s: ["clips", str(t), "-c", str(_config(t, "acquire:\n  retries: lots\n"))],
         2, "acquire.retries: Input should be a valid integer"),
    Case("config-yaml-syntax", lambda t, s: ["clips", str(t), "-c", str(_config(t, "acquire: [1,\n"))],
         2, "YAML syntax error at line"),
    Case("config-yaml-list", lambda t, s: ["clips", str(t), "-c", str(_config(t, "- acquire\n- clips\n"))],
         2, "not a mapping of settings"),
    Case("config-missing", lambda t, s: ["clips", str(t), "-c", str(t / "nope.yaml")],
         2, "nope.yaml does not exist"),
    Case("config-bad-bounds", lambda t, s: ["clips", str(t), "-c", str(_config(t, "acquire:\n  min_fps: 300\n"))],
         2, "acquire.min_fps must be below acquire.max_fps"),
    Case("urls-file-missing", lambda t, s: ["acquire", str(t / "work"), "--urls", str(t / "nope.txt")],
         2, "nope.txt' does not exist"),
    Case("local-not-a-folder", lambda t, s: ["acquire", str(t / "work"), "--local", str(t / "nope")],
         2, "does not exist"),
    Case("urls-not-text", lambda t, s: ["acquire", str(t / "work"), "--no-search", "--urls",
                                        str((t / "u.bin").write_bytes(b"\xff\xfe\x00\x81" * 50) and t / "u.bin")],
         2, "not a UTF-8 text file"),
    Case("predictions-binary", lambda t, s: _evaluate(t, bytes(range(256)) * 8), 2, "not UTF-8 text"),
    Case("predictions-empty", lambda t, s: _evaluate(t, b""), 2, "is empty"),
    Case("predictions-bad-quote", lambda t, s: _evaluate(t, b'path,prediction\n"Talkshow/Happy/0000,Happy\n'
                                                             b"Talkshow/Sad/0000,Sad\n"),
         2, "not a well-formed CSV"),
    Case("predictions-text-score", lambda t, s: _evaluate(
        t, ("path," + ",".join(["Angry", "Disgust", "Fear", "Happy", "Neutral", "Sad", "Surprise"]) + "\n"
            "Talkshow/Happy/0000,0,0,0,high,0,0,0\nTalkshow/Sad/0000,0,0,0,0,0,1,0\n").encode()),
         2, "not numbers on lines 2"),
    Case("predictions-missing", lambda t, s: ["evaluate", str(_release(t, ["Talkshow/Happy/0000 Happy"])),
                                              str(t / "nope.csv")], 2, "nope.csv does not exist"),
    Case("empty-test-split", lambda t, s: _evaluate(t, b"path,prediction\nTalkshow/Happy/0000,Happy\n", lines=()),
         2, "empty test split"),
    Case("url-stray-quote", lambda t, s: _acq(t, s, [f'"{s}/{GOOD}?x=1,Talkshow', f"{s}/{GOOD}?y=2,War"],
                                              "--allow-private"),
         0, "1 sources failed", ("acquire", "BadSourceLine"), good=2),
    Case("url-not-http", lambda t, s: _acq(t, s, ["file:///etc/passwd,War"], "--allow-private"),
         0, "1 sources failed", ("acquire", "BadSourceLine"), good=1),
    Case("url-unknown-scene", lambda t, s: _acq(t, s, [f"{s}/{GOOD}?z=3,Nowhere"], "--allow-private"),
         0, "1 sources failed", ("acquire", "BadSourceLine"), good=1),
    Case("url-over-size-cap", lambda t, s: _acq(t, s, [f"{s}/big.mp4,War"], "--allow-private",
                                                config="acquire:\n  max_file_mb: 2\n  retries: 0\n"),
         0, "1 sources failed", ("acquire", "AcquireError"), good=1),
    Case("url-link-local", lambda t, s: _acq(t, s, ["http://169.254.169.254/latest/meta-data,War"]),
         0, "2 sources failed", ("acquire", "UnsafeUrl"), good=0),  # (the good one is on loopback: refused too)
    Case("local-symlink-escape", lambda t, s: _local(t, s, _symlink_out),
         0, "1 sources failed", ("acquire", "BadSourceLine"), good=1),
    Case("local-corrupt-video", lambda t, s: _local(t, s, _corrupt),
         0, "1 sources failed", ("acquire", "AcquireError"), good=1),
    Case("local-absurd-fps", lambda t, s: _local(t, s, lambda f: _video(f / "slow.mp4", fps=Fraction(1, 1000),
                                                                     frames=3)),
         0, "1 sources failed", ("acquire", "OutOfBounds"), good=1),
    Case("local-too-many-pixels", lambda t, s: _local(t, s, lambda f: _video(f / "big.mp4", size=(320, 240)),
                                                      config="acquire:\n  max_pixels: 10000\n"),
         0, "1 sources failed", ("acquire", "OutOfBounds"), good=1),  # (the good one, 64x48 = 3072 pixels, passes)
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, site, tmp_path, monkeypatch):
    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    args = case.setup(tmp_path, site)
    result = CliRunner().invoke(app, args)
    out = result.stdout + result.stderr
    assert result.exit_code == case.exit_code, out
    assert "Traceback" not in out and not isinstance(result.exception, Exception) or result.exit_code in (0, 2), out
    if case.exit_code == 2:
        lines = _error_lines(result)
        assert len(lines) == 1 and case.message in lines[0], out
    else:
        assert case.message in out, out
    work = tmp_path / "work"
    if case.failure:
        failures = read_manifest(work, "failures")
        assert (case.failure[0], case.failure[1]) in set(zip(failures["stage"], failures["error_kind"])), failures
        assert all("\n" not in m and m for m in failures["message"])
    if case.exit_code == 0:
        assert len(read_manifest(work, "sources")) == case.good


def test_refused_token_is_one_line(tmp_path, monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RefusesTokens)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        config = _config(tmp_path, yaml.safe_dump({"labelstudio": {"url": url, "retries": 0}}))
        monkeypatch.setenv("FERV_LS_TOKEN", "wrong-token")
        result = CliRunner().invoke(app, ["annotate", "push", str(tmp_path), "-c", str(config)])
    finally:
        server.shutdown()
    lines = _error_lines(result)
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert "refused the API token (401)" in lines[0] and "FERV_LS_TOKEN" in lines[0]


def test_full_disk_removes_the_partial_file_and_says_so(site, tmp_path, monkeypatch):
    """ENOSPC while a local video is copied in (simulated: the copy writes part of the file, then the disk is
    full): the partial file is removed, the run stops with one line, the source is a failure row."""
    def no_link(src, dst):
        raise OSError(errno.EXDEV, "cross-device link")

    def full_copy(src, dst, **kwargs):
        Path(dst).write_bytes(Path(src).read_bytes()[:100])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))

    monkeypatch.setattr(os, "link", no_link)
    monkeypatch.setattr(shutil, "copyfile", full_copy)
    args = _local(tmp_path, site, lambda f: None)
    result = CliRunner().invoke(app, args)
    lines = _error_lines(result)
    assert result.exit_code == 2 and len(lines) == 1 and "no space left" in lines[0], result.output
    assert not [p for p in (tmp_path / "work" / "videos").iterdir() if p.name != ".ytdlp-archive.txt"]
    assert read_manifest(tmp_path / "work", "failures")["error_kind"].tolist() == ["DiskFull"]


def test_missing_or_changed_source_files_are_fetched_again(site, tmp_path):
    args = _acq(tmp_path, site, [], "--allow-private")
    assert CliRunner().invoke(app, args).exit_code == 0
    work = tmp_path / "work"
    video = work / read_manifest(work, "sources").iloc[0]["path"]
    video.unlink()
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0 and video.is_file(), result.output
    video.write_bytes(video.read_bytes()[:-10] + b"0123456789")  # changed after acquisition
    result = CliRunner().invoke(app, args)
    from schemas.ids import file_sha256

    assert file_sha256(video) == read_manifest(work, "sources").iloc[0]["sha256"]
    assert source_id_for_url(f"{site}/{GOOD}") == read_manifest(work, "sources").iloc[0]["source_id"]


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_rebuild_refuses_a_crafted_metadata_row_and_works_without_scene_frames(tmp_path):
    """A release built with scene frames off rebuilds (face crops match); the same metadata with one row whose
    path and scene climb out of OUT is refused before anything is written, inside OUT or out of it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.release import build_release, rebuild_release
    from pipeline.release.rebuild import UnsafeMetadata
    from schemas.config import BuildConfig
    from tests.release_support import SourcePlan, make_workdir

    work = make_workdir(tmp_path / "work", [SourcePlan("a", "Talkshow", ("Happy", "Sad", "Happy", "Angry")),
                                             SourcePlan("b", "Interview", ("Sad", "Happy", "Neutral"))])
    release = tmp_path / "release"
    build_release(work, release, BuildConfig.model_validate({"release": {"scene_frames": False}}))
    assert not (release / "3_ClipsforScenImages").exists()
    rebuilt = rebuild_release(release / "metadata.parquet", work / "sources", tmp_path / "rebuilt")
    assert rebuilt.problems == () and rebuilt.matched == rebuilt.clips == 7

    table = pq.read_table(release / "metadata.parquet")
    for column, value in (("path", "../../../escaped/Happy/0000"), ("scene", "../../escaped")):
        crafted = table.set_column(table.schema.get_field_index(column), column,
                                   pa.array([value, *table.column(column).to_pylist()[1:]]))
        bad = tmp_path / f"crafted-{column}" / "metadata.parquet"
        bad.parent.mkdir()
        pq.write_table(crafted, bad)
        before = _tree(tmp_path)
        out = tmp_path / f"out-{column}"
        with pytest.raises(UnsafeMetadata, match="do not fit the release layout"):
            rebuild_release(bad, work / "sources", out)
        assert _tree(tmp_path) == before  # nothing written: not OUT, not beside it
