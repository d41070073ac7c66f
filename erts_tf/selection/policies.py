"""Selection policies: pure functions ``(scores, epoch, rng) -> Decision``.

A policy sees one group of samples (a mini-batch at batch level, the whole
training split at epoch level) and decides which are back-propagated. All are
TensorFlow ops on 1-D tensors, so the same function runs inside the compiled
train step and, eagerly, on NumPy arrays (unit tests, epoch-level selection).
Randomness is stateless: ``rng`` is a ``(2,)`` integer seed, derived from
``(seed, epoch[, step])``, so a resumed run draws exactly the same numbers.

Rules (METHOD.md; reference names in brackets):
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
"""

from __future__ import annotations

import dataclasses
import enum

import tensorflow as tf

MODES = ("full", "dbpd", "srd", "smrd", "erts", "erts_srd", "erts_smrd")
FOCUS_MODES = ("erts", "erts_srd", "erts_smrd")


class Reason(enum.IntEnum):
    """Why a sample was kept or dropped (stored per sample, written to audit.csv)."""

    FULL = 0  # kept: full-data epoch (warm-up, revision) or mode `full`
    HARD = 1  # kept: low confidence (p_true < tau, or misclassified)
    FOCUSED = 2  # kept: ranked in the top cam_keep_frac by (1 - p_true) * focus
    RESCUED = 3  # kept: class-aware rescue
    RANDOM = 4  # kept: drawn by a random policy
    CONFIDENT = 5  # dropped: p_true >= tau
    LOW_FOCUS = 6  # dropped: candidate ranked out by the focus filter
    NOT_DRAWN = 7  # dropped: not drawn by a random policy

    @property
    def kept(self) -> bool:
        return self.value <= Reason.RANDOM.value


@dataclasses.dataclass(frozen=True)
class Scores:
    """Per-sample inputs of a policy, each ``(n,)``.

    Attributes:
      p_true: softmax probability of the true class.
      focus: focus score of the true-class Grad-CAM map (higher = focused).
      label: true class index.
      correct: whether the argmax prediction equals the label.
    """

    p_true: tf.Tensor
    focus: tf.Tensor
    label: tf.Tensor
    correct: tf.Tensor

    @classmethod
    def of(cls, p_true, focus, label, correct) -> "Scores":
        return cls(
            tf.cast(tf.convert_to_tensor(p_true), tf.float32),
            tf.cast(tf.convert_to_tensor(focus), tf.float32),
            tf.cast(tf.convert_to_tensor(label), tf.int32),
            tf.cast(tf.convert_to_tensor(correct), tf.bool),
        )


@dataclasses.dataclass(frozen=True)
class Decision:
    """``keep`` ``(n,)`` bool and ``reason`` ``(n,)`` int32 (a ``Reason``)."""

    keep: tf.Tensor
    reason: tf.Tensor


@dataclasses.dataclass(frozen=True)
class PolicyConfig:
    """Hyper-parameters of every policy (flags of the same names)."""

    tau: float = 0.3
    decay: float = 0.99
    cam_keep_frac: float = 0.7
    n_classes: int = 5


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


def _first_of_each_class(label: tf.Tensor, n_classes: int) -> tf.Tensor:
    """``(n,)`` bool: True at the first occurrence (group order) of every present class."""
    onehot = tf.one_hot(label, n_classes, dtype=tf.int32)  # (n, C)
    present = tf.reduce_any(onehot > 0, axis=0)
    first = tf.argmax(onehot, axis=0, output_type=tf.int32)  # first index per class
    first = tf.boolean_mask(first, present)
    n = tf.shape(label)[0]
    return tf.scatter_nd(first[:, None], tf.ones_like(first, tf.bool), [n])


def _focus_filter(scores: Scores, candidates: tf.Tensor, config: PolicyConfig) -> tf.Tensor:
    """ERTS's filter of ``candidates`` ``(n,)`` bool -> kept ``(n,)`` bool (before rescue marks)."""
    count = tf.reduce_sum(tf.cast(candidates, tf.int32))
    rank_score = (1.0 - scores.p_true) * scores.focus
    masked = tf.where(candidates, rank_score, -1.0)  # rank_score >= 0
    order = tf.argsort(masked, direction="DESCENDING", stable=True)  # ties: lower index first
    rank = tf.argsort(order, stable=True)
    k = tf.maximum(1, tf.cast(tf.floor(config.cam_keep_frac * tf.cast(count, tf.float32)), tf.int32))
    top = tf.logical_and(candidates, rank < k)
    return tf.where(count >= 2, top, candidates)


def _class_rescue(scores: Scores, candidates: tf.Tensor, kept: tf.Tensor, n_classes: int) -> tf.Tensor:
    """Best-scoring candidate of every class present among candidates but absent from kept."""
    onehot = tf.one_hot(scores.label, n_classes, dtype=tf.int32) > 0  # (n, C)
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
    keep = tf.ones_like(scores.label, tf.bool)
    return Decision(keep, tf.fill(tf.shape(keep), int(Reason.FULL)))


def dbpd(scores: Scores, epoch, rng, config: PolicyConfig) -> Decision:
    del epoch, rng
    hard = _candidates(scores, config.tau)
    rescued = tf.logical_and(_first_of_each_class(scores.label, config.n_classes), tf.logical_not(hard))
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


POLICIES = {
    "full": full,
    "dbpd": dbpd,
    "srd": srd,
    "smrd": smrd,
    "erts": erts,
    "erts_srd": erts_srd,
    "erts_smrd": erts_smrd,
}


def decide(mode: str, scores: Scores, epoch, rng, config: PolicyConfig, cam_active: bool) -> Decision:
    """Runs policy ``mode``; ``cam_active`` switches the focus filter of the erts modes."""
    policy = POLICIES[mode]
    if mode in FOCUS_MODES:
        return policy(scores, epoch, rng, config, cam_active=cam_active)
    return policy(scores, epoch, rng, config)
