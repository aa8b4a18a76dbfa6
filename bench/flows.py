"""Benchmark of the make-clips flow: 12 generated sources on the default thread runner vs. 2 Dask workers
(a LocalCluster, ``runner.dask_workers`` default), every other setting at its default (demo config).

Prints the flow's wall time for each (cluster start included: what a user waits for), their ratio, and
whether both made the same clip ids. Runs on the process's temporary Prefect server (one for the whole run,
its address handed to the Dask workers).

    .venv/bin/python bench/flows.py [--sources 12] [--out DIR]
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SCENES = ("Talkshow", "Interview", "Speech")
FACE_SHOTS = ("astro_pan", "astro_zoom", "two_faces", "t1_group", "coffee", "rocket")


def make_sources(out: Path, n: int) -> None:
    """``n`` distinct sample videos (different shot orders) under scene folders."""
    from pipeline.samples import VideoSpec, make_sample_video, standard_spec

    shots = {s.name: s for s in standard_spec().shots}
    for i, picks in enumerate(itertools.islice(itertools.permutations(FACE_SHOTS, 3), n)):
        path = out / SCENES[i % len(SCENES)] / f"source_{i:02d}.mp4"
        if not path.exists():
            make_sample_video(path, VideoSpec(shots=tuple(shots[p] for p in picks)))


def build(root: Path, sources: Path, runner: dict) -> float:
    """Acquire the sources into ``root``, then the make-clips flow's wall seconds."""
    import yaml

    from flows.acquire import acquire_flow
    from flows.clips import make_clips_flow
    from schemas.config import BuildConfig

    data = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text())
    data.update(workdir=str(root), sources=[{"kind": "local", "path": str(sources)}], runner=runner)
    cfg = BuildConfig.model_validate(data)
    acquire_flow(config=cfg)
    start = time.perf_counter()
    make_clips_flow(config=cfg)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources", type=int, default=12)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="ferv-bench-flows-"))
    os.environ.setdefault("PREFECT_HOME", str(out / "prefect"))
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from schemas.manifests import read_manifest

    make_sources(out / "sources", args.sources)
    walls = {}
    for name, runner in (("threads", {"kind": "threads"}), ("dask", {"kind": "dask"})):
        root = out / name
        shutil.rmtree(root, ignore_errors=True)
        walls[name] = build(root, out / "sources", runner)
    same = sorted(read_manifest(out / "threads", "clips")["clip_id"]) == sorted(read_manifest(out / "dask", "clips")["clip_id"])
    clips = len(read_manifest(out / "threads", "clips"))
    print(f"make-clips, {args.sources} sources ({clips} clips), {os.cpu_count()} CPUs: threads {walls['threads']:.1f} s, "
          f"2 Dask workers {walls['dask']:.1f} s, dask/threads {walls['dask'] / walls['threads']:.2f}x, "
          f"same clip ids: {same}")


if __name__ == "__main__":
    main()
