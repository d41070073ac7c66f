"""Class-balanced cross-entropy (Cui et al. 2019, effective number of samples)."""

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


def weighted_cross_entropy(labels: tf.Tensor, logits: tf.Tensor, class_weights: tf.Tensor) -> tf.Tensor:
    """Per-sample ``w[y] * CE(y, softmax(logits))``: ``(batch,)`` from ``(batch,)`` and ``(batch, C)``."""
    labels = tf.cast(labels, tf.int32)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=tf.cast(logits, tf.float32))
    return ce * tf.gather(class_weights, labels)
