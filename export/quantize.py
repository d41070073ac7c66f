"""Smaller ONNX variants of the float32 model: float16, and int8 by static (QDQ) or dynamic quantization.

All of it is onnxruntime's own tooling (no other dependency):

* ``float16``: ``onnxruntime.transformers.float16.convert_float_to_float16``
  with float32 input and output (``keep_io_types``);
* ``int8_static``: ``quantize_static`` in the QDQ format, calibrated (MinMax)
  on raw training records: per-channel int8 weights, uint8 activations (the
  combination onnxruntime's x86 kernels run fastest: with int8 activations
  resnet1d and resnet18_2d ran 1.7x and 3.3x slower here), after folding the
  per-channel ``Mul``/``Add`` that follow a convolution into it
  (``onnx_graph.fold_channel_affine``; see below);
* ``int8_static_mixed``: the same, but the input layer(s) and the classifier
  stay float32 (see below);
* ``int8_dynamic``: ``quantize_dynamic`` (int8 weights, activations quantized
  at run time). On CPU its convolutions are often slower than float32's. The
  activations' scale is computed per call over the whole batch, so a record's
  probabilities move slightly with the other records of its batch (~3e-4 on
  the test model).

All quantize the model after ``quant_pre_process`` (ONNX shape inference; the
symbolic one would need sympy, which is not a dependency).

Why the fold and the mixed candidate. resnet1d on the PTB-XL 100 Hz subset
(a 6-epoch and a 24-epoch run, ``benchmarks/results/deploy*.json``): MinMax
static int8 agreed with float32 on the argmax of 98.5 % of the 464 test
records of both (7 apart; 99 % allows 4), and percentile or entropy
calibration or 512 calibration records did no better. On 464 records one
record is 0.2 %, so the candidates below were also compared on 4,230 records
(test, validation, and the training records not used for calibration):

  =============================================  ==============  ==============  ===============  ======
  static int8, MinMax (6 / 24 epochs)            test agreement  4,230 records   mean |p diff|    size
  =============================================  ==============  ==============  ===============  ======
  as before                                      98.5 / 98.5 %   98.0 / 98.6 %   0.0057 / 0.0052  0.285x
  moving-average calibration                     98.9 / 98.9 %   98.7 / 99.0 %   0.0040 / 0.0039  0.285x
  first conv float32 + moving average            99.4 / 99.4 %   98.8 / 99.1 %   0.0039 / 0.0035  0.290x
  fold (``int8_static``)                         97.6 / 98.7 %   98.8 / 99.1 %   0.0039 / 0.0041  0.281x
  fold + moving average                          99.4 / 99.6 %   99.2 / 99.5 %   0.0027 / 0.0028  0.281x
  fold + first conv float32                      99.4 / 99.6 %   99.3 / 99.3 %   0.0026 / 0.0023  0.285x
  fold + first conv, classifier float32 (mixed)  99.4 / 99.4 %   99.4 / 99.5 %   0.0023 / 0.0021  0.285x
  =============================================  ==============  ==============  ===============  ======

(Keeping only the classifier, or also the global pooling, float32 moved
nothing; the moving average added nothing to the mixed one.) The fold:
Keras' Conv1D reaches ONNX as ``Unsqueeze -> Conv -> Squeeze``, and the batch
normalisation after the ``Squeeze`` (a ``Mul`` and an ``Add`` per channel)
is folded neither by tf2onnx nor by onnxruntime (it is for 2-D
convolutions): quantized, every convolution of resnet1d had its output
rounded to 8 bits three times. The two ends: the first layer(s) see the
z-scored signal, whose rare large excursions set a uint8 range with a coarse
step for the common small values; the classifier's logits decide the argmax,
which uint8 logits turn into near-ties. ``int8_static_mixed`` keeps in float32
the weighted ops that see the preprocessed input
(``onnx_graph.input_layer_nodes``: resnet1d's and resnet18_2d's stem
convolution, inception1d's three first-module convolutions) and those from
which the output is reached through no other weighted op
(``onnx_graph.output_layer_nodes``: the logits ``Gemm``/``MatMul``); macro-F1
moved by -0.002 / +0.001, latency 0.57x / 0.56x (batch 1) and 0.50x / 0.53x
(batch 32) of float32, no slower than all-int8 (a 12-channel first
convolution gains little from int8). resnet18_2d's float32 7x7 stem on the
lead image costs more (0.72x / 0.83x against 0.47x / 0.59x), and there
``int8_static`` is within bounds: which one a model keeps is measured
(``export.variants``), not assumed. ``int8_dynamic`` quantizes per-tensor
weights, whose range folding per-channel scales into them would widen: no
fold.
"""

from __future__ import annotations

import contextlib
import os
import tempfile

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from export.onnx_export import INPUT_NAME
from export.onnx_graph import (drop_float16_round_trips, float32_nodes, fold_channel_affine, input_layer_nodes,
                               output_layer_nodes, sort_topologically)

INT8_METHODS = ("int8_static", "int8_static_mixed", "int8_dynamic")


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
def _prepared(src: str, fold: bool = False):
    """``src`` after ``quant_pre_process`` (ONNX shape inference, basic graph optimisation) and, with ``fold``,
    ``onnx_graph.fold_channel_affine``, in a temporary file."""
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        prepared = os.path.join(tmp, "prepared.onnx")
        quant_pre_process(src, prepared, skip_symbolic_shape=True)
        if fold:
            model = onnx.load(prepared)
            if fold_channel_affine(model.graph):
                onnx.checker.check_model(model)
                onnx.save(model, prepared)
        yield prepared


def static_float32_nodes(graph, mixed: bool = False) -> list[str]:
    """The nodes static int8 leaves in float32: ``float32_nodes``, and with ``mixed`` the input and output layers."""
    names = float32_nodes(graph)
    if mixed:
        names += [n for n in [*input_layer_nodes(graph), *output_layer_nodes(graph)] if n not in names]
    return names


def int8_static(src: str, dst: str, calibration: np.ndarray, batch_size: int = 16, mixed: bool = False) -> str:
    """Writes the static (QDQ) int8 variant of ``src`` to ``dst``, calibrated on raw records ``(n, time, leads)``.

    ``mixed``: keep the input layer(s) and the classifier in float32 (``int8_static_mixed``).
    """
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    with _prepared(src, fold=True) as prepared:
        quantize_static(prepared, dst, _CalibrationReader(calibration, batch_size), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        nodes_to_exclude=static_float32_nodes(onnx.load(prepared).graph, mixed))
    return dst


def int8_static_mixed(src: str, dst: str, calibration: np.ndarray, batch_size: int = 16) -> str:
    """``int8_static`` with the input layer(s) and the classifier in float32."""
    return int8_static(src, dst, calibration, batch_size, mixed=True)


def int8_dynamic(src: str, dst: str) -> str:
    """Writes the dynamic int8 variant of ``src`` to ``dst``."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _prepared(src) as prepared:
        quantize_dynamic(prepared, dst, weight_type=QuantType.QInt8,
                         nodes_to_exclude=float32_nodes(onnx.load(prepared).graph))
    return dst
