"""Smaller ONNX variants of the float32 model: float16, and int8 by static (QDQ) or dynamic quantization.

All of it is onnxruntime's own tooling (no other dependency):

* ``float16``: ``onnxruntime.transformers.float16.convert_float_to_float16``
  with float32 input and output (``keep_io_types``);
* ``int8_static``: ``quantize_static`` in the QDQ format, calibrated (MinMax)
  on raw training records: per-channel int8 weights, uint8 activations (the
  combination onnxruntime's x86 kernels run fastest: with int8 activations
  resnet1d and resnet18_2d ran 1.7x and 3.3x slower here);
* ``int8_dynamic``: ``quantize_dynamic`` (int8 weights, activations quantized
  at run time). On CPU its convolutions are often slower than float32's. The
  activations' scale is computed per call over the whole batch, so a record's
  probabilities move slightly with the other records of its batch (~3e-4 on
  the test model).

Both quantize the model after ``quant_pre_process`` (ONNX shape inference; the
symbolic one would need sympy, which is not a dependency).

The model's own preprocessing (NaN/inf -> 0 and the per-lead z-score, and any
reshaping before the first convolution) and the output softmax stay float32 in
every variant (``onnx_graph.float32_nodes``): onnxruntime has no float16
``IsInf``, a raw signal's range (mV or ADC counts) would lose resolution in
float16 or int8, and uint8 probabilities would not sum to 1.
"""

from __future__ import annotations

import contextlib
import os
import tempfile

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from export.onnx_export import INPUT_NAME
from export.onnx_graph import drop_float16_round_trips, float32_nodes, sort_topologically

INT8_METHODS = ("int8_static", "int8_dynamic")


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
