"""Browser test: an annotator labels a pushed task in Label Studio's web UI (Playwright + Debian's Chromium).

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
import pytest

from annotation.media import clips_storage
from annotation.push import provision_project, push_tasks
from annotation.sync import sync_votes
from annotation.users import add_annotator
from schemas.manifests import read_manifest
from tests.labelstudio_support import make_workdir

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed at "
                                "/usr/bin/chromium (apt-get install -y chromium)")


def _login(page, url: str, email: str, password: str) -> None:
    page.goto(f"{url}/user/login/")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda u: "/user/login" not in u, timeout=60_000)


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
            _login(page, labelstudio.url, a.email, password_a)
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
