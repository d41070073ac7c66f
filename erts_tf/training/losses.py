"""Class-balanced cross-entropy (Cui et al. 2019, effective number of samples), or weights given per class."""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def class_balanced_weights(labels: np.ndarray, n_classes: int, beta: float = 0.9999,
                           max_ratio: float = 0.0) -> np.ndarray:
    """Per-class weights ``(1 - beta) / (1 - beta**n_c)``, rescaled to sum to ``n_classes``.

    A class absent from ``labels`` gets the weight of a class with one sample.
    ``max_ratio`` > 0 caps every weight at ``max_ratio`` times the smallest one
    (before the rescaling), so a class of a handful of samples cannot dominate the
    loss; 0 is the uncapped reference.
    """
    counts = np.bincount(np.asarray(labels, np.int64), minlength=n_classes).astype(np.float64)
    effective = 1.0 - np.power(beta, np.maximum(counts, 1.0))
    weights = (1.0 - beta) / effective
    if max_ratio > 0:
        weights = np.minimum(weights, max_ratio * weights.min())
    return (weights / weights.sum() * n_classes).astype(np.float32)


def parse_class_weights(spec: str) -> dict[str, float]:
    """``"N:1,S:40,V:4"`` -> ``{"N": 1.0, "S": 40.0, "V": 4.0}`` (``--class_weights``); every weight > 0."""
    weights = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, sep, value = item.rpartition(":")
        try:
            weight = float(value)
        except ValueError:
            weight = float("nan")
        if not sep or not name or not weight > 0 or not np.isfinite(weight):
            raise ValueError(f"{item!r} is not CLASS:WEIGHT with a weight > 0")
        if name in weights:
            raise ValueError(f"class {name!r} is given twice")
        weights[name] = weight
    if not weights:
        raise ValueError("no CLASS:WEIGHT given")
    return weights


def class_weights_conflict(loss: str, task: str, reference_loss_split: bool) -> str:
    """Why ``--class_weights`` cannot be used with these settings (empty: it can)."""
    if loss == "class_balanced" and task == "single" and not reference_loss_split:
        return ""
    return ("--class_weights replaces the class-balanced weights of a single-label run: it needs "
            "--loss=class_balanced --task=single and no --reference_loss_split")


def explicit_class_weights(spec: str, class_names) -> np.ndarray:
    """``(C,)`` the weights ``spec`` (``parse_class_weights``) gives the training classes ``class_names``,
    rescaled to sum to ``C`` as the class-balanced ones are. Every class must be named, and only those."""
    weights = parse_class_weights(spec)
    unknown = sorted(set(weights) - set(class_names))
    missing = [name for name in class_names if name not in weights]
    if unknown or missing:
        raise ValueError(f"--class_weights={spec} must name each training class once ({', '.join(class_names)}): "
                         + "; ".join(filter(None, (unknown and f"unknown {', '.join(unknown)}",
                                                   missing and f"missing {', '.join(missing)}"))))
    values = np.array([weights[name] for name in class_names], np.float64)
    return (values / values.sum() * len(values)).astype(np.float32)


def weighted_cross_entropy(labels: tf.Tensor, logits: tf.Tensor, class_weights: tf.Tensor) -> tf.Tensor:
    """Per-sample ``w[y] * CE(y, softmax(logits))``: ``(batch,)`` from ``(batch,)`` and ``(batch, C)``."""
    labels = tf.cast(labels, tf.int32)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=tf.cast(logits, tf.float32))
    return ce * tf.gather(class_weights, labels)
