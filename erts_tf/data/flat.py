"""The memory backend's store of raw records of any length: one flat array and per-record offsets.

Used when a run trains on windows (``--window_s``): records may differ in length
(a dataset config that writes whole recordings), and windows are z-scored one by
one, so the records are kept raw. ``FlatSignal`` holds every record of a split
end to end in one ``(total_time, leads)`` float32 array, and where each starts
and how long it is. Reading a window gathers just its samples: no padded
``(n, max_time, leads)`` array, no copy per epoch.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


class FlatSignal:
    """Raw records ``(time_i, leads)`` of a split, in sample-id order, stored end to end.

    Args:
      flat: ``(total_time, leads)`` float32, the records one after the other (any order).
      offsets: ``(n,)`` where record ``i`` (sample id ``i``) starts in ``flat``.
      lengths: ``(n,)`` its length in samples.
    """

    def __init__(self, flat: np.ndarray, offsets: np.ndarray, lengths: np.ndarray):
        self.flat = np.asarray(flat, np.float32)
        self.offsets = np.asarray(offsets, np.int64)
        self.lengths = np.asarray(lengths, np.int64)
        self._tensors = None

    @property
    def shape(self) -> tuple[int, int | None, int]:
        """``(n, time, leads)``; ``time`` is None when the records differ in length."""
        lengths = np.unique(self.lengths)
        return (len(self.offsets), int(lengths[0]) if len(lengths) == 1 else None, int(self.flat.shape[-1]))

    def take(self, index: np.ndarray, axis: int = 0) -> FlatSignal:
        """The records ``index`` ``(k,)`` (sample ids, in that order), sharing the flat array."""
        if axis != 0:
            raise ValueError("FlatSignal.take selects records (axis 0) only")
        index = np.asarray(index)
        return FlatSignal(self.flat, self.offsets[index], self.lengths[index])

    def concatenate(self, other: FlatSignal) -> FlatSignal:
        """This store's records, then ``other``'s, in one store (a copy of both flat arrays)."""
        return FlatSignal(np.concatenate([self.flat, other.flat]),
                          np.concatenate([self.offsets, other.offsets + len(self.flat)]),
                          np.concatenate([self.lengths, other.lengths]))

    def window_reader(self, window: int):
        """``(ids (batch,), starts (batch, k)) -> raw windows (batch, k, window, leads)`` float32, a TF function,
        zero past a record's end. Call it eagerly: it makes the split's tensors (once per store)."""
        if self._tensors is None:
            self._tensors = tuple(tf.constant(a) for a in (self.flat, self.offsets, self.lengths))
        flat, offsets, lengths = self._tensors

        def read(ids, starts):
            ids = tf.cast(ids, tf.int64)
            within = tf.cast(starts, tf.int64)[:, :, None] + tf.range(window, dtype=tf.int64)[None, None, :]
            inside = within < tf.gather(lengths, ids)[:, None, None]
            position = tf.where(inside, tf.gather(offsets, ids)[:, None, None] + within, tf.zeros_like(within))
            return tf.where(inside[..., None], tf.gather(flat, position), 0.0)

        return read
