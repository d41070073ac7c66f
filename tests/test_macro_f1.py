"""Macro-F1 over the classes present in a split's labels: the numpy metric, the bootstrap and the
training metric agree, and a class absent from the labels does not count as F1 0."""

import numpy as np
import pytest
from sklearn import metrics as skm

from erts_tf import bootstrap, metrics
from erts_tf.training.macro_f1 import PresentClassesMacroF1

CLASSES = ["N", "S", "V", "Q"]


def _split(seed=0, n=300):
    rng = np.random.default_rng(seed)
    labels = rng.choice(3, size=n, p=[0.6, 0.25, 0.15])  # no Q record
    probs = rng.random((n, 4))
    probs[np.arange(n), labels] += rng.random(n) * 1.5  # mostly right, some errors, a few Q predictions
    return labels, probs / probs.sum(axis=1, keepdims=True)


def test_macro_f1_leaves_out_a_class_absent_from_the_labels_but_counts_its_predictions():
    labels, probs = _split()
    pred = probs.argmax(axis=1)
    assert (pred == 3).any()  # Q is predicted for some records, which are errors on their true class
    result = metrics.classification_metrics(labels, probs, CLASSES)
    assert result["macro_f1_classes"] == ["N", "S", "V"]
    expected = skm.f1_score(labels, pred, labels=[0, 1, 2], average="macro", zero_division=0)
    assert result["macro_f1"] == pytest.approx(expected, abs=1e-12)
    all_four = skm.f1_score(labels, pred, labels=[0, 1, 2, 3], average="macro", zero_division=0)
    assert result["macro_f1"] == pytest.approx(all_four * 4 / 3, abs=1e-12)  # Q's F1 0 no longer pulls it down


def test_a_perfect_model_scores_1_when_a_class_is_absent():
    labels = np.array([0, 1, 2, 0, 1])
    probs = np.eye(4)[labels]
    assert metrics.classification_metrics(labels, probs, CLASSES)["macro_f1"] == 1.0
    assert bootstrap.single_label_bootstrap(labels, probs, CLASSES, rounds=50)["macro_f1"]["point"] == 1.0


def test_the_bootstrap_point_equals_the_metric():
    labels, probs = _split(1)
    point = metrics.classification_metrics(labels, probs, CLASSES)["macro_f1"]
    ci = bootstrap.single_label_bootstrap(labels, probs, CLASSES, rounds=200)["macro_f1"]
    assert ci["point"] == pytest.approx(point, abs=1e-12)
    assert ci["low"] < point < ci["high"]


def test_the_training_metric_equals_the_metric_over_batches():
    labels, probs = _split(2)
    metric = PresentClassesMacroF1()
    for start in range(0, len(labels), 64):  # accumulated over batches, as in an epoch
        metric.update_state(np.eye(4, dtype="float32")[labels[start:start + 64]], probs[start:start + 64].astype("float32"))
    expected = metrics.classification_metrics(labels, probs, CLASSES)["macro_f1"]
    assert float(metric.result()) == pytest.approx(expected, abs=1e-5)  # Keras adds an epsilon to each division
    metric.reset_state()
    metric.update_state(np.eye(4, dtype="float32")[[0, 1]], np.eye(4, dtype="float32")[[0, 1]])
    assert float(metric.result()) == pytest.approx(1.0, abs=1e-5)


def test_a_cluster_bootstrap_round_counts_each_drawn_groups_samples_as_often_as_it_was_drawn():
    rng = np.random.default_rng(3)
    groups = rng.choice(np.array([b"101", b"106", b"118", b"209"]), size=200)
    labels, pred = rng.integers(0, 3, 200), rng.integers(0, 3, 200)
    counts = bootstrap.group_resample_counts(4, rounds=5, seed=0)
    assert counts.shape == (5, 4) and (counts.sum(axis=1) == 4).all()
    np.testing.assert_array_equal(counts, bootstrap.group_resample_counts(4, rounds=5, seed=0))
    prf = bootstrap.group_prf_by_round(labels, pred, groups, 3, counts)
    names = np.unique(groups)
    for r in range(5):  # the same round drawn out explicitly: each group's samples repeated counts[r, g] times
        index = np.concatenate([np.repeat(np.flatnonzero(groups == g), counts[r, i]) for i, g in enumerate(names)])
        p, rec, f1, _ = skm.precision_recall_fscore_support(labels[index], pred[index], labels=[0, 1, 2],
                                                            zero_division=0)
        np.testing.assert_allclose(prf["precision"][r], p)
        np.testing.assert_allclose(prf["recall"][r], rec)
        np.testing.assert_allclose(prf["f1"][r], f1)
