"""Per-sample selection state and the cost counters, as ``tf.Variable``s.

The state is a ``tf.Module``: ``tf.train.Checkpoint(state=...)`` carries every
variable, so a resumed run continues from exactly the scores, masks and
counters it stopped with. Arrays are indexed by ``sample_id`` (0..n-1).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from erts_tf.selection.policies import Reason

COUNTERS = (
    "samples_read",  # records the input pipeline produced (after the keep-mask filter)
    "forward_train",  # sample-passes of the training forward
    "forward_score",  # sample-passes of forwards run only to score (batch level, re-scoring)
    "gradcam",  # sample-passes of the Grad-CAM partial backward (logits -> target layer)
    "backward",  # sample-passes back-propagated into the weights
    "optimizer_steps",
    "skipped_batches",  # batches skipped because the loss or a gradient was not finite
)


class SelectionState(tf.Module):
    """Selection state for a training split of ``n`` samples.

    Variables (all ``(n,)`` unless stated):
      keep: bool, the current keep-mask (epoch level: read by the input filter).
      reason: int32 ``Reason`` of the last decision.
      p_true: float32 last softmax probability of the true class (-1: never scored).
      focus: float32 last focus score.
      correct: bool, last argmax == label.
      label: int32 the sample's label (-1 until first seen).
      scored_epoch: int32 epoch of the last score (-1: never).
      dropped_epoch: int32 epoch the current drop began (-1: kept).
      backprop_count: int32 times back-propagated.
      epoch, step: int64 scalars, the epoch being trained and the step inside it.
      counters: int64 scalars named in ``COUNTERS``.
    """

    def __init__(self, n: int, name: str = "selection_state"):
        super().__init__(name=name)
        self.n = int(n)
        with tf.init_scope():
            self.keep = tf.Variable(tf.ones([n], tf.bool), trainable=False, name="keep")
            self.reason = tf.Variable(tf.fill([n], int(Reason.FULL)), trainable=False, name="reason")
            self.p_true = tf.Variable(tf.fill([n], -1.0), trainable=False, name="p_true")
            self.focus = tf.Variable(tf.zeros([n]), trainable=False, name="focus")
            self.correct = tf.Variable(tf.zeros([n], tf.bool), trainable=False, name="correct")
            self.label = tf.Variable(tf.fill([n], -1), trainable=False, name="label")
            self.scored_epoch = tf.Variable(tf.fill([n], -1), trainable=False, name="scored_epoch")
            self.dropped_epoch = tf.Variable(tf.fill([n], -1), trainable=False, name="dropped_epoch")
            self.backprop_count = tf.Variable(tf.zeros([n], tf.int32), trainable=False, name="backprop_count")
            self.epoch = tf.Variable(tf.constant(0, tf.int64), trainable=False, name="epoch")
            self.step = tf.Variable(tf.constant(0, tf.int64), trainable=False, name="step")
            self.counters = {
                name: tf.Variable(tf.constant(0, tf.int64), trainable=False, name=name) for name in COUNTERS
            }

    # -- updates used inside the compiled step -------------------------------------------------
    def count(self, name: str, amount) -> None:
        self.counters[name].assign_add(tf.cast(amount, tf.int64))

    def record_scores(self, ids, labels, p_true, correct, focus=None) -> None:
        """Scatters the labels and scores of samples ``ids`` ``(batch,)`` scored in the current epoch."""
        index = tf.cast(ids, tf.int32)[:, None]
        self.label.scatter_nd_update(index, tf.cast(labels, tf.int32))
        self.p_true.scatter_nd_update(index, tf.cast(p_true, tf.float32))
        self.correct.scatter_nd_update(index, tf.cast(correct, tf.bool))
        epoch = tf.cast(self.epoch, tf.int32)
        self.scored_epoch.scatter_nd_update(index, tf.fill(tf.shape(ids), epoch))
        if focus is not None:
            self.focus.scatter_nd_update(index, tf.cast(focus, tf.float32))

    def record_decision(self, ids, keep, reason) -> None:
        """Scatters a batch-level decision for samples ``ids``."""
        index = tf.cast(ids, tf.int32)[:, None]
        self._update_dropped_epoch(index, keep)
        self.keep.scatter_nd_update(index, keep)
        self.reason.scatter_nd_update(index, tf.cast(reason, tf.int32))

    def record_backprop(self, ids, applied=True) -> None:
        """Adds one back-propagation to samples ``ids`` if ``applied`` (scalar bool)."""
        index = tf.cast(ids, tf.int32)[:, None]
        self.backprop_count.scatter_nd_add(index, tf.fill(tf.shape(ids), tf.cast(applied, tf.int32)))

    def _update_dropped_epoch(self, index, keep) -> None:
        was_kept = tf.gather_nd(self.keep, index)
        old = tf.gather_nd(self.dropped_epoch, index)
        epoch = tf.cast(self.epoch, tf.int32)
        new = tf.where(keep, -1, tf.where(was_kept, epoch, old))
        self.dropped_epoch.scatter_nd_update(index, new)

    # -- whole-split updates (epoch level, eager) ----------------------------------------------
    def set_decision(self, keep, reason) -> None:
        """Replaces the keep-mask and reasons of every sample (``(n,)`` each)."""
        keep = tf.convert_to_tensor(keep, tf.bool)
        self._update_dropped_epoch(tf.range(self.n)[:, None], keep)
        self.keep.assign(keep)
        self.reason.assign(tf.cast(reason, tf.int32))

    def counter_values(self) -> dict[str, int]:
        return {name: int(v.numpy()) for name, v in self.counters.items()}

    def snapshot(self) -> dict[str, np.ndarray]:
        """NumPy copies of the per-sample arrays."""
        return {
            name: getattr(self, name).numpy()
            for name in ("keep", "reason", "p_true", "focus", "correct", "label", "scored_epoch", "dropped_epoch", "backprop_count")
        }
