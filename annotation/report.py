"""Quality-control report of the annotation: copy verdicts, annotator quality, progress per scene."""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from annotation.aggregate import unclear_clips
from annotation.gold import gold_labels
from annotation.trust import COPY_KEY, UNACCEPTABLE, expert_decisions, load_state, requeue
from schemas.config import AnnotationConfig, BuildConfig
from schemas.manifests import read_manifest

TITLES = {
    "copies": "Group copies: gold correct rate and verdict",
    "annotators": "Annotators: gold accuracy, agreement, time per clip",
    "progress_scene": "Progress per scene",
    "progress_scenario": "Progress per scenario",
    "requeue": "Group copies to assign again",
    "needs_more": "Clips without a clear majority (give more annotators)",
}


@dataclass
class QCReport:
    copies: pd.DataFrame
    annotators: pd.DataFrame
    progress_scene: pd.DataFrame
    progress_scenario: pd.DataFrame
    requeue: pd.DataFrame
    needs_more: pd.DataFrame

    def tables(self) -> dict[str, pd.DataFrame]:
        return {name: getattr(self, name) for name in TITLES}

    @property
    def flagged(self) -> list[str]:
        return sorted(self.annotators.loc[self.annotators["flagged"], "annotator"])


def peer_agreement(crowd: pd.DataFrame) -> pd.DataFrame:
    """Per annotator: how many votes could be compared with the other annotators' majority on the same
    clip of the same group (the others have a unique most frequent label) and the share equal to it."""
    v = crowd[crowd["label"].notna()].assign(_group=lambda f: f["group_id"].fillna(""))
    v = v[["annotation_id", "annotator", "_group", "clip_id", "label"]]
    pairs = v.merge(v, on=["_group", "clip_id"], suffixes=("", "_o"))
    pairs = pairs[pairs["annotator"] != pairs["annotator_o"]]
    counts = pairs.groupby(["annotation_id", "label_o"]).size().rename("n").reset_index()
    top = counts.groupby("annotation_id")["n"].transform("max")
    modes = counts[counts["n"] == top]
    unique = modes.drop_duplicates("annotation_id", keep=False).set_index("annotation_id")["label_o"]
    compared = v[v["annotation_id"].isin(unique.index)]
    agreed = compared["label"].eq(compared["annotation_id"].map(unique))
    return (compared.assign(agreed=agreed).groupby("annotator")
            .agg(peer_compared=("agreed", "size"), peer_agreement=("agreed", "mean")).reset_index())


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
        progress_scenario=scenario, requeue=requeue(copies),
        needs_more=unclear_clips(state.counted, build, pd.Index(gold["clip_id"])),
    )


_CSS = """body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:2em}
th,td{border:1px solid #ccc;padding:.2em .6em;text-align:right}th{background:#eee}.flag{color:#b00}"""


def write_qc_report(report: QCReport, out_dir: str | Path) -> list[Path]:
    """Write each table as ``<name>.csv`` and all of them in one self-contained ``qc_report.html``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths, sections = [], []
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
