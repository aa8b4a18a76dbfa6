"""The face crop as a looping animated WebP for the labeling screen (``clips/loop/<clip_id>.webp``).

Label Studio 1.23's ``<Video>`` draws frames into a canvas and neither autoplays nor loops, while an
``<Image>`` of an animated WebP plays by itself and loops, so an annotator sees the expression without a
click. Made from the face-crop clip at push time, once per clip (an existing file is kept).
"""

from __future__ import annotations

import os
from pathlib import Path

import av
import pandas as pd

LOOP_DIR = "clips/loop"
QUALITY = 80  # WebP quality: about 15 kB per second of a 224x224 crop


def loop_path(clip_id: str) -> str:
    """The loop's path relative to the work directory."""
    return f"{LOOP_DIR}/{clip_id}.webp"


def write_loop(crop_video: Path, out: Path) -> None:
    """Write ``crop_video``'s frames as an endlessly looping animated WebP at the clip's frame rate."""
    with av.open(str(crop_video)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or 25
        frames = [f.to_image() for f in container.decode(stream)]
    if not frames:
        raise ValueError(f"{crop_video}: no frames to make the face-crop loop from; cut the clip again")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.part")
    frames[0].save(tmp, format="WEBP", save_all=True, append_images=frames[1:], loop=0,
                   duration=round(1000 / float(rate)), quality=QUALITY)
    os.replace(tmp, out)


def write_loops(workdir: str | Path, clips: pd.DataFrame) -> int:
    """Make the loop of every clip (``clip_id``, ``crop_path`` rows) that has none yet; return how many."""
    workdir = Path(workdir)
    made = 0
    for clip_id, crop_path in zip(clips["clip_id"], clips["crop_path"]):
        out = workdir / loop_path(clip_id)
        if not out.exists():
            write_loop(workdir / crop_path, out)
            made += 1
    return made
