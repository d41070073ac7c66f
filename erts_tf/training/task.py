"""The learning task of a run (``--task``): what the logits mean, the loss, and the per-sample scores
the selection policies rank.

``single`` (softmax, one class per record), exactly as erts-tf trained before tasks existed:
  labels ``(batch,)`` int class indices; loss ``w[y] * CE(y, softmax(z))`` with the class-balanced
  weights ``w``; confidence ``p_true = softmax(z)[y]``; correct: ``argmax == y``; Grad-CAM target:
  the true-class logit.

``multi`` (sigmoid, any number of classes per record; the PTB-XL benchmark's setting):
  labels ``(batch, C)`` multi-hot {0, 1}; loss: the mean over classes of the binary cross-entropy
  with a per-class positive weight ``pos_weight[c]`` (``positive_weights``: ``n_neg / n_pos``,
  bounded by ``--cb_max_ratio``);
  confidence ``exp(-mean_c BCE_c)`` (unweighted), which is ``p_true`` when a softmax is read as
  one-hot targets, so ``-log confidence`` is the sample's loss as InfoBatch reads it;
  correct: every class right at threshold 0.5 (exact match);
  Grad-CAM target: the sum of the positive classes' logits (one partial backward, as for one
  class); a record with no positive label explains the absence of every class: minus the sum of
  all logits.

Every function takes batch-first tensors and runs inside the compiled train step. The selection
policies read a multi-label sample's classes as membership (``policies.Scores.membership``).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from erts_tf.explain import gradcam
from erts_tf.training.losses import class_balanced_weights, weighted_cross_entropy

TASKS = ("single", "multi")
THRESHOLD = 0.5  # multi-label decision threshold of "correct" and of the training/validation F1


def positive_weights(targets: np.ndarray, max_ratio: float = 0.0) -> np.ndarray:
    """Per-class positive weights ``n_neg / n_pos`` ``(C,)`` float32 of multi-hot ``targets`` ``(n, C)``.

    A class without positives counts as one positive. ``max_ratio`` > 0 bounds every weight to
    ``[1 / max_ratio, max_ratio]`` (``--cb_max_ratio``), so a class of a handful of positives
    cannot dominate the loss and a class on most records is not silenced; 0: unbounded.
    """
    targets = np.asarray(targets) > 0
    n_pos = np.maximum(targets.sum(axis=0).astype(np.float64), 1.0)
    n_neg = np.maximum(len(targets) - n_pos, 0.0)
    weights = n_neg / n_pos
    if max_ratio > 0:
        weights = np.clip(weights, 1.0 / max_ratio, max_ratio)
    return weights.astype(np.float32)


def bce_per_class(targets: tf.Tensor, logits: tf.Tensor, pos_weight: tf.Tensor | None = None) -> tf.Tensor:
    """``(batch, C)`` binary cross-entropy of sigmoid ``logits`` ``(batch, C)`` against ``targets`` ``(batch, C)``;
    with ``pos_weight`` ``(C,)``: ``-(w y log s + (1 - y) log(1 - s))``."""
    targets = tf.cast(targets, tf.float32)
    logits = tf.cast(logits, tf.float32)
    if pos_weight is None:
        return tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=logits)
    return tf.nn.weighted_cross_entropy_with_logits(labels=targets, logits=logits, pos_weight=pos_weight)


class SingleLabel:
    """Softmax over ``C`` classes; labels ``(batch,)`` class indices."""

    name = "single"
    activation = "softmax"
    monitor = "val_macro_f1"  # what the best weights and early stopping follow
    f1_threshold = None  # the F1 metric's prediction: the argmax

    def label_shape(self, n_classes: int) -> tuple[int, ...]:
        return ()

    def probabilities(self, logits: tf.Tensor) -> tf.Tensor:
        return tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)

    def logits_of(self, probs: tf.Tensor) -> tf.Tensor:
        """Logits whose softmax is ``probs`` ``(batch, C)`` renormalised (aggregated windows)."""
        return tf.math.log(tf.maximum(probs, 1e-12))

    def per_sample_loss(self, labels, logits, class_weights) -> tf.Tensor:
        """``(batch,)`` ``w[y] * CE``."""
        return weighted_cross_entropy(labels, logits, class_weights)

    def confidence(self, labels, logits) -> tuple[tf.Tensor, tf.Tensor]:
        """``p_true`` ``(batch,)`` and ``correct`` ``(batch,)`` bool."""
        probs = self.probabilities(logits)
        labels = tf.cast(labels, tf.int32)
        p_true = tf.gather(probs, labels, axis=1, batch_dims=1)
        correct = tf.equal(tf.argmax(probs, axis=-1, output_type=tf.int32), labels)
        return p_true, correct

    def cam_target(self, logits, labels) -> tf.Tensor:
        """Scalar: the sum over the batch of the true-class logits (``gradcam.true_class_logit_sum``)."""
        return gradcam.true_class_logit_sum(logits, labels)

    def targets(self, labels, n_classes: int) -> tf.Tensor:
        """``(batch, C)`` one-hot float32 (the F1 metric's input)."""
        return tf.one_hot(tf.cast(labels, tf.int32), n_classes)

    def class_weights(self, labels: np.ndarray, n_classes: int, beta: float, max_ratio: float) -> np.ndarray:
        """``(C,)`` class-balanced weights of the training labels (``losses.class_balanced_weights``)."""
        return class_balanced_weights(labels, n_classes, beta, max_ratio)

    def label_text(self, label, class_names) -> str:
        """A sample's label as text (audit log, figures); empty for an unseen label (-1)."""
        return class_names[int(label)] if int(label) >= 0 else ""

    def predicted_text(self, probs: np.ndarray, class_names) -> str:
        return class_names[int(np.argmax(probs))]


class MultiLabel(SingleLabel):
    """Independent sigmoids over ``C`` classes; labels ``(batch, C)`` multi-hot."""

    name = "multi"
    activation = "sigmoid"
    monitor = "val_macro_auc"
    f1_threshold = THRESHOLD

    def label_shape(self, n_classes: int) -> tuple[int, ...]:
        return (n_classes,)

    def probabilities(self, logits: tf.Tensor) -> tf.Tensor:
        return tf.sigmoid(tf.cast(logits, tf.float32))

    def logits_of(self, probs: tf.Tensor) -> tf.Tensor:
        """Logits whose sigmoid is ``probs`` ``(batch, C)`` (clipped away from 0 and 1)."""
        probs = tf.clip_by_value(probs, 1e-7, 1.0 - 1e-7)
        return tf.math.log(probs) - tf.math.log1p(-probs)

    def per_sample_loss(self, labels, logits, class_weights) -> tf.Tensor:
        """``(batch,)`` the mean over classes of the positive-weighted BCE (``class_weights``: ``pos_weight``)."""
        return tf.reduce_mean(bce_per_class(labels, logits, class_weights), axis=-1)

    def confidence(self, labels, logits) -> tuple[tf.Tensor, tf.Tensor]:
        """``exp(-mean BCE)`` ``(batch,)`` and the exact match at 0.5 ``(batch,)`` bool."""
        p_true = tf.exp(-tf.reduce_mean(bce_per_class(labels, logits), axis=-1))
        predicted = self.probabilities(logits) >= THRESHOLD
        correct = tf.reduce_all(tf.equal(predicted, tf.cast(labels, tf.int32) > 0), axis=-1)
        return p_true, correct

    def cam_target(self, logits, labels) -> tf.Tensor:
        """Scalar: per sample the sum of its positive classes' logits, or minus the sum of all its logits
        when it has no positive label; summed over the batch (``gradcam.positive_class_logit_sum``)."""
        return gradcam.positive_class_logit_sum(logits, labels)

    def targets(self, labels, n_classes: int) -> tf.Tensor:
        return tf.cast(labels, tf.float32)

    def class_weights(self, labels: np.ndarray, n_classes: int, beta: float, max_ratio: float) -> np.ndarray:
        """``(C,)`` positive weights of the training targets (``positive_weights``; ``beta`` is single-label's)."""
        del n_classes, beta
        return positive_weights(labels, max_ratio)

    def label_text(self, label, class_names) -> str:
        """The positive classes joined by ``+`` (``-`` for none; empty for an unseen label)."""
        label = np.asarray(label)
        if (label < 0).any():
            return ""
        return "+".join(n for n, y in zip(class_names, label) if y > 0) or "-"

    def predicted_text(self, probs: np.ndarray, class_names) -> str:
        return "+".join(n for n, p in zip(class_names, probs) if p >= THRESHOLD) or "-"


SINGLE = SingleLabel()
MULTI = MultiLabel()
_BY_NAME = {SINGLE.name: SINGLE, MULTI.name: MULTI}


def get(name: str) -> SingleLabel:
    """The task called ``name`` (one of ``TASKS``)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}") from None


def of_labels(labels) -> SingleLabel:
    """The task of labels ``(n,)`` (single) or ``(n, C)`` (multi)."""
    return MULTI if np.ndim(labels) == 2 else SINGLE
