"""The data a run's settings name: its dataset's prepared builder and its splits, ``--exclude_classes`` applied.

Training (``training.run.load_data``), evaluation and the report's Grad-CAM figure
decode a run's splits here, so that a run trained without some classes is scored
and drawn on the same classes, numbered as its model numbers them, and a run of
one cross-validation fold (``--cv_folds``) is scored on the fold it held out.
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
POOLED_SPLITS = ("train", "validation")  # what --cv_folds deals into folds; the test split is never touched


class DataError(Exception):
    """The dataset a run names cannot be prepared or decoded as the run's settings say (message is for the user)."""


def prepare_builder(config):
    """The prepared TFDS builder of ``config.dataset`` (built on first use; with its ArrayRecord copy under
    ``--data_backend=lazy``), ``DataError`` naming the dataset."""
    from erts_tf.data import pipeline

    try:
        return pipeline.prepare(config.dataset, config.dataset_config, config.data_dir, config.manual_dir,
                                config.data_backend)
    except (FileNotFoundError, ValueError, KeyError, AssertionError) as error:
        raise DataError(f"dataset {config.dataset!r}: {error}") from error


def excluded_classes(config) -> tuple[str, ...]:
    """The class names of ``--exclude_classes`` (comma-separated; empty: none)."""
    return tuple(n.strip() for n in config.exclude_classes.split(",") if n.strip())


def window_of(builder, config):
    """The ``windows.WindowSpec`` of ``config`` (``--window_s``, in samples at the dataset's declared
    sampling rate); None for whole records. ``DataError`` if the dataset declares no sampling rate."""
    from erts_tf.data import registry, windows

    rate, _ = registry.declared_fact(builder, "sampling_rate_hz")
    try:
        return windows.from_seconds(config.window_s, config.eval_window_stride_s, config.window_aggregate, rate)
    except ValueError as error:
        raise DataError(f"dataset {config.dataset!r}: {error}") from error


def load_splits(builder, config) -> tuple:
    """The run's ``(train, validation, test)`` (``load_split``), a fold's pooled splits decoded once."""
    if config.cv_folds:
        return (*cross_validation_fold(builder, config), _load_split(builder, config, "test"))
    return tuple(_load_split(builder, config, split) for split in SPLITS)


def load_split(builder, config, split: str):
    """``split`` as the run sees it: the dataset's split (``_load_split``), or with ``--cv_folds`` the training
    or held-out part of the pooled train and validation splits (``cross_validation_fold``)."""
    if config.cv_folds and split in POOLED_SPLITS:
        return cross_validation_fold(builder, config)[POOLED_SPLITS.index(split)]
    return _load_split(builder, config, split)


def cross_validation_fold(builder, config) -> tuple:
    """``(train, held_out)`` of fold ``--cv_fold`` of ``--cv_folds``: the dataset's train and validation splits
    pooled (``pipeline.concatenate``, train first), the samples of the fold's groups (``--cv_group_feature``,
    e.g. the record: patient-wise folds, ``folds.group_folds``) held out, the others trained on.

    ``DataError`` if the dataset has no such per-sample feature, holds fewer groups than folds, or is read
    lazily (the pooled splits are held in memory)."""
    from erts_tf.data import folds, pipeline

    if not 0 <= config.cv_fold < config.cv_folds:
        raise DataError(f"--cv_fold={config.cv_fold} is not a fold of --cv_folds={config.cv_folds} (0..{config.cv_folds - 1})")
    pooled_parts = [_load_split(builder, config, split) for split in POOLED_SPLITS]
    feature = config.cv_group_feature
    if feature not in pooled_parts[0].extras:
        raise DataError(f"dataset {config.dataset!r}: --cv_group_feature={feature!r} is not one of its per-sample "
                        f"features ({', '.join(sorted(pooled_parts[0].extras)) or 'none'})")
    try:
        pooled = pipeline.concatenate(*pooled_parts)
        fold_of = folds.group_folds(pooled.extras[feature], config.cv_folds)
    except ValueError as error:
        raise DataError(f"dataset {config.dataset!r}, --cv_folds={config.cv_folds}: {error}") from error
    held_out = fold_of == config.cv_fold
    names = folds.fold_group_names(pooled.extras[feature], config.cv_folds, config.cv_fold)
    log.info("fold %d of %d: %d samples of %d %s value(s) held out (%s), %d trained on", config.cv_fold,
             config.cv_folds, int(held_out.sum()), len(names), feature, ", ".join(names), int((~held_out).sum()))
    return (pipeline.take_samples(pooled, np.flatnonzero(~held_out)),
            pipeline.take_samples(pooled, np.flatnonzero(held_out)))


def _load_split(builder, config, split: str):
    """The dataset's ``split`` as ``SplitArrays`` (z-scored ``signal`` ``(n, time, leads)``, sample-id order) without the
    records of ``config``'s excluded classes, the others renumbered (``pipeline.exclude_classes``).

    ``config.data_backend``: ``memory`` decodes the split into RAM; ``lazy`` leaves the signal on disk
    (a ``LazySignal``: indexing it reads those records), so evaluation and the report read only what they score.
    ``--window_s``: the split is read as windows (``window_of``; ``pipeline.load_split``).
    ``--task=multi``: the labels are ``--label_feature``'s multi-hot ``(n, C)``, on the classes with at least
    ``--min_label_count`` positive records, without the records that have none of them (``label_sets``)."""
    from erts_tf.data import pipeline

    names = excluded_classes(config)
    multi = config.task == "multi"
    try:
        arrays = pipeline.load_split(builder, split, config.data_backend, window_of(builder, config),
                                     label_feature=config.label_feature if multi else None)
        if multi:
            return _multi_label_split(builder, config, split, arrays)
        kept = pipeline.exclude_classes(arrays, names) if names else arrays
    except ValueError as error:
        raise DataError(str(error)) from error
    if names:
        log.info("%s: left out %d samples of class(es) %s (--exclude_classes)", split, arrays.n - kept.n,
                 ", ".join(names))
    return kept


def _multi_label_split(builder, config, split: str, arrays):
    """``arrays`` on the multi-label rules of ``label_sets`` (the classes kept over the whole dataset)."""
    from erts_tf.data import label_sets

    kept = label_sets.kept_classes(label_sets.positive_counts(builder, config.label_feature), config.min_label_count)
    if not kept.any():
        raise DataError(f"dataset {config.dataset!r}: no class of {config.label_feature!r} has "
                        f"--min_label_count={config.min_label_count} positive records")
    return label_sets.select(arrays, kept, split, config.label_feature)
