"""Multi-label targets (``--task=multi``): a dataset's multi-hot feature, its class names and the count rule.

A multi-hot feature (``--label_feature``) is a ``(C,)`` integer tensor feature of the dataset. Its class
names come from the dataset, never from this code: ``info.metadata["label_sets"][feature]["names"]``
(PTB-XL's ``superclasses``, ``diagnostic``, ``rhythm``, ``all_statements``), or the names of the
dataset's ``label`` ClassLabel when the feature has as many columns (CPSC 2018 / Georgia ``multi_hot``).

The PTB-XL benchmark's rules (Strodthoff et al. 2021; helme/ecg_ptbxl_benchmarking ``select_data``,
``min_samples=0``), applied when a split is loaded (``select``):

1. a class is kept when it has at least ``min_count`` positive records in the whole dataset (all splits;
   the benchmark counts over all folds and keeps a statement that occurs at all: ``min_count=1``);
2. a record with no positive class among the kept ones is left out of the split (and the number left
   out is logged); it is never relabelled.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")


def class_names(builder, feature: str) -> list[str]:
    """The class names of multi-hot ``feature`` of ``builder`` (see the module docstring); ``ValueError``
    names the dataset's multi-hot features when ``feature`` is not one."""
    features = builder.info.features
    shape = tuple(getattr(features[feature], "shape", ())) if feature in features else ()
    if len(shape) != 1:
        raise ValueError(f"{builder.name}: --label_feature={feature!r} is not a multi-hot feature of the dataset; "
                         f"choose one of {', '.join(multi_hot_features(builder)) or 'none (it has none)'}")
    names = ((builder.info.metadata or {}).get("label_sets") or {}).get(feature, {}).get("names")
    if names is None and "label" in features and len(features["label"].names) == shape[0]:
        names = features["label"].names
    if names is None or len(names) != shape[0]:
        raise ValueError(f"{builder.name}: no class names for the {shape[0]} columns of {feature!r} (neither "
                         "info.metadata['label_sets'] nor the label's names fit)")
    return list(names)


def multi_hot_features(builder) -> list[str]:
    """The dataset's features that name their classes: ``(C,)`` tensors with metadata names or the label's count."""
    features = builder.info.features
    sets = (builder.info.metadata or {}).get("label_sets") or {}
    n_label = len(features["label"].names) if "label" in features else None
    return [k for k, f in features.items()
            if len(tuple(getattr(f, "shape", ()) or ())) == 1 and k != "signal"
            and (k in sets or tuple(f.shape) == (n_label,))]


def read_feature(builder, split: str, name: str) -> np.ndarray:
    """Feature ``name`` of every example of ``split``, ordered by ``sample_id`` (the signal is not decoded)."""
    import tensorflow_datasets as tfds

    ds = builder.as_dataset(split=split, shuffle_files=False, decoders={"signal": tfds.decode.SkipDecoding()})
    ids, values = [], []
    for i, v in tfds.as_numpy(ds.map(lambda ex: (ex["sample_id"], ex[name])).batch(1024)):
        ids.append(i)
        values.append(v)
    if not ids:
        return np.zeros((0, *builder.info.features[name].shape), builder.info.features[name].np_dtype)
    ids, values = np.concatenate(ids), np.concatenate(values)
    return values[np.argsort(ids, kind="stable")]


_COUNTS: dict[tuple[str, str], np.ndarray] = {}  # (prepared dataset folder, feature) -> counts


def positive_counts(builder, feature: str) -> np.ndarray:
    """``(C,)`` int64: the records of the whole dataset (every split) positive for each class of ``feature``.

    Read once per prepared dataset and feature in a process (every split's load needs them)."""
    key = (str(builder.data_dir), feature)
    if key not in _COUNTS:
        _COUNTS[key] = sum(np.asarray(read_feature(builder, split, feature) > 0, np.int64).sum(axis=0)
                           for split in SPLITS)
    return _COUNTS[key].copy()


def kept_classes(counts: np.ndarray, min_count: int) -> np.ndarray:
    """``(C,)`` bool: the classes with at least ``min_count`` positive records (rule 1)."""
    return np.asarray(counts) >= min_count


def select(arrays, kept: np.ndarray, split: str, feature: str):
    """``arrays`` (``pipeline.SplitArrays`` with multi-hot labels ``(n, C)``) on the ``kept`` ``(C,)`` classes,
    without the records that have none of them (rule 2; sample ids renumbered, the count logged)."""
    from erts_tf.data import pipeline

    kept = np.asarray(kept, bool)
    label = np.asarray(arrays.label)[:, kept]
    with_label = np.flatnonzero(label.any(axis=1))
    dropped = [n for n, k in zip(arrays.class_names, kept) if not k]
    if dropped:
        log.info("%s/%s: classes %s left out (fewer positive records than --min_label_count)", feature, split,
                 ", ".join(dropped))
    left_out = arrays.n - len(with_label)
    log.info("%s/%s: %d of %d records have no label of the %d classes and are left out", feature, split, left_out,
             arrays.n, int(kept.sum()))
    relabelled = dataclasses.replace(arrays, label=label, class_names=[n for n, k in zip(arrays.class_names, kept) if k])
    return pipeline.take_samples(relabelled, with_label) if left_out else relabelled
