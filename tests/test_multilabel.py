"""Multi-label task (erts_tf.training.task) and membership selection, on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from erts_tf import metrics
from erts_tf.selection import policies
from erts_tf.selection.policy_config import PolicyConfig
from erts_tf.training import task as task_lib

MULTI, SINGLE = task_lib.MULTI, task_lib.SINGLE


def _softplus(x):
    return math.log1p(math.exp(x))


def test_weighted_bce_loss_by_hand():
    logits = tf.constant([[2.0, -1.0], [0.0, 3.0]])
    labels = tf.constant([[1, 0], [0, 0]])
    pos_weight = tf.constant([4.0, 0.5])
    got = MULTI.per_sample_loss(labels, logits, pos_weight).numpy()
    # BCE of a positive: w * softplus(-z); of a negative: softplus(z)
    want = [(4.0 * _softplus(-2.0) + _softplus(-1.0)) / 2, (_softplus(0.0) + _softplus(3.0)) / 2]
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_confidence_is_exp_of_minus_mean_bce_and_correct_is_exact_match():
    logits = tf.constant([[2.0, -1.0], [0.5, 3.0], [-2.0, -3.0]])
    labels = tf.constant([[1, 0], [0, 1], [0, 0]])
    p, correct = MULTI.confidence(labels, logits)
    want = [math.exp(-(_softplus(-2.0) + _softplus(-1.0)) / 2), math.exp(-(_softplus(0.5) + _softplus(-3.0)) / 2),
            math.exp(-(_softplus(-2.0) + _softplus(-3.0)) / 2)]
    np.testing.assert_allclose(p.numpy(), want, rtol=1e-6)
    # sample 1: class 0 predicted positive (sigmoid(0.5) > 0.5) but negative -> not an exact match
    assert correct.numpy().tolist() == [True, False, True]


def test_confidence_generalises_p_true():
    """With one-hot targets and a two-class softmax-like case, exp(-mean BCE) is a probability in (0, 1]
    that grows as the logits agree with the targets."""
    labels = tf.constant([[1, 0], [1, 0]])
    p, _ = MULTI.confidence(labels, tf.constant([[5.0, -5.0], [0.0, 0.0]]))
    assert 0.99 > p.numpy()[1] and p.numpy()[0] > 0.99 and p.numpy()[1] == pytest.approx(0.5)


def test_cam_target_sums_positive_logits_and_negates_all_for_no_positive():
    logits = tf.constant([[1.0, 2.0, 4.0], [0.5, -1.0, 3.0]])
    labels = tf.constant([[1, 0, 1], [0, 0, 0]])
    # sample 0: 1 + 4; sample 1 (no positive): -(0.5 - 1 + 3)
    assert float(MULTI.cam_target(logits, labels)) == pytest.approx(5.0 - 2.5)
    with tf.GradientTape() as tape:
        tape.watch(logits)
        target = MULTI.cam_target(logits, labels)
    np.testing.assert_array_equal(tape.gradient(target, logits).numpy(), [[1, 0, 1], [-1, -1, -1]])


def test_single_label_task_is_the_softmax_path():
    logits = tf.constant([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    labels = tf.constant([0, 2])
    p, correct = SINGLE.confidence(labels, logits)
    np.testing.assert_allclose(p.numpy(), tf.gather(tf.nn.softmax(logits), [0, 2], axis=1, batch_dims=0).numpy()
                               .diagonal(), rtol=1e-6)
    assert correct.numpy().tolist() == [True, False]
    assert float(SINGLE.cam_target(logits, labels)) == pytest.approx(2.0)


def test_positive_weights_are_bounded_on_a_1_to_5000_imbalance():
    targets = np.zeros((5001, 3), np.int8)
    targets[0, 0] = 1  # 1 positive, 5000 negatives
    targets[:2500, 1] = 1  # balanced
    targets[:, 2] = 1  # every record positive
    targets[5000, 2] = 0
    unbounded = task_lib.positive_weights(targets, 0)
    assert unbounded[0] == pytest.approx(5000) and unbounded[1] == pytest.approx(2501 / 2500)
    bounded = task_lib.positive_weights(targets, 10.0)
    np.testing.assert_allclose(bounded, [10.0, 2501 / 2500, 0.1], rtol=1e-6)
    assert MULTI.class_weights(targets, 3, 0.9999, 10.0).tolist() == bounded.tolist()


def _scores(p, labels, focus=None):
    p = np.asarray(p, np.float32)
    return policies.Scores.of(p, np.ones_like(p) if focus is None else focus, np.asarray(labels, np.int32),
                              p > 0.5)


def test_membership_rescue_keeps_a_class_the_filter_removed():
    """ERTS's class rescue on membership: class 2 occurs only with class 0 on sample 3; the focus filter keeps
    the two best candidates (samples 0 and 1, classes 0/1), so sample 3 comes back for class 2."""
    labels = [[1, 0, 0], [0, 1, 0], [1, 0, 0], [1, 0, 1]]
    scores = _scores([0.1, 0.1, 0.2, 0.25], labels, focus=np.array([1.0, 1.0, 0.1, 0.1], np.float32))
    config = PolicyConfig(tau=0.3, cam_keep_frac=0.5, n_classes=3)
    decision = policies.erts(scores, 0, np.array([0, 0]), config, cam_active=True)
    assert decision.keep.numpy().tolist() == [True, True, False, True]
    assert decision.reason.numpy()[3] == int(policies.Reason.RESCUED)
    membership = scores.membership(3).numpy()
    assert membership.tolist() == [[bool(v) for v in row] for row in labels]


def test_class_floor_counts_a_sample_in_every_class_it_carries():
    labels = [[1, 1], [1, 1], [1, 0], [1, 0]]
    scores = _scores([0.9, 0.9, 0.9, 0.9], labels)
    nothing = policies.Decision(tf.zeros([4], tf.bool), tf.fill([4], int(policies.Reason.CONFIDENT)))
    floored = policies.class_floor(nothing, scores, 0.5, np.array([1, 2]), 2)
    keep = floored.keep.numpy()
    membership = np.asarray(labels) > 0
    kept_per_class = (keep[:, None] & membership).sum(axis=0)
    assert kept_per_class[0] >= 2 and kept_per_class[1] >= 1
    assert keep.sum() <= 3  # a sample added for class 0 that carries class 1 counts for class 1 too


def test_no_positive_sample_belongs_to_no_class():
    scores = _scores([0.1, 0.1], [[0, 0], [1, 0]])
    assert scores.membership(2).numpy().tolist() == [[False, False], [True, False]]
    config = PolicyConfig(tau=0.0, n_classes=2)
    decision = policies.dbpd(scores, 0, np.array([0, 0]), config)  # both misclassified: kept as hard
    assert decision.keep.numpy().tolist() == [True, True]


@pytest.mark.parametrize("mode", policies.MODES)
def test_every_mode_decides_on_multi_hot_labels(mode):
    rng = np.random.default_rng(0)
    labels = (rng.random((40, 4)) < 0.3).astype(np.int32)
    p = rng.random(40).astype(np.float32)
    scores = policies.Scores.of(p, rng.random(40).astype(np.float32), labels, p > 0.5)
    config = PolicyConfig(n_classes=4, min_keep_frac=0.2)
    decision = policies.decide(mode, scores, 3, np.array([0, 3]), config, cam_active=True)
    keep = decision.keep.numpy()
    assert keep.shape == (40,) and keep.any()
    if mode != "full":  # the floor: every class keeps at least 20 % of its members
        members = labels > 0
        assert ((keep[:, None] & members).sum(axis=0) >= np.ceil(0.2 * members.sum(axis=0))).all()


def test_f1_optimal_thresholds_by_hand():
    targets = np.array([[1, 0], [1, 0], [0, 0], [0, 1]])
    scores = np.array([[0.9, 0.2], [0.4, 0.2], [0.3, 0.1], [0.35, 0.2]])
    thresholds = metrics.f1_optimal_thresholds(targets, scores)
    # class 0: t=0.4 keeps both positives and no negative (F1 1); class 1: t=0.2 takes the tie of three
    # (F1 2/4); a higher t takes none
    np.testing.assert_allclose(thresholds, [0.4, 0.2])
    empty = metrics.f1_optimal_thresholds(np.zeros((3, 1)), np.ones((3, 1)))
    assert empty.tolist() == [0.5]
