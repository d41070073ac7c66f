"""Input pipeline: TFDS split -> sample ids -> keep-mask filter -> records read -> batches.

Two backends hold a split's signal (``--data_backend``), behind one pipeline:

- ``memory`` (default): the split is decoded ONCE into a NumPy array
  ``(n, time, leads)`` (``load_split``), z-scored per lead and per sample; the
  pipeline gathers from one tensor made of it once per split.
- ``lazy``: the signal stays on disk (``lazy.LazySignal``, ArrayRecord random
  access); reading a sample id reads and z-scores that one record, with the
  same z-score. Only labels and scalar extras ``(n,)`` are in memory.

Each training epoch streams sample ids in a permutation seeded by ``(seed,
epoch)``, keeps only ids whose ``keep_mask[sample_id]`` is True, and only then
reads the records (``_read``, per batch of kept ids, the one place either
backend reads): a dropped record is never read or decoded, and
``read_counter`` counts exactly the records that were. Kept records are then
augmented (``augment``, seeded by ``(seed, epoch, sample_id)``) if the run asks
for it. A run builds its training pipeline once (``TrainStream``); each epoch's
dataset is that pipeline with the epoch's order, seeds and keep-mask, and knows
how many batches it holds (the keep-mask is decided before the epoch's dataset
is made). Both backends give identical batches.
Elements are ``(signal (batch, time, leads), label (batch,), sample_id (batch,))``.

Windows (``SplitArrays.window``, ``--window_s``; ``windows`` gives the rules):
the split is held raw (memory: ``flat.FlatSignal``; lazy: raw records), records
may differ in length, and what is read is windows, each z-scored on its own
(``zscore_tf``, the exported model's z-score). A training batch holds one crop
per kept record, ``(batch, window, leads)``, seeded by ``(seed, epoch,
sample_id)`` and cut after the keep-mask filter; an evaluation batch holds every
window of its records, ``((windows (batch, k, window, leads), valid (batch, k)),
label, sample_id)``, which the model aggregates per record.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from erts_tf.data import augment as augment_lib
from erts_tf.data import flat, label_sets, lazy, registry, windows

log = logging.getLogger(__name__)

BACKENDS = ("memory", "lazy")


def zscore(signal: np.ndarray) -> np.ndarray:
    """Per-sample, per-lead z-score of ``(..., time, leads)``.

    NaN/inf become 0 first. A flat lead becomes zeros, never NaN: flat means a std
    below float32 resolution at the lead's level, ``std <= 1e-6 * max(1, |mean|)``
    (a float32 lead constant at 0.7 has std ~1e-7, not 0).
    """
    signal = np.asarray(signal, np.float32)
    if not np.isfinite(signal).all():  # the copy and the three tests of nan_to_num only where needed
        signal = np.nan_to_num(signal, nan=0.0, posinf=0.0, neginf=0.0)
    mean = signal.mean(axis=-2, keepdims=True)
    std = signal.std(axis=-2, keepdims=True)
    flat = std <= 1e-6 * np.maximum(1.0, np.abs(mean))
    out = signal - mean
    out /= np.where(flat, np.float32(1.0), std)
    if flat.any():
        out[np.broadcast_to(flat, out.shape)] = 0.0
    return out


def zscore_tf(signal: tf.Tensor) -> tf.Tensor:
    """The same z-score as ``zscore`` in TensorFlow (the serving function's preprocessing).

    NaN and inf are replaced by one select per condition: tf2onnx 1.17 lowers
    ``where(is_finite(x), x, 0)`` to ``cond * x``, which keeps NaN in ONNX.
    """
    signal = tf.cast(signal, tf.float32)
    signal = tf.where(tf.math.is_nan(signal), tf.zeros_like(signal), signal)
    signal = tf.where(tf.math.is_inf(signal), tf.zeros_like(signal), signal)
    mean = tf.reduce_mean(signal, axis=-2, keepdims=True)
    std = tf.math.reduce_std(signal, axis=-2, keepdims=True)
    flat = std <= 1e-6 * tf.maximum(1.0, tf.abs(mean))
    return tf.where(flat, tf.zeros_like(signal), (signal - mean) / tf.where(flat, tf.ones_like(std), std))


@dataclasses.dataclass
class SplitArrays:
    """One split, its samples in sample-id order.

    Attributes:
      signal: ``(n, time, leads)`` float32, z-scored: a NumPy array (memory backend) or a
        ``lazy.LazySignal`` that reads the records it is indexed with (lazy backend).
      label: ``(n,)`` int32 class indices, or ``(n, C)`` int32 multi-hot (a multi-label run's ``--label_feature``).
      extras: other scalar features by name, each ``(n,)`` (e.g. ``corruption``).
      class_names: names of the label classes.
      extra_names: for ClassLabel extras, their names (e.g. corruption types).
      window: the windows the model is trained and scored on (None: whole records, ``signal``
        z-scored). With a window ``signal`` is RAW (``flat.FlatSignal`` or a raw ``lazy.LazySignal``;
        records may differ in length) and ``lengths`` ``(n,)`` holds each record's length in samples.
    """

    signal: np.ndarray | lazy.LazySignal | flat.FlatSignal
    label: np.ndarray
    extras: dict[str, np.ndarray]
    class_names: list[str]
    extra_names: dict[str, list[str]]
    window: windows.WindowSpec | None = None
    lengths: np.ndarray | None = None
    _signal_tensor: tf.Tensor | None = dataclasses.field(default=None, init=False, repr=False, compare=False)

    @property
    def n(self) -> int:
        return len(self.label)

    @property
    def input_shape(self) -> tuple[int, int]:
        """The model's input ``(time, leads)``: a record's, or the window's with ``window``."""
        if self.window is not None:
            return (self.window.length, int(self.signal.shape[-1]))
        return tuple(self.signal.shape[1:])

    def model_inputs(self, ids: np.ndarray) -> np.ndarray:
        """What the model takes for records ``ids`` ``(k,)``: their z-scored signal ``(k, time, leads)``, or with
        ``window`` their first window, z-scored (Grad-CAM figures)."""
        if self.window is None:
            return self.signal[ids]
        ids = np.asarray(ids, np.int64)
        first = self.signal.window_reader(self.window.length)(tf.constant(ids), tf.zeros([len(ids), 1], tf.int64))
        return zscore_tf(first[:, 0]).numpy()

    def signal_reader(self):
        """``ids (batch,) int64 -> signal (batch, time, leads) float32``, a TF function of the records of ``ids``.

        Call it eagerly (outside a traced function). The memory backend gathers from a tensor of the
        split made on the first call and kept: one copy per split, never one per epoch.
        """
        if isinstance(self.signal, lazy.LazySignal):
            return self.signal.gather
        if self._signal_tensor is None:
            self._signal_tensor = tf.constant(self.signal)
        tensor = self._signal_tensor
        return lambda ids: tf.gather(tensor, ids)


def _scalar_extras(features) -> list[str]:
    """The scalar features of a dataset other than the core ones (e.g. ``corruption``)."""
    return [k for k, f in features.items()
            if k not in registry.CORE_FEATURES and tuple(getattr(f, "shape", (None,))) == ()]


def _check_core_features(builder: tfds.core.DatasetBuilder) -> None:
    missing = [f for f in registry.CORE_FEATURES if f not in builder.info.features]
    if missing:
        raise ValueError(f"dataset {builder.name!r} lacks the core features {missing}")


def _decoded_columns(builder: tfds.core.DatasetBuilder, split: str, keys: list[str]) -> dict[str, np.ndarray]:
    """Features ``keys`` of every record of ``split`` (TFRecord, record order), decoded.

    ``signal`` is ``(n, time, leads)``, the others ``(n,)``."""
    columns = {k: [] for k in keys}
    for batch in tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False).batch(1024)):
        for key in columns:
            columns[key].append(batch[key])
    return {k: np.concatenate(v) if v else np.zeros((0,)) for k, v in columns.items()}


def _split_arrays(builder: tfds.core.DatasetBuilder, split: str, columns: dict[str, np.ndarray],
                  signal_in_order, label_feature: str | None = None) -> SplitArrays:
    """``SplitArrays`` of ``columns`` (record order); ``signal_in_order(order)`` is the signal of the records ``order``.
    ``label_feature``: the labels are that multi-hot feature (``label_sets.class_names``), not ``label``.

    ``ValueError`` unless the sample ids are exactly ``0..n-1``.
    """
    features = builder.info.features
    order = np.argsort(columns["sample_id"], kind="stable")
    if not np.array_equal(columns["sample_id"][order], np.arange(len(order))):
        raise ValueError(f"{builder.name}/{split}: sample_id must be 0..n-1 without gaps or repeats")
    extras = [k for k in columns if k not in registry.CORE_FEATURES and k != label_feature]
    return SplitArrays(
        signal=signal_in_order(order),
        label=columns[label_feature or "label"][order].astype(np.int32),
        extras={k: columns[k][order] for k in extras},
        class_names=label_sets.class_names(builder, label_feature) if label_feature else list(features["label"].names),
        extra_names={k: list(features[k].names) for k in extras if isinstance(features[k], tfds.features.ClassLabel)},
    )


def _ragged_columns(builder: tfds.core.DatasetBuilder, split: str, keys: list[str]):
    """Like ``_decoded_columns``, the signal of records of any length: ``(columns, flat, lengths)``, where
    ``flat`` ``(total_time, leads)`` holds the records end to end (record order) and ``lengths`` ``(n,)``."""
    columns = {k: [] for k in keys}
    pieces, lengths = [], []
    dataset = builder.as_dataset(split=split, shuffle_files=False).ragged_batch(256)
    for batch in dataset:
        signal = batch["signal"]
        if isinstance(signal, tf.RaggedTensor):
            pieces.append(signal.flat_values.numpy())
            lengths.append(signal.row_lengths().numpy())
        else:
            pieces.append(signal.numpy().reshape(-1, signal.shape[-1]))
            lengths.append(np.full(signal.shape[0], signal.shape[1]))
        for key in columns:
            columns[key].append(batch[key].numpy())
    leads = builder.info.features["signal"].shape[-1]
    lengths = np.concatenate(lengths) if lengths else np.zeros((0,), np.int64)
    flat_signal = np.concatenate(pieces) if pieces else np.zeros((0, leads), np.float32)
    return {k: np.concatenate(v) for k, v in columns.items()}, flat_signal, lengths


def _check_window(builder: tfds.core.DatasetBuilder, window: windows.WindowSpec | None) -> None:
    """``ValueError`` for records of several lengths without a window, or a window longer than fixed-length records."""
    time_steps = builder.info.features["signal"].shape[0]
    if window is None and time_steps is None:
        raise ValueError(f"{builder.info.full_name}: records differ in length; train on windows of them (--window_s)")
    if window is not None and time_steps is not None and window.length > time_steps:
        raise ValueError(f"{builder.info.full_name}: a window of {window.length} samples is longer than the records "
                         f"({time_steps} samples)")


def load_split(builder: tfds.core.DatasetBuilder, split: str, backend: str = "memory",
               window: windows.WindowSpec | None = None, label_feature: str | None = None) -> SplitArrays:
    """``split`` of a prepared builder as ``SplitArrays`` ordered by ``sample_id``.

    ``backend``: ``memory`` decodes every record (TFRecord); ``lazy`` reads the scalar features
    of every record and leaves the signal on disk (ArrayRecord: ``prepare(..., backend="lazy")``
    writes it). ``window``: the run trains on windows; the signal is then kept raw, and records
    may differ in length (their lengths: the stored ``num_samples`` on the lazy backend). Raises
    ``ValueError`` if a core feature is missing, the sample ids are not exactly ``0..n-1``, or the
    window does not fit the records (``_check_window``). ``label_feature``: the labels are this multi-hot
    feature ``(n, C)`` (``label_sets``; its rules are ``run_data``'s), not ``label``.
    """
    _check_core_features(builder)
    _check_window(builder, window)
    if label_feature:
        label_sets.class_names(builder, label_feature)  # a clear error before anything is decoded
    scalars = ["sample_id", label_feature or "label", *_scalar_extras(builder.info.features)]
    if window is not None:
        return dataclasses.replace(_raw_split(builder, split, backend, scalars, label_feature), window=window)
    if backend == "memory":
        columns = _decoded_columns(builder, split, [*scalars, "signal"])
        return _split_arrays(builder, split, columns, lambda order: zscore(columns["signal"][order]), label_feature)
    if backend == "lazy":
        source, decode, columns = lazy.scalar_columns(builder, split, scalars)
        shape = builder.info.features["signal"].shape
        return _split_arrays(builder, split, columns, lambda order: lazy.LazySignal(source, order, shape, decode),
                             label_feature)
    raise ValueError(f"unknown data backend {backend!r}; choose one of {', '.join(BACKENDS)}")


def _raw_split(builder: tfds.core.DatasetBuilder, split: str, backend: str, scalars: list[str],
               label_feature: str | None = None) -> SplitArrays:
    """``split`` with its raw records (for windows): a ``flat.FlatSignal`` or a raw ``lazy.LazySignal``,
    and ``lengths``."""
    shape = builder.info.features["signal"].shape
    if backend == "memory":
        columns, flat_signal, record_lengths = _ragged_columns(builder, split, scalars)
        offsets = np.concatenate([[0], np.cumsum(record_lengths)[:-1]]).astype(np.int64)
        arrays = _split_arrays(builder, split, columns,
                               lambda order: flat.FlatSignal(flat_signal, offsets[order], record_lengths[order]),
                               label_feature)
        return dataclasses.replace(arrays, lengths=arrays.signal.lengths)
    if backend == "lazy":
        source, decode, columns = lazy.scalar_columns(builder, split, scalars)
        if shape[0] is None and "num_samples" not in columns:
            raise ValueError(f"{builder.info.full_name}: records of several lengths need a num_samples feature")
        arrays = _split_arrays(builder, split, columns, lambda order: lazy.LazySignal(source, order, shape, decode),
                               label_feature)
        lengths = arrays.extras["num_samples"] if shape[0] is None else np.full(arrays.n, shape[0])
        return dataclasses.replace(arrays, lengths=np.asarray(lengths, np.int64))
    raise ValueError(f"unknown data backend {backend!r}; choose one of {', '.join(BACKENDS)}")


def exclude_classes(arrays: SplitArrays, names: tuple[str, ...]) -> SplitArrays:
    """``arrays`` without the samples of classes ``names``, the remaining classes renumbered in order.

    Sample ids become ``0..n'-1`` in the original order. This is how a convention that leaves a class
    out of training and of the macro metrics is applied (AAMI for MIT-BIH: Q). ``ValueError`` names an
    unknown class.
    """
    unknown = [n for n in names if n not in arrays.class_names]
    if unknown:
        raise ValueError(f"--exclude_classes: no class {', '.join(unknown)} (classes: {', '.join(arrays.class_names)})")
    excluded = [arrays.class_names.index(n) for n in names]
    kept_classes = [c for c in range(len(arrays.class_names)) if c not in excluded]
    kept = take_samples(arrays, np.flatnonzero(~np.isin(arrays.label, excluded)))
    new_index = np.full(len(arrays.class_names), -1, np.int32)
    new_index[kept_classes] = np.arange(len(kept_classes), dtype=np.int32)
    return dataclasses.replace(kept, label=new_index[kept.label],
                               class_names=[arrays.class_names[c] for c in kept_classes])


def take_samples(arrays: SplitArrays, index: np.ndarray) -> SplitArrays:
    """The samples ``index`` (``(k,)`` positions, in that order) of ``arrays``; sample ids become ``0..k-1``.

    A lazy signal is selected, not read (``LazySignal.take``)."""
    return SplitArrays(signal=arrays.signal.take(index, axis=0), label=arrays.label[index],
                       extras={k: v[index] for k, v in arrays.extras.items()},
                       class_names=list(arrays.class_names), extra_names=arrays.extra_names, window=arrays.window,
                       lengths=None if arrays.lengths is None else arrays.lengths[index])


def concatenate(first: SplitArrays, second: SplitArrays) -> SplitArrays:
    """``first``'s samples, then ``second``'s, as one split; sample ids become ``0..n-1`` in that order.

    Both must hold the same classes, extras and window, in memory (a decoded signal, or raw records for
    windows): ``ValueError`` otherwise."""
    if (first.class_names != second.class_names or set(first.extras) != set(second.extras)
            or first.window != second.window):
        raise ValueError("only splits of the same classes, features and windows can be pooled")
    if isinstance(first.signal, np.ndarray) and isinstance(second.signal, np.ndarray):
        signal = np.concatenate([first.signal, second.signal])
    elif isinstance(first.signal, flat.FlatSignal) and isinstance(second.signal, flat.FlatSignal):
        signal = first.signal.concatenate(second.signal)
    else:
        raise ValueError("pooling splits needs them in memory (--data_backend=memory)")
    return SplitArrays(signal=signal, label=np.concatenate([first.label, second.label]),
                       extras={k: np.concatenate([v, second.extras[k]]) for k, v in first.extras.items()},
                       class_names=list(first.class_names), extra_names=first.extra_names, window=first.window,
                       lengths=None if first.lengths is None else np.concatenate([first.lengths, second.lengths]))


@dataclasses.dataclass(frozen=True)
class Shard:
    """The replicas of one worker of a strategy: ``replicas`` (their indices in ``0..num_replicas-1``).

    A worker's training dataset holds, for every global batch of kept ids, the parts of it that its
    replicas train on, one element per replica: replica ``q`` of ``num_replicas`` takes ids
    ``[q * b // R, (q + 1) * b // R)`` of a global batch of ``b``. The worker reads those records only.
    """

    replicas: tuple[int, ...]
    num_replicas: int


def epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    """The order of sample ids in ``epoch``: a permutation seeded by ``(seed, epoch)``."""
    return np.random.default_rng([seed, epoch]).permutation(n)


_FILTER_CHUNK = 4096
# tf.data's autotuned buffers (parallel reads, prefetch) may otherwise grow to half the machine's RAM.
_BUFFER_BUDGET_BYTES = 256 * 2**20


class TrainStream:
    """A run's training batches: one input pipeline, built once and iterated once per epoch.

    ``epoch_dataset(epoch)`` gives the batches of the kept samples of ``epoch`` in its ``(seed, epoch)``
    order. The pipeline's functions are traced when the stream is made, not every epoch (tracing them
    anew was most of a fixed 0.2 s per epoch on the windowed PTB-XL subset): what changes from epoch to
    epoch, the order (``epoch_permutation``), the epoch (crop and augmentation seeds) and the keep-mask,
    are variables the pipeline reads when it is iterated. So only the dataset of the latest
    ``epoch_dataset`` call may be iterated; ``train_dataset`` makes a one-epoch stream.

    Args:
      arrays: the training split.
      keep_mask: ``(n,)`` bool variable, read when an epoch's dataset is iterated; None keeps all.
      batch_size, seed: the run's.
      read_counter: grows by the records read (``_read``).
      augmentations: names from ``augment.AUGMENTATIONS``, applied to kept records (to the crop, with
        ``arrays.window``: each kept record is read as one window, ``windows.crop_starts``).
      shard: this worker's replicas under a strategy; a dataset then holds their parts of each global
        batch of ``batch_size`` kept ids, one element per replica, and reads only those records.
    """

    def __init__(self, arrays: SplitArrays, keep_mask: tf.Variable | None, batch_size: int, seed: int,
                 read_counter: tf.Variable | None = None, augmentations: tuple[str, ...] = (),
                 shard: Shard | None = None):
        self.arrays, self.keep_mask, self.batch_size, self.seed, self.shard = arrays, keep_mask, batch_size, seed, shard
        self._order = tf.Variable(np.zeros(arrays.n, np.int64), trainable=False, name="epoch_order")
        self._epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self._batches = self._build(read_counter, augmentations)

    def _build(self, read_counter, augmentations) -> tf.data.Dataset:
        order, keep_mask, epoch, shard = self._order, self.keep_mask, self._epoch, self.shard
        chunks = tf.data.Dataset.range(self.arrays.n).batch(_FILTER_CHUNK)
        if keep_mask is None:
            ids = chunks.map(_plain(lambda index: tf.gather(order, index)))
        else:
            # One gather per chunk of ids rather than one filter call per id: at a kept fraction
            # of 5 % the per-id filter, not the kept records, dominated the epoch.
            def kept(index):
                chunk = tf.gather(order, index)
                return tf.boolean_mask(chunk, tf.gather(keep_mask, chunk))
            ids = chunks.map(_plain(kept))
        id_batches = ids.unbatch().batch(self.batch_size)
        if shard is not None:
            id_batches = id_batches.flat_map(_plain(lambda ids: _replica_parts(ids, shard)))
        read_signal = None if self.arrays.window is None else _crop_reader(self.arrays, self.seed, epoch)
        ds = _read(self.arrays, id_batches, read_counter, read_signal)
        if augmentations:
            seed = self.seed
            ds = ds.map(_plain(lambda x, y, i: (augment_lib.augment_batch(x, augmentations, seed, epoch, i), y, i)))
        return ds

    def epoch_dataset(self, epoch: int) -> tf.data.Dataset:
        """The batches of ``epoch`` (``(signal (batch, time, leads), label, sample_id (batch,))``). Its cardinality
        is the batch count of the keep-mask as it is now: iterating it after the mask changed size fails
        loudly, never silently."""
        self._order.assign(epoch_permutation(self.arrays.n, self.seed, epoch).astype(np.int64))
        self._epoch.assign(epoch)
        n_kept = self.arrays.n if self.keep_mask is None else int(
            tf.reduce_sum(tf.cast(tf.convert_to_tensor(self.keep_mask), tf.int64)))
        per_batch = 1 if self.shard is None else len(self.shard.replicas)
        batches = -(-n_kept // self.batch_size) * per_batch
        return _prefetched(self._batches.apply(tf.data.experimental.assert_cardinality(batches)))


def train_dataset(
    arrays: SplitArrays,
    keep_mask: tf.Variable | None,
    batch_size: int,
    seed: int,
    epoch: int,
    read_counter: tf.Variable | None = None,
    augmentations: tuple[str, ...] = (),
    shard: Shard | None = None,
) -> tf.data.Dataset:
    """Batches of the kept samples of one epoch, in a ``(seed, epoch)`` order: ``TrainStream(...).epoch_dataset(epoch)``
    (a run makes one stream and takes every epoch from it)."""
    return TrainStream(arrays, keep_mask, batch_size, seed, read_counter, augmentations, shard).epoch_dataset(epoch)


def _replica_parts(ids: tf.Tensor, shard: Shard) -> tf.data.Dataset:
    """The parts ``(b_q,)`` of one global batch of ids ``(b,)`` that the replicas of ``shard`` train on."""
    n = tf.size(ids, out_type=tf.int64)
    replicas = tf.constant(shard.replicas, tf.int64)
    bounds = tf.stack([replicas * n // shard.num_replicas, (replicas + 1) * n // shard.num_replicas], axis=1)
    return tf.data.Dataset.from_tensor_slices(bounds).map(_plain(lambda bound: ids[bound[0]:bound[1]]))


def eval_dataset(arrays: SplitArrays, batch_size: int, ids: np.ndarray | None = None) -> tf.data.Dataset:
    """Batches of ``(signal, label, sample_id)`` in sample-id order (``ids``: a subset), read batch by batch.

    With ``arrays.window`` the signal is ``(windows (batch, k, window, leads), valid (batch, k))``: every
    evaluation window of the batch's records (``windows.eval_starts``), z-scored one by one."""
    ids = np.arange(arrays.n) if ids is None else np.asarray(ids)
    ds = tf.data.Dataset.from_tensor_slices(ids.astype(np.int64)).batch(batch_size)
    return _prefetched(_read(arrays, ds, read_signal=None if arrays.window is None else _eval_window_reader(arrays)))


def rescore_dataset(arrays: SplitArrays, batch_size: int, ids: np.ndarray, seed: int, epoch: int) -> tf.data.Dataset:
    """Batches of ``(signal (batch, time, leads), label, sample_id)`` of records ``ids`` as the training step of
    ``epoch`` reads them, for re-scoring dropped samples: the record, or with ``arrays.window`` its training crop
    of ``epoch`` (``windows.crop_starts``, z-scored, not augmented). One forward per record, and the view that
    the training step's scores of the kept records come from (not every evaluation window)."""
    ds = tf.data.Dataset.from_tensor_slices(np.asarray(ids, np.int64)).batch(batch_size)
    return _prefetched(_read(arrays, ds, read_signal=None if arrays.window is None else _crop_reader(arrays, seed, epoch)))


def raw_windows(arrays: SplitArrays, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every evaluation window of records ``ids`` ``(k,)`` of a split on windows, RAW (what a served model takes):
    ``(m, window, leads)`` float32, and the sample id ``(m,)`` of each."""
    spec, ids = arrays.window, np.asarray(ids, np.int64)
    starts, valid = windows.eval_starts(tf.constant(arrays.lengths[ids]), spec.length, spec.stride)
    raw = arrays.signal.window_reader(spec.length)(tf.constant(ids), starts).numpy()
    valid = valid.numpy()
    return raw[valid], np.repeat(ids, valid.sum(axis=1))


def _crop_reader(arrays: SplitArrays, seed: int, epoch: int | tf.Variable):
    """``ids (batch,) -> (batch, window, leads)``: each record's training crop of ``epoch`` (an int, or a variable
    read when the function runs), z-scored."""
    length = arrays.window.length
    windows_of = arrays.signal.window_reader(length)
    lengths = tf.constant(arrays.lengths)

    def read(ids):
        starts = windows.crop_starts(tf.gather(lengths, ids), length, seed, epoch, ids)
        return zscore_tf(windows_of(ids, starts[:, None])[:, 0])

    return read


def _eval_window_reader(arrays: SplitArrays):
    """``ids (batch,) -> (windows (batch, k, window, leads), valid (batch, k))``: every evaluation window, z-scored."""
    spec = arrays.window
    windows_of = arrays.signal.window_reader(spec.length)
    lengths = tf.constant(arrays.lengths)

    def read(ids):
        starts, valid = windows.eval_starts(tf.gather(lengths, ids), spec.length, spec.stride)
        return zscore_tf(windows_of(ids, starts)), valid

    return read


def _read(arrays: SplitArrays, id_batches: tf.data.Dataset, read_counter: tf.Variable | None = None,
          read_signal=None) -> tf.data.Dataset:
    """``(signal (batch, time, leads), label (batch,) or (batch, C), sample_id (batch,))`` of batches of sample ids ``(batch,)``.

    The one place where the pipeline reads records, on either backend; ``read_counter`` (if
    given) grows by the records read. Batches are read in parallel, kept in order.
    ``read_signal``: ``ids -> signal`` of the batch (windows); default the records, ``signal_reader``.
    """
    signal_of = read_signal or arrays.signal_reader()
    label = tf.constant(arrays.label)

    def read(ids):
        if read_counter is not None:
            read_counter.assign_add(tf.cast(tf.size(ids), read_counter.dtype))
        return signal_of(ids), tf.gather(label, ids), ids

    return id_batches.map(_plain(read), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _plain(fn):
    """``fn`` for ``Dataset.map``, traced as written: the pipeline's functions hold no Python control flow on
    tensors, and AutoGraph's conversion of them, redone for every epoch's new pipeline, was most of the cost
    of building it."""
    return tf.autograph.experimental.do_not_convert(fn)


def _prefetched(ds: tf.data.Dataset) -> tf.data.Dataset:
    """``ds`` prefetched, its autotuned buffers held to ``_BUFFER_BUDGET_BYTES`` (RSS bounded on either backend).

    tf.data's default graph rewrites are off: they run when a new dataset object is first iterated (a
    run makes one per epoch), and their cost grows with the tensors the pipeline holds, the whole split
    on the memory backend (first iterator 0.021 s at 48 MB, 0.061 s at 432 MB; 0.012 s at both without
    them). The pipeline is already parallel and prefetched where it pays; its batches are the same.
    """
    options = tf.data.Options()
    options.autotune.ram_budget = _BUFFER_BUDGET_BYTES
    options.experimental_optimization.apply_default_optimizations = False
    return ds.prefetch(tf.data.AUTOTUNE).with_options(options)


def prepare(name: str, config: str | tfds.core.BuilderConfig | None, data_dir: str | None,
            manual_dir: str | None = None, backend: str = "memory") -> tfds.core.DatasetBuilder:
    """Builds dataset ``name`` (if needed) and returns its builder.

    ``backend="lazy"``: the dataset also gets its ArrayRecord copy (``lazy.add_array_record``, once).
    Processes preparing the same dataset at once take turns (``registry.preparing``); a dataset already
    prepared is only read.
    """
    builder = registry.builder(name, config, data_dir=data_dir)
    if builder.is_prepared() and (backend != "lazy" or lazy.has_array_record(builder)):
        return builder  # nothing to write, no lock to take: a read-only data_dir works
    with registry.preparing(builder):  # one process at a time prepares it
        builder = registry.builder(name, config, data_dir=data_dir)
        download_config = tfds.download.DownloadConfig(manual_dir=manual_dir) if manual_dir else None
        builder.download_and_prepare(download_config=download_config)
        if backend == "lazy" and not lazy.has_array_record(builder):
            log.info("%s: writing the ArrayRecord copy for --data_backend=lazy", builder.data_dir)
            lazy.add_array_record(builder)
            builder = registry.builder(name, config, data_dir=data_dir)
    return builder
