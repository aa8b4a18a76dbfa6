"""Label Studio throughput: push 10,000 tasks, sync 30,000 annotations (printed, one run).

    .venv/bin/python bench/annotation.py [--tasks 10000] [--annotations-per-task 3]

Starts its own Label Studio (temporary data directory, free port) and stops it afterwards. The sync
figure is for 10,000 tasks imported with 3 annotations each (Label Studio's import takes annotations
along with tasks), then one ``sync_votes`` over them, then a second, incremental one with nothing new.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from annotation import server
from annotation.client import LSClient
from annotation.push import import_tasks, provision_project, push_tasks
from annotation.simulate import choice_result, create_annotators
from annotation.sync import sync_votes
from schemas.config import BuildConfig
from schemas.manifests import read_manifest, write_manifest
from schemas.taxonomy import TAXONOMY
from tests.labelstudio_support import clip_row


def _timed(fn, *args):
    """``fn(*args)`` and the seconds it took."""
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=10_000)
    ap.add_argument("--annotations-per-task", type=int, default=3)
    args = ap.parse_args()
    words = [d for e in TAXONOMY.expressions for d in e.descriptors]
    with tempfile.TemporaryDirectory(prefix="ferv-bench-ls-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        srv = server.start(root / "data", root / "media", port=server.free_port(), token_env="FERV_BENCH_UNUSED")
        print(f"label studio start: {time.perf_counter() - t0:.1f} s")
        try:
            client = LSClient(srv.url, srv.token)
            cfg = BuildConfig.model_validate({"labelstudio": {"url": srv.url, "project_title": "bench",
                                                              "media_root": str(root / "media")},
                                              "annotation": {"annotators_per_clip": 1, "gold_fraction": 0,
                                                             "min_gold_per_group": 0}})
            push_dir = root / "push"
            write_manifest(push_dir, "clips", [
                clip_row(f"c{i:06d}", TAXONOMY.scene_names[i % 22], scene_path=f"clips/s/{i}.mp4",
                         crop_path=f"clips/c/{i}.mp4")
                for i in range(args.tasks)])
            pushed, t_push = _timed(push_tasks, push_dir, cfg, client)
            print(f"push {pushed.created} tasks: {t_push:.1f} s ({pushed.created / t_push:.0f} tasks/s)")
            again, t_again = _timed(push_tasks, push_dir, cfg, client)
            print(f"second push (creates {again.created}): {t_again:.1f} s")

            sync_dir = root / "sync"
            users = create_annotators(client, args.annotations_per_task, prefix="bench")
            pid = provision_project(client, "bench sync")
            payloads = [{"data": {"clip_id": f"c{i:06d}", "scene_display": "x", "scene_video": "", "crop_video": ""},
                         "meta": {"clip_id": f"c{i:06d}", "group_id": "g"},
                         "annotations": [{"result": choice_result(words[(i + k) % len(words)]),
                                          "completed_by": u.id, "lead_time": 3.0} for k, u in enumerate(users)]}
                        for i in range(args.tasks)]
            ids = import_tasks(client, pid, payloads, batch_size=1000)
            now = datetime.now(UTC)
            write_manifest(sync_dir, "tasks", [
                {"clip_id": f"c{i:06d}", "project_id": pid, "task_id": t, "project_role": "copy", "copy_index": 0,
                 "group_id": "g", "is_gold": False, "pushed_at": now} for i, t in enumerate(ids)])
            synced, t_sync = _timed(sync_votes, sync_dir, cfg, client)
            print(f"sync {synced.new} annotations: {t_sync:.1f} s ({synced.new / t_sync:.0f} annotations/s)")
            again_s, t_again = _timed(sync_votes, sync_dir, cfg, client)
            print(f"incremental sync with nothing new ({again_s.new} new): {t_again:.1f} s; "
                  f"votes.parquet rows: {len(read_manifest(sync_dir, 'votes'))}")
        finally:
            server.stop(root / "data")


if __name__ == "__main__":
    main()
