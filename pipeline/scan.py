"""The decode scan: one pass over a source's frames, each frame handed to the shot cutter and to every frame
consumer (the face detector, and whatever else scores frames), each shot's end handed out as soon as it is
settled.

A consumer is anything with ``add(index, frame, planes)``: ``frame`` is the frame's pyramid in its buffer slot
(:mod:`pipeline.frames`), ``planes`` the decoder's own full-size planes (which the consumer may keep: a slot may
be reused before it runs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Protocol

import numpy as np

from pipeline import yuv
from pipeline.decode import StreamInfo, fit_width, read_frames
from pipeline.frames import FrameBuffer
from pipeline.media import TruncatedVideo
from pipeline.progress import ProgressFn, no_progress
from pipeline.select import blur_score
from pipeline.shots import ShotScorer
from schemas.config import FacesConfig, ShotsConfig

# A stream that decodes without error to its end is whole when it gives at least this share of the frames its
# header declares: container headers often count a few frames the stream does not hold (edit lists, dropped
# B-frames, a muxer's rounding), so a count a few percent short is a quirk, not a truncation. A truncated
# download stops far shorter, or fails to decode.
MIN_DECODED_SHARE = 0.9
# decoded frames the decoding thread may run ahead of the scan (at least 16 frames): while the scan closes a
# shot (its last detector batch, tracks, candidates) or waits for an earlier shot's clips, decoding goes on
# instead of leaving its core idle (72 frames of 720p; on 2 cores, 3% less wall time than 16)
DECODE_AHEAD_MB = 96


class FrameConsumer(Protocol):
    def add(self, index: int, frame: yuv.Pyramid, planes: yuv.Planes) -> None:
        """Take decoded frame ``index``."""
        ...


class ShotCuts:
    """The shot detector on frames shrunk once to ``shots.downscale_width``."""

    def __init__(self, cfg: ShotsConfig, info: StreamInfo):
        self.scorer, self.size = ShotScorer(cfg, info.fps), fit_width(info.width, info.height, cfg.downscale_width)

    def add(self, index: int, frame: yuv.Pyramid) -> list[int]:
        """Cuts settled by this frame."""
        return self.scorer.add(index, yuv.to_bgr(frame.resize(*self.size)))

    def finish(self) -> list[int]:
        return self.scorer.finish()


class FaceScan:
    """Every ``stride``-th frame to the face detector, in batches; detections kept per frame (x1, y1, x2, y2 in
    source pixels, score, blur of the decoder's luma inside the box, then the columns of ``expression``, a
    :class:`pipeline.expression.FaceScorer`: each face's expression probabilities, none when it is off or not
    given) until a closed shot takes them."""

    def __init__(self, detector, cfg: FacesConfig, info: StreamInfo, expression=None):
        self.detector, self.stride, self.batch_size = detector, cfg.stride, cfg.batch_size
        self.expression = expression
        self.size = fit_width(info.width, info.height, cfg.det_sizes[0], long_side=True)
        self.to_source = np.array([info.width / self.size[0], info.height / self.size[1]] * 2)
        self.batch: list[tuple[int, np.ndarray, np.ndarray]] = []  # frame index, detector input, decoder's luma
        self.detections: dict[int, np.ndarray] = {}

    def add(self, index: int, frame: yuv.Pyramid, planes: yuv.Planes) -> None:
        if index % self.stride == 0:
            self.batch.append((index, yuv.to_rgb(frame.resize(*self.size)), planes[0]))
            if len(self.batch) >= self.batch_size:
                self.flush()

    def flush(self) -> None:
        images = [image for _, image, _ in self.batch]
        for (index, _, luma), dets in zip(self.batch, self.detector.detect(images)):
            boxes = dets[:, :4] * self.to_source
            columns = [boxes, dets[:, 4], [blur_score(luma, b) for b in boxes]]
            if self.expression is not None:  # scored on the same crops' luma, in the same pass
                columns.append(self.expression.columns(luma, boxes))
            self.detections[index] = np.column_stack(columns)
        self.batch.clear()

    def take(self, end: int) -> dict[int, np.ndarray]:
        """The detections of the frames before ``end`` (running the pending batch first)."""
        self.flush()
        return {f: self.detections.pop(f) for f in sorted(self.detections) if f < end}


def scan(path: Path, info: StreamInfo, buffer: FrameBuffer, cuts: ShotCuts, consumers: list[FrameConsumer],
         threads: int = 0, progress: ProgressFn = no_progress, name: str = "") -> Iterator[int]:
    """Decode ``path`` once: every frame into ``buffer``, to ``cuts`` and to each consumer; yield each shot's end
    frame (exclusive) as soon as it is settled, the frame count last. A stream that stops well short of its
    header's count raises :class:`TruncatedVideo` before the last shots are handed out."""
    frames, ahead = 0, max(16, (DECODE_AHEAD_MB << 20) // (info.width * info.height * 3 // 2))
    for decoded in read_frames(path, queue_size=ahead, threads=threads):
        index, frame = decoded.index, buffer.push(decoded.index, decoded.planes)
        settled = cuts.add(index, frame)
        for consumer in consumers:
            consumer.add(index, frame, decoded.planes)
        yield from settled
        frames = index + 1
        if frames % 50 == 0:
            progress(f"{name}: frames", frames, info.declared_frames or None)
    progress(f"{name}: frames", frames, info.declared_frames or None)
    if frames == 0 or (info.declared_frames and frames < MIN_DECODED_SHARE * info.declared_frames):
        raise TruncatedVideo(f"{path}: truncated: decoded {frames} of the {info.declared_frames} frames its header "
                             "declares; re-download or remove it")
    yield from cuts.finish()
    yield frames
