"""Classification metrics with scikit-learn's definitions (zero_division=0)."""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm


def classification_metrics(labels: np.ndarray, probs: np.ndarray, class_names) -> dict:
    """Macro-F1, accuracy, per-class precision/recall/F1/support and the confusion matrix.

    Args:
      labels: ``(n,)`` true class indices.
      probs: ``(n, n_classes)`` predicted probabilities.
    """
    n_classes = len(class_names)
    pred = np.argmax(probs, axis=-1)
    classes = np.arange(n_classes)
    p, r, f, support = skm.precision_recall_fscore_support(labels, pred, labels=classes, zero_division=0)
    return {
        "n": int(len(labels)),
        "macro_f1": float(skm.f1_score(labels, pred, labels=classes, average="macro", zero_division=0)),
        "accuracy": float(skm.accuracy_score(labels, pred)),
        "per_class": {
            name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(support[i])}
            for i, name in enumerate(class_names)
        },
        "confusion_matrix": skm.confusion_matrix(labels, pred, labels=classes).tolist(),
    }
