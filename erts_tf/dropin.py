"""ERTS for your own Keras model and data, without the CLI.

    def load(i):  # sample id (int64 scalar) -> one record: (x (time, leads), y ())
        return tf.gather(signals, i), tf.gather(labels, i)

    model = erts_tf.ERTS(my_model, target_layer="block3", mode="erts", n_samples=n, level="epoch")
    model.compile(optimizer="adamw")
    model.fit(model.records(load, batch_size=32), epochs=30, callbacks=[model.selection_callback()])

``model.records(load)`` selects over sample ids and maps ``load`` after the
keep-mask filter, so at ``level="epoch"`` a dropped record is never read;
every ``rescore_every`` selection epochs the dropped records are read again
(with the same ``load``) and re-scored, so that a dropped sample can come back.
At ``level="batch"`` (the reference, the default) every record is read and
scored in inference mode and only the selected ones are back-propagated.

A pipeline that cannot read a record by id can still feed an unbatched
``(x, y, sample_id)`` dataset (``with_sample_ids``): as is at batch level, or
through ``model.select(ds)`` at epoch level, which saves the forward and
backward of a dropped sample but not its read.
"""

from __future__ import annotations

from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from erts_tf.data.pipeline import epoch_permutation
from erts_tf.selection.policy_config import PolicyConfig
from erts_tf.selection.schedule import Schedule
from erts_tf.training import task as task_lib
from erts_tf.training.callbacks import SelectionCallback
from erts_tf.training.model import ERTSModel
from erts_tf.training.selection_config import SelectionConfig

# ids -> unbatched dataset of (x (time, leads), y (), sample_id ()) for those ids
Reader = Callable[[np.ndarray], tf.data.Dataset]


def with_sample_ids(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Adds a stable int64 id to each element of an UNBATCHED ``(x, y)`` dataset: ``(x, y, id)``.

    The id is the element's position, so the dataset's order must be fixed
    (shuffle after this call, not before).
    """
    return dataset.enumerate().map(lambda i, xy: (xy[0], xy[1], i))


class _DropInERTS(ERTSModel):
    """``ERTSModel`` with the conveniences of the drop-in API."""

    def __init__(self, *args, schedule: Schedule, focus_every: int = 1, rescore_every: int = 5, **kwargs):
        super().__init__(*args, **kwargs)
        self.schedule = schedule
        self.focus_every = focus_every
        self.rescore_every = rescore_every
        self._rescore_source: tuple[Reader, int] | None = None  # set by records() or select()

    def compile(self, optimizer="adamw", **kwargs):
        super().compile(optimizer=optimizer, **kwargs)
        self.optimizer.build(self.backbone.trainable_variables)

    def selection_callback(self) -> SelectionCallback:
        """The callback that runs the selection schedule (pass it to ``fit``).

        The training loss and macro-F1 that ``fit`` reports in a selection epoch cover only the
        samples trained on in that epoch (the kept ones), not the training split.
        """
        return SelectionCallback(self, self.schedule, rescore=self._rescore, rescore_every=self.rescore_every,
                                 focus_every=self.focus_every)

    def records(self, load: Callable, batch_size: int = 32, shuffle: bool = True) -> Callable[[int], tf.data.Dataset]:
        """The training data read by sample id, as ``fit`` takes it: ``epoch -> tf.data.Dataset``.

        Each epoch streams the ids ``0..n_samples-1`` (in an order seeded by ``(seed, epoch)`` if
        ``shuffle``), keeps, at epoch level, only the ids the epoch's keep-mask kept (``fit``
        decides the mask before it builds the epoch's dataset), and only then maps ``load``:
        a dropped record is never read. At batch level every record is read (the policy scores
        each batch). Every read is counted in ``state.counters["samples_read"]``. Re-scoring reads
        the dropped records with ``load`` too.

        Args:
          load: ``load(sample_id) -> (x, y)``: reads ONE record, ``x`` ``(time, leads)`` and ``y``
            its class index ``()``; ``sample_id`` is an int64 scalar tensor. It runs inside
            ``tf.data.Dataset.map``: TensorFlow ops (``tf.gather``, ``tf.io.read_file``, or
            ``tf.numpy_function`` around Python code; the record is given the model's input shape).
          batch_size: of training and of re-scoring.
          shuffle: a new order every epoch; False: id order.

        Returns:
          ``epoch -> dataset`` of ``(x (batch, time, leads), y (batch,), sample_id (batch,))``.
        """
        reads = self.state.counters["samples_read"]
        shape = self.backbone.inputs[0].shape[1:]  # (time, leads)

        def record(i):
            loaded = load(i)
            if not isinstance(loaded, (tuple, list)) or len(loaded) != 2:
                raise TypeError(f"load(sample_id) must return (x, y): one record's signal (time, leads) and "
                                f"label; it returned {loaded!r}")
            x, y = tf.convert_to_tensor(loaded[0]), tf.convert_to_tensor(loaded[1])
            if not (x.shape.is_compatible_with(shape) and y.shape.is_compatible_with([])):
                raise ValueError(f"load(sample_id) returned x of shape {x.shape} and y of shape {y.shape}; the "
                                 f"model takes one record x {tuple(shape)} (time, leads) and y () (a class index)")
            return tf.ensure_shape(x, shape), tf.ensure_shape(y, []), i  # shapes tf.numpy_function leaves unknown

        def read(i):
            reads.assign_add(1)
            return record(i)

        def epoch_dataset(epoch: int) -> tf.data.Dataset:
            ids = epoch_permutation(self.state.n, self.selection.seed, epoch) if shuffle else np.arange(self.state.n)
            if self.selection.level == "epoch":
                ids = ids[self.state.keep.numpy()[ids]]
            return _batched(_ids(ids).map(read, num_parallel_calls=tf.data.AUTOTUNE), batch_size)

        self._rescore_source = (lambda ids: _ids(ids).map(record, num_parallel_calls=tf.data.AUTOTUNE), batch_size)
        return epoch_dataset

    def select(self, dataset: tf.data.Dataset, batch_size: int = 32) -> tf.data.Dataset:
        """Epoch level for a pipeline that cannot read a record by id: filters an unbatched
        ``(x (time, leads), y (), sample_id ())`` dataset by the current keep-mask.

        The filter runs AFTER ``dataset``: every record, kept or dropped, is still read (and counted
        in ``state.counters["samples_read"]``); this saves the forward and backward of a dropped
        sample, not its read. Re-scoring reads the whole ``dataset`` once more to pick out the
        dropped records. Where a record can be read by its id, use ``records(load)``: it reads only
        the kept records.

        Args:
          dataset: unbatched, in a fixed order of ids (``with_sample_ids``); batch the result.
          batch_size: of re-scoring.
        """
        if self.selection.level != "epoch":
            raise ValueError(f"select() filters by the epoch-level keep-mask; at level={self.selection.level!r} "
                             "feed the dataset to fit as it is")
        keep = self.state.keep
        reads = self.state.counters["samples_read"]

        def read(x, y, i):
            reads.assign_add(1)
            return x, y, i

        def reader(ids):
            wanted = tf.constant(np.isin(np.arange(self.state.n), ids))

            def pick(x, y, i):
                hit = tf.gather(wanted, i)
                reads.assign_add(1 - tf.cast(hit, tf.int64))  # read and passed over; score_dataset counts the rest
                return hit

            return dataset.filter(pick)

        self._rescore_source = (reader, batch_size)
        return dataset.map(read).filter(lambda x, y, i: tf.gather(keep, i))

    def _rescore(self, ids: np.ndarray, cam: bool, epoch: int) -> None:
        """Re-scores the dropped samples ``ids`` in inference mode (the ``rescore`` of ``SelectionCallback``);
        the user's ``load`` reads a record the same way in every epoch, so ``epoch`` changes nothing."""
        del epoch
        if self._rescore_source is None:
            raise RuntimeError("re-scoring the dropped samples needs their records: feed fit with model.records(load) "
                               "or model.select(dataset), or pass rescore_every=0 to ERTS (a dropped sample then "
                               "comes back only in revision)")
        reader, batch_size = self._rescore_source
        self.score_dataset(_batched(reader(ids), batch_size), cam=cam)


def _ids(ids: np.ndarray) -> tf.data.Dataset:
    return tf.data.Dataset.from_tensor_slices(np.asarray(ids, np.int64))


def _batched(dataset: tf.data.Dataset, batch_size: int) -> tf.data.Dataset:
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def ERTS(model: keras.Model, target_layer: str, mode: str = "erts", n_samples: int | None = None,
         level: str = "batch", class_weights=None, tau: float = 0.3, cam_keep_frac: float = 0.7,
         decay: float = 0.99, focus_score: str = "entropy", warm_up_epochs: int = 5, cam_start_epoch: int = 3,
         start_revision: int = -1, seed: int = 0, prune_ratio: float = 0.5, unreliable_frac: float = 0.2,
         unreliable_weight: float = 0.0, min_keep_frac: float = 0.2, focus_every: int = 1,
         rescore_every: int = 5, task: str = "single") -> ERTSModel:
    """Wraps a functional or Sequential ``model`` (inputs -> logits) for ERTS training.

    Args:
      model: maps ``x`` ``(batch, time, leads)`` to LOGITS ``(batch, n_classes)``.
      target_layer: name of the Grad-CAM layer (output with a time axis).
      mode: selection mode (``full``, ``dbpd``, ``srd``, ``smrd``, ``erts``, ``erts_srd``, ``erts_smrd``,
        ``infobatch``, ``erts_infobatch``; docs/METHOD.md gives each rule). A policy's loss weights
        (infobatch's 1/(1 - r)) are applied in the training step.
      n_samples: training-set size (ids must be ``0..n_samples-1``).
      level: ``batch`` or ``epoch`` (then feed ``model.records(load)``, which does not read dropped
        records, or ``model.select(dataset)``).
      class_weights: per-class loss weights ``(n_classes,)``; default all ones.
      min_keep_frac: every selection epoch (batch, at batch level) keeps at least this share of every
        class (0: the reference's rescue).
      rescore_every: epoch level: every ``rescore_every`` selection epochs the dropped samples are read
        again and re-scored in inference mode (+ Grad-CAM for the erts modes) before the decision, so
        that a dropped sample can come back; 0: never (with no revision, a dropped sample then never
        comes back). The CLI's ``--rescore_every``.
      task: ``single`` (labels ``(batch,)``, softmax, cross-entropy) or ``multi`` (multi-hot labels
        ``(batch, n_classes)``, sigmoid, BCE; ``class_weights`` are then the per-class positive weights,
        ``training.task.positive_weights``). The CLI's ``--task``.
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
                       schedule=Schedule(warm_up_epochs, cam_start_epoch, start_revision), focus_every=focus_every,
                       rescore_every=rescore_every, task=task_lib.get(task))
