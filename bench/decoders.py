"""Decode-only speed of the 720p benchmark input: PyAV (what the clips stage uses) with one decoder thread and
with FFmpeg's own threading, against NVIDIA's PyNvVideoCodec (NVDEC) where it is installed and a GPU is there.
Frames/s of each, and each against PyAV with one thread, measured in one run.

    .venv/bin/python bench/decoders.py [--seconds 60] [--out DIR]

``bench/gpu.sh`` installs PyNvVideoCodec and runs this on a GPU machine; elsewhere the NVDEC row says why it
was not measured.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def pyav(path: Path, threads: int) -> int:
    """Frames decoded to YUV arrays by PyAV with ``threads`` decoder threads (0: FFmpeg's choice)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = threads
        return sum(1 for frame in container.decode(stream) if frame.to_ndarray() is not None)


def nvdec(path: Path, device_memory: bool) -> int:
    """Frames decoded by PyNvVideoCodec on GPU 0, left in device memory or copied to the host."""
    import PyNvVideoCodec as nvc

    demuxer = nvc.CreateDemuxer(filename=str(path))
    decoder = nvc.CreateDecoder(gpuid=0, codec=demuxer.GetNvCodecId(), cudacontext=0, cudastream=0,
                                usedevicememory=device_memory)
    return sum(len(list(decoder.Decode(packet))) for packet in demuxer)


def nvdec_missing() -> str | None:
    """Why NVDEC cannot be measured here, or None."""
    try:
        import PyNvVideoCodec  # noqa: F401
    except ImportError as exc:
        return f"PyNvVideoCodec is not installed ({exc}); bench/gpu.sh installs it on a GPU machine"
    smi = shutil.which("nvidia-smi")
    if not smi or "GPU" not in subprocess.run([smi, "-L"], capture_output=True, text=True).stdout:
        return "no NVIDIA GPU on this machine"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the 720p input")
    parser.add_argument("--out", type=Path, default=None, help="folder for the input video (kept)")
    args = parser.parse_args()
    from pipeline.samples import long_video

    root = args.out or Path(tempfile.mkdtemp(prefix="ferv-bench-decoders-"))
    video = root / f"input_{int(args.seconds)}s" / f"bench_{int(args.seconds)}s_720p.mp4"  # as bench/clips.py
    if not video.exists():
        video.parent.mkdir(parents=True, exist_ok=True)
        long_video(video, args.seconds)
    runs = [("PyAV, 1 decoder thread (the clips stage's setting)", lambda: pyav(video, 1)),
            ("PyAV, FFmpeg's threads", lambda: pyav(video, 0))]
    why_not = nvdec_missing()
    if why_not is None:
        runs += [("PyNvVideoCodec (NVDEC), frames left on the GPU", lambda: nvdec(video, True)),
                 ("PyNvVideoCodec (NVDEC), frames copied to the host", lambda: nvdec(video, False))]
    base = None
    for name, run in runs:
        start = time.perf_counter()
        frames = run()
        fps = frames / (time.perf_counter() - start)
        base = base or fps
        print(f"{name}: {frames} frames, {fps:.0f} frames/s = {fps / base:.2f}x PyAV with 1 thread")
    if why_not:
        print(f"PyNvVideoCodec (NVDEC): not measured: {why_not}")


if __name__ == "__main__":
    main()
