"""Face detection speed: CenterFace frames/s through onnxruntime at 640x384 and 320x192 network inputs.

Frames are 1280x720 RGB (insightface's t1.jpg group photo, six faces, resized), as a 720p source gives them;
each detection size is timed end to end (resize, inference, numpy decode, NMS) and for inference alone,
for one frame per call and for batches; OpenCV's DNN module's inference is timed for comparison.
Run: ``.venv/bin/python bench/faces.py [--seconds 5] [--threads N]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2
import insightface
import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.faces import load_detector, models_dir  # noqa: E402
from pipeline.faces.boxes import Canvas  # noqa: E402
from pipeline.faces.centerface_graph import HEATMAP, INPUT, MULTIPLE, OFFSET, SCALE  # noqa: E402
from pipeline.models import fetch_model  # noqa: E402
from schemas.config import FacesConfig  # noqa: E402


def rate(fn, frames_per_call: int, seconds: float) -> float:
    fn()  # warm up
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        calls += 1
    return calls * frames_per_call / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="time per measurement")
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0: default)")
    args = parser.parse_args()

    photo = cv2.imread(str(Path(insightface.__file__).parent / "data/images/t1.jpg"))
    frame = cv2.resize(cv2.cvtColor(photo, cv2.COLOR_BGR2RGB), (1280, 720))
    folder = models_dir()
    fetch_model("centerface", folder)
    print(f"onnxruntime {ort.__version__}, providers available {ort.get_available_providers()}, "
          f"{os.cpu_count()} CPUs, threads={args.threads or 'default'}; frames 1280x720")
    print(f"{'network input':>14} {'batch':>5} {'faces':>5} {'end-to-end f/s':>15} {'inference f/s':>14} "
          f"{'decode+resize share':>20}")
    for size in (640, 320):
        inference = {}
        for batch in (1, 8):
            cfg = FacesConfig(models_dir=str(folder), det_sizes=[size], batch_size=batch, threads=args.threads)
            detector = load_detector(cfg)
            frames = [frame] * batch
            faces = len(detector.detect([frame])[0])
            canvas = Canvas.long_side(720, 1280, size, MULTIPLE)
            blob = np.ascontiguousarray(np.stack([canvas.draw(frame)] * batch).transpose(0, 3, 1, 2),
                                        dtype=np.float32)
            full = rate(lambda: detector.detect(frames), batch, args.seconds)
            infer = rate(lambda: detector.session.run([HEATMAP, SCALE, OFFSET], {INPUT: blob}), batch, args.seconds)
            inference[batch] = infer
            print(f"{f'{canvas.width}x{canvas.height}':>14} {batch:>5} {faces:>5} {full:>15.1f} {infer:>14.1f} "
                  f"{1 - full / infer:>20.1%}")
        net = cv2.dnn.readNetFromONNX(str(folder / "centerface.onnx"))  # OpenCV's DNN module, for comparison
        net.setInput(blob[:1])
        dnn = rate(lambda: net.forward([HEATMAP, SCALE, OFFSET]), 1, args.seconds)
        print(f"{'':>14} OpenCV DNN inference, batch 1: {dnn:.1f} f/s = {dnn / inference[1]:.2f}x onnxruntime's")


if __name__ == "__main__":
    main()
