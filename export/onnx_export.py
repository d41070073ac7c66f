"""ONNX export of the serving ``tf.function`` with tf2onnx, and inference with onnxruntime.

tf2onnx 1.17 converts the function from its fixed input signature (the batch
axis stays dynamic). Opset 17 (``DEFAULT_OPSET``): supported by tf2onnx 1.17
and by every onnxruntime >= 1.13; nothing in the graph needs a newer one (the
resnet1d export holds IsNaN, IsInf, ReduceMean, Sqrt, Conv, MaxPool,
GlobalAveragePool, MatMul, Softmax and elementwise ops). The graph's input is
renamed ``signal`` and its output ``probabilities``; their batch axis is the
symbolic dimension ``batch``.
"""

from __future__ import annotations

import os

import numpy as np

INPUT_NAME = "signal"  # as export.serving (not imported here: it imports TensorFlow)
OUTPUT_NAME = "probabilities"
DEFAULT_OPSET = 17


def _rename(model, old: str, new: str) -> None:
    """Renames a graph input/output ``old`` to ``new`` everywhere in ``model.graph``."""
    graph = model.graph
    for value in (*graph.input, *graph.output):
        if value.name == old:
            value.name = new
    for node in graph.node:
        node.input[:] = [new if n == old else n for n in node.input]
        node.output[:] = [new if n == old else n for n in node.output]


def export_onnx(fn, path: str, opset: int = DEFAULT_OPSET):
    """Converts the serving ``tf.function`` ``fn`` to ONNX at ``path``; returns the ``onnx.ModelProto``.

    Args:
      fn: the ``tf.function`` from ``export.serving`` (fixed input signature).
      path: the ``.onnx`` file to write.
      opset: ONNX opset.
    """
    import onnx
    import tf2onnx

    spec = fn.input_signature
    model, _ = tf2onnx.convert.from_function(fn, input_signature=spec, opset=opset)
    if len(model.graph.input) != 1 or len(model.graph.output) != 1:
        raise ValueError(f"expected one input and one output, got {len(model.graph.input)} and {len(model.graph.output)}")
    _rename(model, model.graph.input[0].name, INPUT_NAME)
    _rename(model, model.graph.output[0].name, OUTPUT_NAME)
    for value in (model.graph.input[0], model.graph.output[0]):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    model.doc_string = (f"erts-tf serving: raw ECG signal (batch, time, leads) float32 -> per-lead z-score -> "
                        f"backbone -> softmax (multi-label: sigmoid) probabilities; tf2onnx {tf2onnx.__version__}, opset {opset}")
    onnx.checker.check_model(model)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    onnx.save(model, path)
    return model


def onnx_session(path: str, threads: int | None = None):
    """An onnxruntime CPU session of the model at ``path`` (``threads``: intra-op threads; None: onnxruntime's default)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def session_predict(session, signal: np.ndarray) -> np.ndarray:
    """Probabilities ``(n, n_classes)`` of an onnxruntime ``session`` on raw ``signal`` ``(n, time, leads)``."""
    return session.run([OUTPUT_NAME], {INPUT_NAME: np.asarray(signal, np.float32)})[0]


def onnx_predict(path: str, signal: np.ndarray) -> np.ndarray:
    """Probabilities ``(n, n_classes)`` of the ONNX model at ``path`` (onnxruntime, CPU)."""
    return session_predict(onnx_session(path), signal)
