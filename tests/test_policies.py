"""Selection policies on NumPy inputs: counts and identities follow the rules."""

import numpy as np
import pytest

from erts_tf.selection import policies
from erts_tf.selection.policies import Reason, Scores
from erts_tf.selection.policy_config import PolicyConfig
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


# -- infobatch, erts_infobatch, the class floor --------------------------------------------------
def _ib_config(**kw):
    base = dict(n_classes=2, prune_ratio=0.5, unreliable_frac=0.25, unreliable_weight=0.0, min_keep_frac=0.0)
    base.update(kw)
    return PolicyConfig(**base)


def _spread_scores(n=40, n_classes=2, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.01, 0.99, n).astype(np.float32)
    focus = rng.uniform(0, 1, n).astype(np.float32)
    label = np.arange(n) % n_classes
    return p, focus, label


def test_infobatch_prunes_a_random_share_of_the_well_learned_and_reweights_the_rest():
    p, focus, label = _spread_scores()
    s = _scores(p, focus, label)
    d = policies.decide("infobatch", s, 3, RNG, _ib_config(prune_ratio=0.6), cam_active=True)
    keep, reason, weight = d.keep.numpy(), d.reason.numpy(), d.weight.numpy()
    loss = -np.log(p)
    well = loss < loss.mean()
    n_well = well.sum()
    k = round(0.4 * n_well)
    assert (keep[~well]).all() and (weight[~well] == 1).all() and set(reason[~well]) == {Reason.HARD}
    assert keep[well].sum() == k
    assert set(reason[well & keep]) == {Reason.REWEIGHTED} and set(reason[well & ~keep]) == {Reason.PRUNED}
    # unbiased: the kept well-learned samples carry the whole well-learned group's weight
    assert weight[well].sum() == pytest.approx(n_well)
    assert (weight[~keep] == 0).all()
    other = policies.decide("infobatch", s, 4, np.array([7, 12]), _ib_config(prune_ratio=0.6), cam_active=True)
    assert (other.keep.numpy() != keep).any()  # a new random draw per epoch, never a fixed cut


def test_infobatch_keeps_never_scored_samples_and_leaves_them_out_of_the_mean():
    p = np.array([-1.0, -1.0, 0.9, 0.95, 0.1, 0.99], np.float32)  # -1: never scored
    d = policies.decide("infobatch", _scores(p, np.zeros(6), [0, 1, 0, 1, 0, 1]), 1, RNG,
                        _ib_config(prune_ratio=0.99), cam_active=False)
    keep = d.keep.numpy()
    assert keep[:2].all() and keep[4]  # unscored and the hard one are kept
    assert keep[[2, 3, 5]].sum() == round(0.01 * 3)  # the three well-learned ones: all but round(0.03) pruned


def test_erts_infobatch_drops_the_least_focused_hard_samples_of_each_class():
    p, focus, label = _spread_scores(n=60, n_classes=3, seed=1)
    s = _scores(p, focus, label)
    config = _ib_config(n_classes=3, unreliable_frac=0.25)
    d = policies.decide("erts_infobatch", s, 3, RNG, config, cam_active=True)
    base = policies.decide("infobatch", s, 3, RNG, config, cam_active=True)
    keep, reason = d.keep.numpy(), d.reason.numpy()
    hard = base.reason.numpy() == Reason.HARD
    for c in range(3):
        members = np.flatnonzero(hard & (label == c))
        k = int(np.floor(0.25 * len(members)))
        lowest = members[np.argsort(focus[members], kind="stable")[:k]]
        assert set(np.flatnonzero((reason == Reason.LOW_FOCUS) & (label == c))) == set(lowest)
        assert not keep[lowest].any()
        rest = np.setdiff1d(members, lowest)
        assert keep[rest].all() and (reason[rest] == Reason.FOCUSED).all()  # focused hard samples always kept
    # the well-learned side is exactly infobatch's
    well = ~hard
    assert (keep[well] == base.keep.numpy()[well]).all()
    before = policies.decide("erts_infobatch", s, 3, RNG, config, cam_active=False)
    assert (before.keep.numpy() == base.keep.numpy()).all()  # before the focus filter starts: infobatch


def test_erts_infobatch_never_ranks_a_focus_that_was_never_computed():
    p, focus, label = _spread_scores(n=40, seed=2)
    has_focus = np.zeros(40, bool)
    s = Scores.of(p, focus, label, p > 0.5, has_focus=has_focus)
    d = policies.decide("erts_infobatch", s, 3, RNG, _ib_config(unreliable_frac=0.5), cam_active=True)
    assert Reason.LOW_FOCUS not in set(d.reason.numpy())
    d = policies.decide("erts", s, 3, RNG, PolicyConfig(tau=0.5, cam_keep_frac=0.2, n_classes=2), cam_active=True)
    candidates = p < 0.5
    assert d.keep.numpy()[candidates].all() and Reason.LOW_FOCUS not in set(d.reason.numpy())


def test_erts_infobatch_can_down_weight_instead_of_dropping():
    p, focus, label = _spread_scores(n=40, seed=3)
    d = policies.decide("erts_infobatch", _scores(p, focus, label), 3, RNG,
                        _ib_config(unreliable_frac=0.5, unreliable_weight=0.25), cam_active=True)
    down = d.reason.numpy() == Reason.DOWN_WEIGHTED
    assert down.any() and d.keep.numpy()[down].all() and np.allclose(d.weight.numpy()[down], 0.25)


def test_class_floor_keeps_a_share_of_every_class_drawn_anew_each_epoch():
    n = 300
    label = np.array([0] * 200 + [1] * 90 + [2] * 10)
    p = np.full(n, 0.99, np.float32)  # all confident: dbpd alone would keep the first of each class only
    s = _scores(p, np.zeros(n), label)
    config = PolicyConfig(tau=0.3, n_classes=3, min_keep_frac=0.1)
    a = policies.decide("dbpd", s, 5, np.array([0, 5]), config, cam_active=False)
    b = policies.decide("dbpd", s, 6, np.array([0, 6]), config, cam_active=False)
    for d in (a, b):
        keep = d.keep.numpy()
        assert [keep[label == c].sum() for c in range(3)] == [20, 9, 1]
        assert set(d.reason.numpy()[keep]) == {Reason.RESCUED} and (d.weight.numpy()[keep] == 1).all()
    assert (a.keep.numpy() != b.keep.numpy()).any()  # not the same first sample ids every epoch
    reference = policies.decide("dbpd", s, 5, np.array([0, 5]), PolicyConfig(tau=0.3, n_classes=3), cam_active=False)
    assert np.flatnonzero(reference.keep.numpy()).tolist() == [0, 200, 290]  # floor 0: the reference rescue


def test_every_mode_returns_zero_weight_for_dropped_samples():
    p, focus, label = _spread_scores(n=50, seed=4)
    s = _scores(p, focus, label)
    for mode in policies.MODES:
        d = policies.decide(mode, s, 3, RNG, _ib_config(min_keep_frac=0.1), cam_active=True)
        keep, weight = d.keep.numpy(), d.weight.numpy()
        assert (weight[~keep] == 0).all() and (weight[keep] > 0).all(), mode


def test_learning_rate_schedules():
    from erts_tf.training.lr_schedule import learning_rate

    assert learning_rate("exponential", 1.0, 3, 10, decay=0.5) == pytest.approx(0.125)
    cosine = [learning_rate("cosine", 1.0, e, 10, warmup_epochs=2) for e in range(10)]
    assert cosine[:3] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert cosine[-1] == pytest.approx(0.0, abs=1e-12)
    assert all(a >= b for a, b in zip(cosine[2:], cosine[3:]))  # decreasing after the warm-up
    with pytest.raises(ValueError, match="unknown learning-rate schedule"):
        learning_rate("linear", 1.0, 0, 10)


def test_class_weights_stay_bounded_on_a_1_to_5000_imbalance():
    from erts_tf.training.losses import class_balanced_weights

    labels = np.array([0] * 50000 + [1] * 10)
    uncapped = class_balanced_weights(labels, 2, 0.9999)
    capped = class_balanced_weights(labels, 2, 0.9999, max_ratio=10)
    assert uncapped[1] / uncapped[0] > 100  # the reference explodes
    assert capped[1] / capped[0] == pytest.approx(10, rel=1e-5)
    assert capped.sum() == pytest.approx(2)


def test_class_weights_given_per_class_follow_the_class_order_and_name_every_class():
    from erts_tf.training.losses import explicit_class_weights, parse_class_weights

    assert parse_class_weights("N:1, S:40,V:3.5") == {"N": 1.0, "S": 40.0, "V": 3.5}
    weights = explicit_class_weights("V:4,N:1,S:40,F:35", ["N", "S", "V", "F"])
    np.testing.assert_allclose(weights, np.array([1, 40, 4, 35]) * 4 / 80, rtol=1e-6)  # rescaled to sum to 4
    for spec, message in [("N:1,S", "is not CLASS:WEIGHT"), ("N:0", "weight > 0"), ("N:nan", "weight > 0"),
                          ("N:1,N:2", "given twice"), ("", "no CLASS:WEIGHT")]:
        with pytest.raises(ValueError, match=message):
            parse_class_weights(spec)
    with pytest.raises(ValueError, match="unknown Q; missing F"):
        explicit_class_weights("N:1,S:40,V:4,Q:1", ["N", "S", "V", "F"])
