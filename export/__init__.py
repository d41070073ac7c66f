"""Export of a finished run: SavedModel and ONNX serving the raw signal, with a parity check.

``python -m export --run_dir=runs/quick`` writes into ``<run_dir>/export/``:

* ``saved_model/``: a TensorFlow SavedModel whose ``serving_default`` (alias of
  ``serve``) takes the RAW signal ``signal: (batch, time, leads) float32``
  (dynamic batch), replaces NaN/inf by 0 and z-scores each lead itself
  (``pipeline.zscore_tf``), runs the
  backbone and returns ``{"probabilities": (batch, n_classes)}`` (softmax);
* ``model.onnx``: the same tf.function converted by tf2onnx 1.17 at ONNX opset
  17 (``onnx_export.DEFAULT_OPSET``), input ``signal``, output ``probabilities``;
* ``parity.json``: SavedModel and ONNX (onnxruntime, CPU) against the Keras
  model on raw records of the run's dataset: max |difference| of the
  probabilities and whether the argmax is identical.

No float16 ONNX variant: that needs onnxconverter-common, which is not a
dependency.
"""

_EXPORTS = {
    "DEFAULT_OPSET": "export.onnx_export", "export_onnx": "export.onnx_export", "onnx_predict": "export.onnx_export",
    "check_parity": "export.parity", "raw_records": "export.parity", "export_run": "export.run",
    "export_saved_model": "export.serving", "serving_function": "export.serving",
    "saved_model_predict": "export.serving",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):  # lazy: `python -m export --help` and flag errors do not import TensorFlow
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'export' has no attribute {name!r}")
