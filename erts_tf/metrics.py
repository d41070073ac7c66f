"""Classification metrics with scikit-learn's definitions (zero_division=0).

Macro means are over the classes present in the split's labels: a class with no
record in the split (MIT-BIH's validation records hold no Q beat, for example)
has no defined recall, and counting its F1 as 0 would cap the macro-F1 below 1
for a perfect model. Its predictions still count, as errors on the records they
mislabel. Per-class entries cover every class.
"""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm


def present_classes(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """``(n_classes,)`` bool: the classes with at least one record in ``labels`` (``(n,)`` indices)."""
    return np.bincount(np.asarray(labels, np.int64), minlength=n_classes)[:n_classes] > 0


def classification_metrics(labels: np.ndarray, probs: np.ndarray, class_names) -> dict:
    """Macro-F1 (over the classes present in ``labels``), accuracy, per-class precision/recall/F1/support
    and the confusion matrix.

    Args:
      labels: ``(n,)`` true class indices.
      probs: ``(n, n_classes)`` predicted probabilities.
    """
    n_classes = len(class_names)
    pred = np.argmax(probs, axis=-1)
    classes = np.arange(n_classes)
    p, r, f, support = skm.precision_recall_fscore_support(labels, pred, labels=classes, zero_division=0)
    present = present_classes(labels, n_classes)
    return {
        "n": int(len(labels)),
        "macro_f1": float(f[present].mean()) if present.any() else 0.0,
        "macro_f1_classes": [name for name, kept in zip(class_names, present) if kept],
        "accuracy": float(skm.accuracy_score(labels, pred)),
        "per_class": {
            name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(support[i])}
            for i, name in enumerate(class_names)
        },
        "confusion_matrix": skm.confusion_matrix(labels, pred, labels=classes).tolist(),
    }


def auroc_ovr(labels: np.ndarray, probs: np.ndarray, class_names) -> dict:
    """One-vs-rest ROC AUC per class and their macro mean (scikit-learn's ``roc_auc_score``).

    A class without positive or without negative samples in ``labels`` has no
    AUROC (``None``); the macro mean is over the classes that have one (``None``
    if none has).

    Args:
      labels: ``(n,)`` true class indices.
      probs: ``(n, n_classes)`` predicted probabilities.
    """
    labels = np.asarray(labels)
    return _auroc_columns(np.stack([labels == c for c in range(len(class_names))], axis=1), probs, class_names)


def _auroc_columns(targets: np.ndarray, scores: np.ndarray, class_names) -> dict:
    per_class = {}
    for c, name in enumerate(class_names):
        positive = np.asarray(targets[:, c], bool)
        defined = 0 < positive.sum() < len(positive)
        per_class[name] = float(skm.roc_auc_score(positive, scores[:, c])) if defined else None
    defined = [v for v in per_class.values() if v is not None]
    return {"macro_auroc": float(np.mean(defined)) if defined else None, "per_class_auroc": per_class}


def multilabel_metrics(targets: np.ndarray, scores: np.ndarray, class_names, threshold: float | None = 0.5,
                       tuned_thresholds: np.ndarray | None = None) -> dict:
    """Multi-label metrics of per-class scores against multi-hot targets.

    Macro AUROC over the classes (columns) that have both positives and
    negatives; with a ``threshold``, also macro-F1 and per-class F1 (and in
    ``per_class`` precision, recall, support, AUROC) of ``scores >= threshold``
    (scikit-learn, ``zero_division=0``); with
    ``tuned_thresholds`` ``(n_classes,)`` (``f1_optimal_thresholds`` of another
    split, the validation split), ``tuned``: the same F1s at those thresholds.

    Args:
      targets: ``(n, n_classes)`` multi-hot {0, 1}.
      scores: ``(n, n_classes)`` per-class scores (sigmoid outputs, or the class
        probabilities of a single-label model: then only the AUROC is meaningful).
      threshold: decision threshold for the F1 metrics; None skips them.
      tuned_thresholds: per-class thresholds of the ``tuned`` F1s (None: not reported).
    """
    targets = np.asarray(targets).astype(int)
    scores = np.asarray(scores, np.float64)
    result = {"n": int(len(targets)), "positives": dict(zip(class_names, targets.sum(axis=0).tolist())),
              **_auroc_columns(targets, scores, class_names)}
    if threshold is not None:
        pred = (scores >= threshold).astype(int)
        p, r, f1, support = skm.precision_recall_fscore_support(targets, pred, average=None, zero_division=0,
                                                                labels=range(len(class_names)))
        result.update(threshold=threshold,
                      macro_f1=float(skm.f1_score(targets, pred, average="macro", zero_division=0)),
                      per_class_f1=dict(zip(class_names, map(float, f1))),
                      per_class={name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f1[i]),
                                        "support": int(support[i]), "auroc": result["per_class_auroc"][name]}
                                 for i, name in enumerate(class_names)})
    if tuned_thresholds is not None:
        tuned_thresholds = np.asarray(tuned_thresholds, np.float64)
        pred = (scores >= tuned_thresholds).astype(int)
        f1 = skm.f1_score(targets, pred, average=None, zero_division=0, labels=range(len(class_names)))
        result["tuned"] = {"thresholds": dict(zip(class_names, map(float, tuned_thresholds))),
                           "macro_f1": float(np.mean(f1)), "per_class_f1": dict(zip(class_names, map(float, f1)))}
    return result


def f1_optimal_thresholds(targets: np.ndarray, scores: np.ndarray, default: float = 0.5) -> np.ndarray:
    """Per-class thresholds ``(n_classes,)`` that maximise each class's F1 of ``scores >= t`` on these records.

    Choose them on the validation split and apply them to test (never choose on test). Candidates are the
    class's scores (ties: the highest threshold of the best F1); a class without positives keeps ``default``.

    Args:
      targets: ``(n, n_classes)`` multi-hot {0, 1}.
      scores: ``(n, n_classes)`` per-class scores.
    """
    targets = np.asarray(targets) > 0
    scores = np.asarray(scores, np.float64)
    thresholds = np.full(targets.shape[1], default, np.float64)
    for c in range(targets.shape[1]):
        positives = int(targets[:, c].sum())
        if positives == 0:
            continue
        order = np.argsort(-scores[:, c], kind="stable")
        s, t = scores[order, c], targets[order, c]
        tp = np.cumsum(t)  # predicting the first k+1 (scores >= s[k]) positive
        k = np.arange(1, len(s) + 1)
        last = np.r_[s[1:] != s[:-1], True]  # a threshold takes every tie: only the last of a run of ties counts
        f1 = np.where(last, 2 * tp / (k + positives), -1.0)
        thresholds[c] = s[int(np.argmax(f1))]
    return thresholds
