"""Bootstrap confidence intervals of classification metrics, vectorised over rounds.

A round draws ``n`` sample indices with replacement from the ``n`` samples of
a split (``np.random.default_rng(seed)``: the same seed gives the same rounds)
and recomputes every metric on that resample; the interval is the percentile
interval of the rounds (2.5 and 97.5 percentiles for ``level=0.95``), as in
the PTB-XL benchmark (helme/ecg_ptbxl_benchmarking).

The metrics follow ``erts_tf.metrics`` exactly (scikit-learn's definitions,
``zero_division=0``): per-class precision/recall/F1 from the confusion counts,
macro-F1 over the classes present in the whole split's labels (the same classes
in every round; a round that happens to draw no record of one counts its F1 as
0), one-vs-rest AUROC per class (undefined, NaN, in a
round where the class has no positive or no negative sample) averaged over the
classes where it is defined. They are computed for all rounds at once from
``np.bincount`` and ranks instead of calling scikit-learn per round, so 1000
rounds of a 2000-sample split take well under a second.

Example:
  >>> ci = single_label_bootstrap(labels, probs, ["a", "b"], rounds=1000, seed=0)
  >>> ci["macro_f1"]  # {"point": 0.81, "low": 0.77, "high": 0.85}
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats

from erts_tf import metrics

# Resample in chunks of rounds so that a (chunk, n) index array stays near this many entries.
_CHUNK_ENTRIES = 2_000_000


def resample_chunks(n: int, rounds: int, seed: int):
    """Yields ``(chunk, n)`` int arrays of bootstrap indices, ``rounds`` rows in all, seeded."""
    if n <= 0:
        raise ValueError("cannot bootstrap an empty split")
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_ENTRIES // n)
    done = 0
    while done < rounds:
        k = min(chunk, rounds - done)
        yield rng.integers(0, n, size=(k, n))
        done += k


def group_resample_counts(n_groups: int, rounds: int, seed: int) -> np.ndarray:
    """``(rounds, n_groups)`` int: how often each group is drawn in each round of a cluster bootstrap (the
    groups drawn with replacement, ``n_groups`` draws per round), seeded: the same arguments give the same rounds."""
    if n_groups <= 0:
        raise ValueError("cannot bootstrap zero groups")
    return np.random.default_rng(seed).multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=rounds)


def group_prf_by_round(labels, pred, groups, n_classes: int, counts: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class precision, recall and F1 of cluster-bootstrap rounds: in round ``r`` every sample of group
    ``g`` counts ``counts[r, g]`` times (``group_resample_counts``). Resampling patients, not beats, keeps a
    patient's correlated beats together, as the spread between patients asks.

    Args:
      labels, pred: ``(n,)`` true and predicted class indices.
      groups: ``(n,)`` each sample's group (any sortable values); groups are numbered in sorted order.
      counts: ``(rounds, n_groups)``.

    Returns:
      ``{"precision", "recall", "f1"}``, each ``(rounds, n_classes)`` (``metrics.prf_from_counts``' zero rule).
    """
    group_index = np.unique(np.asarray(groups), return_inverse=True)[1].reshape(-1)
    n_groups = counts.shape[1]
    flat = (group_index * n_classes + np.asarray(labels, np.int64)) * n_classes + np.asarray(pred, np.int64)
    per_group = np.bincount(flat, minlength=n_groups * n_classes * n_classes).reshape(n_groups, n_classes, n_classes)
    confusion = np.einsum("rg,gij->rij", counts, per_group)  # [round, true, predicted]
    tp = np.diagonal(confusion, axis1=1, axis2=2)
    return metrics.prf_from_counts(tp, confusion.sum(axis=1) - tp, confusion.sum(axis=2) - tp)


def auroc_by_rank(positive: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """ROC AUC of each row via the rank-sum (Mann-Whitney) identity, ties averaged.

    Args:
      positive: ``(rounds, n)`` bool, the positive samples of each row.
      scores: ``(rounds, n)`` scores.

    Returns:
      ``(rounds,)`` AUROC; NaN for a row without positives or without negatives.
    """
    ranks = stats.rankdata(scores, axis=-1)
    n_pos = positive.sum(axis=-1).astype(np.float64)
    n_neg = positive.shape[-1] - n_pos
    rank_sum = np.where(positive, ranks, 0.0).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return np.where((n_pos > 0) & (n_neg > 0), auc, np.nan)


def _nanmean(values: np.ndarray, axis: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows stay NaN
        return np.nanmean(values, axis=axis)


def percentile_interval(values: np.ndarray, level: float = 0.95) -> tuple[float | None, float | None]:
    """The ``level`` percentile interval of the finite ``values`` (None, None if there are none)."""
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None, None
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def _interval(point, values: np.ndarray, level: float) -> dict:
    low, high = percentile_interval(values, level)
    return {
        "point": None if point is None or not np.isfinite(point) else float(point),
        "low": low,
        "high": high,
        "defined_rounds": int(np.isfinite(values).sum()),
    }


def single_label_bootstrap(labels, probs, class_names, rounds: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """Percentile CIs of macro-F1, accuracy, macro AUROC and per-class precision/recall/F1/AUROC.

    Args:
      labels: ``(n,)`` true class indices.
      probs: ``(n, n_classes)`` class probabilities (argmax is the prediction).
      class_names: ``n_classes`` names.
      rounds: bootstrap rounds (resamples of the ``n`` samples).
      seed: seed of the resampling.
      level: coverage of the interval.

    Returns:
      ``{"rounds", "seed", "level", "method", "macro_f1", "accuracy", "macro_auroc",
      "per_class": {name: {"precision", "recall", "f1", "auroc"}}}``, each metric
      ``{"point", "low", "high", "defined_rounds"}``; the points are computed on
      the whole split with the same definitions.
    """
    labels = np.asarray(labels, np.int64)
    probs = np.asarray(probs, np.float64)
    n_classes = len(class_names)
    pred = np.argmax(probs, axis=-1)
    present = metrics.present_classes(labels, n_classes)
    collected = {k: [] for k in ("precision", "recall", "f1", "auroc", "accuracy")}
    for index in resample_chunks(len(labels), rounds, seed):
        y, p = labels[index], pred[index]
        prf = metrics.prf_by_round(y, p, n_classes)
        for key in ("precision", "recall", "f1"):
            collected[key].append(prf[key])
        collected["accuracy"].append((y == p).mean(axis=1))
        collected["auroc"].append(np.stack([auroc_by_rank(y == c, probs[index, c]) for c in range(n_classes)], axis=1))
    rounds_of = {k: np.concatenate(v) for k, v in collected.items()}

    point = _point_single_label(labels, probs, n_classes)
    per_class = {
        name: {key: _interval(point[key][c], rounds_of[key][:, c], level) for key in ("precision", "recall", "f1", "auroc")}
        for c, name in enumerate(class_names)
    }
    return {
        "rounds": int(rounds),
        "seed": int(seed),
        "level": level,
        "method": "percentile",
        "macro_f1": _interval(point["f1"][present].mean(), rounds_of["f1"][:, present].mean(axis=1), level),
        "accuracy": _interval(point["accuracy"], rounds_of["accuracy"], level),
        "macro_auroc": _interval(_nanmean(point["auroc"][None], 1)[0], _nanmean(rounds_of["auroc"], 1), level),
        "per_class": per_class,
    }


def _point_single_label(labels, probs, n_classes) -> dict:
    """The point estimates with the bootstrap's own code path (one "round": the identity)."""
    identity = np.arange(len(labels))[None]
    y, p = labels[identity], np.argmax(probs, axis=-1)[identity]
    prf = {key: value[0] for key, value in metrics.prf_by_round(y, p, n_classes).items()}
    auroc = np.array([auroc_by_rank(y[0] == c, probs[:, c][None])[0] for c in range(n_classes)])
    return {**prf, "auroc": auroc, "accuracy": float((y == p).mean())}


def multilabel_bootstrap(targets, scores, class_names, rounds: int = 1000, seed: int = 0, level: float = 0.95,
                         threshold: float | None = 0.5) -> dict:
    """Percentile CIs of multi-label macro AUROC (and macro-F1 at ``threshold``, unless None).

    Args:
      targets: ``(n, n_classes)`` multi-hot {0, 1}.
      scores: ``(n, n_classes)`` per-class scores.
    """
    targets = np.asarray(targets).astype(bool)
    scores = np.asarray(scores, np.float64)
    n_classes = len(class_names)
    aurocs, f1s = [], []
    for index in resample_chunks(len(targets), rounds, seed):
        t = targets[index]  # (chunk, n, C)
        aurocs.append(np.stack([auroc_by_rank(t[..., c], scores[index, c]) for c in range(n_classes)], axis=1))
        if threshold is not None:
            hit = scores[index] >= threshold
            tp = (hit & t).sum(axis=1)
            f1s.append(metrics.prf_from_counts(tp, (hit & ~t).sum(axis=1), (~hit & t).sum(axis=1))["f1"])
    auroc_rounds = np.concatenate(aurocs)
    point_auroc = np.array([auroc_by_rank(targets[None, :, c], scores[None, :, c])[0] for c in range(n_classes)])
    result = {
        "rounds": int(rounds), "seed": int(seed), "level": level, "method": "percentile",
        "macro_auroc": _interval(_nanmean(point_auroc[None], 1)[0], _nanmean(auroc_rounds, 1), level),
        "per_class_auroc": {name: _interval(point_auroc[c], auroc_rounds[:, c], level) for c, name in enumerate(class_names)},
    }
    if threshold is not None:
        hit = scores >= threshold
        tp = (hit & targets).sum(axis=0)
        point_f1 = metrics.prf_from_counts(tp, (hit & ~targets).sum(axis=0), (~hit & targets).sum(axis=0))["f1"]
        result["macro_f1"] = _interval(point_f1.mean(), np.concatenate(f1s).mean(axis=1), level)
    return result
