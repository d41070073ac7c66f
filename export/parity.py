"""Parity of the exported models with the Keras model on raw records of the run's dataset.

The reference is what training and ``erts_tf.evaluate`` compute: the NumPy
z-score (``pipeline.zscore``) of the raw signal, then ``inference.predict_probs``
(the Keras backbone in inference mode, softmax).
The SavedModel and the ONNX model get the RAW signal and must reproduce it:
``max_abs_diff`` is the largest absolute difference of any class probability,
``argmax_identical`` whether every predicted class is the same.
``variant_parity`` compares a smaller ONNX variant (float16, int8) with the
float32 model in the same way and adds the argmax agreement and the
macro-F1 difference against the labels.
"""

from __future__ import annotations

import numpy as np

from export.onnx_export import onnx_predict

DEFAULT_TOLERANCE = 1e-4


def raw_records(builder, split: str, n: int, every: int = 1) -> dict[str, np.ndarray]:
    """The first ``n`` records of ``split`` (file order; every ``every``-th one) with their UN-normalised signal.

    Returns:
      ``{"signal": (n, time, leads) float32, "label": (n,), "sample_id": (n,)}``.
    """
    import tensorflow_datasets as tfds

    ds = builder.as_dataset(split=split, shuffle_files=False).shard(every, 0).take(n)
    ds = ds.map(lambda ex: {"signal": ex["signal"], "label": ex["label"], "sample_id": ex["sample_id"]}).batch(max(n, 1))
    batches = list(tfds.as_numpy(ds))
    if not batches:
        raise ValueError(f"{builder.name}/{split} has no records")
    record = batches[0]
    return {"signal": record["signal"].astype(np.float32), "label": record["label"], "sample_id": record["sample_id"]}


def keras_reference(backbone, raw_signal: np.ndarray, batch_size: int = 64, activation: str = "softmax") -> np.ndarray:
    """Probabilities ``(n, n_classes)`` of the Keras backbone on the training-time preprocessing
    (``activation``: softmax, or sigmoid for a multi-label run)."""
    from erts_tf.data import pipeline
    from erts_tf.inference import predict_probs

    return predict_probs(backbone, pipeline.zscore(raw_signal), batch_size, activation)


def compare(reference: np.ndarray, candidate: np.ndarray, tolerance: float = DEFAULT_TOLERANCE) -> dict:
    """Max/mean absolute difference and argmax agreement of ``candidate`` with ``reference``."""
    diff = np.abs(np.asarray(candidate, np.float64) - np.asarray(reference, np.float64))
    same = np.argmax(candidate, axis=-1) == np.argmax(reference, axis=-1)
    max_abs = float(diff.max()) if diff.size else 0.0
    return {
        "max_abs_diff": max_abs,
        "mean_abs_diff": float(diff.mean()) if diff.size else 0.0,
        "argmax_identical": bool(same.all()),
        "argmax_differs": int((~same).sum()),
        "passed": bool(max_abs <= tolerance and same.all()),
    }


def variant_parity(reference: np.ndarray, candidate: np.ndarray, labels: np.ndarray, class_names) -> dict:
    """A smaller variant against the float32 model on the same records ``(n, n_classes)`` each.

    Returns:
      ``{"n", "max_abs_diff", "mean_abs_diff", "argmax_agreement", "argmax_differs",
      "macro_f1", "macro_f1_float32", "macro_f1_diff"}``; ``macro_f1_diff`` is the
      variant's macro-F1 minus float32's, both against ``labels``.
    """
    from erts_tf.metrics import classification_metrics

    diffs = compare(reference, candidate, tolerance=float("inf"))
    f1, f1_reference = (classification_metrics(labels, p, class_names)["macro_f1"] for p in (candidate, reference))
    return {"n": int(len(reference)), "max_abs_diff": diffs["max_abs_diff"], "mean_abs_diff": diffs["mean_abs_diff"],
            "argmax_agreement": 1.0 - diffs["argmax_differs"] / max(len(reference), 1),
            "argmax_differs": diffs["argmax_differs"], "macro_f1": f1, "macro_f1_float32": f1_reference,
            "macro_f1_diff": f1 - f1_reference}


def check_parity(backbone, raw_signal: np.ndarray, saved_model_path: str | None = None, onnx_path: str | None = None,
                 tolerance: float = DEFAULT_TOLERANCE, batch_size: int = 64, activation: str = "softmax") -> dict:
    """Compares the exported models with the Keras model on ``raw_signal`` ``(n, time, leads)``
    (the Keras model's probabilities by ``activation``: the exported models' output function).

    Returns:
      ``{"n", "tolerance", "saved_model": {...}, "onnx": {...}, "passed"}`` with
      ``compare``'s fields for each artefact given.
    """
    from export.serving import saved_model_predict

    reference = keras_reference(backbone, raw_signal, batch_size, activation)
    result = {"n": int(len(raw_signal)), "tolerance": tolerance, "activation": activation}
    if saved_model_path:
        result["saved_model"] = compare(reference, saved_model_predict(saved_model_path, raw_signal), tolerance)
    if onnx_path:
        result["onnx"] = compare(reference, onnx_predict(onnx_path, raw_signal), tolerance)
    result["passed"] = all(result[k]["passed"] for k in ("saved_model", "onnx") if k in result)
    return result
