"""Benchmark of the clips stage on generated 720p videos with faces and cuts.

Prints, per input: frames/s of ``make_clips``, the ratio of its wall time to ``ffmpeg -i VIDEO -f null -``
(decode-only) and to ``scenedetect -i VIDEO detect-content`` (shots only), its CPU time beside ffmpeg's, the
export's load per source frame (face-crop frames: each encoded once and written as a JPEG; scene-clip frames:
one clip per window, shared by its faces), and peak RSS (each run in a child process; CPU time includes its
exporter processes). Targets: <= 2.5x decode-only (aim 2x); 10-minute / 1-minute peak RSS < 1.3.

    .venv/bin/python bench/clips.py [--config FILE] [--long] [--repeat N] [--stride N] [--det-size PX]
                                    [--precision P] [--out DIR] [--expression off|on|both]

``--config configs/ferv39k.yaml`` measures a build config's own stage settings (shots, faces, tracks, select,
export, clips): the reproduction's cost, not only the demo's. Where the config names SCRFD and its model is not
in the models directory, the detector available here (CenterFace) runs at the config's other settings, and the
output says so.

``--repeat N`` times each input N times, each round decode-only then make_clips back to back, and prints the
round of the median ratio and the ratios' range: on a shared machine one round's ratio moves by a tenth.

``--expression both`` runs each input with expression scoring off, then on, and prints the on/off wall ratio.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _timed(cmd: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of a command."""
    start, cpu = time.perf_counter(), _cpu(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start, _cpu(resource.RUSAGE_CHILDREN) - cpu


def child(workdir: Path, config_json: str, workers: int = 1) -> None:
    """Run make_clips in this process; print wall time, frames and this process's peak RSS as JSON."""
    from pipeline.clips import make_clips
    from schemas.config import BuildConfig
    from schemas.manifests import read_manifest

    cfg = BuildConfig.model_validate(json.loads(config_json))
    both = lambda: _cpu(resource.RUSAGE_SELF) + _cpu(resource.RUSAGE_CHILDREN)  # noqa: E731 (with its exporters)
    start, cpu = time.perf_counter(), both()
    summary = make_clips(workdir, cfg, workers=workers)
    wall, cpu = time.perf_counter() - start, both() - cpu
    frames = int(read_manifest(workdir, "shots").groupby("source_id")["end_frame"].max().sum())
    clips = read_manifest(workdir, "clips")
    clip_frames = int(clips["num_frames"].sum())
    scene_frames = int(clips.drop_duplicates("scene_path")["num_frames"].sum())
    print(json.dumps({"wall_s": wall, "cpu_s": cpu, "frames": frames, "clip_frames": clip_frames,
                      "scene_frames": scene_frames,
                      "counts": summary.counts, "failed": summary.failed, "failures": summary.failures,
                      "self_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "exporter_maxrss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))


def bench(seconds: float, root: Path, config: dict, sources: int = 1, repeat: int = 1) -> dict:
    from pipeline.acquire import acquire
    from pipeline.media import ffmpeg_exe, probe
    from pipeline.samples import long_video
    from schemas.config import BuildConfig

    video = root / f"input_{int(seconds)}s" / f"bench_{int(seconds)}s_720p.mp4"
    if not video.exists():
        video.parent.mkdir(parents=True, exist_ok=True)
        long_video(video, seconds)
    info = probe(video)
    for i in range(1, sources):  # the same frames in another container (its own bytes, so its own source id)
        copy = video.with_name(f"{video.stem}_copy{i}.mp4")
        if not copy.exists():
            subprocess.run([ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-i", str(video), "-c", "copy",
                            "-metadata", f"comment=copy {i}", str(copy)], check=True)
    # rounds of decode-only then make_clips, back to back, so each ratio is taken on the machine of its moment; a
    # new work directory each round: deleting the last one just before the timed run would time ext4 allocating
    # thousands of inodes among just-deleted ones (a kernel profile showed it as a fifth of the stage's CPU)
    rounds = []
    for _ in range(repeat):
        work = Path(tempfile.mkdtemp(prefix=f"work_{int(seconds)}s_{sources}_", dir=root))
        acquire(work, BuildConfig(), local_dir=video.parent, scene="Talkshow", search=False)
        # with several sources, the limits are one source's times, once per source (all decoded one after another)
        decode, decode_cpu = (sources * t for t in _timed([ffmpeg_exe(), "-nostdin", "-i", str(video), "-f", "null",
                                                            "-"]))
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        out = subprocess.run([sys.executable, __file__, "--child", str(work), json.dumps(config), str(sources)],
                             check=True, capture_output=True, text=True)
        children_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        result = json.loads(out.stdout.strip().splitlines()[-1])
        if result["failed"]:  # (such as a full disk): no figures from a run that did not cut its source
            sys.exit(f"bench/clips.py: make_clips failed on {video}: {'; '.join(result['failures'])}")
        rounds.append((result["wall_s"] / decode, decode, decode_cpu, result,
                       children_peak / 1024 if children_peak > before else None))
    scenedetect = sources * _timed([str(ROOT / ".venv/bin/scenedetect"), "-i", str(video), "detect-content"])[0]
    rounds.sort(key=lambda r: r[0])
    x_decode, decode, decode_cpu, result, children_peak_mb = rounds[(len(rounds) - 1) // 2]
    return {"seconds": info.duration_s, "size": f"{info.width}x{info.height}", "frames": result["frames"],
            "clips_wall_s": result["wall_s"], "decode_only_s": decode, "scenedetect_s": scenedetect,
            "clips_cpu_s": result["cpu_s"], "decode_cpu_s": decode_cpu,
            "clip_frames_per_frame": result["clip_frames"] / result["frames"],
            "scene_frames_per_frame": result["scene_frames"] / result["frames"],
            "exporter_rss_mb": result["exporter_maxrss_mb"],
            "fps": result["frames"] / result["wall_s"], "x_decode": x_decode,
            "x_scenedetect": result["wall_s"] / scenedetect, "peak_rss_mb": result["self_maxrss_mb"],
            "children_peak_rss_mb": children_peak_mb, "x_decode_range": (rounds[0][0], rounds[-1][0]), "rounds": repeat,
            "counts": result["counts"], "failed": result["failed"]}


def _spread(row: dict) -> str:
    low, high = row["x_decode_range"]
    return f"; median of {row['rounds']} rounds, {low:.2f}x-{high:.2f}x" if row["rounds"] > 1 else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", nargs=3, metavar=("WORKDIR", "CONFIG_JSON", "WORKERS"), help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=1, help="rounds per input; the round of the median ratio is "
                        "printed, with the ratios' range")
    parser.add_argument("--sources", type=int, default=1, help="sources cut at once (clips.workers); frames/s of all")
    parser.add_argument("--config", type=Path, default=None, help="a build config whose stage settings to measure")
    parser.add_argument("--long", action="store_true", help="also run the 10-minute input (slow)")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the short input")
    parser.add_argument("--long-seconds", type=float, default=600.0, help="length of the long input")
    parser.add_argument("--stride", type=int, default=None, help="override faces.stride")
    parser.add_argument("--det-size", type=int, default=None, help="override faces.det_sizes with this one size")
    parser.add_argument("--precision", choices=["auto", "fp32", "int8"], default=None, help="override faces.precision")
    parser.add_argument("--out", type=Path, default=None, help="folder for videos and work dirs (kept; default: a "
                        "temporary folder, removed at the end)")
    parser.add_argument("--expression", choices=["off", "on", "both"], default="off", help="expression scoring")
    args = parser.parse_args()
    if args.child:
        return child(Path(args.child[0]), args.child[1], int(args.child[2]))

    from pipeline.faces import models_dir, resolve_faces
    from pipeline.models import fetch_model
    from schemas.config import BuildConfig, load_config

    cfg = load_config(args.config)
    fetch_model("centerface", models_dir(cfg.faces))
    if args.expression != "off":
        from pipeline.expression.convert import onnx_model

        fetch_model("expression", models_dir(cfg.faces))
        onnx_model(models_dir(cfg.faces))  # converted once, outside the timed runs
    stages = cfg.model_dump(mode="json", include={"shots", "faces", "tracks", "select", "export", "clips"})
    faces = {**stages["faces"], "models_dir": str(models_dir(cfg.faces)),
             **({"stride": args.stride} if args.stride else {}),
             **({"precision": args.precision} if args.precision else {}),
             **({"det_sizes": [args.det_size]} if args.det_size else {})}
    if not args.config:
        faces["backend"] = "centerface"
    elif faces["backend"] != "centerface" and resolve_faces(cfg.faces.model_copy(update={"backend": "auto"})).backend \
            != faces["backend"]:
        print(f"{args.config}: its {faces['backend']} model ({faces['scrfd_model']}) is not in {faces['models_dir']}; "
              "measured with CenterFace, the detector available here, at the config's other settings")
        faces["backend"] = "centerface"
    modes = ["off", "on"] if args.expression == "both" else [args.expression]
    config = {**stages, "faces": faces, "expression": {"enabled": modes[-1]}}
    root = args.out or Path(tempfile.mkdtemp(prefix="ferv-bench-clips-"))
    if not args.out:
        atexit.register(shutil.rmtree, root, True)
    root.mkdir(parents=True, exist_ok=True)
    rows = [bench(seconds, root, {**config, "expression": {"enabled": mode}}, args.sources, args.repeat)
            for seconds in [args.seconds] + ([args.long_seconds] if args.long else []) for mode in modes]
    chosen = BuildConfig.model_validate(config)
    used = resolve_faces(chosen.faces)
    print(f"config: {args.config or 'defaults'}, faces.stride={used.stride}, det_sizes={used.det_sizes}, "
          f"backend={used.backend} ({used.precision}, CPU), shots={chosen.shots.detector}, "
          f"export preset={chosen.export.preset}, "
          f"scene_max_height={chosen.export.scene_max_height}, {args.sources} source(s) at once, "
          f"{os.cpu_count()} CPUs")
    for r, mode in zip(rows, modes * len(rows)):
        print(f"expression {mode}: {r['seconds']:.0f} s {r['size']} ({r['frames']} frames): {r['fps']:.1f} frames/s, "
              f"make_clips {r['clips_wall_s']:.1f} s = {r['x_decode']:.2f}x decode-only ({r['decode_only_s']:.1f} s"
              f"{_spread(r)}), "
              f"{r['x_scenedetect']:.2f}x scenedetect detect-content ({r['scenedetect_s']:.1f} s), "
              f"CPU {r['clips_cpu_s']:.1f} s = {r['clips_cpu_s'] / r['decode_cpu_s']:.2f}x ffmpeg's "
              f"({r['decode_cpu_s']:.1f} s), per source frame {r['clip_frames_per_frame']:.2f} face-crop and "
              f"{r['scene_frames_per_frame']:.2f} scene-clip frames written, peak RSS {r['peak_rss_mb']:.0f} MB "
              f"(an exporter process: {r['exporter_rss_mb']:.0f} MB, the shared frames counted in both); "
              f"{r['counts']}, failed {r['failed']}")
    if len(modes) == 2:
        for off, on in zip(rows[::2], rows[1::2]):
            print(f"{off['seconds']:.0f} s: expression on / off wall {on['clips_wall_s'] / off['clips_wall_s']:.3f} "
                  f"({on['clips_wall_s']:.1f} s / {off['clips_wall_s']:.1f} s; target <= 1.15)")
    elif len(rows) == 2:
        print(f"peak RSS 10-min / 1-min: {rows[1]['peak_rss_mb'] / rows[0]['peak_rss_mb']:.2f} (target < 1.3)")


if __name__ == "__main__":
    main()
