"""``REPORT.md`` and its PNG plots: this build's figures, side by side with FERV39k's published ones.

Plots are drawn with matplotlib's Agg canvas (no pyplot state) and saved without the PNG ``Software``
text chunk, so the same figures give the same bytes on every run.
"""

from __future__ import annotations

import io

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from pipeline.release import layout
from schemas.taxonomy import TAXONOMY

REF = TAXONOMY.reference
OURS, THEIRS = "#1f77b4", "#bbbbbb"


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": "ferv"}):
        fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return buf.getvalue()


def _heatmap(counts: pd.DataFrame) -> bytes:
    fig = Figure(figsize=(8, 9), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(counts.to_numpy(), cmap="Blues", aspect="auto")
    ax.set_xticks(range(counts.shape[1]), counts.columns, rotation=45, ha="right")
    ax.set_yticks(range(counts.shape[0]), counts.index)
    peak = max(int(counts.to_numpy().max()), 1)
    for (i, j), v in np.ndenumerate(counts.to_numpy()):
        ax.text(j, i, str(v), ha="center", va="center", fontsize=7, color="white" if v > peak / 2 else "black")
    ax.set_title("Clips per scene and expression (this build)")
    fig.colorbar(image, ax=ax, label="clips")
    return _png(fig)


def _share_bars(title: str, names: list[str], ours: pd.Series, theirs: dict, horizontal: bool = False) -> bytes:
    """Grouped bars of each name's share of clips: this build next to FERV39k."""
    ours_share = ours.reindex(names, fill_value=0) / max(int(ours.sum()), 1) * 100
    ref = pd.Series({n: theirs.get(n, 0) for n in names}, dtype=float)
    ref_share = ref / max(ref.sum(), 1) * 100
    fig = Figure(figsize=(8, 7 if horizontal else 4.5), layout="constrained")
    ax = fig.add_subplot()
    pos, width = np.arange(len(names)), 0.4
    bar = ax.barh if horizontal else ax.bar
    bar(pos - width / 2, ours_share.to_numpy(), width, label=f"this build ({int(ours.sum())} clips)", color=OURS)
    bar(pos + width / 2, ref_share.to_numpy(), width, label=f"FERV39k ({int(ref.sum())} clips)", color=THEIRS)
    if horizontal:
        ax.set_yticks(pos, names)
        ax.invert_yaxis()
        ax.set_xlabel("share of clips (%)")
    else:
        ax.set_xticks(pos, names)
        ax.set_ylabel("share of clips (%)")
    ax.set_title(title)
    ax.legend()
    return _png(fig)


def _histogram(title: str, values: pd.Series, bins, xlabel: str, marks: dict[str, float] | None = None) -> bytes:
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.add_subplot()
    ax.hist(values.to_numpy(dtype=float), bins=bins, color=OURS, label="this build")
    for (name, x), style in zip((marks or {}).items(), ("--", "-", ":")):
        ax.axvline(x, color="black", linestyle=style, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("clips")
    ax.set_title(title)
    ax.legend()
    return _png(fig)


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _share(n: float, total: float) -> str:
    return f"{100 * n / total:.1f}%" if total else "-"


def _side_by_side(names: list[str], ours: pd.Series, theirs: dict) -> str:
    total, ref_total = int(ours.sum()), sum(theirs.values())
    return _table(["", "this build", "share", "FERV39k", "share"],
                  [[n, int(ours.get(n, 0)), _share(ours.get(n, 0), total), theirs.get(n, 0),
                    _share(theirs.get(n, 0), ref_total)] for n in names])


def split_note(meta: pd.DataFrame, test_fraction: float) -> str:
    """How far the test share is from ``test_fraction``, and why when the sources are few."""
    n, test = len(meta), meta["split"] == "test"
    share, gap = test.mean(), 100 * (test.mean() - test_fraction)
    sizes = meta.groupby("source_id").size()
    text = (f"Test share {100 * share:.1f}% against a target of {100 * test_fraction:g}% ({gap:+.1f} points): "
            f"{int(test.sum())} of {n} clips, {meta.loc[test, 'source_id'].nunique()} of {len(sizes)} source videos. "
            "Whole source videos stay on one side (no source in both splits).")
    if abs(gap) >= 2.5 or len(sizes) < 20:
        text += (f" With {len(sizes)} sources the share can only move in steps of whole sources (the smallest "
                 f"holds {int(sizes.min())} clips, {_share(sizes.min(), n)} of the release; the largest "
                 f"{int(sizes.max())}); the split balances every scene x expression cell, or where no cell can be "
                 "split the whole release, and never leaves a split empty. More sources bring it closer.")
    missing = {split: sorted(set(meta["expression"]) - set(meta.loc[meta["split"] == split, "expression"]))
               for split in layout.SPLITS}
    for split, names in missing.items():
        if names:
            text += f" Expressions with no {split} clip: {', '.join(names)}."
    return text


def report_files(meta: pd.DataFrame, test_fraction: float) -> dict[str, bytes]:
    """``REPORT.md`` and ``report/*.png`` for the release rows ``meta`` (a metadata frame) split with a target
    test share of ``test_fraction``."""
    expressions, scenes = TAXONOMY.expression_names, TAXONOMY.scene_names
    codes = [sc.code for sc in TAXONOMY.scenarios]
    counts = pd.crosstab(meta["scene"], meta["expression"]).reindex(index=scenes, columns=expressions, fill_value=0)
    by_expression, by_scene = meta["expression"].value_counts(), meta["scene"].value_counts()
    by_scenario = meta["scenario"].value_counts()
    frames = meta["num_frames"]
    ref_frames = REF["clip_frames"]
    top = max(int(frames.max()), ref_frames["max"]) + 2
    pngs = {
        "expression_scene_counts.png": _heatmap(counts),
        "scenarios.png": _share_bars("Clips per scenario", codes, by_scenario, REF["scenarios"]),
        "expressions.png": _share_bars("Clips per expression", expressions, by_expression, REF["expressions"]),
        "scenes.png": _share_bars("Clips per scene", scenes, by_scene, REF["scenes"], horizontal=True),
        "duration.png": _histogram("Clip length", frames, np.arange(0, top + 1, 2), "frames per clip",
                                   {f"FERV39k min {ref_frames['min']}": ref_frames["min"],
                                    f"FERV39k median {ref_frames['median']}": ref_frames["median"],
                                    f"FERV39k max {ref_frames['max']}": ref_frames["max"]}),
        "agreement.png": _histogram("Annotator agreement (share of votes for the released label)",
                                    meta["agreement"], np.linspace(0, 1, 21), "agreement"),
    }
    split = pd.crosstab(meta["scene"], meta["split"]).reindex(columns=list(layout.SPLITS), fill_value=0)
    n, test = len(meta), int((meta["split"] == "test").sum())
    ref_train, ref_test = REF["splits"]["train"], REF["splits"]["test"]
    text = "\n\n".join([
        "# Release report",
        "This build's figures next to those of the published FERV39k (Wang et al., CVPR 2022).",
        _table(["", "this build", "FERV39k"], [
            ["clips", n, REF["clips"]],
            ["train / test", f"{n - test} / {test} ({_share(test, n)} test)",
             f"{ref_train} / {ref_test} ({_share(ref_test, ref_train + ref_test)} test)"],
            ["source videos", meta["source_id"].nunique(), "-"],
            ["frames per clip (min / median / max)",
             f"{int(frames.min())} / {float(frames.median()):g} / {int(frames.max())}",
             f"{ref_frames['min']} / {ref_frames['median']} / {ref_frames['max']}"],
            ["mean agreement", f"{meta['agreement'].mean():.3f}", "-"],
        ]),
        "## Split\n\n" + split_note(meta, test_fraction),
        "## Expression x scene\n\n![counts](report/expression_scene_counts.png)",
        "## Scenarios\n\n" + _side_by_side(codes, by_scenario, REF["scenarios"]) + "\n\n![scenarios](report/scenarios.png)",
        "## Expressions\n\n" + _side_by_side(expressions, by_expression, REF["expressions"])
        + "\n\n![expressions](report/expressions.png)",
        "## Scenes\n\n" + _table(["scene", "train", "test", "this build", "FERV39k"], [
            [s, int(split.loc[s, "train"]) if s in split.index else 0, int(split.loc[s, "test"]) if s in split.index else 0,
             int(by_scene.get(s, 0)), REF["scenes"][s]] for s in scenes]) + "\n\n![scenes](report/scenes.png)",
        "## Clip length and agreement\n\n![duration](report/duration.png)\n\n![agreement](report/agreement.png)",
    ]) + "\n"
    files = {f"{layout.REPORT_DIR}/{name}": data for name, data in pngs.items()}
    files[layout.REPORT] = text.encode("utf-8")
    return files
