"""Quality-control report of the annotation: copy verdicts, annotator quality, progress per scene, and
the team lead's plots of them (progress per scene and scenario, gold accuracy and agreement per annotator
over time, copies by verdict) for the HTML report and a Prefect artifact.

Plots are drawn on matplotlib's Agg canvas (no pyplot state); each comes with the table of exactly the
numbers it draws (:class:`Plot`), so what a plot shows can be checked and read without the image.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from annotation.aggregate import unclear_clips
from annotation.gold import gold_labels
from annotation.trust import ACCEPT, COPY_KEY, IMPROPER, PENDING, UNACCEPTABLE, expert_decisions, load_state, requeue
from schemas.config import AnnotationConfig, BuildConfig
from schemas.manifests import read_manifest

TITLES = {
    "copies": "Group copies: gold correct rate and verdict",
    "annotators": "Annotators: gold accuracy, agreement, time per clip",
    "progress_scene": "Progress per scene",
    "progress_scenario": "Progress per scenario",
    "over_time": "Annotators over time: gold accuracy and peer agreement per period",
    "requeue": "Group copies to assign again",
    "needs_more": "Clips without a clear majority (give more annotators)",
}


@dataclass
class QCReport:
    copies: pd.DataFrame
    annotators: pd.DataFrame
    progress_scene: pd.DataFrame
    progress_scenario: pd.DataFrame
    over_time: pd.DataFrame
    requeue: pd.DataFrame
    needs_more: pd.DataFrame

    def tables(self) -> dict[str, pd.DataFrame]:
        return {name: getattr(self, name) for name in TITLES}

    @property
    def flagged(self) -> list[str]:
        return sorted(self.annotators.loc[self.annotators["flagged"], "annotator"])


def peer_agreed(crowd: pd.DataFrame) -> pd.DataFrame:
    """The crowd votes that can be compared with the other annotators' majority on the same clip of the
    same group (the others have a unique most frequent label), with ``agreed``: equal to it."""
    v = crowd[crowd["label"].notna()].assign(_group=lambda f: f["group_id"].fillna(""))
    v = v[["annotation_id", "annotator", "_group", "clip_id", "label", "created_at"]]
    pairs = v.merge(v, on=["_group", "clip_id"], suffixes=("", "_o"))
    pairs = pairs[pairs["annotator"] != pairs["annotator_o"]]
    counts = pairs.groupby(["annotation_id", "label_o"]).size().rename("n").reset_index()
    top = counts.groupby("annotation_id")["n"].transform("max")
    modes = counts[counts["n"] == top]
    unique = modes.drop_duplicates("annotation_id", keep=False).set_index("annotation_id")["label_o"]
    compared = v[v["annotation_id"].isin(unique.index)]
    return compared.assign(agreed=compared["label"].eq(compared["annotation_id"].map(unique)))


def peer_agreement(crowd: pd.DataFrame) -> pd.DataFrame:
    """Per annotator: how many votes could be compared with the others' majority, and the share equal to it."""
    return (peer_agreed(crowd).groupby("annotator")
            .agg(peer_compared=("agreed", "size"), peer_agreement=("agreed", "mean")).reset_index())


def over_time(votes: pd.DataFrame, gold: pd.DataFrame, freq: str = "D") -> pd.DataFrame:
    """Per crowd annotator and period (``freq``, by vote creation time, UTC): gold clips answered and the
    share right, votes compared with peers and the share agreeing."""
    truth = gold_labels(gold)
    crowd = votes[votes["role"] == "crowd"]
    on_gold = crowd[crowd["clip_id"].isin(truth.index)]
    on_gold = on_gold.assign(correct=on_gold["label"].eq(on_gold["clip_id"].map(truth)))
    peers = peer_agreed(crowd)

    def per(frame: pd.DataFrame, flag: str, n: str, share: str) -> pd.DataFrame:
        period = pd.to_datetime(frame["created_at"], utc=True).dt.floor(freq).dt.tz_localize(None)
        return (frame.assign(period=period).groupby(["annotator", "period"])
                .agg(**{n: (flag, "size"), share: (flag, "mean")}))

    out = per(on_gold, "correct", "gold_answered", "gold_accuracy").join(
        per(peers, "agreed", "peer_compared", "peer_agreement"), how="outer")
    counts = ["gold_answered", "peer_compared"]
    out[counts] = out[counts].fillna(0).astype("int64")
    return out.reset_index().sort_values(["annotator", "period"], ignore_index=True)


def expert_agreement(crowd: pd.DataFrame, votes: pd.DataFrame) -> pd.DataFrame:
    """Per annotator: crowd votes on clips an expert decided, and the share equal to the expert's label."""
    both = crowd.merge(expert_decisions(votes), on="clip_id")
    agreed = both["label"].eq(both["expert_label"])
    return (both.assign(agreed=agreed).groupby("annotator")
            .agg(expert_compared=("agreed", "size"), expert_agreement=("agreed", "mean")).reset_index())


def annotator_quality(votes: pd.DataFrame, gold: pd.DataFrame, copies: pd.DataFrame,
                      cfg: AnnotationConfig) -> pd.DataFrame:
    """One row per annotator over their current votes: gold accuracy, agreement with peers and experts,
    median time per clip, copy verdict counts; crowd annotators below ``flag_gold_accuracy_below`` flagged."""
    truth = gold_labels(gold)
    on_gold = votes[votes["clip_id"].isin(truth.index) & (votes["role"] == "crowd")]
    gold_acc = (on_gold.assign(correct=on_gold["label"].eq(on_gold["clip_id"].map(truth)))
                .groupby("annotator").agg(gold_answered=("correct", "size"), gold_accuracy=("correct", "mean")))
    base = votes.groupby("annotator").agg(role=("role", "last"), n_votes=("clip_id", "size"),
                                          median_time_s=("lead_time_s", "median"))
    crowd = votes[votes["role"] == "crowd"]
    verdicts = copies.pivot_table(index="annotator", columns="verdict", values="copy_index", aggfunc="size")
    out = (base.join(gold_acc).join(peer_agreement(crowd).set_index("annotator"))
           .join(expert_agreement(crowd[~crowd["clip_id"].isin(truth.index)], votes).set_index("annotator"))
           .join(verdicts.add_prefix("copies_")))
    counts = [c for c in out.columns if c.startswith("copies_")] + ["gold_answered", "peer_compared", "expert_compared"]
    out[counts] = out[counts].fillna(0).astype("int64")
    out["flagged"] = (out["role"] == "crowd") & (out["gold_accuracy"] < cfg.flag_gold_accuracy_below).fillna(False)
    return out.reset_index().sort_values(["role", "annotator"], ignore_index=True)


def progress(votes: pd.DataFrame, copies: pd.DataFrame, clips: pd.DataFrame, gold: pd.DataFrame,
             cfg: AnnotationConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per scene and per scenario: clips, clips with any vote, clips with >= ``annotators_per_clip``
    distinct crowd annotators (Unacceptable copies not counted), clips an expert decided, share complete."""
    bad = copies.loc[copies["verdict"] == UNACCEPTABLE, COPY_KEY]
    crowd = votes[(votes["role"] == "crowd") & ~votes["clip_id"].isin(gold["clip_id"])]
    crowd = crowd.merge(bad, how="left", on=COPY_KEY, indicator=True)
    crowd = crowd[crowd["_merge"] == "left_only"]
    n = crowd.groupby("clip_id")["annotator"].nunique()
    c = clips.loc[~clips["clip_id"].isin(gold["clip_id"]), ["clip_id", "scene", "scenario"]]
    n_clip = c["clip_id"].map(n).fillna(0)
    c = c.assign(started=n_clip > 0, complete=n_clip >= cfg.annotators_per_clip,
                 reviewed=c["clip_id"].isin(expert_decisions(votes)["clip_id"]))

    def per(keys: list[str]) -> pd.DataFrame:
        out = c.groupby(keys).agg(clips=("clip_id", "size"), started=("started", "sum"),
                                  complete=("complete", "sum"), reviewed=("reviewed", "sum")).reset_index()
        out["share_complete"] = out["complete"] / out["clips"]
        return out

    return per(["scenario", "scene"]), per(["scenario"])


def qc_report(workdir: str | Path, cfg: AnnotationConfig | BuildConfig) -> QCReport:
    """Build the report from the same state the labels are made from (``annotation.trust.load_state``)."""
    build = cfg if isinstance(cfg, BuildConfig) else BuildConfig(annotation=cfg)
    state = load_state(workdir, build)
    votes, gold, copies = state.votes, state.gold, state.verdicts
    scene, scenario = progress(votes, copies, read_manifest(workdir, "clips"), gold, build.annotation)
    return QCReport(
        copies=copies, annotators=annotator_quality(votes, gold, copies, build.annotation), progress_scene=scene,
        progress_scenario=scenario, over_time=over_time(votes, gold), requeue=requeue(copies),
        needs_more=unclear_clips(state.counted, build, pd.Index(gold["clip_id"])),
    )


VERDICTS = [ACCEPT, IMPROPER, UNACCEPTABLE, PENDING]
PROGRESS = {"complete": "#2ca02c", "in_progress": "#ffbf00", "not_started": "#cccccc"}
VERDICT_COLOURS = ["#2ca02c", "#ffbf00", "#d62728", "#999999"]


@dataclass(frozen=True)
class Plot:
    """One figure of the report: its title, the table of exactly the numbers it draws, and its PNG."""

    title: str
    data: pd.DataFrame
    png: bytes

    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


def _png(fig) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, metadata={"Software": None})
    return buf.getvalue()


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _progress_plot(progress: pd.DataFrame, key: str, title: str) -> Plot:
    """Stacked bars per ``key`` (scene or scenario): clips complete, in progress, not started."""
    names = progress[key] if key == "scenario" else progress["scene"] + " (" + progress["scenario"] + ")"
    data = pd.DataFrame({key: progress[key].to_numpy(), "clips": progress["clips"].to_numpy(),
                         "complete": progress["complete"].to_numpy(),
                         "in_progress": (progress["started"] - progress["complete"]).to_numpy(),
                         "not_started": (progress["clips"] - progress["started"]).to_numpy(),
                         "reviewed": progress["reviewed"].to_numpy()})
    fig = _figure(8, 1.2 + 0.32 * max(len(data), 1))
    ax = fig.add_subplot()
    left = np.zeros(len(data))
    for column, colour in PROGRESS.items():
        values = data[column].to_numpy(dtype=float)
        ax.barh(names.to_numpy(), values, left=left, color=colour, label=column.replace("_", " "))
        left += values
    ax.plot(data["reviewed"], names.to_numpy(), "k|", markersize=12, label="expert-reviewed")
    ax.invert_yaxis()
    ax.set_xlabel("clips (gold excluded)")
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    return Plot(title, data, _png(fig))


def _heatmap_plot(over: pd.DataFrame, value: str, count: str, title: str) -> Plot:
    """Annotator x period grid of ``value`` (a share, 0..1), the cell's vote count under it."""
    shares = over.pivot(index="annotator", columns="period", values=value)
    counts = over.pivot(index="annotator", columns="period", values=count).reindex_like(shares)
    shares.columns = counts.columns = [p.strftime("%Y-%m-%d %H:%M").removesuffix(" 00:00") for p in shares.columns]
    fig = _figure(2.5 + 0.9 * max(shares.shape[1], 1), 1.5 + 0.3 * max(shares.shape[0], 1))
    ax = fig.add_subplot()
    data = shares.join(counts.add_suffix(f" {count}"))
    if shares.empty:
        ax.text(0.5, 0.5, "no crowd votes to show yet", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(title)
        return Plot(title, data, _png(fig))
    image = ax.imshow(shares.to_numpy(dtype=float), cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(shares.shape[1]), shares.columns, rotation=45, ha="right")
    ax.set_yticks(range(shares.shape[0]), shares.index)
    if shares.size <= 400:
        for (i, j), v in np.ndenumerate(shares.to_numpy(dtype=float)):
            if not np.isnan(v):
                ax.text(j, i, f"{v:.2f}\n({int(counts.iat[i, j])})", ha="center", va="center", fontsize=7)
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label=value.replace("_", " "))
    return Plot(title, data, _png(fig))


def _verdict_plot(copies: pd.DataFrame) -> Plot:
    counts = copies["verdict"].value_counts().reindex(VERDICTS, fill_value=0)
    title = "Group copies by verdict"
    fig = _figure(6, 3.5)
    ax = fig.add_subplot()
    bars = ax.bar(counts.index, counts.to_numpy(), color=VERDICT_COLOURS)
    ax.bar_label(bars)
    ax.set_ylabel("group copies")
    ax.set_title(title)
    return Plot(title, counts.rename_axis("verdict").rename("copies").reset_index(), _png(fig))


def figures(report: QCReport) -> dict[str, Plot]:
    """The team lead's plots of a report: progress per scene and per scenario, gold accuracy and peer
    agreement per crowd annotator over time, group copies by verdict."""
    return {
        "progress_scene": _progress_plot(report.progress_scene, "scene", "Progress per scene"),
        "progress_scenario": _progress_plot(report.progress_scenario, "scenario", "Progress per scenario"),
        "gold_accuracy": _heatmap_plot(report.over_time.dropna(subset=["gold_accuracy"]), "gold_accuracy",
                                       "gold_answered", "Gold accuracy per annotator over time"),
        "peer_agreement": _heatmap_plot(report.over_time.dropna(subset=["peer_agreement"]), "peer_agreement",
                                        "peer_compared", "Agreement with peers per annotator over time"),
        "verdicts": _verdict_plot(report.copies),
    }


def artifact_markdown(report: QCReport, plots: dict[str, Plot] | None = None) -> str:
    """The report's plots (PNG data URIs) and headline counts as markdown, for a Prefect markdown artifact
    (``prefect.artifacts.create_markdown_artifact(key=..., markdown=artifact_markdown(report))``)."""
    plots = figures(report) if plots is None else plots
    done = report.progress_scenario[["clips", "started", "complete", "reviewed"]].sum()
    verdicts = plots["verdicts"].data.set_index("verdict")["copies"]
    lines = ["# Annotation QC", "",
             f"Clips: {done['clips']} (gold excluded); started {done['started']}, complete {done['complete']}, "
             f"expert-reviewed {done['reviewed']}.",
             "Group copies: " + ", ".join(f"{v} {n}" for v, n in verdicts.items()) + ".",
             f"Flagged annotators: {', '.join(report.flagged) or 'none'}.",
             f"Copies to assign again: {len(report.requeue)}; "
             f"clips without a clear majority: {len(report.needs_more)}.",
             ""]
    for plot in plots.values():
        lines += [f"## {plot.title}", "", f"![{plot.title}]({plot.data_uri()})", ""]
    return "\n".join(lines)


_CSS = """body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:2em}
th,td{border:1px solid #ccc;padding:.2em .6em;text-align:right}th{background:#eee}.flag{color:#b00}"""


def write_qc_report(report: QCReport, out_dir: str | Path) -> list[Path]:
    """Write each table as ``<name>.csv``, each plot as ``<name>.png``, and all of them in one
    self-contained ``qc_report.html`` (plots embedded as data URIs, plots first)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths, sections = [], []
    for name, plot in figures(report).items():
        path = out / f"{name}.png"
        path.write_bytes(plot.png)
        paths.append(path)
        sections.append(f"<h2>{html.escape(plot.title)}</h2>\n"
                        f"<img alt='{html.escape(plot.title)}' src='{plot.data_uri()}'>")
    for name, frame in report.tables().items():
        path = out / f"{name}.csv"
        frame.to_csv(path, index=False)
        paths.append(path)
        table = frame.to_html(index=False, na_rep="", border=0, float_format="{:.3f}".format)
        sections.append(f"<h2>{html.escape(TITLES[name])}</h2>\n{table}")
    flagged = ", ".join(report.flagged) or "none"
    page = (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>Annotation QC report</title>"
            f"<style>{_CSS}</style></head><body><h1>Annotation QC report</h1>"
            f"<p class='flag'>Flagged annotators: {html.escape(flagged)}</p>\n"
            + "\n".join(sections) + "</body></html>\n")
    path = out / "qc_report.html"
    path.write_text(page, encoding="utf-8")
    return [*paths, path]
