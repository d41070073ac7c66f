"""The data a run's settings name: its dataset's prepared builder and its splits, ``--exclude_classes`` applied.

Training (``training.run.load_data``), evaluation and the report's Grad-CAM figure
decode a run's splits here, so that a run trained without some classes is scored
and drawn on the same classes, numbered as its model numbers them.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")


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


def load_split(builder, config, split: str):
    """``split`` as ``SplitArrays`` (z-scored ``signal`` ``(n, time, leads)``, sample-id order) without the
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
