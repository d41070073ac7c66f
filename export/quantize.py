"""Smaller ONNX variants of the float32 model: float16, and int8 by static (QDQ) or dynamic quantization.

All of it is onnxruntime's own tooling (no other dependency):

* ``float16``: ``onnxruntime.transformers.float16.convert_float_to_float16``
  with float32 input and output (``keep_io_types``);
* ``int8_static``: ``quantize_static`` in the QDQ format, calibrated (MinMax)
  on raw training records: per-channel int8 weights, uint8 activations (the
  combination onnxruntime's x86 kernels run fastest: with int8 activations
  resnet1d and resnet18_2d ran 1.7x and 3x slower here);
* ``int8_dynamic``: ``quantize_dynamic`` (int8 weights, activations quantized
  at run time). On CPU its convolutions are often slower than float32's. The
  activations' scale is computed per call over the whole batch, so a record's
  probabilities move slightly with the other records of its batch (~3e-4 on
  the test model).

Both quantize the model after ``quant_pre_process`` (ONNX shape inference; the
symbolic one would need sympy, which is not a dependency).

The model's own preprocessing (``preprocessing_nodes``: NaN/inf -> 0 and the
per-lead z-score, and any reshaping before the first convolution) and the
output softmax stay float32 in every variant (``float32_nodes``): onnxruntime
has no float16 ``IsInf``, a raw signal's range (mV or ADC counts) would lose
resolution in float16 or int8, and uint8 probabilities would not sum to 1.
"""

from __future__ import annotations

import contextlib
import os
import tempfile

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from export.onnx_export import INPUT_NAME

WEIGHTED_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")
OUTPUT_OPS = ("Softmax",)  # quantized to uint8, probabilities would come in steps of 1/255 and not sum to 1
INT8_METHODS = ("int8_static", "int8_dynamic")


def preprocessing_nodes(graph) -> list[str]:
    """Names of the nodes computed from the input before any weighted op (the z-score and reshapes).

    A node belongs to the preprocessing when it is not a weighted op (``WEIGHTED_OPS``)
    and every input that is not an initializer comes from the graph input or from
    another preprocessing node. ONNX graphs are stored in topological order.
    """
    initializers = {i.name for i in graph.initializer}
    reachable = {i.name for i in graph.input}
    names = []
    for node in graph.node:
        inputs = [name for name in node.input if name and name not in initializers]
        if node.op_type not in WEIGHTED_OPS and all(name in reachable for name in inputs):
            names.append(node.name)
            reachable.update(node.output)
    return names


def float32_nodes(graph) -> list[str]:
    """The nodes every variant keeps in float32: the preprocessing and the output softmax."""
    return [*preprocessing_nodes(graph), *(n.name for n in graph.node if n.op_type in OUTPUT_OPS)]


def _is_cast_to(node, elem_type: int) -> bool:
    return node.op_type == "Cast" and any(a.name == "to" and a.i == elem_type for a in node.attribute)


def drop_float16_round_trips(graph) -> None:
    """Removes the casts float32 -> float16 -> float32 around and between float32 nodes, in place.

    ``convert_float_to_float16`` casts the graph input to float16 and casts every
    output of a blocked (float32) node to float16 and back to float32 before
    the next blocked node or the graph output: the raw signal, the z-score's
    intermediates and the probabilities would be rounded to float16. Each such
    pair is bypassed (the float32 value goes on unrounded; a graph output keeps
    its name and cast, now float32 -> float32) and the casts left without
    consumers are removed.
    """
    from onnx import TensorProto

    producer = {out: node for node in graph.node for out in node.output}
    outputs = {o.name for o in graph.output}
    bypass = {}
    for node in graph.node:
        first = producer.get(node.input[0]) if node.input else None
        if _is_cast_to(node, TensorProto.FLOAT) and first is not None and _is_cast_to(first, TensorProto.FLOAT16):
            if node.output[0] in outputs:
                node.input[0] = first.input[0]
            else:
                bypass[node.output[0]] = first.input[0]
    for node in graph.node:
        node.input[:] = [bypass.get(name, name) for name in node.input]
    while True:
        used = {name for node in graph.node for name in node.input} | outputs
        kept = [n for n in graph.node if not (n.op_type == "Cast" and not set(n.output) & used)]
        if len(kept) == len(graph.node):
            return
        _replace_nodes(graph, kept)


def _replace_nodes(graph, nodes) -> None:
    """Makes ``nodes`` (copied first: they may belong to ``graph``) the nodes of ``graph``."""
    import onnx

    copies = []
    for node in nodes:
        copies.append(onnx.NodeProto())
        copies[-1].CopyFrom(node)
    del graph.node[:]
    graph.node.extend(copies)


def sort_topologically(graph) -> None:
    """Orders the nodes of ``graph`` so that each comes after the producers of its inputs (ONNX requires it;
    ``convert_float_to_float16`` appends its casts at the end)."""
    available = {"", *(i.name for i in graph.input), *(i.name for i in graph.initializer)}
    pending, ordered = list(graph.node), []
    while pending:
        ready = [node for node in pending if all(name in available for name in node.input)]
        if not ready:
            raise ValueError(f"ONNX graph {graph.name!r}: a cycle or an undefined input at node {pending[0].name!r}")
        ordered += ready
        available.update(name for node in ready for name in node.output)
        ready_ids = {id(node) for node in ready}
        pending = [node for node in pending if id(node) not in ready_ids]
    _replace_nodes(graph, ordered)


def float16(src: str, dst: str) -> str:
    """Writes the float16 variant of the ONNX model ``src`` to ``dst`` (float32 input/output and preprocessing)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(src)
    converted = convert_float_to_float16(model, keep_io_types=True, node_block_list=float32_nodes(model.graph))
    drop_float16_round_trips(converted.graph)
    sort_topologically(converted.graph)
    onnx.checker.check_model(converted)
    onnx.save(converted, dst)
    return dst


class _CalibrationReader(CalibrationDataReader):
    """Raw records ``(n, time, leads)`` for the calibration, in batches."""

    def __init__(self, signal: np.ndarray, batch_size: int):
        self._batches = iter([{INPUT_NAME: np.asarray(signal[i:i + batch_size], np.float32)}
                              for i in range(0, len(signal), batch_size)])

    def get_next(self):
        return next(self._batches, None)


@contextlib.contextmanager
def _prepared(src: str):
    """``src`` after ``quant_pre_process`` (ONNX shape inference, basic graph optimisation), in a temporary file."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        prepared = os.path.join(tmp, "prepared.onnx")
        quant_pre_process(src, prepared, skip_symbolic_shape=True)
        yield prepared


def int8_static(src: str, dst: str, calibration: np.ndarray, batch_size: int = 16) -> str:
    """Writes the static (QDQ) int8 variant of ``src`` to ``dst``, calibrated on raw records ``(n, time, leads)``."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    with _prepared(src) as prepared:
        quantize_static(prepared, dst, _CalibrationReader(calibration, batch_size), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        nodes_to_exclude=float32_nodes(onnx.load(prepared).graph))
    return dst


def int8_dynamic(src: str, dst: str) -> str:
    """Writes the dynamic int8 variant of ``src`` to ``dst``."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _prepared(src) as prepared:
        quantize_dynamic(prepared, dst, weight_type=QuantType.QInt8,
                         nodes_to_exclude=float32_nodes(onnx.load(prepared).graph))
    return dst
