"""Label Studio throughput of the trusted-labelling loop (printed, one run, its own server).

    .venv/bin/python bench/annotation.py --ferv39k [--scale 0.05] [--db sqlite]
    .venv/bin/python bench/annotation.py [--clips 3334] [--copies 3] [--group-size 200]

``--ferv39k`` is FERV39k's size: 86,000 candidate clips x 3 copies in groups of 200 (about 5% gold mixed in:
about 271,000 tasks, 260,000 annotations); ``--scale`` shrinks it. Figures:

1. push every task (plan + import), then a push that creates nothing;
2. a second work directory whose tasks are imported with one annotation each (Label Studio's import takes
   annotations along with tasks; posting 260k annotations one by one would take hours): its first sync
   (a full read), a sync with nothing new, and a sync after 1% new annotations (posted through the API);
3. one full cycle over it (sync, verdicts, re-push of Unacceptable copies, expert review, labels), with
   seconds per step: "plan" (verdicts and intents) and "labels" are the cycle's own work.

``--db postgresql`` is for Label Studio on PostgreSQL (a throw-away cluster); it says so and stops until
``annotation.server`` can start Label Studio on PostgreSQL.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd

from annotation import server
from annotation.client import LSClient
from annotation.cycle import run_cycle
from annotation.push import (copy_title, ensure_storage, import_tasks, plan_new_groups, provision_project, push_tasks,
                             served_clips, task_payload)
from annotation.simulate import choice_result, create_annotators
from annotation.sync import sync_votes
from schemas.config import BuildConfig
from schemas.manifests import append_manifest, read_manifest, write_manifest
from schemas.taxonomy import TAXONOMY
from pipeline.synthetic import clip_row
from pipeline.synthetic import gold_frame, truth_labels

FERV39K_CLIPS = 86_000
WORDS = {e.name: e.descriptors for e in TAXONOMY.expressions}


def _timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def _workdir(path: Path, n_clips: int, n_gold: int) -> dict[str, str]:
    """clips.parquet with n_clips candidates and n_gold gold clips (gold.parquet); returns the truth."""
    ids = [f"c{i:06d}" for i in range(n_clips + n_gold)]
    write_manifest(path, "clips", [clip_row(c, TAXONOMY.scene_names[i % 22], scene_path=f"clips/s/{c}.mp4",
                                            crop_path=f"clips/c/{c}.mp4") for i, c in enumerate(ids)])
    truth = truth_labels(ids, seed=0)
    write_manifest(path, "gold", gold_frame({c: truth[c] for c in ids[n_clips:]}))
    return truth


def _import_annotated(path: Path, cfg: BuildConfig, client: LSClient, truth: dict[str, str], n_users: int,
                      bad_share: float, later_share: float) -> tuple[int, list[tuple[int, dict]]]:
    """Plan the work directory's groups, then import every copy's tasks with one annotation each: each
    (group, copy) done by one of ``n_users`` annotators, right on every clip, except ``bad_share`` of the
    copies, wrong on every clip (so judged Unacceptable). ``later_share`` of the tasks are imported without
    their annotation: returned as (task id, annotation) to post later. Returns annotations imported too."""
    plan_new_groups(path, cfg, read_manifest(path, "clips"))
    plan = read_manifest(path, "plan")
    clips = read_manifest(path, "clips").set_index("clip_id", drop=False)
    users = create_annotators(client, n_users, prefix="benchann")
    rng = random.Random(0)
    total, later = 0, []
    for copy_index, rows in plan.groupby("copy_index"):
        title = copy_title(cfg.labelstudio, int(copy_index))
        pid = provision_project(client, title)
        storage = served_clips(cfg.labelstudio, path, None)
        ensure_storage(client, pid, cfg.labelstudio, storage)
        rows = rows.sort_values(["group_id", "position"])
        groups = {g: i for i, g in enumerate(rows["group_id"].unique())}
        payloads, held = [], []
        for r in rows.itertuples(index=False):
            g = groups[r.group_id]
            user = users[(g * 3 + int(copy_index)) % n_users]
            bad = random.Random(f"{r.group_id}:{copy_index}").random() < bad_share
            label = truth[r.clip_id] if not bad else TAXONOMY.expression_names[
                (TAXONOMY.expression_names.index(truth[r.clip_id]) + 1) % 7]
            payload = task_payload(clips.loc[r.clip_id], r._asdict(), cfg.labelstudio, path, storage)
            annotation = {"result": choice_result(rng.choice(WORDS[label])), "completed_by": user.id,
                          "lead_time": 3.0}
            if rng.random() < later_share:
                held.append((len(payloads), annotation))
            else:
                payload["annotations"] = [annotation]
            payloads.append(payload)
        ids = import_tasks(client, pid, payloads, cfg.labelstudio.batch_size)
        later += [(ids[i], annotation) for i, annotation in held]
        total += len(payloads) - len(held)
        now = datetime.now(UTC)
        append_manifest(path, "tasks", [
            {"clip_id": r.clip_id, "project_id": pid, "task_id": t, "project_role": "copy",
             "copy_index": int(copy_index), "group_id": r.group_id, "is_gold": bool(r.is_gold), "pushed_at": now,
             "attempt": 0} for r, t in zip(rows.itertuples(index=False), ids)])
    return total, later


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ferv39k", action="store_true", help=f"{FERV39K_CLIPS:,} clips x 3 copies, groups of 200")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply the number of clips")
    ap.add_argument("--clips", type=int, default=3334, help="clips without --ferv39k (x 3 copies: ~10,000 tasks)")
    ap.add_argument("--copies", type=int, default=3)
    ap.add_argument("--group-size", type=int, default=200)
    ap.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--new-share", type=float, default=0.01, help="share of new annotations for the third sync")
    ap.add_argument("--push-only", action="store_true", help="stop after the push figures (no sync, no cycle)")
    args = ap.parse_args()
    if args.db == "postgresql" and server.Postgres.from_env() is None:
        sys.exit("--db postgresql: name an empty PostgreSQL database for Label Studio with DJANGO_DB=default and "
                 "POSTGRE_NAME, POSTGRE_USER, POSTGRE_PASSWORD, POSTGRE_HOST, POSTGRE_PORT (as the team stack does)")
    if args.db == "sqlite":
        os.environ.pop("DJANGO_DB", None)  # Label Studio on SQLite in its data directory
    n_clips = int((FERV39K_CLIPS if args.ferv39k else args.clips) * args.scale)
    n_gold = max(20, n_clips // 400)
    annotation = {"annotators_per_clip": args.copies, "max_annotators_per_clip": max(5, args.copies),
                  "group_size": args.group_size}
    print(f"{n_clips:,} clips + {n_gold} gold, {args.copies} copies, groups of {args.group_size}, {args.db}")
    with tempfile.TemporaryDirectory(prefix="ferv-bench-ls-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        srv = server.start(root / "data", root / "media", port=server.free_port(), token_env="FERV_BENCH_UNUSED")
        print(f"label studio start: {time.perf_counter() - t0:.1f} s")
        try:
            client = LSClient(srv.url, srv.token, timeout_s=600)

            def config(title: str) -> BuildConfig:
                return BuildConfig.model_validate({"labelstudio": {"url": srv.url, "project_title": title,
                                                                   "media_root": str(root / "media")},
                                                   "annotation": annotation})

            push_dir = root / "push"
            _workdir(push_dir, n_clips, n_gold)
            cfg = config("bench")
            pushed, t_push = _timed(push_tasks, push_dir, cfg, client, local_root=root / "media")
            print(f"push {pushed.created:,} tasks: {t_push:.1f} s ({pushed.created / t_push:.0f} tasks/s)")
            again, t_again = _timed(push_tasks, push_dir, cfg, client, local_root=root / "media")
            print(f"push that creates nothing ({again.created} created, {again.existing:,} there): {t_again:.1f} s")
            # the limit: Label Studio importing the same kind of task bare, a third as many, in one project
            n_bare = pushed.created // 3
            bare = [{"data": {"clip_id": f"b{i}", "scene_display": "x", "scene_video": "/data/local-files/?d=x",
                              "crop_video": "/data/local-files/?d=y", "fps": 25.0, "crop_loop": "<p>x</p>"}, "meta": {"task_key": f"b{i}"}}
                    for i in range(n_bare)]
            bare_pid = provision_project(client, "bench bare import")
            _, t_bare = _timed(import_tasks, client, bare_pid, bare, cfg.labelstudio.batch_size)
            print(f"bare import of {n_bare:,} tasks: {t_bare:.1f} s ({n_bare / t_bare:.0f} tasks/s); ferv's push runs at "
                  f"{(pushed.created / t_push) / (n_bare / t_bare):.2f} of that rate")

            if args.push_only:
                return
            sync_dir = root / "sync"
            truth = _workdir(sync_dir, n_clips, n_gold)
            cfg = config("benchsync")
            (n_ann, later), t_import = _timed(_import_annotated, sync_dir, cfg, client, truth, 30, 0.02,
                                              args.new_share)
            print(f"(setup) import {n_ann + len(later):,} tasks, {n_ann:,} with their annotation: {t_import:.1f} s")
            full, t_full = _timed(sync_votes, sync_dir, cfg, client)
            print(f"first sync, {full.new:,} annotations (a full read): {t_full:.1f} s")
            idle, t_idle = _timed(sync_votes, sync_dir, cfg, client)
            print(f"sync with nothing new ({idle.new} new, {idle.full} projects read in full): {t_idle:.1f} s")

            t1 = time.perf_counter()
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(lambda a: client.call("post annotation", client.sdk.annotations.create, a[0], **a[1]),
                              later))
            print(f"(setup) post the other {len(later):,} annotations one by one (4 at a time): "
                  f"{time.perf_counter() - t1:.1f} s")
            some, t_some = _timed(sync_votes, sync_dir, cfg, client)
            print(f"sync with {len(later) / (n_ann + len(later)):.1%} new ({some.new:,} new, {some.full} projects read in full): "
                  f"{t_some:.1f} s")

            cycle, t_cycle = _timed(run_cycle, sync_dir, cfg, client, local_root=root / "media")
            steps = ", ".join(f"{k} {v:.1f} s" for k, v in cycle.seconds.items())
            print(f"cycle: {t_cycle:.1f} s ({steps}); copies {cycle.verdicts}; {cycle.requeued:,} tasks re-pushed, "
                  f"{cycle.review:,} clips to review, {cycle.push.created:,} tasks created, {cycle.labels:,} labels")
            print(f"cycle's own work (plan + labels): {cycle.seconds['plan'] + cycle.seconds['labels']:.1f} s; "
                  f"votes.parquet rows: {len(read_manifest(sync_dir, 'votes')):,}")
            again, t_again = _timed(run_cycle, sync_dir, cfg, client, local_root=root / "media")
            print(f"second cycle (nothing new): {t_again:.1f} s, {again.push.created} tasks created")
        finally:
            server.stop(root / "data")


if __name__ == "__main__":
    pd.set_option("display.width", 200)
    main()
