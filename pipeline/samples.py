"""Synthetic sample videos made from real photographs, with ground truth (cuts and per-frame face boxes).

Each shot shows one or more photographs moved by an affine motion (pan, zoom); a photograph's face boxes
(measured once by hand on the photo) are carried through the same motion, so every frame's true boxes are
known exactly. Used by the tests, the benchmark and ``ferv demo`` (bundled sample sources).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import cv2
import numpy as np

from pipeline.media import write_video

Box = tuple[float, float, float, float]

_INSIGHTFACE_T1 = "insightface/data/images/t1.jpg"


@dataclass(frozen=True)
class Photo:
    """A still photograph and its face boxes (x1, y1, x2, y2, photo pixels)."""

    image: np.ndarray  # RGB uint8
    faces: tuple[Box, ...]


@cache
def photo(name: str) -> Photo:
    """A bundled photograph: ``astronaut`` (1 face), ``t1`` (6 faces), ``coffee``, ``rocket`` (no face)."""
    import skimage.data

    if name == "astronaut":
        return Photo(skimage.data.astronaut(), ((178.0, 60.0, 272.0, 178.0),))
    if name == "t1":
        import insightface

        path = Path(insightface.__file__).parent.parent / _INSIGHTFACE_T1
        image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        return Photo(image, ((60.0, 269.0, 168.0, 394.0), (274.0, 155.0, 371.0, 268.0),
                             (464.0, 267.0, 572.0, 412.0), (746.0, 345.0, 847.0, 480.0),
                             (903.0, 61.0, 1010.0, 203.0), (1134.0, 270.0, 1226.0, 395.0)))
    if name in ("coffee", "rocket"):
        return Photo(getattr(skimage.data, name)(), ())
    raise KeyError(f"unknown sample photo {name!r}; use astronaut, t1, coffee or rocket")


@dataclass(frozen=True)
class Layer:
    """A photo placed so that its point ``anchor`` sits at canvas point ``at`` with ``scale``, both moving
    linearly from start to end of the shot, drawn inside canvas ``region`` (x1, y1, x2, y2; None = all)."""

    photo: str
    anchor: tuple[float, float]
    at: tuple[tuple[float, float], tuple[float, float]]
    scale: tuple[float, float]
    region: tuple[int, int, int, int] | None = None


@dataclass(frozen=True)
class ShotSpec:
    name: str
    frames: int
    layers: tuple[Layer, ...]
    background: int = 40  # grey level where no photo is drawn


@dataclass(frozen=True)
class VideoSpec:
    shots: tuple[ShotSpec, ...]
    width: int = 640
    height: int = 360
    fps: int = 25


@dataclass
class ShotTruth:
    name: str
    start: int
    end: int  # exclusive
    boxes: list[np.ndarray]  # per frame of the shot, (N, 4) float true face boxes in canvas pixels

    @property
    def has_faces(self) -> bool:
        return any(len(b) for b in self.boxes)

    @property
    def num_frames(self) -> int:
        return self.end - self.start


@dataclass
class SampleTruth:
    path: Path
    fps: int
    width: int
    height: int
    shots: list[ShotTruth] = field(default_factory=list)

    @property
    def num_frames(self) -> int:
        return self.shots[-1].end if self.shots else 0

    @property
    def cuts(self) -> list[int]:
        """First frame of every shot but the first."""
        return [s.start for s in self.shots[1:]]

    @property
    def face_free_shots(self) -> list[int]:
        return [i for i, s in enumerate(self.shots) if not s.has_faces]

    def shot(self, name: str) -> ShotTruth:
        return next(s for s in self.shots if s.name == name)


def _lerp(a: float, b: float, t: float) -> float:
    return a + (b - a) * t


def _render(spec: VideoSpec, shot: ShotSpec, i: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame ``i`` of ``shot`` (RGB) and its true face boxes."""
    canvas = np.full((spec.height, spec.width, 3), shot.background, np.uint8)
    t = i / max(shot.frames - 1, 1)
    boxes: list[Box] = []
    for layer in shot.layers:
        pic = photo(layer.photo)
        s = _lerp(*layer.scale, t)
        cx, cy = _lerp(layer.at[0][0], layer.at[1][0], t), _lerp(layer.at[0][1], layer.at[1][1], t)
        x0, y0, x1, y1 = layer.region or (0, 0, spec.width, spec.height)
        matrix = np.array([[s, 0, cx - s * layer.anchor[0] - x0], [0, s, cy - s * layer.anchor[1] - y0]])
        region = np.ascontiguousarray(canvas[y0:y1, x0:x1])
        cv2.warpAffine(pic.image, matrix, (x1 - x0, y1 - y0), dst=region, flags=cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_TRANSPARENT)
        canvas[y0:y1, x0:x1] = region
        for fx1, fy1, fx2, fy2 in pic.faces:
            box = np.array([fx1, fy1, fx2, fy2]) * s + [cx - s * layer.anchor[0], cy - s * layer.anchor[1]] * 2
            clipped = np.clip(box, [x0, y0, x0, y0], [x1, y1, x1, y1])
            area = (box[2] - box[0]) * (box[3] - box[1])
            if (clipped[2] - clipped[0]) * (clipped[3] - clipped[1]) >= 0.6 * area:  # mostly visible
                boxes.append(tuple(clipped))
    return canvas, np.array(boxes, dtype=np.float64).reshape(-1, 4)


def make_sample_video(path: str | Path, spec: VideoSpec) -> SampleTruth:
    """Render ``spec`` to an H.264 MP4 at ``path`` and return its ground truth."""
    path = Path(path)
    truth = SampleTruth(path=path, fps=spec.fps, width=spec.width, height=spec.height)
    start = 0
    for shot in spec.shots:
        truth.shots.append(ShotTruth(shot.name, start, start + shot.frames, []))
        start += shot.frames

    def frames():
        for shot, shot_truth in zip(spec.shots, truth.shots):
            for i in range(shot.frames):
                image, boxes = _render(spec, shot, i)
                shot_truth.boxes.append(boxes)
                yield image

    write_video(path, frames(), fps=spec.fps, crf=18)
    return truth


ASTRO_FACE = (225.0, 119.0)  # centre of the astronaut's face in the photo


def standard_spec(width: int = 640, height: int = 360, fps: int = 25, repeat: int = 1) -> VideoSpec:
    """The test video: astronaut pan and zoom, a face-free shot, a too-short shot, a 6-face group, two faces
    side by side, another face-free shot and a small face (about 18 s at 25 fps, ``repeat`` times that)."""
    w, h, k, f = width, height, width / 640, fps / 25  # positions and scales are laid out for 640x360, 25 fps

    def lay(name, anchor, a, b, s0, s1=None, region=None) -> Layer:
        return Layer(name, anchor, ((a[0] * k, a[1] * k), (b[0] * k, b[1] * k)), (s0 * k, (s1 or s0) * k), region)

    mid = (320, 180)
    shots = (
        ShotSpec("astro_pan", round(75 * f), (lay("astronaut", ASTRO_FACE, (200, 150), (440, 170), 0.9),)),
        ShotSpec("coffee", round(50 * f), (lay("coffee", (300, 200), mid, (340, 180), 1.0, 1.05),)),
        ShotSpec("astro_zoom", round(75 * f), (lay("astronaut", ASTRO_FACE, mid, mid, 0.6, 1.4),)),
        ShotSpec("astro_short", round(10 * f), (lay("astronaut", ASTRO_FACE, (150, 120), (160, 120), 0.7),),
                 background=200),
        ShotSpec("t1_group", round(75 * f), (lay("t1", (640, 300), mid, (290, 180), 0.5),)),
        ShotSpec("two_faces", round(75 * f), (
            lay("astronaut", ASTRO_FACE, (160, 170), (170, 175), 0.8, region=(0, 0, w // 2, h)),
            lay("t1", (796, 412), (480, 180), (470, 180), 0.8, 0.85, region=(w // 2, 0, w, h)))),
        ShotSpec("rocket", round(50 * f), (lay("rocket", (320, 213), mid, (300, 180), 0.9),)),
        ShotSpec("small_face", round(50 * f), (lay("astronaut", ASTRO_FACE, mid, (330, 180), 0.3),), background=90),
    )
    return VideoSpec(shots=shots * repeat, width=width, height=height, fps=fps)


def standard_test_video(path: str | Path) -> SampleTruth:
    """The test video at 640x360, 25 fps, 460 frames: see :func:`standard_spec`."""
    return make_sample_video(path, standard_spec())


def long_video(path: str | Path, seconds: float, width: int = 1280, height: int = 720) -> SampleTruth:
    """The standard shots repeated to at least ``seconds`` (720p by default): for benchmarks."""
    one = sum(s.frames for s in standard_spec().shots) / 25
    return make_sample_video(path, standard_spec(width, height, repeat=max(1, int(np.ceil(seconds / one)))))


# Five sources in three scenes (two scenes fed by two sources each), so that a release grouped by source
# has both a train and a test split; each source's shots are in an order of its own, so its bytes and id are.
_DEMO = (
    ("Talkshow", "two_guests", ("two_faces", "t1_group", "astro_pan")),
    ("Interview", "one_guest", ("astro_zoom", "coffee", "astro_pan")),
    ("Speech", "speaker", ("astro_pan", "rocket", "astro_zoom")),
    ("Talkshow", "host", ("astro_zoom", "coffee")),
    ("Interview", "studio", ("two_faces", "rocket")),
)


def demo_sources(out_dir: str | Path, n: int = len(_DEMO)) -> list[Path]:
    """Write ``n`` short sample sources (5 to 9 s each; by default the five distinct ones) under
    ``out_dir/<Scene>/<name>.mp4``, scene folders named after taxonomy scenes; existing files are kept."""
    shots = {s.name: s for s in standard_spec().shots}
    out = []
    for i in range(n):
        scene, name, picks = _DEMO[i % len(_DEMO)]
        path = Path(out_dir) / scene / (f"{name}.mp4" if i < len(_DEMO) else f"{name}_{i}.mp4")
        if not path.exists():
            make_sample_video(path, VideoSpec(shots=tuple(shots[p] for p in picks)))
        out.append(path)
    return out
