"""Batched Grad-CAM over time, built from tensors a training step already has.

Conventions: activations of the target layer are ``(batch, time', channels)``
for 1-D backbones or ``(batch, rows, time', channels)`` for 2-D backbones on
the lead image (rows = the lead axis after downsampling). The map returned is
``(batch, time')`` in ``[0, 1]``.

The gradient is of each sample's TRUE-class pre-softmax logit (multi-label:
of the sum of its positive classes' logits, ``positive_class_logit_sum``). Because the
target sums over the batch, ``d target / d A[i]`` is sample ``i``'s own
gradient only when samples do not interact after the target layer (batch norm
in training mode couples them weakly; see ``tests/test_gradcam.py``).
"""

from __future__ import annotations

import tensorflow as tf


def cam_view(backbone, target_layer: str, name: str = "cam_view"):
    """The Grad-CAM view of ``backbone``: a Keras model ``x (batch, time, leads) -> (target-layer
    activations, logits)`` that shares the backbone's layers (one forward gives both)."""
    import keras

    return keras.Model(backbone.inputs, [backbone.get_layer(target_layer).output, backbone.outputs[0]], name=name)


def true_class_logit_sum(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """Sum over the batch of ``logits[i, labels[i]]``; ``logits`` ``(batch, classes)``."""
    labels = tf.cast(labels, tf.int32)
    return tf.reduce_sum(tf.gather(logits, labels, axis=1, batch_dims=1))


def positive_class_logit_sum(logits: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
    """The multi-label target: per sample the sum of the logits of its positive classes, or, for a sample
    with no positive class, minus the sum of all its logits (the evidence against every class); summed
    over the batch. ``logits`` and multi-hot ``targets`` ``(batch, classes)``."""
    logits = tf.cast(logits, tf.float32)
    positive = tf.cast(targets, tf.float32)
    has_positive = tf.reduce_any(positive > 0, axis=-1)
    per_sample = tf.where(has_positive, tf.reduce_sum(positive * logits, axis=-1), -tf.reduce_sum(logits, axis=-1))
    return tf.reduce_sum(per_sample)


def minmax_normalise(maps: tf.Tensor) -> tf.Tensor:
    """Per-sample min-max to ``[0, 1]`` over the last axis; a constant map becomes zeros.

    Args:
      maps: ``(batch, time')``.
    """
    low = tf.reduce_min(maps, axis=-1, keepdims=True)
    span = tf.reduce_max(maps, axis=-1, keepdims=True) - low
    return tf.math.divide_no_nan(maps - low, span)


def gradcam_over_time(activations: tf.Tensor, gradients: tf.Tensor) -> tf.Tensor:
    """Grad-CAM map over time from target-layer activations and their gradients.

    Channel weights are the per-sample mean of the gradient over the spatial
    axes (never over the batch); map = ReLU(sum_c w_c * A_c); a 2-D map is
    averaged over its row (lead) axis; then per-sample min-max to ``[0, 1]``.

    Args:
      activations: ``(batch, time', channels)`` or ``(batch, rows, time', channels)``.
      gradients: same shape as ``activations``.

    Returns:
      ``(batch, time')`` float32 in ``[0, 1]``.
    """
    activations = tf.cast(activations, tf.float32)
    gradients = tf.cast(gradients, tf.float32)
    rank = activations.shape.rank
    if rank not in (3, 4):
        raise ValueError(f"Grad-CAM target must be (batch, time, ch) or (batch, rows, time, ch); got rank {rank}")
    spatial_axes = list(range(1, rank - 1))
    weights = tf.reduce_mean(gradients, axis=spatial_axes, keepdims=True)  # (batch, 1[, 1], channels)
    cam = tf.nn.relu(tf.reduce_sum(weights * activations, axis=-1))  # (batch, [rows,] time')
    if rank == 4:
        cam = tf.reduce_mean(cam, axis=1)
    return minmax_normalise(cam)
