"""The Label Studio labeling interface and instructions, made from the taxonomy (pure functions).

A task shows its scene name and, side by side at 1366x768 next to Label Studio's side panel, the scene
clip (unmarked: every face of the window shares it), the face-crop clip (the two ``<Video>`` players synced
and stepping at the clip's own frame rate, ``$fps``) and, in one column, the face-crop clip once more,
playing by itself in a loop, muted, above a still of the scene with the target face marked (which of the
faces is meant). Label Studio 1.23's ``<Video>`` draws into a canvas and neither autoplays nor loops, and its
``<Image>`` draws an animated image's first frame only (checked in the browser); a plain HTML ``<video
autoplay loop muted>`` and ``<img>`` shown by ``<HyperText inline>`` do, from the same crop file. Clips cut
before scene clips were shared have a marked scene clip and no still. The
annotator picks one of FERV39k's descriptor words (grouped under their expression, each group headed by the
expression's one-line definition) or PASS; every choice has a hotkey. Sync maps the descriptor back to
its expression. The expert review variant also shows the crowd's votes for the clip (``$crowd_votes``).

Instructions pop up at a project's first label-stream start only (``show_instruction`` until the project
has an annotation); after that they open on demand (the "Instructions" button above the editor).
"""

from __future__ import annotations

from html import escape as html_escape
from xml.sax.saxutils import quoteattr

import pandas as pd

from schemas.taxonomy import TAXONOMY, Taxonomy

CHOICES_NAME = "descriptor"
# Single keys that Label Studio's editor does not use itself; descriptors take them in taxonomy order.
HOTKEYS = "qwertyuiopasdfghjklzxcvbnm"
PASS_HOTKEY = "0"
SCENE_HEIGHT = 300  # px: scene player, timeline and the choices below fit a 768 px high screen
CROP_SIZE = 224  # px: the face-crop clips' size (clips.crop_size)


def hotkeys(taxonomy: Taxonomy = TAXONOMY) -> dict[str, str]:
    """Choice value -> hotkey, for every descriptor and PASS."""
    words = [d for e in taxonomy.expressions for d in e.descriptors]
    if len(words) > len(HOTKEYS):
        raise ValueError(f"{len(words)} descriptors but only {len(HOTKEYS)} hotkeys")
    keys = dict(zip(words, HOTKEYS))
    keys[taxonomy.pass_label] = PASS_HOTKEY
    return keys


def labeling_config(taxonomy: Taxonomy = TAXONOMY, review: bool = False) -> str:
    """The ``<View>`` XML of the labeling interface (``review``: with the crowd's votes above the choices)."""
    keys = hotkeys(taxonomy)
    groups = []
    for e in taxonomy.expressions:
        choices = "".join(f'<Choice value={quoteattr(d)} hotkey={quoteattr(keys[d])}/>' for d in e.descriptors)
        groups.append(f'<View style="display:inline-block;vertical-align:top;margin-right:16px">'
                      f'<Header value={quoteattr(e.name)} size="5"/>{choices}</View>')
    passes = (f'<View style="display:inline-block;vertical-align:top"><Header value="No usable face" size="5"/>'
              f'<Choice value={quoteattr(taxonomy.pass_label)} hotkey={quoteattr(PASS_HOTKEY)}/></View>')
    # min-width:0 lets a player shrink below its control bar's natural width (else the row overflows
    # under the side panel); the loop keeps its pixel size
    cell = 'style="flex:{} 1 0;min-width:0;overflow:hidden"'
    votes = ('<View style="margin-top:8px"><Header value="Crowd votes" size="5"/>'
             '<Text name="crowd_votes" value="$crowd_votes"/></View>') if review else ""
    return (
        '<View>'
        '<Header value="$scene_display"/>'
        '<View style="display:flex;gap:12px;align-items:flex-start">'
        f'<View {cell.format(1.3)}><Video name="scene" value="$scene_video" sync="crop" frameRate="$fps" '
        f'height="{SCENE_HEIGHT}" muted="true"/></View>'
        f'<View {cell.format(1)}><Video name="crop" value="$crop_video" sync="scene" frameRate="$fps" '
        f'height="{CROP_SIZE}" muted="true"/></View>'
        f'<View style="flex:0 0 {CROP_SIZE}px"><HyperText name="crop_loop" value="$crop_loop" inline="true"/></View>'
        '</View>'
        + votes +
        f'<Choices name="{CHOICES_NAME}" toName="crop" choice="single-radio" required="true" showInline="false">'
        + "".join(groups) + passes +
        '</Choices>'
        '</View>'
    )


def project_settings(review: bool = False, started: bool = False) -> dict:
    """Label Studio project settings of the labeling screen; the instructions pop up at label-stream
    start only while the project has no annotation (``started`` False), later on demand."""
    return {"label_config": labeling_config(review=review), "expert_instruction": instructions(),
            "show_instruction": not started}


def screen_data(clip: pd.Series, crop_url: str, still_url: str | None) -> dict:
    """Task data the screen needs beyond the clip URLs: the frame rate and the HTML of the looping crop and the
    marked still (none for a clip cut before scene clips were shared)."""
    still = (f'<img src={quoteattr(still_url)} width="{CROP_SIZE}" alt="the face meant, marked in the scene" '
             'style="display:block;margin-top:6px">') if still_url else ""
    return {"fps": float(clip["fps"]),
            "crop_loop": f'<video src={quoteattr(crop_url)} width="{CROP_SIZE}" height="{CROP_SIZE}" '
                         'autoplay loop muted playsinline></video>' + still}


def crowd_votes_text(votes: pd.DataFrame, taxonomy: Taxonomy = TAXONOMY) -> dict[str, str]:
    """Clip id -> one line of its crowd votes for the expert review task, most voted expression first,
    e.g. ``"Happy 2 (Cheerful, Pride) · Sad 1 (Bitter)"``. ``votes``: current votes (role, descriptor, label)."""
    crowd = votes[(votes["role"] == "crowd") & votes["label"].notna()]
    order = {e.name: i for i, e in enumerate(taxonomy.expressions)}
    lines = {}
    for clip_id, clip in crowd.groupby("clip_id", sort=False):
        counts = clip.groupby("label")["descriptor"].agg(list)
        ranked = sorted(counts.items(), key=lambda kv: (-len(kv[1]), order.get(kv[0], len(order)), kv[0]))
        lines[clip_id] = " · ".join(
            f"{label} {len(words)}" + (f" ({', '.join(sorted(w for w in words if w != label))})"
                                       if any(w != label for w in words) else "")
            for label, words in ranked)
    return lines


def instructions(taxonomy: Taxonomy = TAXONOMY) -> str:
    """HTML instructions shown before labelling: what to look at and one line per expression."""
    keys = hotkeys(taxonomy)
    rows = "".join(
        f"<li><b>{html_escape(e.name)}</b>: {html_escape(e.definition)} "
        f"<i>({', '.join(f'{html_escape(d)} [{keys[d]}]' for d in e.descriptors)})</i></li>"
        for e in taxonomy.expressions)
    return (
        "<p>Watch the face marked in the still beside the face-crop loop (in older tasks: in the scene clip) and "
        "its face-crop clip, then choose the word that best describes the expression it shows. Keys in brackets "
        "choose a word; Ctrl+Enter submits.</p>"
        f"<ul>{rows}</ul>"
        f"<p><b>{html_escape(taxonomy.pass_label)}</b> [{PASS_HOTKEY}]: no usable face (wrong or several "
        "faces, occluded, not a real person).</p>"
    )
