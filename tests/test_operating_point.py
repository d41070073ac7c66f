"""The operating point of a single-label model: per-class log-probability offsets chosen on one split
(validation) to raise its macro-F1, and the metrics at those offsets."""

import numpy as np
import pytest
from sklearn import metrics as skm

from erts_tf import metrics

NAMES = ["N", "S"]


def _under_called_minority(n_majority=90, n_minority=10):
    """Class 1 is never the most probable class: its records have p1 0.3, the majority's have p1 0.1."""
    labels = np.r_[np.zeros(n_majority, int), np.ones(n_minority, int)]
    p1 = np.where(labels == 1, 0.3, 0.1)
    return labels, np.stack([1 - p1, p1], axis=1)


def test_macro_f1_follows_sklearn_over_the_classes_present():
    rng = np.random.default_rng(0)
    labels = rng.choice(3, size=500, p=[0.7, 0.2, 0.1])  # class 3 never a label
    pred = rng.choice(4, size=500)
    expected = skm.f1_score(labels, pred, labels=[0, 1, 2], average="macro", zero_division=0)
    assert metrics.macro_f1(labels, pred, 4) == pytest.approx(expected, abs=1e-12)
    assert metrics.macro_f1(np.zeros(0, int), np.zeros(0, int), 2) == 0.0


def test_offset_probs_are_the_posterior_under_other_priors():
    probs = np.array([[0.7, 0.2, 0.1], [0.25, 0.5, 0.25]])
    np.testing.assert_allclose(metrics.offset_probs(probs, np.zeros(3)), probs, atol=1e-12)
    shifted = metrics.offset_probs(probs, np.log([1.0, 4.0, 1.0]))
    np.testing.assert_allclose(shifted.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(shifted[0], np.array([0.7, 0.8, 0.1]) / 1.6, atol=1e-12)  # S's odds x4
    assert metrics.offset_probs(np.array([[1.0, 0.0]]), np.array([0.0, 4.0])).argmax() == 0  # p 0 stays below


def test_offsets_recover_a_class_the_model_under_calls():
    labels, probs = _under_called_minority()
    assert metrics.classification_metrics(labels, probs, NAMES)["per_class"]["S"]["recall"] == 0.0
    offsets = metrics.macro_f1_optimal_offsets(labels, probs)
    # S wins where log(0.3) + d > log(0.7), N where log(0.1) + d < log(0.9): d in (0.85, 2.20); the grid's
    # smallest such step is 1.0, and the first class swept (N) takes it.
    np.testing.assert_array_equal(offsets, [-1.0, 0.0])
    result = metrics.classification_metrics(labels, probs, NAMES, tuned_offsets=offsets)
    assert result["tuned"]["macro_f1"] == 1.0 and result["tuned"]["offsets"] == {"N": -1.0, "S": 0.0}
    assert result["tuned"]["per_class"]["S"]["recall"] == 1.0
    assert result["macro_f1"] < 0.5  # the untuned metrics are unchanged beside it


def test_offsets_stay_zero_where_nothing_improves():
    labels = np.array([0, 1, 2, 0, 1, 2])
    probs = np.eye(3)[labels] * 0.8 + 0.2 / 3
    np.testing.assert_array_equal(metrics.macro_f1_optimal_offsets(labels, probs), np.zeros(3))


def test_offsets_are_deterministic_and_never_lower_the_macro_f1():
    rng = np.random.default_rng(1)
    labels = rng.choice(4, size=800, p=[0.8, 0.05, 0.1, 0.05])
    logits = rng.normal(size=(800, 4)) + 2.0 * np.eye(4)[labels] + np.array([1.5, -1.0, 0.0, -0.5])
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    offsets = metrics.macro_f1_optimal_offsets(labels, probs)
    np.testing.assert_array_equal(offsets, metrics.macro_f1_optimal_offsets(labels, probs))
    before = metrics.macro_f1(labels, probs.argmax(axis=1), 4)
    after = metrics.macro_f1(labels, metrics.offset_probs(probs, offsets).argmax(axis=1), 4)
    assert after > before + 0.02  # the prior shift the logits carry is worth undoing
    assert set(offsets) <= set(metrics.OFFSET_GRID)
