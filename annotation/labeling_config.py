"""The Label Studio labeling interface and instructions, made from the taxonomy (pure functions).

A task shows its scene name, the scene clip with the target face marked and the face-crop clip. The
annotator picks one of FERV39k's descriptor words (grouped under their expression, each group headed by the
expression's one-line definition) or PASS; every choice has a hotkey. Sync maps the descriptor back to
its expression.
"""

from __future__ import annotations

from html import escape as html_escape
from xml.sax.saxutils import quoteattr

from schemas.taxonomy import TAXONOMY, Taxonomy

CHOICES_NAME = "descriptor"
# Single keys that Label Studio's editor does not use itself; descriptors take them in taxonomy order.
HOTKEYS = "qwertyuiopasdfghjklzxcvbnm"
PASS_HOTKEY = "0"


def hotkeys(taxonomy: Taxonomy = TAXONOMY) -> dict[str, str]:
    """Choice value -> hotkey, for every descriptor and PASS."""
    words = [d for e in taxonomy.expressions for d in e.descriptors]
    if len(words) > len(HOTKEYS):
        raise ValueError(f"{len(words)} descriptors but only {len(HOTKEYS)} hotkeys")
    keys = dict(zip(words, HOTKEYS))
    keys[taxonomy.pass_label] = PASS_HOTKEY
    return keys


def labeling_config(taxonomy: Taxonomy = TAXONOMY) -> str:
    """The ``<View>`` XML of the labeling interface."""
    keys = hotkeys(taxonomy)
    groups = []
    for e in taxonomy.expressions:
        choices = "".join(f'<Choice value={quoteattr(d)} hotkey={quoteattr(keys[d])}/>' for d in e.descriptors)
        groups.append(f'<View style="display:inline-block;vertical-align:top;margin-right:16px">'
                      f'<Header value={quoteattr(e.name)} size="5"/>{choices}</View>')
    passes = (f'<View style="display:inline-block;vertical-align:top"><Header value="No usable face" size="5"/>'
              f'<Choice value={quoteattr(taxonomy.pass_label)} hotkey={quoteattr(PASS_HOTKEY)}/></View>')
    return (
        '<View>'
        '<Header value="$scene_display"/>'
        '<View style="display:flex;gap:12px;align-items:flex-start">'
        '<View style="flex:2"><Video name="scene" value="$scene_video" height="360"/></View>'
        '<View style="flex:1"><Video name="crop" value="$crop_video" height="224"/></View>'
        '</View>'
        f'<Choices name="{CHOICES_NAME}" toName="crop" choice="single-radio" required="true" showInline="false">'
        + "".join(groups) + passes +
        '</Choices>'
        '</View>'
    )


def instructions(taxonomy: Taxonomy = TAXONOMY) -> str:
    """HTML instructions shown before labelling: what to look at and one line per expression."""
    keys = hotkeys(taxonomy)
    rows = "".join(
        f"<li><b>{html_escape(e.name)}</b>: {html_escape(e.definition)} "
        f"<i>({', '.join(f'{html_escape(d)} [{keys[d]}]' for d in e.descriptors)})</i></li>"
        for e in taxonomy.expressions)
    return (
        "<p>Watch the face marked in the scene clip and its face-crop clip, then choose the word that best "
        "describes the expression it shows. Keys in brackets choose a word; Ctrl+Enter submits.</p>"
        f"<ul>{rows}</ul>"
        f"<p><b>{html_escape(taxonomy.pass_label)}</b> [{PASS_HOTKEY}]: no usable face (wrong or several "
        "faces, occluded, not a real person).</p>"
    )
