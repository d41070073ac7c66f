"""Export of a finished run: SavedModel and ONNX serving the raw signal, with a parity check.

``python -m export --run_dir=runs/quick`` writes into ``<run_dir>/export/``:

* ``saved_model/``: a TensorFlow SavedModel whose ``serving_default`` (alias of
  ``serve``) takes the RAW signal ``signal: (batch, time, leads) float32``
  (dynamic batch), z-scores each lead itself (``pipeline.zscore_tf``), runs the
  backbone and returns ``{"probabilities": (batch, n_classes)}`` (softmax);
* ``model.onnx``: the same tf.function converted by tf2onnx 1.17 at ONNX opset
  17 (``onnx_export.DEFAULT_OPSET``), input ``signal``, output ``probabilities``;
* ``parity.json``: SavedModel and ONNX (onnxruntime, CPU) against the Keras
  model on raw records of the run's dataset: max |difference| of the
  probabilities and whether the argmax is identical.

No float16 ONNX variant: that needs onnxconverter-common, which is not a
dependency.
"""

from export.onnx_export import DEFAULT_OPSET, export_onnx, onnx_predict
from export.parity import check_parity, raw_records
from export.run import export_run
from export.serving import export_saved_model, serving_function

__all__ = [
    "DEFAULT_OPSET", "check_parity", "export_onnx", "export_run", "export_saved_model", "onnx_predict",
    "raw_records", "serving_function",
]
