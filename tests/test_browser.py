"""Browser tests: an annotator labels a pushed task in Label Studio's web UI (Playwright + Debian's Chromium);
the labelling screen at 1366x768 (both players side by side in view, synced at the clip's frame rate, the
face-crop loop playing by itself, instructions popping up the first time only); the expert review task
shows the crowd's votes.

Also records what open-source Label Studio 1.23's queue does with ``maximum_annotations=N``: after
annotator A submitted the only task of a project with ``maximum_annotations=2``, annotator B's queue
(``/api/projects/<id>/next``, what the label stream calls) serves B that same task. So the community queue
does overlap per task up to N (the API still does not enforce the cap: more annotations can be posted).
ferv still gives each FERV39k copy its own project (own shuffled order, own annotator, judged alone) and
enforces caps itself; see annotation/push.py.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from annotation.media import clips_storage
from annotation.push import REVIEW_COPY, add_intents, copy_title, intent_rows, provision_project, push_plan, push_tasks
from annotation.sync import sync_votes
from annotation.users import add_annotator
from schemas.manifests import read_manifest, write_manifest
from pipeline.synthetic import clip_row, screen_clip_files
from tests.browser_support import ARGS, CHROMIUM, LAPTOP, login, needs_chromium
from tests.clips_support import iou
from tests.labelstudio_support import make_workdir

READY = ("() => { const v = document.querySelectorAll('video'); "
         "return v.length >= 3 && Array.from(v).every(x => x.readyState >= 3) }")  # scene, crop, crop loop

pytestmark = needs_chromium


def _next_task(url: str, email: str, password: str, project_id: int) -> httpx.Response:
    """What the project's queue serves ``email`` next (logged in through the web form, as the UI is)."""
    with httpx.Client(base_url=url, timeout=60) as web:
        web.get("/user/login/")
        web.post("/user/login/", data={"email": email, "password": password,
                                       "csrfmiddlewaretoken": web.cookies["csrftoken"]},
                 headers={"Referer": url + "/user/login/"})
        assert web.get("/api/current-user/whoami").json()["email"] == email
        return web.get(f"/api/projects/{project_id}/next")


def _label_next(page, url: str, project_id: int, hotkey: str, client) -> None:
    """Open the project's label stream, choose with ``hotkey``, submit with Ctrl+Enter, wait until saved."""
    page.goto(f"{url}/projects/{project_id}/data?labeling=1")
    page.wait_for_selector("text=Worry", timeout=90_000)  # the choices have rendered
    page.wait_for_timeout(1500)  # the editor binds its hotkeys after the first render
    page.keyboard.press(hotkey)
    page.wait_for_selector("input[name=Worry]:checked", state="attached", timeout=10_000)
    page.keyboard.press("Control+Enter")
    for _ in range(60):
        if client.sdk.projects.get(project_id).num_tasks_with_annotations:
            return
        page.wait_for_timeout(500)
    raise AssertionError(f"the submitted annotation never reached project {project_id}")


def test_annotator_labels_with_hotkey_and_sync_has_the_vote(labelstudio, tmp_path):
    from playwright.sync_api import sync_playwright

    from annotation.labeling_config import hotkeys

    ids = make_workdir(tmp_path, 1)
    cfg = labelstudio.config(annotators_per_clip=1, gold_fraction=0, min_gold_per_group=0)
    summary = push_tasks(tmp_path, cfg, labelstudio.client, local_root=labelstudio.clips_root)
    project_id = next(iter(summary.projects.values()))
    title = cfg.labelstudio.project_title
    a = add_annotator(labelstudio.client, f"{title}-a@ferv.local", "crowd", data_dir=labelstudio.data_dir)
    b = add_annotator(labelstudio.client, f"{title}-b@ferv.local", "crowd", data_dir=labelstudio.data_dir)
    password_a = a.password_file.read_text().strip()

    # a second project with maximum_annotations=2 and the same single task, to see what the queue does
    overlap = provision_project(labelstudio.client, f"{title} overlap", maximum_annotations=2)
    task = labelstudio.client.sdk.tasks.get(str(read_manifest(tmp_path, "tasks")["task_id"].iloc[0]))
    labelstudio.client.sdk.projects.import_tasks(overlap, request=[{"data": task.data, "meta": {}}])
    labelstudio.client.sdk.import_storage.local.create(
        project=overlap, path=str(clips_storage(tmp_path, labelstudio.clips_root)))

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page()
            login(page, labelstudio.url, a.email, password_a)
            _label_next(page, labelstudio.url, project_id, hotkeys()["Worry"], labelstudio.client)
            _label_next(page, labelstudio.url, overlap, hotkeys()["Worry"], labelstudio.client)
        finally:
            browser.close()

    sync_votes(tmp_path, cfg, labelstudio.client)
    votes = read_manifest(tmp_path, "votes")
    assert len(votes) == 1
    vote = votes.iloc[0]
    assert (vote["clip_id"], vote["annotator"], vote["descriptor"], vote["label"]) == (ids[0], a.email, "Worry", "Fear")
    assert vote["lead_time_s"] > 0 and not vote["cancelled"]

    overlap_anns = labelstudio.client.sdk.annotations.list(
        labelstudio.client.sdk.tasks.list(project=overlap).items[0].id)
    assert [x.completed_by for x in overlap_anns] == [a.id]
    served = _next_task(labelstudio.url, b.email, b.password_file.read_text().strip(), overlap)
    # the finding documented above: B is served the task A already annotated (cap 2 not yet reached)
    assert served.status_code == 200 and served.json()["data"]["clip_id"] == ids[0]
    assert _next_task(labelstudio.url, a.email, password_a, overlap).status_code == 404  # A is not served it twice


def make_screen_workdir(workdir: Path, n: int, frames: int = 40, fps: int = 25) -> list[str]:
    """``n`` clips the size the clips stage cuts (640x360 scene, 224x224 crop, marked still) whose pixels change
    every frame, and clips.parquet; return the clip ids."""
    rows = [clip_row(f"screen{i:03d}", "War", **paths, num_frames=frames, fps=float(fps))
            for i, paths in enumerate(screen_clip_files(workdir, n, frames, fps))]
    write_manifest(workdir, "clips", rows)
    return [r["clip_id"] for r in rows]


def _open_stream(page, url: str, project_id: int) -> None:
    page.goto(f"{url}/projects/{project_id}/data?labeling=1")
    page.wait_for_selector("text=Worry", timeout=90_000)
    page.wait_for_function(READY, timeout=60_000)


def _box(page, selector: str, index: int = 0) -> dict:
    box = page.locator(selector).nth(index).bounding_box()
    assert box is not None, f"{selector}[{index}] is not rendered"
    return box


def _inside(box: dict, right: float, bottom: float) -> bool:
    return box["x"] >= 0 and box["y"] >= 0 and box["x"] + box["width"] <= right and box["y"] + box["height"] <= bottom


def test_labelling_screen_at_1366x768_and_review_shows_crowd_votes(labelstudio, tmp_path):
    from playwright.sync_api import sync_playwright

    from annotation.labeling_config import hotkeys

    ids = make_screen_workdir(tmp_path, 2)
    cfg = labelstudio.config(annotators_per_clip=1, gold_fraction=0, min_gold_per_group=0)
    project_id = next(iter(push_tasks(tmp_path, cfg, labelstudio.client, local_root=labelstudio.clips_root)
                           .projects.values()))
    title = cfg.labelstudio.project_title
    a = add_annotator(labelstudio.client, f"{title}-a@ferv.local", "crowd", data_dir=labelstudio.data_dir)
    e = add_annotator(labelstudio.client, f"{title}-e@ferv.local", "expert", data_dir=labelstudio.data_dir)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport=LAPTOP)
            login(page, labelstudio.url, a.email, a.password_file.read_text().strip())
            _open_stream(page, labelstudio.url, project_id)
            # first label-stream start of the project: the instructions pop up once
            assert page.locator("text=Labeling Instructions").is_visible()
            page.keyboard.press("Escape")
            page.wait_for_selector("text=Labeling Instructions", state="hidden", timeout=10_000)

            side = _box(page, ".lsf-sidepanels__wrapper_align_right")["x"]  # Label Studio's side panel
            scene, crop = _box(page, ".lsf-video", 0), _box(page, ".lsf-video", 1)
            loop, still = _box(page, "video[autoplay]"), _box(page, "img[alt*='face meant']")
            for box in (scene, crop, loop, still):  # fully on screen and left of the side panel
                assert _inside(box, min(side, LAPTOP["width"]), LAPTOP["height"]), (box, side)
            assert abs(still["x"] - loop["x"]) < 2 and still["y"] >= loop["y"] + loop["height"]  # under the loop
            # side by side: one row, left to right, no overlap
            assert scene["x"] + scene["width"] <= crop["x"] and crop["x"] + crop["width"] <= loop["x"]
            assert abs(scene["y"] - crop["y"]) < 2 and abs(crop["y"] - loop["y"]) < 2
            # the players step at the clip's own frame rate: 40 frames at 25 fps (24 fps would make it 38)
            frames = page.locator(".lsf-video-segmentation", has_text="of 40")
            frames.nth(1).wait_for(timeout=30_000)  # the counters appear once both players read their metadata
            assert frames.count() == 2
            # the face-crop loop plays by itself (no click) and loops; its pixels change
            loop_video = page.locator("video[autoplay]")
            assert loop_video.evaluate("v => [v.loop, v.autoplay, v.muted, v.paused]") == [True, True, True, False]
            first = loop_video.screenshot()
            page.wait_for_timeout(400)
            assert loop_video.screenshot() != first
            page.wait_for_function("() => document.querySelector('video[autoplay]').currentTime > 0")
            # playing the scene plays the crop (synced players; Label Studio's own videos are offscreen)
            page.locator(".lsf-video-segmentation").first.locator("button[aria-label='Play']").click()
            page.wait_for_timeout(600)
            times = page.evaluate("() => Array.from(document.querySelectorAll('video'))"
                                  ".filter(v => !v.autoplay).map(v => v.currentTime)")
            assert len(times) == 2 and min(times) > 0, times

            _label_next(page, labelstudio.url, project_id, hotkeys()["Worry"], labelstudio.client)
            provision_project(labelstudio.client, copy_title(cfg.labelstudio, 0))  # as the next push or cycle does
            _open_stream(page, labelstudio.url, project_id)
            page.wait_for_timeout(1500)
            assert not page.locator("text=Labeling Instructions").is_visible()  # not again...
            page.get_by_role("button", name="Instructions").click()  # ...but on demand
            page.wait_for_selector("text=Ctrl+Enter submits", timeout=10_000)

            sync_votes(tmp_path, cfg, labelstudio.client)
            rows = pd.DataFrame({"clip_id": [ids[0]], "group_id": "review", "copy_index": REVIEW_COPY,
                                 "is_gold": False, "position": [0]})
            add_intents(tmp_path, intent_rows(rows, "review"))  # as the cycle does for a kept group
            review = push_plan(tmp_path, cfg, labelstudio.client, local_root=labelstudio.clips_root)
            expert = browser.new_page(viewport=LAPTOP)
            login(expert, labelstudio.url, e.email, e.password_file.read_text().strip())
            _open_stream(expert, labelstudio.url, review.projects[copy_title(cfg.labelstudio, REVIEW_COPY)])
            expert.keyboard.press("Escape")
            assert expert.locator("text=Crowd votes").is_visible()
            assert expert.locator("text=Fear 1 (Worry)").is_visible()
        finally:
            browser.close()


def _green_box(png: bytes) -> tuple[float, float, float, float]:
    """Bounding box of the mark's green pixels in a screenshot."""
    import cv2

    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR).astype(int)
    b, g, r = image[..., 0], image[..., 1], image[..., 2]
    ys, xs = np.nonzero((g > 170) & (r < 110) & (b < 110))
    assert len(xs) > 50, "no marked box in the still"
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


def test_each_target_of_a_shared_scene_clip_is_marked_in_its_still(labelstudio, standard_video,
                                                                    centerface_models_dir, tmp_path):
    """Two faces side by side, cut by the real clips stage: both tasks play the same unmarked scene clip, and the
    still each shows at 1366x768 marks its own face (the green box on screen is where that target's track box
    is at the window's middle frame), not the other's."""
    from playwright.sync_api import sync_playwright

    from annotation.labeling_config import CROP_SIZE, hotkeys
    from pipeline.clips import make_clips
    from schemas.config import BuildConfig
    from tests.clips_support import make_workdir as clips_workdir

    clips_workdir(tmp_path, [(standard_video.path, "Talkshow")])
    build = BuildConfig.model_validate({"faces": {"models_dir": str(centerface_models_dir), "device": "cpu"}})
    make_clips(tmp_path, build, workers=1)
    clips = read_manifest(tmp_path, "clips")
    pairs = clips.groupby(["start_frame", "end_frame"]).filter(lambda w: len(w) == 2)
    window = pairs[pairs["start_frame"] == pairs["start_frame"].min()]
    assert len(window) == 2 and window["scene_path"].nunique() == 1
    write_manifest(tmp_path, "clips", window)
    tracks = read_manifest(tmp_path, "tracks").set_index(["track_id", "frame"])
    start, end = int(window["start_frame"].iloc[0]), int(window["end_frame"].iloc[0])
    middle = start + (end - start) // 2
    scale = CROP_SIZE / 640  # the still (640x360, as the source) is shown CROP_SIZE px wide
    expected = {row.clip_id: tuple(v * scale for v in tracks.loc[(row.track_id, middle), ["x1", "y1", "x2", "y2"]])
                for row in window.itertuples()}
    cfg = labelstudio.config("shared-scene", annotators_per_clip=1, gold_fraction=0, min_gold_per_group=0)
    project_id = next(iter(push_tasks(tmp_path, cfg, labelstudio.client, local_root=labelstudio.clips_root)
                           .projects.values()))
    a = add_annotator(labelstudio.client, "shared-scene-a@ferv.local", "crowd", data_dir=labelstudio.data_dir)
    seen = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport=LAPTOP)
            login(page, labelstudio.url, a.email, a.password_file.read_text().strip())
            for n in range(2):
                _open_stream(page, labelstudio.url, project_id)
                page.keyboard.press("Escape")  # the instructions, the first time
                still = page.locator("img[alt*='face meant']")
                still.wait_for(timeout=30_000)
                page.wait_for_function("() => document.querySelector(\"img[alt*='face meant']\").naturalWidth > 0")
                src = still.get_attribute("src")
                clip_id = next(c for c in expected if c in src)
                scene_src = page.evaluate("() => Array.from(document.querySelectorAll('video'))"
                                          ".filter(v => !v.autoplay).map(v => v.currentSrc)")
                assert any(Path(window["scene_path"].iloc[0]).name in s for s in scene_src), scene_src
                shot = still.screenshot(path=str(tmp_path / f"still-{n}.png"))
                seen[clip_id] = _green_box(shot)
                if n == 0:
                    _label_next(page, labelstudio.url, project_id, hotkeys()["Worry"], labelstudio.client)
        finally:
            browser.close()
    assert set(seen) == set(expected)
    for clip_id, box in seen.items():
        for other, truth in expected.items():
            overlap = iou(box, truth)
            assert (overlap > 0.6) if other == clip_id else (overlap < 0.1), (clip_id, other, box, truth)
