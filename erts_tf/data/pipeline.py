"""Input pipeline: TFDS split -> in-memory arrays -> keep-mask filter -> batches.

A split is decoded ONCE into NumPy arrays (``load_split``), z-scored per lead
and per sample. Each training epoch then streams sample ids in a permutation
seeded by ``(seed, epoch)``, keeps only ids whose ``keep_mask[sample_id]`` is
True, and only then gathers the record: a dropped record is never read into
the pipeline, and ``read_counter`` counts exactly the records that were.
Kept records are then augmented (``augment``, seeded by ``(seed, epoch,
sample_id)``) if the run asks for it. Each epoch's dataset knows how many
batches it holds (the keep-mask is decided before the dataset is built).
Elements are ``(signal (batch, time, leads), label (batch,), sample_id (batch,))``.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from erts_tf.data import augment as augment_lib
from erts_tf.data import registry

log = logging.getLogger(__name__)


def zscore(signal: np.ndarray) -> np.ndarray:
    """Per-sample, per-lead z-score of ``(..., time, leads)``.

    NaN/inf become 0 first. A flat lead becomes zeros, never NaN: flat means a std
    below float32 resolution at the lead's level, ``std <= 1e-6 * max(1, |mean|)``
    (a float32 lead constant at 0.7 has std ~1e-7, not 0).
    """
    signal = np.nan_to_num(np.asarray(signal, np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    mean = signal.mean(axis=-2, keepdims=True)
    std = signal.std(axis=-2, keepdims=True)
    flat = std <= 1e-6 * np.maximum(1.0, np.abs(mean))
    return np.where(flat, 0.0, (signal - mean) / np.where(flat, 1.0, std)).astype(np.float32)


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
    """One decoded split.

    Attributes:
      signal: ``(n, time, leads)`` float32, z-scored.
      label: ``(n,)`` int32.
      extras: other scalar features by name, each ``(n,)`` (e.g. ``corruption``).
      class_names: names of the label classes.
      extra_names: for ClassLabel extras, their names (e.g. corruption types).
    """

    signal: np.ndarray
    label: np.ndarray
    extras: dict[str, np.ndarray]
    class_names: list[str]
    extra_names: dict[str, list[str]]

    @property
    def n(self) -> int:
        return len(self.label)

    @property
    def input_shape(self) -> tuple[int, int]:
        return tuple(self.signal.shape[1:])


def load_split(builder: tfds.core.DatasetBuilder, split: str) -> SplitArrays:
    """Decodes ``split`` of a prepared builder into ``SplitArrays`` ordered by ``sample_id``.

    Raises ``ValueError`` if a core feature is missing or the sample ids are
    not exactly ``0..n-1``.
    """
    features = builder.info.features
    missing = [f for f in registry.CORE_FEATURES if f not in features]
    if missing:
        raise ValueError(f"dataset {builder.name!r} lacks the core features {missing}")
    scalar_extras = [
        k for k, f in features.items()
        if k not in registry.CORE_FEATURES and tuple(getattr(f, "shape", (None,))) == ()
    ]
    columns = {k: [] for k in ("sample_id", "signal", "label", *scalar_extras)}
    ds = builder.as_dataset(split=split, shuffle_files=False).batch(1024)
    for batch in tfds.as_numpy(ds):
        for key in columns:
            columns[key].append(batch[key])
    arrays = {k: np.concatenate(v) if v else np.zeros((0,)) for k, v in columns.items()}
    order = np.argsort(arrays["sample_id"], kind="stable")
    ids = arrays["sample_id"][order]
    if not np.array_equal(ids, np.arange(len(ids))):
        raise ValueError(f"{builder.name}/{split}: sample_id must be 0..n-1 without gaps or repeats")
    extra_names = {
        k: list(features[k].names) for k in scalar_extras if isinstance(features[k], tfds.features.ClassLabel)
    }
    return SplitArrays(
        signal=zscore(arrays["signal"][order]),
        label=arrays["label"][order].astype(np.int32),
        extras={k: arrays[k][order] for k in scalar_extras},
        class_names=list(features["label"].names),
        extra_names=extra_names,
    )


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
    """The samples ``index`` (``(k,)`` positions, in that order) of ``arrays``; sample ids become ``0..k-1``."""
    return SplitArrays(signal=arrays.signal[index], label=arrays.label[index],
                       extras={k: v[index] for k, v in arrays.extras.items()},
                       class_names=list(arrays.class_names), extra_names=arrays.extra_names)


def epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    """The order of sample ids in ``epoch``: a permutation seeded by ``(seed, epoch)``."""
    return np.random.default_rng([seed, epoch]).permutation(n)


_FILTER_CHUNK = 4096


def train_dataset(
    arrays: SplitArrays,
    keep_mask: tf.Variable | None,
    batch_size: int,
    seed: int,
    epoch: int,
    read_counter: tf.Variable | None = None,
    augmentations: tuple[str, ...] = (),
) -> tf.data.Dataset:
    """Batches of the kept samples of one epoch, in a ``(seed, epoch)`` order.

    ``keep_mask`` ``(n,)`` bool is read when the dataset is iterated; None keeps all.
    The dataset's cardinality is the batch count of the mask as it is when this is
    called (iterating it after the mask changed size fails loudly, never silently).
    ``augmentations``: names from ``augment.AUGMENTATIONS``, applied to kept records.
    """
    signal = tf.constant(arrays.signal)
    label = tf.constant(arrays.label)

    def read(i):
        if read_counter is not None:
            read_counter.assign_add(1)
        x = signal[i]
        if augmentations:
            x = augment_lib.augment(x, augmentations, augment_lib.sample_seed(seed, epoch, i))
        return x, label[i], i

    ids = tf.data.Dataset.from_tensor_slices(epoch_permutation(arrays.n, seed, epoch).astype(np.int64))
    if keep_mask is not None:
        # One gather per chunk of ids rather than one filter call per id: at a kept fraction
        # of 5 % the per-id filter, not the kept records, dominated the epoch.
        ids = ids.batch(_FILTER_CHUNK).map(lambda chunk: tf.boolean_mask(chunk, tf.gather(keep_mask, chunk))).unbatch()
    n_kept = arrays.n if keep_mask is None else int(tf.reduce_sum(tf.cast(tf.convert_to_tensor(keep_mask), tf.int64)))
    ds = ids.map(read).batch(batch_size)
    ds = ds.apply(tf.data.experimental.assert_cardinality(-(-n_kept // batch_size)))
    return ds.prefetch(tf.data.AUTOTUNE)


def eval_dataset(arrays: SplitArrays, batch_size: int, ids: np.ndarray | None = None) -> tf.data.Dataset:
    """Batches of ``(signal, label, sample_id)`` in sample-id order (``ids``: a subset)."""
    ids = np.arange(arrays.n) if ids is None else np.asarray(ids)
    ds = tf.data.Dataset.from_tensor_slices((arrays.signal[ids], arrays.label[ids], ids.astype(np.int64)))
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def prepare(name: str, config: str | None, data_dir: str | None, manual_dir: str | None = None) -> tfds.core.DatasetBuilder:
    """Builds dataset ``name`` (if needed) and returns its builder."""
    builder = registry.builder(name, config, data_dir=data_dir)
    download_config = tfds.download.DownloadConfig(manual_dir=manual_dir) if manual_dir else None
    builder.download_and_prepare(download_config=download_config)
    return builder
