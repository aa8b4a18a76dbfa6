"""Face detection: CenterFace on real photographs; SCRFD's loading and decoding on a test-built model."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import skimage.data
from onnx import TensorProto, helper

import insightface
from pipeline import yuv
from pipeline.faces import load_detector, models_dir, resolve_faces
from pipeline.faces.scrfd import resolve_scrfd_model
from pipeline.models import ModelNotFoundError
from schemas.config import FacesConfig

T1_JPG = Path(insightface.__file__).parent / "data" / "images" / "t1.jpg"
ASTRONAUT_FACE = (175.0, 70.0, 275.0, 170.0)  # measured by eye: ear to ear, brow to chin


def iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def close_up(height: int, fill: float = 0.95) -> tuple[np.ndarray, tuple[float, ...]]:
    """A 16:9 frame whose height the astronaut's head fills to ``fill``; and the face's true box in it."""
    x1, y1, x2, y2 = 150, 30, 300, 210
    scale = height * fill / (y2 - y1)
    head = cv2.resize(skimage.data.astronaut()[y1:y2, x1:x2], None, fx=scale, fy=scale)
    width = height * 16 // 9
    frame = np.full((height, width, 3), 90, np.uint8)
    ox, oy = (width - head.shape[1]) // 2, (height - head.shape[0]) // 2
    frame[oy:oy + head.shape[0], ox:ox + head.shape[1]] = head
    fx1, fy1, fx2, fy2 = ASTRONAUT_FACE
    return frame, (ox + (fx1 - x1) * scale, oy + (fy1 - y1) * scale, ox + (fx2 - x1) * scale, oy + (fy2 - y1) * scale)


@pytest.fixture(scope="module", params=["fp32", "int8"])
def centerface(request, centerface_models_dir):  # noqa: F811
    return load_detector(FacesConfig(models_dir=str(centerface_models_dir), device="cpu", precision=request.param))


@pytest.fixture(scope="module")
def t1() -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(T1_JPG)), cv2.COLOR_BGR2RGB)


def test_centerface_finds_the_astronaut(centerface):
    (dets,) = centerface.detect([skimage.data.astronaut()])
    assert dets.dtype == np.float32 and dets.shape == (1, 5)
    assert iou(dets[0], ASTRONAUT_FACE) >= 0.5
    assert dets[0, 4] >= 0.5


def test_centerface_finds_six_faces_in_the_group_photo(centerface, t1):
    (dets,) = centerface.detect([t1])
    assert len(dets) == 6
    assert (dets[:, 4] >= 0.5).all() and (np.diff(dets[:, 4]) <= 0).all()  # sorted by score
    assert (dets[:, 0] >= 0).all() and (dets[:, 2] <= t1.shape[1]).all() and (dets[:, 3] <= t1.shape[0]).all()
    sides = dets[:, 2:4] - dets[:, 0:2]
    assert ((sides > 60) & (sides < 200)).all()  # faces of about 100 px in a 1280x886 photo
    centres_x = np.sort((dets[:, 0] + dets[:, 2]) / 2)
    assert (np.diff(centres_x) > 50).all()  # six different people, not one face found twice


@pytest.mark.parametrize("name", ["coffee", "rocket"])
def test_centerface_finds_no_face_in_face_free_photos(centerface, name):
    (dets,) = centerface.detect([getattr(skimage.data, name)()])
    assert dets.shape == (0, 5)


@pytest.mark.parametrize("height", [384, 720])
def test_centerface_finds_a_close_up_filling_the_frame(centerface, height):
    frame, truth = close_up(height)
    (dets,) = centerface.detect([frame])
    assert len(dets) == 1 and iou(dets[0], truth) >= 0.5


def test_centerface_batches_mixed_sizes_like_single_frames(centerface_models_dir, t1):  # noqa: F811
    detector = load_detector(FacesConfig(models_dir=str(centerface_models_dir), device="cpu", batch_size=2))
    frames = [skimage.data.astronaut(), t1, skimage.data.coffee(), skimage.data.astronaut(), t1]
    together = detector.detect(frames)
    assert [len(d) for d in together] == [1, 6, 0, 1, 6]
    for frame, dets in zip(frames, together):
        np.testing.assert_allclose(dets, detector.detect([frame])[0], atol=1e-3)
    assert detector.detect([]) == []


def test_centerface_score_threshold_applies(centerface_models_dir, t1):  # noqa: F811
    detector = load_detector(FacesConfig(models_dir=str(centerface_models_dir), score_threshold=0.9))
    (dets,) = detector.detect([t1])
    assert 0 < len(dets) < 6 and (dets[:, 4] >= 0.9).all()


def test_int8_centerface_finds_what_fp32_finds_in_every_frame(centerface_models_dir, standard_video):  # noqa: F811
    """The quantized model, built once from the pinned one, against fp32 on every 4th frame of the test video."""
    from pipeline.decode import read_frames
    from pipeline.faces.quantize import int8_model

    built = int8_model(centerface_models_dir)
    stamp = built.stat().st_mtime_ns
    assert int8_model(centerface_models_dir).stat().st_mtime_ns == stamp  # reused, not rebuilt
    fp32, int8 = (load_detector(FacesConfig(models_dir=str(centerface_models_dir), device="cpu", precision=p))
                  for p in ("fp32", "int8"))
    frames = [yuv.to_rgb(yuv.join(*f.planes)) for f in read_frames(standard_video.path) if f.index % 4 == 0]
    faces = 0
    for frame, want, got in zip(frames, fp32.detect(frames), int8.detect(frames)):
        assert len(got) == len(want)
        for box in want:
            assert max(iou(box, other) for other in got) >= 0.7
            faces += 1
    assert faces > len(frames)  # the video is not mostly face-free: the comparison means something


def test_precision_auto_is_int8_for_centerface_on_cpu_only(tmp_path):
    cfg = FacesConfig(backend="centerface", models_dir=str(tmp_path), device="cpu")
    assert resolve_faces(cfg).precision == "int8"
    assert resolve_faces(cfg.model_copy(update={"precision": "fp32"})).precision == "fp32"
    assert resolve_faces(FacesConfig(backend="scrfd", device="cpu")).precision == "fp32"
    with pytest.raises(ValueError, match="int8 is built for centerface only"):
        resolve_faces(FacesConfig(backend="scrfd", precision="int8"))


def test_centerface_missing_model_says_how_to_fetch(tmp_path):
    with pytest.raises(ModelNotFoundError, match="ferv models fetch centerface"):
        load_detector(FacesConfig(models_dir=str(tmp_path)))


def test_cuda_request_without_cuda_warns_and_runs_on_cpu(centerface_models_dir, caplog):  # noqa: F811
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("CUDA is available here; the fallback warning cannot be provoked")
    with caplog.at_level(logging.WARNING):
        detector = load_detector(FacesConfig(models_dir=str(centerface_models_dir), device="cuda"))
    assert detector.providers == ["CPUExecutionProvider"]
    assert any("CUDAExecutionProvider" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    assert len(detector.detect([skimage.data.astronaut()])[0]) == 1


def test_models_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("FERV_MODELS_DIR", str(tmp_path / "env"))
    assert models_dir(FacesConfig(models_dir=str(tmp_path / "cfg"))) == tmp_path / "cfg"
    assert models_dir(FacesConfig()) == tmp_path / "env"
    assert models_dir() == tmp_path / "env"
    monkeypatch.delenv("FERV_MODELS_DIR")
    assert models_dir() == Path("~/.cache/ferv/models").expanduser()


# --- SCRFD: a model with SCRFD's inputs and outputs whose maps are simple functions of the input -------------
#
# Level s in (8, 16, 32) reads one colour channel c_s (R, G, B): its score map, per anchor a, is
# SCORE[s][a] * relu(mean of channel c_s over each s x s cell), so a cell of pure colour scores
# SCORE[s][a] * WHITE and every other cell 0. Its box distances (left, top, right, bottom, in stride units)
# are the constants DIST[s][a]; landmarks are 0. A pure red 8-px, green 16-px, blue 32-px cell thus decodes
# to known boxes around the anchor point (col * s, row * s) of that cell.

WHITE = (255 - 127.5) / 128.0  # a saturated channel after SCRFD's input normalisation
STRIDES = (8, 16, 32)
SCORE = {8: (0.0, 0.9), 16: (0.8, 0.0), 32: (0.7, 0.6)}
DIST = {8: ((1, 1, 1, 1), (0.5, 1.0, 1.5, 2.0)), 16: ((2.0, 1.5, 1.0, 0.5), (0, 0, 0, 0)),
        32: ((1, 1, 1, 1), (0.25, 0.25, 0.25, 0.25))}


def build_scrfd_model(path: Path, batched: bool = True, fixed_hw: tuple[int, int] | None = None) -> Path:
    """Write the SCRFD-shaped test model: input ``input.1`` (N, 3, H, W); outputs score_8/16/32 (N, K, 1),
    bbox_* (N, K, 4), kps_* (N, K, 10), K = (H/s) * (W/s) * 2 anchors; 2-D (K, C) outputs if not ``batched``;
    H and W fixed to ``fixed_hw`` if given."""
    nodes, inits, outputs = [], [], {}

    def const(name, values, shape=None, dtype=np.float32):
        arr = np.asarray(values, dtype=dtype)
        inits.append(onnx.numpy_helper.from_array(arr.reshape(shape) if shape else arr, name))
        return name

    const("flat_shape", [0, -1] if batched else [-1], dtype=np.int64)
    for s in STRIDES:
        c = STRIDES.index(s)
        nodes += [
            helper.make_node("AveragePool", ["input.1"], [f"pool{s}"], kernel_shape=[s, s], strides=[s, s]),
            helper.make_node("Slice", [f"pool{s}", const(f"st{s}", [c], dtype=np.int64),
                                       const(f"en{s}", [c + 1], dtype=np.int64), const(f"ax{s}", [1], dtype=np.int64)],
                             [f"chan{s}"]),
            helper.make_node("Relu", [f"chan{s}"], [f"pos{s}"]),
            helper.make_node("Mul", [f"pos{s}", const(f"zero{s}", 0.0)], [f"nil{s}"]),
        ]
        maps = {
            "score": ("Mul", f"pos{s}", np.array(SCORE[s]).reshape(1, 2, 1, 1), 1),
            "bbox": ("Add", f"nil{s}", np.array(DIST[s]).reshape(1, 8, 1, 1), 4),
            "kps": ("Add", f"nil{s}", np.zeros((1, 20, 1, 1)), 10),
        }
        for kind, (op, src, value, width) in maps.items():
            out = f"{kind}_{s}"
            nodes += [
                helper.make_node(op, [src, const(f"{out}_c", value)], [f"{out}_m"]),
                helper.make_node("Transpose", [f"{out}_m"], [f"{out}_t"], perm=[0, 2, 3, 1]),
                helper.make_node("Reshape", [f"{out}_t", const(f"{out}_s", [*([0] if batched else []), -1, width],
                                                                  dtype=np.int64)], [out]),
            ]
            dims = ["batch", f"n{s}", width] if batched else [f"n{s}", width]
            outputs[out] = helper.make_tensor_value_info(out, TensorProto.FLOAT, dims)
    order = [f"{kind}_{s}" for kind in ("score", "bbox", "kps") for s in STRIDES]
    input_dims = ["batch" if batched else 1, 3, *(fixed_hw or ("h", "w"))]
    graph = helper.make_graph(nodes, "scrfd_test", [helper.make_tensor_value_info("input.1", TensorProto.FLOAT,
                                                                                  input_dims)],
                              [outputs[name] for name in order], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def scrfd_frame() -> np.ndarray:
    """A 256x160 frame (half-size detection at 128: scale 0.5, canvas 128x96 with 16 rows of padding) with
    a red stride-8 cell (det row 2, col 5), a green stride-16 cell (row 3, col 1), a blue stride-32 cell
    (row 1, col 2)."""
    frame = np.zeros((160, 256, 3), np.uint8)
    for s, (row, col) in {8: (2, 5), 16: (3, 1), 32: (1, 2)}.items():
        frame[2 * row * s:2 * (row + 1) * s, 2 * col * s:2 * (col + 1) * s, STRIDES.index(s)] = 255
    return frame


def expected_scrfd_boxes() -> np.ndarray:
    """The boxes the test model must decode to on ``scrfd_frame()`` at det size 128, in frame pixels."""
    boxes = []
    for s, (row, col) in {8: (2, 5), 16: (3, 1), 32: (1, 2)}.items():
        for anchor in (0, 1):
            if SCORE[s][anchor] == 0:
                continue
            left, top, right, bottom = DIST[s][anchor]
            x, y = col * s, row * s
            box = np.array([x - left * s, y - top * s, x + right * s, y + bottom * s]) / 0.5
            box = np.clip(box, 0, [256, 160, 256, 160])
            boxes.append([*box, SCORE[s][anchor] * WHITE])
    boxes = np.array(boxes, np.float32)
    return boxes[np.argsort(-boxes[:, 4])]


@pytest.fixture(scope="module", params=[True, False], ids=["batched", "unbatched"])
def scrfd_model(request, tmp_path_factory) -> Path:
    return build_scrfd_model(tmp_path_factory.mktemp("scrfd") / "det_test.onnx", batched=request.param)


def scrfd_config(model: Path, **kw) -> FacesConfig:
    return FacesConfig(backend="scrfd", scrfd_model=str(model), device="cpu", **{"det_sizes": [128], **kw})


def test_scrfd_decodes_the_test_model_to_the_expected_boxes(scrfd_model):
    detector = load_detector(scrfd_config(scrfd_model))
    assert detector.name == "scrfd" and detector.providers == ["CPUExecutionProvider"]
    (dets,) = detector.detect([scrfd_frame()])
    expected = expected_scrfd_boxes()
    assert dets.dtype == np.float32 and dets.shape == expected.shape == (4, 5)
    np.testing.assert_allclose(dets, expected, atol=1e-3)
    # spelled out once, so the formula above cannot hide a shared mistake:
    np.testing.assert_allclose(dets[:, :4], [[72, 16, 104, 64], [0, 48, 64, 112], [64, 0, 192, 128],
                                             [112, 48, 144, 80]], atol=1e-3)


def test_scrfd_decode_agrees_with_insightface_own_detect(scrfd_model):
    from insightface.model_zoo import get_model

    reference = get_model(str(scrfd_model), providers=["CPUExecutionProvider"])
    frame = scrfd_frame()
    theirs, _ = reference.detect(frame[:, :, ::-1].copy(), input_size=(128, 128), det_thresh=0.5)  # BGR in
    ours = load_detector(scrfd_config(scrfd_model)).detect([frame])[0]
    np.testing.assert_allclose(ours, np.clip(theirs, 0, [256, 160, 256, 160, 1]), atol=1e-3)


def test_scrfd_batches_frames_of_mixed_sizes(scrfd_model):
    detector = load_detector(scrfd_config(scrfd_model, batch_size=2))
    frame = scrfd_frame()
    blank = np.zeros((100, 180, 3), np.uint8)
    together = detector.detect([frame, blank, frame, frame, blank])
    for dets, n in zip(together, (4, 0, 4, 4, 0)):
        assert len(dets) == n
    for dets in (together[0], together[2], together[3]):
        np.testing.assert_allclose(dets, expected_scrfd_boxes(), atol=1e-3)


def test_scrfd_second_scale_adds_what_only_it_finds(scrfd_model):
    """A 256x256 frame with a blue 128x128 block: at det size 64 it is one stride-32 cell, whose small
    anchor-1 box (96, 0, 160, 32) only that pass produces; the 128 pass sees four cells."""
    frame = np.zeros((256, 256, 3), np.uint8)
    frame[:128, 128:, 2] = 255
    small_box = [96, 0, 160, 32, 0.6 * WHITE]
    big_only = load_detector(scrfd_config(scrfd_model)).detect([frame])[0]
    both = load_detector(scrfd_config(scrfd_model, det_sizes=[128, 64])).detect([frame])[0]
    assert not np.any(np.all(np.abs(big_only - small_box) < 1e-3, axis=1))
    assert np.any(np.all(np.abs(both - small_box) < 1e-3, axis=1))
    assert len(both) > len(big_only)


def test_scrfd_model_with_a_fixed_input_size(tmp_path, caplog):
    model = build_scrfd_model(tmp_path / "det_fixed.onnx", batched=False, fixed_hw=(96, 128))
    with caplog.at_level(logging.WARNING):
        detector = load_detector(scrfd_config(model, det_sizes=[640, 128]))
    assert any("fixed 128x96 input" in r.getMessage() for r in caplog.records)
    np.testing.assert_allclose(detector.detect([scrfd_frame()])[0], expected_scrfd_boxes(), atol=1e-3)


def test_scrfd_finds_insightface_packs_by_name(tmp_path):
    pack = tmp_path / "buffalo_sc"
    pack.mkdir()
    model = build_scrfd_model(pack / "det_500m.onnx")
    assert resolve_scrfd_model("buffalo_sc", tmp_path) == model
    detector = load_detector(FacesConfig(backend="scrfd", scrfd_model="buffalo_sc", models_dir=str(tmp_path),
                                         det_sizes=[128]))
    np.testing.assert_allclose(detector.detect([scrfd_frame()])[0], expected_scrfd_boxes(), atol=1e-3)


def test_scrfd_missing_model_names_the_fix(tmp_path):
    with pytest.raises(ModelNotFoundError, match="det_\\*.onnx"):
        load_detector(FacesConfig(backend="scrfd", scrfd_model="buffalo_l", models_dir=str(tmp_path)))
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        load_detector(FacesConfig(backend="scrfd", scrfd_model=str(tmp_path / "det_10g.onnx")))


def test_auto_backend_is_scrfd_where_its_model_is_present(tmp_path):
    from pipeline.clips import ClipsStage
    from schemas.config import BuildConfig

    auto = FacesConfig(models_dir=str(tmp_path), device="cpu")
    offline = resolve_faces(auto)
    assert (offline.backend, offline.det_sizes) == ("centerface", [320])
    before = ClipsStage(tmp_path, BuildConfig(faces=auto)).stamp  # (the stage resolves its face settings once)
    pack = tmp_path / "buffalo_l"
    pack.mkdir()
    build_scrfd_model(pack / "det_10g.onnx")
    production = resolve_faces(auto)
    assert (production.backend, production.det_sizes) == ("scrfd", [640, 128])
    assert ClipsStage(tmp_path, BuildConfig(faces=auto)).stamp != before  # clips cut by another detector are redone
    detector = load_detector(auto.model_copy(update={"det_sizes": [128]}))
    assert detector.name == "scrfd"
    np.testing.assert_allclose(detector.detect([scrfd_frame()])[0], expected_scrfd_boxes(), atol=1e-3)
    assert resolve_faces(FacesConfig(backend="centerface", models_dir=str(tmp_path))).backend == "centerface"
