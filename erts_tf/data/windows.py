"""Fixed-length windows of longer (or variable-length) records: training crops and evaluation windows.

A run with ``--window_s`` trains and scores its backbone on windows of
``WindowSpec.length`` samples:

- training: ONE random crop per kept record and epoch, its start drawn uniformly
  from ``0 .. length_of_record - window`` by a stateless generator seeded by
  ``(seed, epoch, sample_id)`` (``crop_starts``): the same flags and seed give
  the same crops, and a resumed run the crops of an uninterrupted one. The crop
  is made after the keep-mask filter, when the kept record is read.
- evaluation (validation, test, ``erts_tf.evaluate``, re-scoring for selection):
  every record is cut into windows at ``stride`` (``eval_starts``: starts
  ``0, stride, 2 stride, ...``, and a last window that ends at the record's end
  when the stride does not land there, so that every sample is covered), the
  backbone scores each window, and the windows' softmax probabilities are
  aggregated per record (``aggregate``):

  - ``mean`` (default): the mean of the windows' probability vectors. It is
    itself a probability distribution, so the single-label metrics, the loss and
    ``p_true`` keep their meaning; a finding seen in a few windows only is diluted.
  - ``max``: the per-class maximum over the windows, the PTB-XL benchmark's rule
    (Strodthoff et al. 2021) for multi-label outputs, where a finding anywhere in
    the record is a finding of the record. Rows no longer sum to 1; argmax,
    AUROC and the validation loss (of the renormalised row) remain defined.

A record shorter than the window is zero-padded at its end (one window).
z-scoring is per window (``pipeline.zscore_tf`` of the raw window), the same
z-score the exported model applies to the window it is given.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from erts_tf.data import augment

AGGREGATES = ("mean", "max")
_CROP_STREAM = 7  # folded into the per-sample seed: crops draw from a stream of their own (not augmentation's)


@dataclasses.dataclass(frozen=True)
class WindowSpec:
    """Windows of ``length`` samples; evaluation windows every ``stride`` samples, aggregated by ``aggregate``."""

    length: int
    stride: int
    aggregate: str = "mean"

    def __post_init__(self):
        if self.length <= 0 or self.stride <= 0:
            raise ValueError(f"window length and stride must be > 0 samples, got {self.length} and {self.stride}")
        if self.stride > self.length:
            raise ValueError(f"a window stride of {self.stride} samples exceeds the window ({self.length}): "
                             "evaluation would skip samples between windows")
        if self.aggregate not in AGGREGATES:
            raise ValueError(f"unknown window aggregate {self.aggregate!r}; choose one of {', '.join(AGGREGATES)}")


def from_seconds(window_s: float, stride_s: float, aggregate: str, sampling_rate: float | None) -> WindowSpec | None:
    """The ``WindowSpec`` of ``--window_s`` / ``--eval_window_stride_s`` (0: half the window), in samples at
    ``sampling_rate``; None if ``window_s`` is 0.

    ``ValueError`` if windows are asked for and the dataset declares no sampling rate.
    """
    if not window_s:
        return None
    if not sampling_rate:
        raise ValueError("--window_s needs the dataset's sampling rate, which it does not declare")
    length = int(round(window_s * sampling_rate))
    stride = int(round((stride_s or window_s / 2) * sampling_rate))
    return WindowSpec(length, stride, aggregate)


def crop_starts(lengths: tf.Tensor, window: int, seed: int, epoch: int | tf.Tensor, sample_ids: tf.Tensor) -> tf.Tensor:
    """``(batch,)`` int64 start of each record's training crop, uniform in ``0 .. max(length - window, 0)``.

    Args:
      lengths: ``(batch,)`` record lengths in samples.
      window: crop length in samples.
      seed, epoch: the run's seed and the epoch (an int or an int64 scalar tensor).
      sample_ids: ``(batch,)`` the records' sample ids; each start depends on ``(seed, epoch, sample_id)`` only.
    """
    lengths = tf.cast(lengths, tf.int64)
    sample_ids = tf.cast(sample_ids, tf.int64)
    room = tf.maximum(lengths - window, 0) + 1  # the possible starts

    def one(pair):
        sample_id, n_starts = pair
        key = tf.random.experimental.stateless_fold_in(augment.sample_seed(seed, epoch, sample_id), _CROP_STREAM)
        return tf.random.stateless_uniform([], key, minval=0, maxval=n_starts, dtype=tf.int64)

    return tf.map_fn(one, (sample_ids, room), fn_output_signature=tf.int64)


def window_counts(lengths, window: int, stride: int):
    """Evaluation windows per record ``(batch,)``: ``1 + ceil(max(length - window, 0) / stride)`` (NumPy or TF)."""
    room = np.maximum(lengths - window, 0) if isinstance(lengths, np.ndarray) else tf.maximum(lengths - window, 0)
    return 1 + (room + stride - 1) // stride


def eval_starts(lengths: tf.Tensor, window: int, stride: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Starts ``(batch, k)`` int64 of every record's evaluation windows and ``valid`` ``(batch, k)`` bool.

    ``k`` is the largest window count in the batch; a record with fewer windows has ``valid`` False
    (and start 0) in the rest. Window ``j`` starts at ``min(j * stride, max(length - window, 0))``.
    """
    lengths = tf.cast(lengths, tf.int64)
    counts = window_counts(lengths, window, stride)
    j = tf.range(tf.reduce_max(counts), dtype=tf.int64)[None, :]
    valid = j < counts[:, None]
    starts = tf.minimum(j * stride, tf.maximum(lengths - window, 0)[:, None])
    return tf.where(valid, starts, tf.zeros_like(starts)), valid


def aggregate(probs: tf.Tensor, valid: tf.Tensor, how: str) -> tf.Tensor:
    """Per-record probabilities ``(batch, C)`` of the windows' ``probs`` ``(batch, k, C)``, over the ``valid``
    ``(batch, k)`` ones.

    ``how``: ``mean`` or ``max`` over the valid windows (see the module docstring).
    """
    if how == "mean":
        return aggregate_valid(probs, valid)
    if how == "max":
        return tf.reduce_max(tf.where(valid[..., None], probs, tf.zeros_like(probs)), axis=1)
    raise ValueError(f"unknown window aggregate {how!r}; choose one of {', '.join(AGGREGATES)}")


def record_probs(probs_of, windows: tf.Tensor, valid: tf.Tensor, how: str) -> tf.Tensor:
    """Per-record probabilities ``(batch, C)``: ``probs_of`` (``(m, window, leads) -> (m, C)``) of every window of
    ``windows`` ``(batch, k, window, leads)``, aggregated over the ``valid`` ``(batch, k)`` ones by ``how``."""
    shape = tf.shape(windows)
    probs = probs_of(tf.reshape(windows, tf.concat([[-1], shape[2:]], 0)))
    return aggregate(tf.reshape(probs, tf.concat([shape[:2], [-1]], 0)), valid, how)


def aggregate_valid(values: tf.Tensor, valid: tf.Tensor) -> tf.Tensor:
    """The mean ``(batch, ...)`` of per-window ``values`` ``(batch, k, ...)`` over the ``valid`` ``(batch, k)``
    windows (a record's focus ``(batch,)``: the mean focus of its windows; mean probabilities ``(batch, C)``)."""
    trailing = tf.ones([tf.rank(values) - 2], tf.int32)  # one axis of size 1 per axis after (batch, k)
    weights = tf.reshape(tf.cast(valid, values.dtype), tf.concat([tf.shape(valid), trailing], 0))
    return tf.reduce_sum(values * weights, axis=1) / tf.maximum(tf.reduce_sum(weights, axis=1), 1.0)


def slice_windows(record: np.ndarray, starts: np.ndarray, window: int) -> np.ndarray:
    """Windows ``(k, window, leads)`` of one ``record`` ``(time, leads)`` at ``starts`` ``(k,)``, zero past its end."""
    out = np.zeros((len(starts), window, record.shape[-1]), record.dtype)
    for i, start in enumerate(starts):
        piece = record[start:start + window]
        out[i, :len(piece)] = piece
    return out
