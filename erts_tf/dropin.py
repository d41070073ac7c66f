"""ERTS for your own Keras model and tf.data pipeline, without the CLI.

    ds = erts_tf.with_sample_ids(ds)                                   # (x, y) -> (x, y, sample_id)
    model = erts_tf.ERTS(my_model, target_layer="block3", mode="erts", n_samples=n)
    model.compile(optimizer="adamw")
    model.fit(ds.batch(32), epochs=30, callbacks=[model.selection_callback()])

The default level is ``batch`` (the reference): every sample is scored in
inference mode and only the selected ones are back-propagated, with any
dataset. For ``level="epoch"`` (dropped samples are not even read), pass the
UNBATCHED dataset through ``model.select(ds)`` before batching.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from erts_tf.selection.policies import PolicyConfig
from erts_tf.selection.schedule import Schedule
from erts_tf.training.callbacks import SelectionCallback
from erts_tf.training.model import ERTSModel, SelectionConfig


def with_sample_ids(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Adds a stable int64 id to each element of an UNBATCHED ``(x, y)`` dataset: ``(x, y, id)``.

    The id is the element's position, so the dataset's order must be fixed
    (shuffle after this call, not before).
    """
    return dataset.enumerate().map(lambda i, xy: (xy[0], xy[1], i))


class _DropInERTS(ERTSModel):
    """``ERTSModel`` with the conveniences of the drop-in API."""

    def __init__(self, *args, schedule: Schedule, focus_every: int = 1, **kwargs):
        super().__init__(*args, **kwargs)
        self.schedule = schedule
        self.focus_every = focus_every

    def compile(self, optimizer="adamw", **kwargs):
        super().compile(optimizer=optimizer, **kwargs)
        self.optimizer.build(self.backbone.trainable_variables)

    def selection_callback(self) -> SelectionCallback:
        """The callback that runs the selection schedule (pass it to ``fit``)."""
        return SelectionCallback(self, self.schedule, rescore_every=0, focus_every=self.focus_every)

    def select(self, dataset: tf.data.Dataset) -> tf.data.Dataset:
        """Epoch level: filters an unbatched ``(x, y, id)`` dataset by the current keep-mask."""
        keep = self.state.keep
        return dataset.filter(lambda x, y, i: tf.gather(keep, i))


def ERTS(model: keras.Model, target_layer: str, mode: str = "erts", n_samples: int | None = None,
         level: str = "batch", class_weights=None, tau: float = 0.3, cam_keep_frac: float = 0.7,
         decay: float = 0.99, focus_score: str = "entropy", warm_up_epochs: int = 5, cam_start_epoch: int = 3,
         start_revision: int = -1, seed: int = 0, prune_ratio: float = 0.5, unreliable_frac: float = 0.2,
         unreliable_weight: float = 0.0, min_keep_frac: float = 0.2, focus_every: int = 1) -> ERTSModel:
    """Wraps a functional or Sequential ``model`` (inputs -> logits) for ERTS training.

    Args:
      model: maps ``x`` to LOGITS ``(batch, n_classes)``.
      target_layer: name of the Grad-CAM layer (output with a time axis).
      mode: selection mode (``full``, ``dbpd``, ``srd``, ``smrd``, ``erts``, ``erts_srd``, ``erts_smrd``,
        ``infobatch``, ``erts_infobatch``; docs/METHOD.md gives each rule). A policy's loss weights
        (infobatch's 1/(1 - r)) are applied in the training step.
      n_samples: training-set size (ids must be ``0..n_samples-1``).
      level: ``batch`` or ``epoch`` (then filter with ``model.select``).
      class_weights: per-class loss weights; default all ones.
      min_keep_frac: every selection epoch (batch, at batch level) keeps at least this share of every
        class (0: the reference's rescue).
      Other arguments: the selection schedule and policy (docs/METHOD.md; flags of the same names).
    """
    if not model.built or not model.inputs:
        raise ValueError("ERTS needs a built functional or Sequential model (call it once or give an Input)")
    if n_samples is None:
        raise ValueError("ERTS needs n_samples, the number of training samples (ids 0..n_samples-1)")
    n_classes = int(model.outputs[0].shape[-1])
    weights = np.ones(n_classes, np.float32) if class_weights is None else class_weights
    selection = SelectionConfig(
        mode=mode, level=level, focus_score=focus_score, seed=seed,
        policy=PolicyConfig(tau=tau, decay=decay, cam_keep_frac=cam_keep_frac, n_classes=n_classes,
                            prune_ratio=prune_ratio, unreliable_frac=unreliable_frac,
                            unreliable_weight=unreliable_weight, min_keep_frac=min_keep_frac),
    )
    return _DropInERTS(model, target_layer, n_samples, weights, selection,
                       schedule=Schedule(warm_up_epochs, cam_start_epoch, start_revision), focus_every=focus_every)
