"""The labelling screen's pace: Ctrl+Enter to the next task's clips ready to watch (printed, one run).

    .venv/bin/python bench/labelling_screen.py [--tasks 5000] [--measure 30] [--timeout 120] [--screenshot PATH]

Starts its own Label Studio (temporary data directory, free port), pushes two copy projects of real
clips (640x360 scene, 224x224 crop, 25 fps; 40 distinct clip files shared by the tasks): a small one
(``--measure`` + 5 tasks) and a large one (``--tasks``), and labels ``--measure`` tasks of each in
Chromium at 1366x768 as an annotator does (hotkey, Ctrl+Enter). The figure per task is the time from
Ctrl+Enter to the next task's three videos (scene, crop, looping crop) having ``readyState >= 3`` and its
marked still loaded; the medians are printed with their ratio, and the server time of the label stream's two
calls (the annotation POST and the queue's next-task action) to show what bounds them; a task not ready within
``--timeout`` stops that project's run. A screenshot of the labelling screen (large project, clips ready) is
written and its path printed. Needs Debian's chromium at /usr/bin/chromium.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from annotation import server
from annotation.client import LSClient
from annotation.labeling_config import hotkeys
from annotation.push import push_tasks
from annotation.users import add_annotator
from schemas.config import BuildConfig
from schemas.manifests import write_manifest
from schemas.taxonomy import TAXONOMY
from pipeline.synthetic import clip_row, screen_clip_files

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
FILES, FRAMES, FPS = 40, 40, 25
# the task on screen (the editor's store), its video and image elements marked as old before each submit, and
# the next task's clips ready: three new video elements (scene, crop, looping crop) with readyState >= 3 and its
# new marked still loaded
TASK_ID = "() => window.Htx?.task?.id ?? null"
MARK_OLD = "() => document.querySelectorAll('video, img').forEach(v => { v.dataset.old = '1' })"
SHOWN = "(prev) => { const id = window.Htx?.task?.id; return id != null && id !== prev }"
READY = ("() => { const v = Array.from(document.querySelectorAll('video')); "
         "const s = Array.from(document.querySelectorAll(\"img[alt*='face meant']\")).filter(x => !x.dataset.old); "
         "return v.length >= 3 && v.every(x => !x.dataset.old && x.readyState >= 3) "
         "&& s.length === 1 && s[0].complete && s[0].naturalWidth > 0 }")


def make_workdir(workdir: Path, files: Path, n: int) -> None:
    """``n`` clips (unique ids) over the shared clip files, and clips.parquet."""
    shutil.copytree(files / "clips", workdir / "clips")
    paths = json.loads((files / "paths.json").read_text())
    write_manifest(workdir, "clips", [
        clip_row(f"c{i:06d}", TAXONOMY.scene_names[i % len(TAXONOMY.scene_names)], **paths[i % FILES],
                 num_frames=FRAMES, fps=float(FPS)) for i in range(n)])


def api_times(page, calls: dict[str, list[float]]):
    """Record the time (request start to response end) of the label stream's two calls: the annotation
    POST and the queue's next task (``/api/dm/actions?id=next_task``)."""
    def record(request) -> None:
        kind = ("submit" if request.method == "POST" and "/annotations" in request.url
                else "next" if "id=next_task" in request.url else None)
        if kind:
            calls[kind].append(request.timing["responseEnd"] / 1000)
    page.on("requestfinished", record)
    return record


def label_stream_times(page, url: str, project_id: int, n: int, screenshot: Path | None,
                       timeout_s: float) -> tuple[float, list[float], list[float]]:
    """Seconds to open the label stream with clips ready; from Ctrl+Enter to the next task shown, and to
    its clips ready, for up to ``n`` submitted tasks (stops at the first that takes over ``timeout_s``)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    key = hotkeys()["Worry"]
    start = time.perf_counter()
    page.goto(f"{url}/projects/{project_id}/data?labeling=1")
    page.wait_for_selector("text=Worry", timeout=timeout_s * 1000)
    page.keyboard.press("Escape")  # the first-time instructions
    page.wait_for_function(READY, timeout=timeout_s * 1000)
    opened = time.perf_counter() - start
    if screenshot is not None:
        page.wait_for_timeout(500)
        page.screenshot(path=str(screenshot))
    shown, ready = [], []
    for _ in range(n):
        prev = page.evaluate(TASK_ID)
        page.wait_for_timeout(300)  # the editor binds hotkeys after it renders a task
        page.keyboard.press(key)
        page.wait_for_selector("input[name=Worry]:checked", state="attached", timeout=10_000)
        page.evaluate(MARK_OLD)
        start = time.perf_counter()
        page.keyboard.press("Control+Enter")
        try:
            page.wait_for_function(SHOWN, arg=prev, timeout=timeout_s * 1000, polling=20)
            shown.append(time.perf_counter() - start)
            page.wait_for_function(READY, timeout=timeout_s * 1000, polling=20)
        except PlaywrightTimeout:
            print(f"  project {project_id}: no next task ready within {timeout_s:.0f} s of Ctrl+Enter; stopped")
            break
        ready.append(time.perf_counter() - start)
    return opened, shown, ready


def main() -> None:
    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=5000, help="tasks in the large project")
    ap.add_argument("--measure", type=int, default=30, help="tasks labelled and timed per project")
    ap.add_argument("--timeout", type=float, default=120, help="seconds to wait for one next task")
    ap.add_argument("--screenshot", type=Path, default=Path(tempfile.gettempdir()) / "ferv-labelling-screen.png")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ferv-bench-screen-") as tmp:
        root = Path(tmp)
        (root / "files").mkdir()
        (root / "files" / "paths.json").write_text(json.dumps(screen_clip_files(root / "files", FILES, FRAMES, FPS)))
        t0 = time.perf_counter()
        media = root / "media"  # the served root: links to the work directories' clips only
        media.mkdir()
        srv = server.start(root / "data", media, port=server.free_port(), token_env="FERV_BENCH_UNUSED")
        print(f"label studio start: {time.perf_counter() - t0:.1f} s")
        try:
            client = LSClient(srv.url, srv.token)
            projects = {}
            for name, n in (("small", args.measure + 5), ("large", args.tasks)):
                workdir = root / name
                make_workdir(workdir, root / "files", n)
                cfg = BuildConfig.model_validate({
                    "labelstudio": {"url": srv.url, "project_title": f"bench {name}"},
                    "annotation": {"annotators_per_clip": 1, "gold_fraction": 0, "min_gold_per_group": 0}})
                t0 = time.perf_counter()
                pushed = push_tasks(workdir, cfg, client, local_root=media)
                projects[name] = next(iter(pushed.projects.values()))
                print(f"{name} project: {pushed.created} tasks pushed in {time.perf_counter() - t0:.1f} s")
            annotator = add_annotator(client, "bench@ferv.local", "crowd", data_dir=srv.data_dir)
            medians = {}
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                try:
                    page = browser.new_page(viewport={"width": 1366, "height": 768})
                    page.goto(f"{srv.url}/user/login/")
                    page.fill("input[name=email]", annotator.email)
                    page.fill("input[name=password]", annotator.password_file.read_text().strip())
                    page.click("button[type=submit]")
                    page.wait_for_url(lambda u: "/user/login" not in u, timeout=60_000)
                    for name, pid in projects.items():
                        shot = args.screenshot.resolve() if name == "large" else None
                        calls: dict[str, list[float]] = {"submit": [], "next": []}
                        recorder = api_times(page, calls)
                        opened, shown, times = label_stream_times(page, srv.url, pid, args.measure, shot,
                                                                  args.timeout)
                        page.remove_listener("requestfinished", recorder)
                        print(f"{name} project: label stream opened, clips ready: {opened:.1f} s")
                        if times:
                            medians[name] = statistics.median(times)
                            print(f"{name} project: Ctrl+Enter -> next clips ready over {len(times)} tasks: median "
                                  f"{medians[name]:.3f} s, p90 {np.percentile(times, 90):.3f} s, max {max(times):.3f} s"
                                  f" (next task shown: median {statistics.median(shown):.3f} s)")
                        for kind, seconds in calls.items():
                            if seconds:
                                print(f"  {kind} API call: median {statistics.median(seconds):.3f} s, "
                                      f"max {max(seconds):.3f} s over {len(seconds)}")
                finally:
                    browser.close()
            if len(medians) == 2:
                print(f"large / small median: {medians['large'] / medians['small']:.2f}x "
                      f"({args.tasks} vs {args.measure + 5} tasks per project)")
            print(f"screenshot (1366x768): {args.screenshot.resolve()}")
        finally:
            server.stop(root / "data")


if __name__ == "__main__":
    main()
