"""Selection policies on NumPy inputs: counts and identities follow the rules."""

import numpy as np
import pytest

from erts_tf.selection import policies
from erts_tf.selection.policies import PolicyConfig, Reason, Scores
from erts_tf.selection.schedule import Phase, Schedule

CONFIG = PolicyConfig(tau=0.3, decay=0.9, cam_keep_frac=0.5, n_classes=3)
RNG = np.array([7, 11])


def _scores(p, focus, label, correct=None):
    p = np.asarray(p, np.float32)
    if correct is None:
        correct = p > 0.5
    return Scores.of(p, focus, label, correct)


def _run(mode, scores, epoch=10, rng=RNG, config=CONFIG, cam=True):
    d = policies.decide(mode, scores, epoch, rng, config, cam_active=cam)
    return d.keep.numpy(), d.reason.numpy()


def test_full_keeps_all():
    keep, reason = _run("full", _scores([0.9, 0.1], [0, 0], [0, 1]))
    assert keep.all() and (reason == Reason.FULL).all()


def test_dbpd_keeps_hard_and_first_of_each_class():
    s = _scores([0.9, 0.1, 0.8, 0.95, 0.2], [0] * 5, [0, 0, 1, 1, 2])
    keep, reason = _run("dbpd", s)
    # hard: 1 and 4; class 0 first is 0 (confident -> rescued); class 1 first is 2; class 2 first is 4 (already hard)
    assert keep.tolist() == [True, True, True, False, True]
    assert reason.tolist() == [Reason.RESCUED, Reason.HARD, Reason.RESCUED, Reason.CONFIDENT, Reason.HARD]


def test_dbpd_tau_zero_means_misclassified_only():
    config = PolicyConfig(tau=0.0, n_classes=2)
    s = _scores([0.2, 0.45, 0.9, 0.1], [0] * 4, [0, 0, 1, 1], correct=[True, False, True, True])
    keep, _ = _run("dbpd", s, config=config)
    # candidate: index 1 only; rescue: class 0 has 1 kept already? first of class 0 is 0 -> rescued; class 1 first is 2
    assert keep.tolist() == [True, True, True, False]


def test_srd_keeps_floor_decay_pow_epoch():
    n = 200
    s = _scores(np.full(n, 0.5), np.zeros(n), np.zeros(n, int))
    for epoch in (0, 5, 30):
        keep, reason = _run("srd", s, epoch=epoch)
        assert keep.sum() == int(np.floor(0.9**epoch * n))
        assert set(reason[keep]) <= {Reason.RANDOM} and set(reason[~keep]) <= {Reason.NOT_DRAWN}


def test_random_draw_is_deterministic_in_the_seed_and_varies_with_it():
    s = _scores(np.full(100, 0.5), np.zeros(100), np.zeros(100, int))
    a, _ = _run("srd", s, epoch=3, rng=np.array([1, 3]))
    b, _ = _run("srd", s, epoch=3, rng=np.array([1, 3]))
    c, _ = _run("srd", s, epoch=3, rng=np.array([1, 4]))
    assert (a == b).all() and (a != c).any()


def test_smrd_keeps_as_many_as_dbpd_candidates():
    rng = np.random.default_rng(0)
    p = rng.random(300)
    s = _scores(p, np.zeros(300), rng.integers(0, 3, 300))
    keep, _ = _run("smrd", s)
    assert keep.sum() == (p < 0.3).sum()


def test_erts_before_cam_keeps_raw_candidates_without_rescue():
    s = _scores([0.9, 0.1, 0.2, 0.95], [0.1, 0.9, 0.5, 0.3], [0, 1, 1, 2])
    keep, reason = _run("erts", s, cam=False)
    assert keep.tolist() == [False, True, True, False]
    assert reason.tolist() == [Reason.CONFIDENT, Reason.HARD, Reason.HARD, Reason.CONFIDENT]


def test_erts_ranks_candidates_by_uncertainty_times_focus():
    # candidates 0..5 (p < 0.3); k = floor(0.5 * 6) = 3
    p = [0.1, 0.1, 0.1, 0.2, 0.2, 0.2, 0.9]
    f = [0.9, 0.1, 0.8, 0.7, 0.05, 0.6, 1.0]
    label = [0, 0, 0, 0, 0, 0, 1]
    keep, reason = _run("erts", _scores(p, f, label))
    # scores: .81 .09 .72 .56 .04 .48 -> top3 = 0, 2, 3
    assert keep.tolist() == [True, False, True, True, False, False, False]
    assert reason.tolist() == [Reason.FOCUSED, Reason.LOW_FOCUS, Reason.FOCUSED, Reason.FOCUSED,
                               Reason.LOW_FOCUS, Reason.LOW_FOCUS, Reason.CONFIDENT]


def test_erts_class_rescue_keeps_best_of_a_removed_class():
    p = [0.1, 0.1, 0.1, 0.25, 0.28]
    f = [0.9, 0.8, 0.7, 0.1, 0.2]  # class 1 (3, 4) ranks last -> removed by the filter, 4 is its best
    label = [0, 0, 0, 1, 1]
    keep, reason = _run("erts", _scores(p, f, label))
    assert keep.tolist() == [True, True, False, False, True]  # k = 2, plus rescue of sample 4
    assert reason[4] == Reason.RESCUED and reason[2] == Reason.LOW_FOCUS


def test_erts_filter_needs_two_candidates():
    keep, _ = _run("erts", _scores([0.1, 0.9, 0.9], [0.0, 1.0, 1.0], [0, 1, 2]))
    assert keep.tolist() == [True, False, False]


def test_erts_smrd_filters_the_random_draw():
    rng = np.random.default_rng(1)
    n = 200
    p = rng.random(n)
    s = _scores(p, rng.random(n), rng.integers(0, 3, n))
    drawn, _ = _run("smrd", s)
    keep, reason = _run("erts_smrd", s)
    assert not (keep & ~drawn).any()  # only drawn samples survive
    k = max(1, int(np.floor(0.5 * drawn.sum())))
    assert k <= keep.sum() <= k + 3  # plus at most one rescue per class
    assert (reason[drawn & ~keep] == Reason.LOW_FOCUS).all()


def test_reason_kept_property_matches_keep():
    rng = np.random.default_rng(2)
    s = _scores(rng.random(50), rng.random(50), rng.integers(0, 3, 50))
    for mode in policies.MODES:
        keep, reason = _run(mode, s)
        assert (np.array([Reason(r).kept for r in reason]) == keep).all(), mode


def test_schedule_phases_follow_the_reference_defaults():
    s = Schedule()
    assert [s.phase(e) for e in (0, 4, 5, 7, 8, 49, 50, 99)] == [
        Phase.WARMUP, Phase.WARMUP, Phase.SELECT, Phase.SELECT, Phase.SELECT_CAM,
        Phase.SELECT_CAM, Phase.REVISION, Phase.REVISION]
    assert Schedule(start_revision=-1).phase(99) == Phase.SELECT_CAM
