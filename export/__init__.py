"""Export of a finished run: SavedModel and ONNX models that serve the raw signal and describe themselves.

``python -m export --run_dir=runs/quick`` writes into ``<run_dir>/export/``
(file names in ``export.layout``):

* ``saved_model/``: a TensorFlow SavedModel whose ``serving_default`` (alias of
  ``serve``) takes the RAW signal ``signal: (batch, time, leads) float32``
  (dynamic batch), replaces NaN/inf by 0 and z-scores each lead itself
  (``pipeline.zscore_tf``), runs the backbone and returns
  ``{"probabilities": (batch, n_classes)}`` (softmax);
  ``saved_model/assets.extra/metadata.json`` holds the metadata;
* ``model.onnx``: the same tf.function converted by tf2onnx 1.17 at ONNX opset
  17 (``onnx_export.DEFAULT_OPSET``), input ``signal``, output ``probabilities``;
* ``model.float16.onnx`` and ``model.int8.onnx``: smaller variants made with
  onnxruntime's tools (``export.quantize``; for int8 the best of static QDQ,
  static QDQ with the input layer and the classifier kept float32, and dynamic:
  ``export.variants``), each with its size, latency and parity
  against float32 on the test split;
* the metadata (``export.metadata``: classes, sampling rate, length, lead
  names, units, preprocessing, dataset and config, selection mode and cost,
  test metrics with CIs, audit, erts-tf version, parity) as one JSON, in the
  SavedModel and in the ``metadata_props`` of every ``.onnx`` file;
* ``parity.json``: SavedModel and ONNX (onnxruntime, CPU) against the Keras
  model on raw records of the run's dataset: max |difference| of the
  probabilities and whether the argmax is identical;
* ``MODEL_CARD.md`` (``export.card``), generated from the metadata.

``python -m export.predict --model=<export folder> --record=<record or folder>``
(``export.predict``) runs the ONNX model on WFDB and PhysioNet challenge
records, using only what the model file says about itself.
"""

_EXPORTS = {
    "DEFAULT_OPSET": "export.onnx_export", "export_onnx": "export.onnx_export", "onnx_predict": "export.onnx_export",
    "check_parity": "export.parity", "raw_records": "export.parity", "export_run": "export.run",
    "export_saved_model": "export.serving", "serving_function": "export.serving",
    "saved_model_predict": "export.serving", "predict": "export.predict",
    "read_onnx_metadata": "export.metadata", "read_saved_model_metadata": "export.metadata",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):  # lazy: `python -m export --help` and flag errors do not import TensorFlow
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'export' has no attribute {name!r}")
