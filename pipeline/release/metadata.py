"""``metadata.parquet`` / ``metadata.csv``: one row per released clip, enough to re-cut it from its source.

The Arrow schema is declared here (``METADATA_SCHEMA``); the file's key-value metadata also carries the
export settings the frames were cut with, so ``rebuild_release`` needs nothing but this file and the
source videos.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from schemas.votes import current_votes

_S, _I, _F = pa.string(), pa.int64(), pa.float64()

METADATA_SCHEMA = pa.schema([
    pa.field("path", _S, nullable=False),  # <Scene>/<Expression>/<NNNN>
    pa.field("clip_id", _S, nullable=False),
    pa.field("split", _S, nullable=False),  # train | test
    pa.field("scene", _S, nullable=False),
    pa.field("scenario", _S, nullable=False),  # DL | WIS | SIA | AI
    pa.field("expression", _S, nullable=False),
    pa.field("label_id", _I, nullable=False),  # FERV39k id (alphabetical)
    pa.field("dfew_id", _I, nullable=False),  # DFEW order
    pa.field("source_id", _S, nullable=False),
    pa.field("source_url", _S, nullable=False),
    pa.field("source_sha256", _S, nullable=False),
    pa.field("source_title", _S),
    pa.field("source_license", _S),
    pa.field("track_id", _S, nullable=False),
    pa.field("shot_index", _I, nullable=False),
    pa.field("start_frame", _I, nullable=False),  # source frame numbers, end exclusive
    pa.field("end_frame", _I, nullable=False),
    pa.field("num_frames", _I, nullable=False),
    pa.field("start_s", _F, nullable=False),
    pa.field("end_s", _F, nullable=False),
    pa.field("fps", _F, nullable=False),
    pa.field("box_x1", _F, nullable=False),  # union of the track's boxes over the clip, source pixels
    pa.field("box_y1", _F, nullable=False),
    pa.field("box_x2", _F, nullable=False),
    pa.field("box_y2", _F, nullable=False),
    pa.field("track_boxes", _S, nullable=False),  # JSON [[frame, x1, y1, x2, y2, interpolated], ...]
    pa.field("face_px", _F, nullable=False),
    pa.field("det_score", _F, nullable=False),
    pa.field("detected_fraction", _F, nullable=False),
    pa.field("blur", _F, nullable=False),
    pa.field("label_method", _S, nullable=False),
    pa.field("label_status", _S, nullable=False),  # accepted | gold
    pa.field("confidence", _F, nullable=False),
    pa.field("n_votes", _I, nullable=False),
    pa.field("agreement", _F, nullable=False),
    pa.field("votes", _S, nullable=False),  # JSON {label: count} of the valid votes (crowd and expert)
    pa.field("descriptor", _S),  # the descriptor word most voted for the released label (ties: alphabetical)
    pa.field("face_frames", _I, nullable=False),  # JPEG frames in 2_ClipsforFaceCrop/<path>
    pa.field("face_sha256", _S, nullable=False),  # digest of the face-crop frames, in order
])
COLUMNS = METADATA_SCHEMA.names


class TrackBoxes:
    """Per-frame boxes of the tracks in ``tracks`` (rows of ``tracks.parquet``), sliced per clip as JSON."""

    def __init__(self, tracks: pd.DataFrame) -> None:
        self._tracks = {}
        for tid, rows in tracks.sort_values(["track_id", "frame"]).groupby("track_id", sort=False):
            self._tracks[tid] = (rows["frame"].to_numpy(), rows[["x1", "y1", "x2", "y2"]].to_numpy(dtype=float),
                                 rows["interpolated"].to_numpy(dtype=bool))

    def json(self, track_id: str, start: int, end: int) -> str:
        """``[[frame, x1, y1, x2, y2, interpolated], ...]`` for frames in ``[start, end)``; floats written
        exactly (``repr``), so a re-cut gets the very boxes the release was cut with."""
        if track_id not in self._tracks:
            return "[]"
        frames, boxes, interp = self._tracks[track_id]
        lo, hi = np.searchsorted(frames, [start, end])
        rows = [[int(f), *b, int(i)] for f, b, i in zip(frames[lo:hi], boxes[lo:hi].tolist(), interp[lo:hi])]
        return json.dumps(rows, separators=(",", ":"))


def valid_votes(votes: pd.DataFrame) -> pd.DataFrame:
    """The current votes (``schemas.votes``) that carry a label."""
    live = current_votes(votes)
    return live[live["label"].notna()]


def vote_counts(valid: pd.DataFrame) -> pd.Series:
    """JSON ``{label: count}`` per clip id over ``valid`` votes (:func:`valid_votes`)."""
    if valid.empty:
        return pd.Series(dtype=object)
    counts = valid.groupby(["clip_id", "label"]).size()
    return counts.groupby(level=0).apply(
        lambda s: json.dumps({k[1]: int(v) for k, v in sorted(s.items())}, separators=(",", ":")))


def top_descriptors(valid: pd.DataFrame, labels: dict[str, str]) -> dict[str, str]:
    """Per clip id, the descriptor most chosen among ``valid`` votes for its label ``labels[clip_id]``
    (ties: alphabetical); clips without such a vote are left out."""
    if valid.empty:
        return {}
    agree = valid[valid["descriptor"].notna() & (valid["label"] == valid["clip_id"].map(labels))]
    counts = agree.groupby(["clip_id", "descriptor"]).size().reset_index(name="n")
    best = counts.sort_values(["clip_id", "n", "descriptor"], ascending=[True, False, True])
    return dict(best.drop_duplicates("clip_id")[["clip_id", "descriptor"]].itertuples(index=False))


def to_table(frame: pd.DataFrame, file_metadata: dict[str, str]) -> pa.Table:
    """The metadata rows as a table of ``METADATA_SCHEMA`` with ``file_metadata`` attached."""
    arrays = [pa.array(frame[f.name], type=f.type, from_pandas=True) for f in METADATA_SCHEMA]
    schema = METADATA_SCHEMA.with_metadata({k.encode(): v.encode() for k, v in sorted(file_metadata.items())})
    return pa.Table.from_arrays(arrays, schema=schema)


def parquet_bytes(table: pa.Table) -> bytes:
    """Parquet bytes of ``table``: the same table gives the same bytes."""
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd", write_statistics=True, store_schema=True)
    return sink.getvalue()


def csv_bytes(table: pa.Table) -> bytes:
    return table.to_pandas().to_csv(index=False, lineterminator="\n").encode("utf-8")


def read_metadata(path) -> tuple[pd.DataFrame, dict[str, str]]:
    """Rows and key-value metadata of a release's ``metadata.parquet`` (schema checked)."""
    table = pq.read_table(path)
    missing = [n for n in COLUMNS if n not in table.column_names and not METADATA_SCHEMA.field(n).nullable]
    if missing:
        raise ValueError(f"{path}: not a ferv release metadata file (missing columns {missing})")
    for field in METADATA_SCHEMA:  # an older release lacks later optional columns: they read as empty
        if field.name not in table.column_names:
            table = table.append_column(field, pa.nulls(len(table), field.type))
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items() if k.startswith(b"ferv.")}
    return table.select(COLUMNS).to_pandas(), meta
