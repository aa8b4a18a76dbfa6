"""Label Studio integration: provisioning, push, simulated annotators, sync, faults, secrets (real server)."""

from __future__ import annotations

import logging
import stat
import time
import xml.etree.ElementTree as ET

import httpx
import pytest

from annotation import server
from annotation.client import LabelStudioUnavailable, LSClient
from annotation.labeling_config import hotkeys, labeling_config
from annotation.media import clips_storage
from annotation.push import copy_title, provision_project, push_tasks
from annotation.simulate import simulate
from annotation.sync import sync_votes
from annotation.users import add_annotator, list_annotators
from schemas.manifests import manifest_path, read_manifest
from schemas.taxonomy import TAXONOMY
from tests.labelstudio_support import edit_and_delete_then_sync, make_workdir

NO_GOLD = {"gold_fraction": 0, "min_gold_per_group": 0}


def test_labeling_config_lists_every_descriptor_under_its_expression_with_unique_hotkeys():
    root = ET.fromstring(labeling_config())
    choices = root.find(".//Choices")
    values = [c.get("value") for c in choices.iter("Choice")]
    words = [d for e in TAXONOMY.expressions for d in e.descriptors]
    assert len(words) == 26 and values == words + [TAXONOMY.pass_label]
    keys = [c.get("hotkey") for c in choices.iter("Choice")]
    assert len(set(keys)) == 27 and None not in keys and keys == [hotkeys()[v] for v in values]
    groups = [v for v in choices if v.tag == "View"]
    for group, expression in zip(groups, TAXONOMY.expressions):  # each group: header = expression, its words
        assert group.find("Header").get("value") == expression.name
        assert tuple(c.get("value") for c in group.iter("Choice")) == expression.descriptors
    assert {v.get("name") for v in root.iter("Video")} == {"scene", "crop"}
    assert root.find("Header").get("value") == "$scene_display"


def test_push_creates_one_task_per_clip_and_copy_and_second_push_none(labelstudio, tmp_path):
    ids = make_workdir(tmp_path, 4)
    cfg = labelstudio.config(**NO_GOLD)
    client = labelstudio.client
    first = push_tasks(tmp_path, cfg, client, local_root=labelstudio.clips_root)
    assert first.created == 12 and first.existing == 0 and len(first.projects) == 3
    tasks = read_manifest(tmp_path, "tasks")
    assert len(tasks) == 12 and set(tasks["copy_index"]) == {0, 1, 2}
    for copy_index, group in tasks.groupby("copy_index"):
        assert sorted(group["clip_id"]) == ids and group["project_id"].nunique() == 1
        assert group["project_id"].iloc[0] == first.projects[copy_title(cfg.labelstudio, copy_index)]

    task = client.sdk.tasks.get(str(tasks["task_id"].iloc[0]))
    title = copy_title(cfg.labelstudio, int(tasks["copy_index"].iloc[0]))
    clip_id = tasks["clip_id"].iloc[0]
    storage = clips_storage(tmp_path, labelstudio.clips_root)  # a link in the media root to WORKDIR/clips
    assert storage.parent == labelstudio.clips_root and storage.resolve() == (tmp_path / "clips").resolve()
    assert [s.path for s in client.sdk.import_storage.local.list(project=first.projects[title])] == [str(storage)]
    assert task.data["clip_id"] == clip_id and task.meta["clip_id"] == clip_id
    assert task.data["crop_video"] == f"/data/local-files/?d={storage.name}/crop/{clip_id}.mp4"
    served = httpx.get(labelstudio.url + task.data["crop_video"],
                       headers={"Authorization": f"Token {labelstudio.token}"})
    assert served.status_code == 200 and served.content == (tmp_path / f"clips/crop/{clip_id}.mp4").read_bytes()

    second = push_tasks(tmp_path, cfg, client, local_root=labelstudio.clips_root)
    assert second.created == 0 and second.existing == 12 and second.projects == first.projects
    assert len(read_manifest(tmp_path, "tasks")) == 12
    assert all(client.sdk.projects.get(pid).task_number == 4 for pid in first.projects.values())
    titles = [p.title for p in client.sdk.projects.list()]
    assert all(titles.count(t) == 1 for t in first.projects)  # re-provisioning updated, did not duplicate


def test_push_resumes_after_a_crash_before_tasks_parquet_without_duplicates(labelstudio, tmp_path):
    make_workdir(tmp_path, 3)
    cfg = labelstudio.config(annotators_per_clip=1, **NO_GOLD)
    first = push_tasks(tmp_path, cfg, labelstudio.client, local_root=labelstudio.clips_root)
    before = read_manifest(tmp_path, "tasks")
    manifest_path(tmp_path, "tasks").unlink()  # the crash: tasks imported, tasks.parquet never written
    again = push_tasks(tmp_path, cfg, labelstudio.client, local_root=labelstudio.clips_root)
    assert again.created == 0 and again.recovered == 3
    after = read_manifest(tmp_path, "tasks")
    assert sorted(after["task_id"]) == sorted(before["task_id"])
    assert labelstudio.client.sdk.projects.get(next(iter(first.projects.values()))).task_number == 3


def test_three_simulated_annotators_sync_exactly_their_votes_and_edits_and_deletes(labelstudio, tmp_path):
    ids = make_workdir(tmp_path, 4)
    cfg = labelstudio.config(**NO_GOLD)
    client = labelstudio.client
    push_tasks(tmp_path, cfg, client, local_root=labelstudio.clips_root)
    tasks = read_manifest(tmp_path, "tasks")
    per_copy = [dict(zip(g["clip_id"], g["task_id"])) for _, g in tasks.sort_values("copy_index").groupby("copy_index")]
    truth = dict(zip(ids, ["Happy", "Sad", "Calm", "PASS"]))
    sims = simulate(client, per_copy, truth, accuracies=[1.0, 1.0, 0.0], seed=1, prefix=f"{cfg.labelstudio.project_title}-a")

    first = sync_votes(tmp_path, cfg, client)
    assert (first.new, first.updated, first.deleted) == (12, 0, 0)
    votes = read_manifest(tmp_path, "votes")
    expected = {(sim.user.email, clip): (aid, d) for sim, posted in sims for clip, (aid, d) in posted.items()}
    got = {(r.annotator, r.clip_id): (r.annotation_id, r.descriptor) for r in votes.itertuples()}
    assert got == expected
    mapping = TAXONOMY.descriptor_to_expression()
    assert all(r.label == mapping.get(r.descriptor, r.descriptor) for r in votes.itertuples())
    good = votes[votes["annotator"] != sims[2][0].user.email]
    assert list(good.sort_values("clip_id").drop_duplicates("clip_id")["label"]) == ["Happy", "Sad", "Neutral", "PASS"]
    wrong = votes[votes["annotator"] == sims[2][0].user.email]
    assert all(r.label != {"Calm": "Neutral"}.get(truth[r.clip_id], truth[r.clip_id]) for r in wrong.itertuples())
    assert set(votes["role"]) == {"crowd"} and (votes["lead_time_s"] == 4.0).all()

    assert sync_votes(tmp_path, cfg, client).new == 0 and len(read_manifest(tmp_path, "votes")) == 12

    votes = edit_and_delete_then_sync(tmp_path, cfg, client, sims, ids)
    assert len(votes) == 14  # history kept: the old versions stay


def test_annotators_get_roles_and_a_private_one_time_password(labelstudio):
    expert = add_annotator(labelstudio.client, "expert-one@ferv.local", "expert", data_dir=labelstudio.data_dir)
    assert expert.password_file is not None and stat.S_IMODE(expert.password_file.stat().st_mode) == 0o600
    roles = {a.email: a.role for a in list_annotators(labelstudio.client)}
    assert roles["expert-one@ferv.local"] == "expert"
    with httpx.Client(base_url=labelstudio.url) as web:  # the password logs in through the web form
        web.get("/user/login/")
        resp = web.post("/user/login/", data={"email": expert.email, "password": expert.password_file.read_text().strip(),
                                              "csrfmiddlewaretoken": web.cookies["csrftoken"]},
                        headers={"Referer": labelstudio.url + "/user/login/"})
        assert web.get("/api/current-user/whoami").json()["email"] == expert.email, resp.status_code


def test_label_studio_down_gives_a_clear_message_after_bounded_retries(caplog):
    client = LSClient(f"http://127.0.0.1:{server.free_port()}", "not-a-real-token", retries=2, backoff_s=0.05)
    start = time.monotonic()
    with caplog.at_level(logging.WARNING), pytest.raises(LabelStudioUnavailable) as err:
        client.check()
    assert "did not answer" in str(err.value) and "ferv labelstudio up" in str(err.value) and "3 tries" in str(err.value)
    assert time.monotonic() - start < 10
    assert sum("retry" in r.getMessage() for r in caplog.records) == 2


def test_token_never_appears_in_logs_or_manifests(labelstudio, tmp_path, caplog, capsys):
    ids = make_workdir(tmp_path, 2)
    cfg = labelstudio.config(annotators_per_clip=1, **NO_GOLD)
    with caplog.at_level(logging.DEBUG):
        push_tasks(tmp_path, cfg, labelstudio.client, local_root=labelstudio.clips_root)
        tasks = read_manifest(tmp_path, "tasks")
        simulate(labelstudio.client, [dict(zip(tasks["clip_id"], tasks["task_id"]))], dict.fromkeys(ids, "Happy"),
                 [1.0], prefix=f"{cfg.labelstudio.project_title}-t")
        sync_votes(tmp_path, cfg, labelstudio.client)
        print(repr(labelstudio), repr(labelstudio.client))
    token = labelstudio.token
    out = capsys.readouterr()
    assert token not in caplog.text and token not in out.out and token not in out.err
    assert len(read_manifest(tmp_path, "votes")) == 2
    for path in tmp_path.rglob("*.parquet"):
        assert token.encode() not in path.read_bytes(), path
    server_log = (labelstudio.data_dir / server.LOG_FILE).read_bytes()
    assert token.encode() not in server_log
    assert stat.S_IMODE((labelstudio.data_dir / server.TOKEN_FILE).stat().st_mode) == 0o600


def test_reprovisioning_updates_the_existing_project(labelstudio):
    title = labelstudio.config().labelstudio.project_title + " solo"
    first = provision_project(labelstudio.client, title)
    labelstudio.client.sdk.projects.update(first, label_config="<View><Text name='t' value='$x'/></View>")
    assert provision_project(labelstudio.client, title) == first
    assert "descriptor" in labelstudio.client.sdk.projects.get(first).label_config
