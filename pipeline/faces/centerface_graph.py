"""The CenterFace ONNX graph: its input and output names, its geometry, and the graph made shape-free, shared by
the detector (:mod:`pipeline.faces.centerface`) and its int8 build (:mod:`pipeline.faces.quantize`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnx

INPUT = "input.1"
HEATMAP, SCALE, OFFSET = "537", "538", "539"
STRIDE = 4  # output map cell size in input pixels
MULTIPLE = 32  # input sides must be multiples of this


def dynamic_shapes(path: Path) -> onnx.ModelProto:
    """The model with free batch and spatial sizes (the shipped one is stored with fixed 10x3x32x32 shapes),
    cleared of an old exporter's habits: weights listed as graph inputs (kept from being folded) and unused
    weights."""
    import onnx  # here, not at the top: a run on the cached int8 model never needs it (about 0.1 s a process)

    model = onnx.load(str(path))
    used = {name for node in model.graph.node for name in node.input}
    names = {w.name for w in model.graph.initializer}
    weights = [w for w in model.graph.initializer if w.name in used]
    inputs = [v for v in model.graph.input if v.name not in names]
    del model.graph.initializer[:], model.graph.input[:]
    model.graph.initializer.extend(weights)
    model.graph.input.extend(inputs)
    for value in [*(v for v in model.graph.input if v.name == INPUT), *model.graph.output]:
        prefix = "" if value.name == INPUT else "out_"
        batch, _, height, width = value.type.tensor_type.shape.dim
        batch.dim_param, height.dim_param, width.dim_param = "batch", f"{prefix}height", f"{prefix}width"
    return model
