"""Release build speed as ratios, measured in one run on a generated labelled work directory.

Prints the time of ``build_release`` against a plain ``shutil.copytree`` of the same clip files (the copy
limit), of a second, no-op build, of ``check_release`` and of the Hugging Face and WebDataset exports.

    .venv/bin/python -m bench.release [--sources 60] [--clips 8]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from pipeline.release import build_release, check_release, export_release
from schemas.config import BuildConfig
from schemas.taxonomy import TAXONOMY
from tests.release_support import SourcePlan, make_workdir


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=60)
    parser.add_argument("--clips", type=int, default=8, help="clips per source")
    args = parser.parse_args()
    names, scenes = TAXONOMY.expression_names, TAXONOMY.scene_names
    plans = [SourcePlan(f"s{i}", scenes[i % len(scenes)], tuple(names[(i + k) % 7] for k in range(args.clips)))
             for i in range(args.sources)]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        work = make_workdir(root / "work", plans)
        cfg = BuildConfig()
        copy = _timed(lambda: shutil.copytree(work / "clips", root / "copy"))
        build = _timed(lambda: build_release(work, root / "out", cfg))
        again = _timed(lambda: build_release(work, root / "out", cfg))
        check = _timed(lambda: check_release(root / "out"))
        hf = _timed(lambda: export_release(root / "out", "hf", root / "hf"))
        wds = _timed(lambda: export_release(root / "out", "webdataset", root / "wds"))
        files = sum(1 for p in (root / "out").rglob("*") if p.is_file())
    n = args.sources * args.clips
    print(f"{n} clips, {files} release files")
    print(f"build / copytree of the clip files: {build / copy:.2f}  ({build:.2f} s vs {copy:.2f} s)")
    print(f"no-op rebuild / build:             {again / build:.2f}")
    print(f"check / build:                     {check / build:.2f}")
    print(f"hf export / build:                 {hf / build:.2f}")
    print(f"webdataset export / build:         {wds / build:.2f}")


if __name__ == "__main__":
    main()
