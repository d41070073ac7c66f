"""Patient-wise cross-validation folds: which samples a fold holds out, by the group (patient, record) of each.

Pure NumPy; ``run_data`` applies it to the pooled train and validation splits (``--cv_folds``).
"""

from __future__ import annotations

import numpy as np


def group_folds(groups: np.ndarray, folds: int) -> np.ndarray:
    """The fold ``(n,)`` int of each sample of ``groups`` ``(n,)`` (any sortable values: record names, patient ids).

    The distinct groups, sorted, are dealt to folds ``0..folds-1`` in turn (the i-th group to fold ``i % folds``),
    so every sample of a group is in one fold and the folds do not depend on the samples' order or on a seed.
    ``ValueError`` unless ``2 <= folds <=`` the number of distinct groups.
    """
    groups = np.asarray(groups)
    distinct, group_index = np.unique(groups, return_inverse=True)
    if folds < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, got {folds}")
    if folds > len(distinct):
        raise ValueError(f"{folds} folds need at least {folds} groups; the samples hold {len(distinct)}")
    return (group_index.reshape(-1) % folds).astype(np.int64)


def fold_group_names(groups: np.ndarray, folds: int, fold: int) -> list[str]:
    """The distinct groups of fold ``fold`` (sorted, as text), as ``group_folds`` deals them."""
    distinct = np.unique(np.asarray(groups))
    return [g.decode() if isinstance(g, bytes) else str(g) for g in distinct[fold::folds]]
