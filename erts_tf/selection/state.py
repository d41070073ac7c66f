"""Per-sample selection state and the cost counters, as ``tf.Variable``s.

The state is a ``tf.Module``: ``tf.train.Checkpoint(state=...)`` carries every
variable, so a resumed run continues from exactly the scores, masks and
counters it stopped with. Arrays are indexed by ``sample_id`` (0..n-1).

Under a ``tf.distribute`` strategy (created inside ``strategy.scope()``) the
variables are mirrored, one copy per replica. An update made inside the
replica step first gathers the ids and scores of every replica's part of the
global batch (``_gather_replicas``), so each copy receives the same global
update and the keep-mask stays identical on every replica and worker.
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
      weight: float32 loss weight of each sample under the current decision (1 kept, 0 dropped,
        other values where a policy reweights).
      p_true: float32 last softmax probability of the true class (-1: never scored).
      focus: float32 last focus score (meaningful only where ``focus_epoch >= 0``).
      focus_epoch: int32 epoch the focus was last computed (-1: never).
      scored_in_training: bool, the last score came from a training-mode forward (the training
        step: batch-norm batch statistics, dropout); False: an inference-mode forward (batch-level
        scoring, re-scoring).
      correct: bool, last argmax == label.
      label: int32 the sample's label (-1 until first seen): ``(n,)`` class indices, or ``(n, C)`` multi-hot
        with ``label_shape=(C,)`` (a multi-label run).
      scored_epoch: int32 epoch of the last score (-1: never).
      dropped_epoch: int32 epoch the current drop began (-1: kept).
      backprop_count: int32 times back-propagated.
      epoch, step: int64 scalars, the epoch being trained and the step inside it.
      counters: int64 scalars named in ``COUNTERS``.
    """

    def __init__(self, n: int, name: str = "selection_state", label_shape: tuple[int, ...] = ()):
        super().__init__(name=name)
        self.n = int(n)

        def variable(value, name):
            # No aggregation: every replica applies the same gathered update to its own copy.
            return tf.Variable(value, trainable=False, name=name)

        with tf.init_scope():
            self.keep = variable(tf.ones([n], tf.bool), "keep")
            self.reason = variable(tf.fill([n], int(Reason.FULL)), "reason")
            self.weight = variable(tf.ones([n]), "weight")
            self.p_true = variable(tf.fill([n], -1.0), "p_true")
            self.focus = variable(tf.zeros([n]), "focus")
            self.focus_epoch = variable(tf.fill([n], -1), "focus_epoch")
            self.scored_in_training = variable(tf.zeros([n], tf.bool), "scored_in_training")
            self.correct = variable(tf.zeros([n], tf.bool), "correct")
            self.label = variable(tf.fill([n, *label_shape], -1), "label")
            self.scored_epoch = variable(tf.fill([n], -1), "scored_epoch")
            self.dropped_epoch = variable(tf.fill([n], -1), "dropped_epoch")
            self.backprop_count = variable(tf.zeros([n], tf.int32), "backprop_count")
            self.epoch = variable(tf.constant(0, tf.int64), "epoch")
            self.step = variable(tf.constant(0, tf.int64), "step")
            self.counters = {name: variable(tf.constant(0, tf.int64), name) for name in COUNTERS}

    # -- updates used inside the compiled step -------------------------------------------------
    def count(self, name: str, amount, replicated: bool = False) -> None:
        """Adds ``amount``: this replica's share, summed over the replicas of a strategy, or, if
        ``replicated``, an amount every replica holds (an optimizer step) that is counted once."""
        amount = tf.cast(amount, tf.int64)
        replicas = _replica_context()
        if replicas is not None and not replicated:
            amount = replicas.all_reduce(tf.distribute.ReduceOp.SUM, amount)
        self.counters[name].assign_add(amount)

    def record_scores(self, ids, labels, p_true, correct, focus=None, training=False, focus_on=None) -> None:
        """Scatters the labels and scores of samples ``ids`` ``(batch,)`` scored in the current epoch;
        ``training``: the scores come from a training-mode forward. ``focus_on``: a scalar bool tensor
        saying whether ``focus`` was computed (a step with Grad-CAM behind a switch); where it is False the
        samples keep their focus and focus epoch. None: ``focus`` is recorded if given."""
        ids, labels, p_true, correct, focus = _gather_replicas(
            tf.cast(ids, tf.int32), tf.cast(labels, tf.int32), tf.cast(p_true, tf.float32), correct,
            None if focus is None else tf.cast(focus, tf.float32))
        index = ids[:, None]
        epoch = tf.fill(tf.shape(ids), tf.cast(self.epoch, tf.int32))
        _scatter(self.label, index, labels)
        _scatter(self.p_true, index, p_true)
        _scatter(self.correct, index, tf.cast(correct, tf.bool))
        _scatter(self.scored_epoch, index, epoch)
        _scatter(self.scored_in_training, index, tf.fill(tf.shape(ids), bool(training)))
        if focus is not None:
            focus_epoch = epoch
            if focus_on is not None:
                focus = tf.where(focus_on, focus, tf.gather(self.focus, ids))
                focus_epoch = tf.where(focus_on, epoch, tf.gather(self.focus_epoch, ids))
            _scatter(self.focus, index, focus)
            _scatter(self.focus_epoch, index, focus_epoch)

    def record_decision(self, ids, keep, reason, weight) -> None:
        """Scatters a batch-level decision (``(batch,)`` each) for samples ``ids``."""
        index = tf.cast(ids, tf.int32)[:, None]
        self._update_dropped_epoch(index, keep)
        _scatter(self.keep, index, keep)
        _scatter(self.reason, index, tf.cast(reason, tf.int32))
        _scatter(self.weight, index, tf.cast(weight, tf.float32))

    def record_backprop(self, ids, applied=True) -> None:
        """Adds one back-propagation to samples ``ids`` if ``applied`` (scalar bool, the same on every replica)."""
        (ids,) = _gather_replicas(tf.cast(ids, tf.int32))
        index = ids[:, None]
        increment = tf.fill(tf.shape(ids), tf.cast(applied, tf.int32))
        self.backprop_count.assign(tf.tensor_scatter_nd_add(self.backprop_count, index, increment))

    def _update_dropped_epoch(self, index, keep) -> None:
        was_kept = tf.gather_nd(self.keep, index)
        old = tf.gather_nd(self.dropped_epoch, index)
        epoch = tf.cast(self.epoch, tf.int32)
        new = tf.where(keep, -1, tf.where(was_kept, epoch, old))
        _scatter(self.dropped_epoch, index, new)

    # -- whole-split updates (epoch level, eager) ----------------------------------------------
    def set_decision(self, keep, reason, weight=None) -> None:
        """Replaces the keep-mask, reasons and loss weights of every sample (``(n,)`` each;
        ``weight`` None: 1 for kept, 0 for dropped)."""
        keep = tf.convert_to_tensor(keep, tf.bool)
        self._update_dropped_epoch(tf.range(self.n)[:, None], keep)
        self.keep.assign(keep)
        self.reason.assign(tf.cast(reason, tf.int32))
        self.weight.assign(tf.cast(keep, tf.float32) if weight is None else tf.cast(weight, tf.float32))

    def counter_values(self) -> dict[str, int]:
        return {name: int(v.numpy()) for name, v in self.counters.items()}

    def snapshot(self) -> dict[str, np.ndarray]:
        """NumPy copies of the per-sample arrays."""
        return {
            name: getattr(self, name).numpy()
            for name in ("keep", "reason", "weight", "p_true", "focus", "focus_epoch", "scored_in_training", "correct",
                         "label", "scored_epoch", "dropped_epoch", "backprop_count")
        }


def _replica_context():
    """The replica context of a multi-replica strategy step, else None (one replica, or cross-replica code)."""
    context = tf.distribute.get_replica_context()
    return context if context is not None and context.num_replicas_in_sync > 1 else None


def _gather_replicas(*tensors):
    """Concatenates each ``(batch, ...)`` tensor over the replicas, in replica order; None stays None.

    Written as one all-reduce SUM of zero-padded buffers (each replica fills its own slice, adding
    zeros elsewhere is exact) because ``ReplicaContext.all_gather`` fails under
    ``MultiWorkerMirroredStrategy`` in TF 2.21 ("destinations can not be empty").
    """
    replicas = _replica_context()
    if replicas is None:
        return tensors
    present = [t for t in tensors if t is not None]
    n_local = tf.shape(present[0])[0]
    one_hot = tf.one_hot(replicas.replica_id_in_sync_group, replicas.num_replicas_in_sync, dtype=tf.int32)
    sizes = replicas.all_reduce(tf.distribute.ReduceOp.SUM, one_hot * n_local)
    offset = tf.reduce_sum(sizes[: replicas.replica_id_in_sync_group])
    slots = (offset + tf.range(n_local))[:, None]
    total = tf.reduce_sum(sizes)

    def gather(tensor):
        if tensor is None:
            return None
        numeric = tf.cast(tensor, tf.int32) if tensor.dtype == tf.bool else tensor  # collectives carry numbers
        shape = tf.concat([[total], tf.shape(numeric)[1:]], axis=0)
        gathered = replicas.all_reduce(tf.distribute.ReduceOp.SUM, tf.scatter_nd(slots, numeric, shape))
        return tf.cast(gathered, tf.bool) if tensor.dtype == tf.bool else gathered

    return tuple(gather(t) for t in tensors)


def _scatter(variable, index, values) -> None:
    """``variable[index] = values``; written as one assign, which mirrored variables support."""
    variable.assign(tf.tensor_scatter_nd_update(variable, index, values))
