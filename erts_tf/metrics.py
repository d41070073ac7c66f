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


def classification_metrics(labels: np.ndarray, probs: np.ndarray, class_names,
                           tuned_offsets: np.ndarray | None = None) -> dict:
    """Macro-F1 (over the classes present in ``labels``), accuracy, per-class precision/recall/F1/support
    and the confusion matrix of the most probable class; with ``tuned_offsets`` ``(n_classes,)``
    (``macro_f1_optimal_offsets`` of another split, the validation split), ``tuned``: the same metrics of
    ``offset_probs(probs, tuned_offsets)`` and the offsets by class name.

    Args:
      labels: ``(n,)`` true class indices.
      probs: ``(n, n_classes)`` predicted probabilities.
      tuned_offsets: per-class log-probability offsets of the ``tuned`` metrics (None: not reported).
    """
    result = _prediction_metrics(labels, np.argmax(probs, axis=-1), class_names)
    if tuned_offsets is not None:
        result["tuned"] = {"offsets": dict(zip(class_names, map(float, tuned_offsets))),
                           **_prediction_metrics(labels, np.argmax(offset_probs(probs, tuned_offsets), axis=-1),
                                                 class_names)}
    return result


def _prediction_metrics(labels: np.ndarray, pred: np.ndarray, class_names) -> dict:
    n_classes = len(class_names)
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


# Candidate log-probability offsets of ``macro_f1_optimal_offsets``: a class's odds scaled by e^-4 .. e^4.
OFFSET_GRID = np.round(np.arange(-4.0, 4.0 + 1e-9, 0.25), 2)
_LOG_FLOOR = 1e-12  # log(0) guard: a probability the float32 softmax rounded to 0


def _log_probs(probs: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(np.asarray(probs, np.float64), _LOG_FLOOR))


def offset_probs(probs: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """``(n, n_classes)`` probabilities with each class's scaled by ``exp(offset)`` and renormalised
    (``softmax(log(probs) + offsets)``): the posterior under other class priors. Their most probable class
    is the decision at that operating point; the model is unchanged.

    Args:
      probs: ``(n, n_classes)`` predicted probabilities.
      offsets: ``(n_classes,)`` log-probability offsets (zeros: ``probs``).
    """
    shifted = _log_probs(probs) + np.asarray(offsets, np.float64)
    shifted = np.exp(shifted - shifted.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def confusion_counts(labels: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Confusion matrices of many resamples at once.

    Args:
      labels: ``(rounds, n)`` true class indices.
      pred: ``(rounds, n)`` predicted class indices.

    Returns:
      ``(rounds, n_classes, n_classes)`` int64, ``[r, true, predicted]``.
    """
    rounds = labels.shape[0]
    flat = (np.arange(rounds)[:, None] * n_classes + labels) * n_classes + pred
    return np.bincount(flat.ravel(), minlength=rounds * n_classes * n_classes).reshape(rounds, n_classes, n_classes)


def _safe_divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` with 0 where ``den == 0`` (scikit-learn's ``zero_division=0``)."""
    num = np.asarray(num, np.float64)
    den = np.asarray(den, np.float64)
    return np.divide(num, den, out=np.zeros(np.broadcast_shapes(num.shape, den.shape)), where=den > 0)


def prf_from_counts(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall and F1 (``2tp / (2tp + fp + fn)``, 0 when undefined), same shape as ``tp``."""
    return {
        "precision": _safe_divide(tp, tp + fp),
        "recall": _safe_divide(tp, tp + fn),
        "f1": _safe_divide(2 * tp, 2 * tp + fp + fn),
    }


def prf_by_round(labels: np.ndarray, pred: np.ndarray, n_classes: int) -> dict[str, np.ndarray]:
    """Per-class precision, recall and F1 of many resamples at once, from their confusion counts.

    Args:
      labels: ``(rounds, n)`` true class indices.
      pred: ``(rounds, n)`` predicted class indices.

    Returns:
      ``{"precision", "recall", "f1"}``, each ``(rounds, n_classes)`` (``prf_from_counts``' zero rule).
    """
    confusion = confusion_counts(labels, pred, n_classes)  # [r, true, predicted]
    tp = np.diagonal(confusion, axis1=1, axis2=2)
    return prf_from_counts(tp, confusion.sum(axis=1) - tp, confusion.sum(axis=2) - tp)


def macro_f1(labels: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    """Macro-F1 of ``pred`` against ``labels`` (``(n,)`` class indices) over the classes present in ``labels``
    (the module's rule; zero_division=0), from the confusion counts."""
    labels, pred = np.asarray(labels, np.int64), np.asarray(pred, np.int64)
    f1 = prf_by_round(labels[None], pred[None], n_classes)["f1"][0]
    present = present_classes(labels, n_classes)
    return float(f1[present].mean()) if present.any() else 0.0


def macro_f1_optimal_offsets(labels: np.ndarray, probs: np.ndarray, grid: np.ndarray = OFFSET_GRID,
                             sweeps: int = 3) -> np.ndarray:
    """Per-class log-probability offsets ``(n_classes,)`` that raise the macro-F1 of the most probable class
    of ``offset_probs(probs, offsets)`` on these records: the operating point of a single-label model.

    Choose them on the validation split and apply them to test (never choose on test). Coordinate ascent
    from zero offsets: ``sweeps`` passes over the classes in order, each setting one class's offset to the
    ``grid`` value of the highest macro-F1 (``macro_f1``) with the others fixed; a value replaces the current
    one only if it raises macro-F1 strictly, and among equal values the one nearest zero wins, so offsets stay
    zero where they change nothing and the result is deterministic. A sweep that changes nothing ends the search.

    Args:
      labels: ``(n,)`` true class indices.
      probs: ``(n, n_classes)`` predicted probabilities.
      grid: candidate offsets of one class.
      sweeps: most passes over the classes.
    """
    log_probs = _log_probs(probs)
    n_classes = log_probs.shape[1]
    candidates = sorted(np.asarray(grid, np.float64), key=lambda v: (abs(v), v))
    offsets = np.zeros(n_classes)
    best = macro_f1(labels, np.argmax(log_probs, axis=-1), n_classes)
    for _ in range(sweeps):
        changed = False
        for c in range(n_classes):
            for value in candidates:
                trial = offsets.copy()
                trial[c] = value
                score = macro_f1(labels, np.argmax(log_probs + trial, axis=-1), n_classes)
                if score > best + 1e-12:
                    best, offsets, changed = score, trial, True
        if not changed:
            break
    return offsets


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
