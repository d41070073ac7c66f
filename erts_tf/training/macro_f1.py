"""The training and validation macro-F1 metric, with the rule of ``erts_tf.metrics``."""

from __future__ import annotations

import keras
from keras import ops


class PresentClassesMacroF1(keras.metrics.F1Score):
    """Macro-F1 of the argmax predictions (``threshold`` None; multi-label: ``scores >= threshold``)
    over the classes present in the labels seen.

    Keras's ``F1Score(average="macro")`` averages over every class, so a class
    with no record in a split (MIT-BIH's validation split holds no Q beat)
    counts as F1 0. This one averages the per-class F1 over the classes with at
    least one true record among the updates since the last reset, as
    ``erts_tf.metrics.classification_metrics`` does for a whole split.
    Updates take one-hot ``(batch, n_classes)`` labels and ``(batch, n_classes)``
    scores.
    """

    def __init__(self, name: str = "macro_f1", dtype=None, threshold: float | None = None):
        super().__init__(average=None, threshold=threshold, name=name, dtype=dtype)

    def result(self):
        per_class = super().result()  # (n_classes,)
        present = ops.cast(self.true_positives + self.false_negatives > 0, per_class.dtype)
        return ops.divide(ops.sum(per_class * present), ops.maximum(ops.sum(present), 1.0))

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "threshold": self.threshold}
