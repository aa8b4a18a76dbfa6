"""Label Studio for a team: an annotator reads clips of tasks and nothing else; sign-up by invitation only;
private file modes; process control that never signals a stranger; one push at a time per work directory."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from annotation import server
from annotation.media import ServedTreeError, clip_url, clips_storage
from annotation.push import copy_title, push_tasks
from annotation.users import add_annotator
from schemas.manifests import read_manifest
from tests.labelstudio_support import make_workdir

REPO = Path(__file__).resolve().parents[1]
NO_GOLD = {"gold_fraction": 0, "min_gold_per_group": 0}


def _web_login(url: str, email: str, password: str) -> httpx.Client:
    """A browser-like session of ``email`` logged in through Label Studio's login form (CSRF included)."""
    web = httpx.Client(base_url=url, follow_redirects=False)
    web.get("/user/login/")
    web.post("/user/login/", data={"email": email, "password": password,
                                   "csrfmiddlewaretoken": web.cookies["csrftoken"]},
             headers={"Referer": url + "/user/login/"})
    assert web.get("/api/current-user/whoami").json()["email"] == email
    return web


def _sign_up(url: str, email: str, password: str, token: str | None = None) -> httpx.Response:
    """Post Label Studio's sign-up form as a stranger would (with the invite token if given)."""
    with httpx.Client(base_url=url, follow_redirects=False) as web:
        query = f"?token={token}" if token else ""
        web.get("/user/signup/" + query)
        return web.post("/user/signup/" + query, data={"email": email, "password": password,
                                                       "csrfmiddlewaretoken": web.cookies["csrftoken"]},
                        headers={"Referer": f"{url}/user/signup/{query}"})


def _emails(labelstudio) -> set[str]:
    return {u.email for u in labelstudio.client.sdk.users.list()}


def test_sign_up_is_by_invitation_only(labelstudio):
    stranger = "stranger@example.com"
    refused = _sign_up(labelstudio.url, stranger, "Stranger-pass-2026")
    assert refused.status_code == 403 and stranger not in _emails(labelstudio)
    invite = labelstudio.client.sdk._client_wrapper.httpx_client.request("api/invite", method="GET").json()
    token = invite["invite_url"].split("token=")[1]
    invited = "invited@example.com"  # the invite link does let a person in: sign-up is closed, not broken
    assert _sign_up(labelstudio.url, invited, "Invited-pass-2026", token).status_code == 302
    assert invited in _emails(labelstudio)


def test_a_crowd_annotator_reads_the_clips_of_tasks_and_nothing_else(labelstudio, tmp_path):
    work = tmp_path / "work"
    ids = make_workdir(work, 2)
    cfg = labelstudio.config(annotators_per_clip=1, **NO_GOLD)
    push_tasks(work, cfg, labelstudio.client, local_root=labelstudio.clips_root)
    who = add_annotator(labelstudio.client, f"{cfg.labelstudio.project_title}@ferv.local", "crowd",
                        data_dir=labelstudio.data_dir)
    web = _web_login(labelstudio.url, who.email, who.password_file.read_text().strip())

    tasks = read_manifest(work, "tasks")
    task = labelstudio.client.sdk.tasks.get(str(tasks["task_id"].iloc[0]))
    clip = web.get(task.data["crop_video"])
    assert clip.status_code == 200
    assert clip.content == (work / "clips" / "crop" / f"{tasks['clip_id'].iloc[0]}.mp4").read_bytes()

    data = labelstudio.data_dir
    secrets = {"admin token": data / server.TOKEN_FILE, "database": data / "label_studio.sqlite3",
               "server log": data / server.LOG_FILE, "pid file": data / server.PID_FILE,
               **{f"password {p.name}": p for p in sorted((data / "annotators").glob("*.password"))},
               **{f"manifest {p.name}": p for p in sorted(work.glob("*.parquet"))},
               "push lock": work / ".push.lock"}
    secrets.update({f"Label Studio {p.name}": p for p in sorted(data.glob(".env*"))})
    assert {"manifest clips.parquet", "manifest tasks.parquet"} <= set(secrets) and len(secrets) >= 8
    link = clips_storage(work, labelstudio.clips_root).name
    old_root = work.parent  # what the issue reported: the work directory's parent was the document root
    for name, path in secrets.items():
        assert path.exists(), name
        attempts = {"as reported": os.path.relpath(path, old_root), "absolute": str(path),
                    "up from the media root": os.path.relpath(path, labelstudio.clips_root),
                    "up from the clips link": f"{link}/{os.path.relpath(path, work / 'clips')}"}
        head = path.read_bytes()[:48]
        for how, d in attempts.items():
            resp = web.get("/data/local-files/", params={"d": d})
            # 404 inside the media root; a path climbing out of it is refused by Django's safe_join (an error page)
            expected = {404} if not os.path.normpath(d).startswith(("..", "/")) else {400, 403, 404, 500}
            assert resp.status_code in expected, (name, how, d, resp.status_code)
            assert not head or head not in resp.content, (name, how)
    # nor can the annotator open a storage of his own over Label Studio's data directory
    project = int(tasks["project_id"].iloc[0])
    own = web.post("/api/storages/localfiles", json={"project": project, "path": str(data), "title": "x"},
                   headers={"X-CSRFToken": web.cookies["csrftoken"], "Referer": labelstudio.url})
    assert own.status_code in (400, 403), own.status_code
    paths = [s.path for s in labelstudio.client.sdk.import_storage.local.list(project=project)]
    assert paths == [str(clips_storage(work, labelstudio.clips_root))]
    web.close()


def test_label_studio_files_are_private_after_start(labelstudio):
    data = labelstudio.data_dir
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for name in (server.TOKEN_FILE, "label_studio.sqlite3", server.LOG_FILE, server.PID_FILE):
        assert stat.S_IMODE((data / name).stat().st_mode) == 0o600, name
    assert stat.S_IMODE((data / ".env").stat().st_mode) == 0o600  # Django's secret key
    readable = [p for p in data.rglob("*") if not p.is_symlink() and _mode(p) & 0o077]
    assert readable == []  # everything the server wrote, under umask 077, is its owner's only


def _mode(path: Path) -> int:
    try:
        return path.stat().st_mode
    except FileNotFoundError:  # a database journal that came and went
        return 0


def test_task_urls_point_into_the_clips_folder_only(tmp_path):
    work, media = tmp_path / "work", tmp_path / "media"
    storage = clips_storage(work, media)
    assert storage.parent == media and storage.is_symlink() and storage.resolve() == work / "clips"
    assert clips_storage(work, media) == storage and list(media.iterdir()) == [storage]  # made once
    assert clip_url(storage, work, "clips/src/c1/scene.mp4") == f"/data/local-files/?d={storage.name}/src/c1/scene.mp4"
    for outside in ("labelstudio/token", "clips/../labelstudio/token", "/etc/passwd", "tasks.parquet"):
        with pytest.raises(ServedTreeError):
            clip_url(storage, work, outside)
    assert clips_storage(work, work) == work / "clips"  # the team stack: clips mounted right in the media root


def _run_cli(*args: str) -> tuple[int, str]:
    """``ferv ARGS`` as a person runs it; returns the exit code and the output (stdout and stderr)."""
    proc = subprocess.run([str(REPO / ".venv" / "bin" / "ferv"), *args], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "COLUMNS": "500"}, timeout=300)
    return proc.returncode, proc.stdout + proc.stderr


def test_labelstudio_up_refuses_to_serve_its_data_directory_or_the_work_directory(tmp_path):
    work = tmp_path / "work"
    inside = tmp_path / "inside.yaml"
    inside.write_text(json.dumps({"workdir": str(work), "labelstudio": {"data_dir": str(work / "clips" / "ls")}}))
    code, out = _run_cli("labelstudio", "up", "-c", str(inside))
    assert code == 1 and "refusing to start Label Studio" in out and str(work / "clips" / "ls") in out
    whole = tmp_path / "whole.yaml"  # a media root that would hold the manifests (and the data directory)
    whole.write_text(json.dumps({"workdir": str(work), "labelstudio": {"media_root": str(tmp_path)}}))
    code, out = _run_cli("labelstudio", "up", "-c", str(whole))
    assert code == 1 and "refusing to start Label Studio" in out
    assert not (work / "labelstudio" / server.PID_FILE).exists()


def test_down_leaves_a_process_that_is_not_its_label_studio_alone(tmp_path):
    work = tmp_path / "work"
    data = work / "labelstudio"
    data.mkdir(parents=True)
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        (data / server.PID_FILE).write_text(str(stranger.pid))
        code, out = _run_cli("labelstudio", "down", "-w", str(work))
        assert code == 0 and "left that process alone" in out
        time.sleep(0.5)
        assert stranger.poll() is None  # still running
        assert not (data / server.PID_FILE).exists()
    finally:
        stranger.kill()
        stranger.wait()


PUSH = """
import json, sys, time
from pathlib import Path
from annotation.client import LSClient
from annotation.push import push_tasks
from schemas.config import BuildConfig
work, cfg, root, go = sys.argv[1], BuildConfig.model_validate_json(sys.argv[2]), sys.argv[3], Path(sys.argv[4])
client = LSClient(cfg.labelstudio.url, __import__("os").environ["FERV_LS_TOKEN"], retries=2)
(go.parent / f"ready-{sys.argv[5]}").touch()
while not go.exists():
    time.sleep(0.01)
s = push_tasks(work, cfg, client, local_root=root)
print(json.dumps({"created": s.created, "existing": s.existing}))
"""


def test_two_pushes_started_at_once_make_one_project_per_copy_and_one_task_per_clip(labelstudio, tmp_path):
    work = tmp_path / "work"
    ids = make_workdir(work, 5)
    cfg = labelstudio.config(**NO_GOLD)
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", PUSH, str(work), cfg.model_dump_json(),
                               str(labelstudio.clips_root), str(go), str(i)], cwd=REPO, env=labelstudio.env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready-{i}").exists() for i in range(2)) and time.monotonic() < deadline:
        time.sleep(0.05)
    go.touch()  # both start pushing now
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in outs]
    summaries = sorted((json.loads(out.strip().splitlines()[-1]) for out, _ in outs), key=lambda s: s["created"])
    copies = cfg.annotation.annotators_per_clip
    assert summaries == [{"created": 0, "existing": 5 * copies}, {"created": 5 * copies, "existing": 0}]
    assert any("waits" in err for _, err in outs)  # the second one said it waited
    titles = [p.title for p in labelstudio.client.sdk.projects.list()]
    for copy_index in range(copies):
        title = copy_title(cfg.labelstudio, copy_index)
        assert titles.count(title) == 1, title
        project = next(p for p in labelstudio.client.sdk.projects.list(title=title) if p.title == title)
        keys = labelstudio.client.task_keys(project.id)
        assert sorted(c for c, _ in keys) == ids and project.task_number == 5
    tasks = read_manifest(work, "tasks")
    assert len(tasks) == 5 * copies and not tasks.duplicated(["project_id", "clip_id"]).any()
