"""How the PhysioNet builders shape their examples: the signal feature, the reference's crop/pad and split."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow_datasets as tfds


def signal_feature(shape: tuple[int | None, int]) -> tfds.features.Tensor:
    """The ``signal`` feature: float32 ``(time, leads)``, stored as raw bytes.

    Bytes encoding only changes the storage (serialising a float list is
    several times slower for 12 x 5000 samples); the feature reads back as a
    float32 tensor of ``shape``. ``time`` None: whole recordings, each of its own
    length (stored unpadded; ``num_samples`` says how long), which a run reads as
    windows (``--window_s``; ``erts_tf.data.windows``).
    """
    return tfds.features.Tensor(shape=shape, dtype=np.float32, encoding=tfds.features.Encoding.BYTES)


def fix_length(signal: np.ndarray, length: int | None) -> np.ndarray:
    """The first ``length`` samples of ``signal`` (time, leads), zero-padded at the end if shorter.

    This is the reference's crop/pad: it keeps the start of the record. ``length`` None: the whole record.
    """
    if length is None:
        return np.asarray(signal, np.float32)
    out = np.zeros((length, signal.shape[1]), dtype=np.float32)
    n = min(length, signal.shape[0])
    out[:n] = signal[:n]
    return out


def reference_split(labels: Sequence[int], seed: int = 42) -> np.ndarray:
    """Split name per record: the reference's stratified 80/10/10 split.

    ``train_test_split(test_size=0.2, stratify=labels, random_state=seed)`` and
    then the held-out 20 % halved the same way into validation and test, as
    the reference implementation does on its record table; the table must be
    in the same order (records sorted by name) for the same split.
    """
    from sklearn.model_selection import train_test_split

    labels = np.asarray(labels)
    index = np.arange(len(labels))
    try:
        train, rest = train_test_split(index, test_size=0.2, random_state=seed, stratify=labels)
        validation, test = train_test_split(rest, test_size=0.5, random_state=seed, stratify=labels[rest])
    except ValueError as err:
        values, counts = np.unique(labels, return_counts=True)
        raise ValueError(
            f"cannot make a stratified 80/10/10 split of {len(labels)} records with class counts "
            f"{dict(zip(values.tolist(), counts.tolist()))}: {err}"
        ) from err
    out = np.empty(len(labels), dtype=object)
    out[train], out[validation], out[test] = "train", "validation", "test"
    return out

