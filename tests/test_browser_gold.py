"""Browser test (Playwright + Debian's Chromium): an expert settles a gold clip in the gold project and
reviews a group in the review project through Label Studio's web UI; the cycle does every other step."""

from __future__ import annotations


import pytest

from annotation.cycle import run_cycle
from annotation.gold import plan_gold, read_gold
from annotation.labeling_config import hotkeys
from annotation.push import push_plan
from annotation.simulate import SimulatedAnnotator
from annotation.users import add_annotator, ensure_user
from schemas.manifests import read_manifest
from tests.browser_support import ARGS, CHROMIUM, LAPTOP, login, needs_chromium
from tests.labelstudio_support import make_workdir

pytestmark = [pytest.mark.labelstudio, needs_chromium]


def _label_stream(page, url: str, client, project_id: int, word: str, n_tasks: int) -> None:
    """Label ``n_tasks`` tasks in a row in the project's label stream: the ``word``'s hotkey, Ctrl+Enter,
    and wait until Label Studio holds the annotation before the next task."""
    page.goto(f"{url}/projects/{project_id}/data?labeling=1")
    for done in range(1, n_tasks + 1):
        page.wait_for_selector(f"text={word}", timeout=90_000)
        page.wait_for_timeout(1500)  # the editor binds its hotkeys after the first render
        page.keyboard.press(hotkeys()[word])
        page.wait_for_selector(f"input[name={word}]:checked", state="attached", timeout=10_000)
        page.keyboard.press("Control+Enter")
        for _ in range(60):
            if client.sdk.projects.get(project_id).num_tasks_with_annotations >= done:
                break
            page.wait_for_timeout(500)
        else:
            raise AssertionError(f"annotation {done} never reached project {project_id}")


def test_expert_settles_gold_and_reviews_a_group_in_the_browser(labelstudio, tmp_path):
    from playwright.sync_api import sync_playwright

    client = labelstudio.client
    ids = make_workdir(tmp_path, 3)
    cfg = labelstudio.config(annotators_per_clip=1, max_annotators_per_clip=1, group_size=2)
    cfg = cfg.model_copy(update={"aggregate": cfg.aggregate.model_copy(update={"min_votes": 1})})
    title = cfg.labelstudio.project_title
    plan_gold(tmp_path, n=1)
    gold_project = push_plan(tmp_path, cfg, client, local_root=labelstudio.clips_root).projects[f"{title} gold"]
    gold_clip = read_manifest(tmp_path, "plan")["clip_id"].iloc[0]
    expert = add_annotator(client, f"{title}-expert@ferv.local", "expert", data_dir=labelstudio.data_dir)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport=LAPTOP)
            login(page, labelstudio.url, expert.email, expert.password_file.read_text().strip())
            _label_stream(page, labelstudio.url, client, gold_project, "Worry", 1)  # Worry is Fear

            # the cycle syncs the expert's decision into gold.parquet and mixes it into the new group
            run_cycle(tmp_path, cfg, client, local_root=labelstudio.clips_root)
            gold = read_gold(tmp_path)
            assert gold[["clip_id", "label", "descriptor", "expert"]].values.tolist() == [
                [gold_clip, "Fear", "Worry", expert.email]]
            copy = read_manifest(tmp_path, "tasks").query("project_role == 'copy'")
            assert sorted(copy["clip_id"]) == sorted(ids) and copy.set_index("clip_id")["is_gold"][gold_clip]

            crowd = SimulatedAnnotator(ensure_user(client, f"{title}-crowd@ferv.local", "crowd"), 1.0)
            crowd.label(client, dict(zip(copy["clip_id"], copy["task_id"].astype(int))),
                        {c: "Happy" for c in ids} | {gold_clip: "Fear"})
            run_cycle(tmp_path, cfg, client, local_root=labelstudio.clips_root)  # Accept -> expert review
            review = read_manifest(tmp_path, "tasks").query("project_role == 'review'")
            assert sorted(review["clip_id"]) == sorted(set(ids) - {gold_clip})

            _label_stream(page, labelstudio.url, client, int(review["project_id"].iloc[0]), "Worry", 2)
        finally:
            browser.close()

    run_cycle(tmp_path, cfg, client, local_root=labelstudio.clips_root)
    labels = read_manifest(tmp_path, "labels").set_index("clip_id")
    assert labels.loc[review["clip_id"], ["label", "crowd_label", "source"]].values.tolist() == [
        ["Fear", "Happy", "expert"]] * 2
    assert labels.loc[gold_clip, ["label", "status"]].tolist() == ["Fear", "gold"]
