"""What "the current votes" are: the live state of the append-only ``votes.parquet``, read the same way by
the labelling process (``annotation.trust``) and the release (``pipeline.release``)."""

from __future__ import annotations

import pandas as pd

VOTE_KEY = ["server", "project_id", "annotation_id"]  # an annotation; ids restart on a re-created server


def current_votes(votes: pd.DataFrame) -> pd.DataFrame:
    """The live state of append-only votes: latest version per annotation (``VOTE_KEY``, by ``synced_at``,
    later rows winning ties), without deleted or cancelled annotations. Idempotent."""
    latest = votes.sort_values("synced_at", kind="stable").drop_duplicates(VOTE_KEY, keep="last")
    live = latest[~(latest["deleted"].astype(bool) | latest["cancelled"].astype(bool))]
    return live.astype({"copy_index": "Int64"}).sort_values(VOTE_KEY, ignore_index=True)
