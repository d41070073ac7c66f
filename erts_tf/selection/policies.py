"""Selection policies: pure functions ``(scores, epoch, rng) -> Decision``.

A policy sees one group of samples (a mini-batch at batch level, the whole
training split at epoch level) and decides which are back-propagated. All are
TensorFlow ops on 1-D tensors, so the same function runs inside the compiled
train step and, eagerly, on NumPy arrays (unit tests, epoch-level selection).
Randomness is stateless: ``rng`` is a ``(2,)`` integer seed, derived from
``(seed, epoch[, step])``, so a resumed run draws exactly the same numbers.

Rules (docs/METHOD.md; reference names in brackets):
  full:      keep everything.
  dbpd:      [train_with_revision] keep ``p_true < tau`` (tau == 0: misclassified
             only); every class present in the group keeps its first sample.
  srd:       [srd] a random ``floor(decay**epoch * n)`` samples; no rescue.
  smrd:      [smrd] as many random samples as dbpd's candidates (no rescue).
  erts:      [xai_dbpd] dbpd candidates ranked by ``(1 - p_true) * focus``; the
             top ``max(1, floor(cam_keep_frac * n_candidates))`` are kept when
             there are >= 2 candidates; a class among the candidates that the
             filter removes entirely keeps its best candidate. Before the focus
             filter starts, the raw candidates (without dbpd's rescue).
  erts_srd / erts_smrd: [xai_srd / xai_smrd] the same focus filter on srd's /
             smrd's random candidates.

Modes of this project (not in the reference):
  infobatch: InfoBatch (Qin et al., ICLR 2024). A sample whose last loss
             ``-log p_true`` is below the mean over the scored samples is
             "well learned"; a random ``prune_ratio`` of those is dropped and the
             ones kept get loss weight ``n_well / n_kept_well`` (= 1/(1 - r)), so
             the expected gradient of the well-learned part is unchanged. Every
             other sample is kept with weight 1.
  erts_infobatch: infobatch, plus ERTS's reliability filter on the hard side:
             among the hard samples (loss >= mean) of each class, the
             ``unreliable_frac`` with the lowest focus are "unreliable" and get
             weight ``unreliable_weight`` (0: dropped). Focused hard samples are
             always kept. A sample whose focus was never computed is never
             ranked by it.

Guard rail (every mode but full): ``min_keep_frac`` > 0 keeps at least that
share of every class, topping a class up with random samples of it (reason
``rescued``); it then replaces dbpd's "first sample of each class" rescue.
``min_keep_frac`` = 0 is the reference.

Classes are read as membership (``Scores.membership``): a single-label sample
belongs to its class, a multi-label sample (``label`` ``(n, C)`` multi-hot) to
every class it carries. Every per-class rule (dbpd's and ERTS's rescues,
erts_infobatch's per-class unreliable share, the class floor) counts a sample
in each of its classes; a sample with no positive class belongs to none.

Every decision carries a loss weight per sample (1 unless a rule says otherwise;
0 for a dropped sample).
"""

from __future__ import annotations

import dataclasses
import enum

import numpy as np
import tensorflow as tf

from erts_tf.selection.policy_config import PolicyConfig

MODES = ("full", "dbpd", "srd", "smrd", "erts", "erts_srd", "erts_smrd", "infobatch", "erts_infobatch")
FOCUS_MODES = ("erts", "erts_srd", "erts_smrd", "erts_infobatch")
REFERENCE_MODES = ("full", "dbpd", "srd", "smrd", "erts", "erts_srd", "erts_smrd")


class Reason(enum.IntEnum):
    """Why a sample was kept or dropped (stored per sample, written to audit.csv)."""

    FULL = 0  # kept: full-data epoch (warm-up, revision) or mode `full`
    HARD = 1  # kept: low confidence (p_true < tau, or misclassified)
    FOCUSED = 2  # kept: ranked in the top cam_keep_frac by (1 - p_true) * focus
    RESCUED = 3  # kept: class-aware rescue
    RANDOM = 4  # kept: drawn by a random policy
    CONFIDENT = 5  # dropped: p_true >= tau
    LOW_FOCUS = 6  # dropped: candidate ranked out by the focus filter, or unreliable (erts_infobatch)
    NOT_DRAWN = 7  # dropped: not drawn by a random policy
    REWEIGHTED = 8  # kept: well learned, drawn, loss weight 1/(1 - prune_ratio)
    PRUNED = 9  # dropped: well learned, not drawn
    DOWN_WEIGHTED = 10  # kept: unreliable (low focus among the hard), loss weight unreliable_weight

    @property
    def kept(self) -> bool:
        return self in _KEPT


_KEPT = frozenset({Reason.FULL, Reason.HARD, Reason.FOCUSED, Reason.RESCUED, Reason.RANDOM, Reason.REWEIGHTED,
                   Reason.DOWN_WEIGHTED})


@dataclasses.dataclass(frozen=True)
class Scores:
    """Per-sample inputs of a policy, each ``(n,)``.

    Attributes:
      p_true: softmax probability of the true class (multi-label: ``exp(-mean BCE)``, ``training.task``).
      focus: focus score of the true-class Grad-CAM map (higher = focused).
      label: true class index ``(n,)``, or multi-hot ``(n, C)`` (multi-label).
      correct: whether the argmax prediction equals the label (multi-label: every class right at 0.5).
      has_focus: whether ``focus`` was ever computed for the sample (a policy
        never ranks a sample by a focus that was not).
      scored: whether the sample was ever scored (``p_true`` is meaningful).
    """

    p_true: tf.Tensor
    focus: tf.Tensor
    label: tf.Tensor
    correct: tf.Tensor
    has_focus: tf.Tensor
    scored: tf.Tensor

    @classmethod
    def of(cls, p_true, focus, label, correct, has_focus=None, scored=None) -> "Scores":
        p_true = tf.cast(tf.convert_to_tensor(p_true), tf.float32)
        ones = tf.ones_like(p_true, tf.bool)
        return cls(
            p_true,
            tf.cast(tf.convert_to_tensor(focus), tf.float32),
            tf.cast(tf.convert_to_tensor(label), tf.int32),
            tf.cast(tf.convert_to_tensor(correct), tf.bool),
            ones if has_focus is None else tf.cast(tf.convert_to_tensor(has_focus), tf.bool),
            p_true >= 0 if scored is None else tf.cast(tf.convert_to_tensor(scored), tf.bool),
        )

    def membership(self, n_classes: int) -> tf.Tensor:
        """``(n, n_classes)`` bool: the classes each sample belongs to (its class; multi-label: its positives)."""
        if self.label.shape.rank == 2:
            return self.label > 0
        return tf.one_hot(self.label, n_classes, dtype=tf.int32) > 0

    @property
    def loss(self) -> tf.Tensor:
        """``(n,)`` the unweighted loss ``-log p_true`` of the last score (multi-label: the mean BCE)."""
        return -tf.math.log(tf.clip_by_value(self.p_true, 1e-7, 1.0))


@dataclasses.dataclass(frozen=True)
class Decision:
    """``keep`` ``(n,)`` bool, ``reason`` ``(n,)`` int32 (a ``Reason``) and ``weight`` ``(n,)`` float32,
    the loss weight of each sample (0 where not kept; None means 1 for every kept sample)."""

    keep: tf.Tensor
    reason: tf.Tensor
    weight: tf.Tensor | None = None

    def weights(self) -> tf.Tensor:
        """``(n,)`` loss weights: ``weight``, or 1 for kept and 0 for dropped samples."""
        if self.weight is None:
            return tf.cast(self.keep, tf.float32)
        return tf.where(self.keep, tf.cast(self.weight, tf.float32), 0.0)


def _reason(keep_reason: Reason, drop_reason: Reason, keep: tf.Tensor) -> tf.Tensor:
    return tf.where(keep, int(keep_reason), int(drop_reason))


def _random_subset(n: tf.Tensor, k: tf.Tensor, rng: tf.Tensor) -> tf.Tensor:
    """``(n,)`` bool with exactly ``min(k, n)`` True at uniformly random places."""
    u = tf.random.stateless_uniform(tf.reshape(n, [1]), seed=tf.cast(rng, tf.int64))
    rank = tf.argsort(tf.argsort(u, stable=True), stable=True)
    return rank < tf.cast(k, rank.dtype)


def _candidates(scores: Scores, tau: float) -> tf.Tensor:
    """dbpd's candidates: ``p_true < tau``, or misclassified when ``tau == 0``."""
    if tau == 0:
        return tf.logical_not(scores.correct)
    return scores.p_true < tau


def _first_of_each_class(membership: tf.Tensor) -> tf.Tensor:
    """``(n,)`` bool: True at the first member (group order) of every present class of ``membership`` ``(n, C)``."""
    onehot = tf.cast(membership, tf.int32)  # (n, C)
    present = tf.reduce_any(membership, axis=0)
    first = tf.argmax(onehot, axis=0, output_type=tf.int32)  # first index per class
    first = tf.boolean_mask(first, present)
    n = tf.shape(membership)[0]
    return tf.scatter_nd(first[:, None], tf.ones_like(first, tf.bool), [n])


def _focus_filter(scores: Scores, candidates: tf.Tensor, config: PolicyConfig) -> tf.Tensor:
    """ERTS's filter of ``candidates`` ``(n,)`` bool -> kept ``(n,)`` bool (before rescue marks).

    Only candidates with a computed focus are ranked; the others are kept unranked.
    """
    unranked = tf.logical_and(candidates, tf.logical_not(scores.has_focus))
    candidates = tf.logical_and(candidates, scores.has_focus)
    count = tf.reduce_sum(tf.cast(candidates, tf.int32))
    rank_score = (1.0 - scores.p_true) * scores.focus
    masked = tf.where(candidates, rank_score, -1.0)  # rank_score >= 0
    order = tf.argsort(masked, direction="DESCENDING", stable=True)  # ties: lower index first
    rank = tf.argsort(order, stable=True)
    k = tf.maximum(1, tf.cast(tf.floor(config.cam_keep_frac * tf.cast(count, tf.float32)), tf.int32))
    top = tf.logical_and(candidates, rank < k)
    return tf.logical_or(tf.where(count >= 2, top, candidates), unranked)


def _class_rescue(scores: Scores, candidates: tf.Tensor, kept: tf.Tensor, n_classes: int) -> tf.Tensor:
    """Best-scoring candidate of every class present among candidates but absent from kept."""
    onehot = scores.membership(n_classes)  # (n, C)
    cand_c = tf.logical_and(onehot, candidates[:, None])
    kept_c = tf.logical_and(onehot, kept[:, None])
    needs = tf.logical_and(tf.reduce_any(cand_c, axis=0), tf.logical_not(tf.reduce_any(kept_c, axis=0)))
    rank_score = (1.0 - scores.p_true) * scores.focus
    per_class = tf.where(cand_c, rank_score[:, None], -1.0)  # (n, C)
    best = tf.argmax(per_class, axis=0, output_type=tf.int32)  # ties: first index
    best = tf.boolean_mask(best, needs)
    n = tf.shape(candidates)[0]
    return tf.scatter_nd(best[:, None], tf.ones_like(best, tf.bool), [n])


def full(scores: Scores, epoch, rng, config: PolicyConfig) -> Decision:
    del epoch, rng, config
    keep = tf.ones_like(scores.p_true, tf.bool)
    return Decision(keep, tf.fill(tf.shape(keep), int(Reason.FULL)))


def dbpd(scores: Scores, epoch, rng, config: PolicyConfig) -> Decision:
    del epoch, rng
    hard = _candidates(scores, config.tau)
    if config.min_keep_frac > 0:  # the class floor (``decide``) replaces the first-of-each-class rescue
        return Decision(hard, _reason(Reason.HARD, Reason.CONFIDENT, hard))
    rescued = tf.logical_and(_first_of_each_class(scores.membership(config.n_classes)), tf.logical_not(hard))
    keep = tf.logical_or(hard, rescued)
    reason = tf.where(rescued, int(Reason.RESCUED), _reason(Reason.HARD, Reason.CONFIDENT, hard))
    return Decision(keep, reason)


def _srd_draw(scores: Scores, epoch, rng, config: PolicyConfig) -> tf.Tensor:
    n = tf.shape(scores.label)[0]
    fraction = tf.pow(tf.constant(config.decay, tf.float64), tf.cast(epoch, tf.float64))
    k = tf.cast(tf.floor(fraction * tf.cast(n, tf.float64)), tf.int32)
    return _random_subset(n, k, rng)


def _smrd_draw(scores: Scores, epoch, rng, config: PolicyConfig) -> tf.Tensor:
    del epoch
    k = tf.reduce_sum(tf.cast(_candidates(scores, config.tau), tf.int32))
    return _random_subset(tf.shape(scores.label)[0], k, rng)


def srd(scores: Scores, epoch, rng, config: PolicyConfig) -> Decision:
    keep = _srd_draw(scores, epoch, rng, config)
    return Decision(keep, _reason(Reason.RANDOM, Reason.NOT_DRAWN, keep))


def smrd(scores: Scores, epoch, rng, config: PolicyConfig) -> Decision:
    keep = _smrd_draw(scores, epoch, rng, config)
    return Decision(keep, _reason(Reason.RANDOM, Reason.NOT_DRAWN, keep))


def _with_focus_filter(scores, candidates, cam_active, keep_reason, drop_reason, config) -> Decision:
    """Candidates -> Decision, applying ERTS's focus filter and class rescue when ``cam_active``."""
    if not cam_active:
        return Decision(candidates, _reason(keep_reason, drop_reason, candidates))
    top = _focus_filter(scores, candidates, config)
    rescued = _class_rescue(scores, candidates, top, config.n_classes)
    keep = tf.logical_or(top, rescued)
    reason = tf.where(
        rescued,
        int(Reason.RESCUED),
        tf.where(top, int(Reason.FOCUSED), tf.where(candidates, int(Reason.LOW_FOCUS), int(drop_reason))),
    )
    return Decision(keep, reason)


def erts(scores: Scores, epoch, rng, config: PolicyConfig, cam_active: bool = True) -> Decision:
    del epoch, rng
    candidates = _candidates(scores, config.tau)
    return _with_focus_filter(scores, candidates, cam_active, Reason.HARD, Reason.CONFIDENT, config)


def erts_srd(scores: Scores, epoch, rng, config: PolicyConfig, cam_active: bool = True) -> Decision:
    candidates = _srd_draw(scores, epoch, rng, config)
    return _with_focus_filter(scores, candidates, cam_active, Reason.RANDOM, Reason.NOT_DRAWN, config)


def erts_smrd(scores: Scores, epoch, rng, config: PolicyConfig, cam_active: bool = True) -> Decision:
    candidates = _smrd_draw(scores, epoch, rng, config)
    return _with_focus_filter(scores, candidates, cam_active, Reason.RANDOM, Reason.NOT_DRAWN, config)


def _well_learned(scores: Scores) -> tf.Tensor:
    """``(n,)`` bool: scored samples whose loss is below the mean loss of the scored samples."""
    loss = scores.loss
    scored = tf.cast(scores.scored, tf.float32)
    mean = tf.math.divide_no_nan(tf.reduce_sum(loss * scored), tf.reduce_sum(scored))
    return tf.logical_and(scores.scored, loss < mean)


def infobatch(scores: Scores, epoch, rng, config: PolicyConfig) -> Decision:
    """InfoBatch: well-learned samples pruned at random with ``prune_ratio``, the kept ones reweighted."""
    del epoch
    well = _well_learned(scores)
    n = tf.shape(well)[0]
    n_well = tf.reduce_sum(tf.cast(well, tf.int32))
    k = tf.cast(tf.round((1.0 - config.prune_ratio) * tf.cast(n_well, tf.float32)), tf.int32)
    u = tf.random.stateless_uniform([n], seed=tf.cast(rng, tf.int64))
    rank = _rank(tf.where(well, u, 2.0))  # the well-learned first, in random order
    drawn = tf.logical_and(well, rank < k)
    keep = tf.logical_or(drawn, tf.logical_not(well))
    weight = tf.where(drawn, tf.math.divide_no_nan(tf.cast(n_well, tf.float32), tf.cast(k, tf.float32)), 1.0)
    reason = tf.where(well, tf.where(drawn, int(Reason.REWEIGHTED), int(Reason.PRUNED)), int(Reason.HARD))
    return Decision(keep, reason, tf.where(keep, weight, 0.0))


def erts_infobatch(scores: Scores, epoch, rng, config: PolicyConfig, cam_active: bool = True) -> Decision:
    """infobatch, and among the hard samples of each class the ``unreliable_frac`` least focused
    get ``unreliable_weight`` (0: dropped). Before the focus filter starts: infobatch."""
    base = infobatch(scores, epoch, rng, config)
    if not cam_active:
        return base
    hard = tf.logical_and(tf.equal(base.reason, int(Reason.HARD)), scores.has_focus)
    unreliable = tf.zeros_like(hard)
    membership = scores.membership(config.n_classes)
    for c in range(config.n_classes):
        members = tf.logical_and(hard, membership[:, c])
        count = tf.reduce_sum(tf.cast(members, tf.float32))
        k = tf.cast(tf.floor(config.unreliable_frac * count), tf.int32)
        rank = _rank(tf.where(members, scores.focus, np.inf))  # least focused first
        unreliable = tf.logical_or(unreliable, tf.logical_and(members, rank < k))
    dropped = config.unreliable_weight <= 0
    keep = tf.logical_and(base.keep, tf.logical_not(unreliable)) if dropped else base.keep
    focused = tf.logical_and(hard, tf.logical_not(unreliable))
    reason = tf.where(unreliable, int(Reason.LOW_FOCUS if dropped else Reason.DOWN_WEIGHTED),
                      tf.where(focused, int(Reason.FOCUSED), base.reason))
    weight = tf.where(unreliable, float(max(config.unreliable_weight, 0.0)), base.weight)
    return Decision(keep, reason, tf.where(keep, weight, 0.0))


def _rank(values: tf.Tensor) -> tf.Tensor:
    """``(n,)`` int32 rank of each value in ascending order (ties: lower index first)."""
    return tf.argsort(tf.argsort(values, stable=True), stable=True)


def class_floor(decision: Decision, scores: Scores, min_keep_frac: float, rng, n_classes: int) -> Decision:
    """Tops every class up to ``ceil(min_keep_frac * n_c)`` kept samples with random ones of it (weight 1).

    ``rng`` ``(2,)`` seeds the draw; the topped-up samples get reason ``RESCUED``. Multi-label: a sample
    counts in every class it belongs to, so one added for a class also counts for its other classes
    (classes are topped up in order).
    """
    keep = decision.keep
    n = tf.shape(keep)[0]
    u = tf.random.stateless_uniform([n], seed=tf.cast(rng, tf.int64) + tf.constant([0, 7919], tf.int64))
    added = tf.zeros_like(keep)
    membership = scores.membership(n_classes)
    for c in range(n_classes):
        member = membership[:, c]
        kept = tf.logical_or(keep, added)
        n_c = tf.reduce_sum(tf.cast(member, tf.float32))
        need = tf.cast(tf.math.ceil(min_keep_frac * n_c), tf.int32) - tf.reduce_sum(
            tf.cast(tf.logical_and(member, kept), tf.int32))
        free = tf.logical_and(member, tf.logical_not(kept))
        rank = _rank(tf.where(free, u, 2.0))
        added = tf.logical_or(added, tf.logical_and(free, rank < need))
    weights = decision.weights()
    return Decision(tf.logical_or(keep, added), tf.where(added, int(Reason.RESCUED), decision.reason),
                    tf.where(added, 1.0, weights))


POLICIES = {
    "full": full,
    "dbpd": dbpd,
    "srd": srd,
    "smrd": smrd,
    "erts": erts,
    "erts_srd": erts_srd,
    "erts_smrd": erts_smrd,
    "infobatch": infobatch,
    "erts_infobatch": erts_infobatch,
}


def decide(mode: str, scores: Scores, epoch, rng, config: PolicyConfig, cam_active: bool) -> Decision:
    """Runs policy ``mode``, then the class floor; ``cam_active`` switches the focus filter of the erts modes."""
    policy = POLICIES[mode]
    if mode in FOCUS_MODES:
        decision = policy(scores, epoch, rng, config, cam_active=cam_active)
    else:
        decision = policy(scores, epoch, rng, config)
    if mode != "full" and config.min_keep_frac > 0:
        decision = class_floor(decision, scores, config.min_keep_frac, rng, config.n_classes)
    return Decision(decision.keep, decision.reason, decision.weights())
