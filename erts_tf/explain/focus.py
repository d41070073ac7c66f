"""Focus scores: how concentrated a Grad-CAM map over time is.

Every function takes maps ``(batch, time')`` in ``[0, 1]`` (per-sample min-max
normalised, see ``gradcam.minmax_normalise``) and returns ``(batch,)`` float32,
higher = more focused. An all-zero map (no positive evidence, or a constant
map) scores 0 everywhere. All are pure TensorFlow, usable inside ``tf.function``.

``top10_mean`` is the reference implementation's score, kept for reproduction.
It does not measure concentration: after min-max normalisation a flat noisy
map scores near 1 and a single peak narrower than 10 % of the axis scores
lower (``tests/test_focus.py`` shows it). The others are concentration measures.
"""

from __future__ import annotations


import tensorflow as tf

HIGH_ATTENTION = 0.5  # threshold of a "high-attention" bin for `segments`


def _top_k(maps: tf.Tensor) -> tf.Tensor:
    width = tf.shape(maps)[-1]
    k = tf.maximum(1, width // 10)
    return tf.math.top_k(maps, k=k, sorted=False).values


def top10_mean(maps: tf.Tensor) -> tf.Tensor:
    """Reference score: mean of the top ``max(1, W // 10)`` values of each map."""
    return tf.reduce_mean(_top_k(maps), axis=-1)


def entropy(maps: tf.Tensor) -> tf.Tensor:
    """``1 - H(p) / log W`` with ``p = map / sum(map)``: 1 for a one-bin map, 0 for a flat one."""
    maps = tf.cast(maps, tf.float32)
    total = tf.reduce_sum(maps, axis=-1, keepdims=True)
    p = tf.math.divide_no_nan(maps, total)
    h = -tf.reduce_sum(tf.math.multiply_no_nan(tf.math.log(p), p), axis=-1)
    width = tf.cast(tf.shape(maps)[-1], tf.float32)
    score = 1.0 - h / tf.math.log(tf.maximum(width, 2.0))
    return tf.where(tf.squeeze(total, -1) > 0, score, tf.zeros_like(score))


def gini(maps: tf.Tensor) -> tf.Tensor:
    """Gini coefficient of the map's values: 0 for a flat map, (W-1)/W for a one-bin map."""
    maps = tf.cast(maps, tf.float32)
    values = tf.sort(maps, axis=-1)  # ascending
    width = tf.shape(maps)[-1]
    n = tf.cast(width, tf.float32)
    rank = tf.cast(tf.range(1, width + 1), tf.float32)
    total = tf.reduce_sum(values, axis=-1)
    weighted = tf.reduce_sum((2.0 * rank - n - 1.0) * values, axis=-1)
    return tf.math.divide_no_nan(weighted, n * total)


def topk_mass(maps: tf.Tensor) -> tf.Tensor:
    """Share of the map's total mass in its top ``max(1, W // 10)`` bins (flat map: ~0.1)."""
    maps = tf.cast(maps, tf.float32)
    return tf.math.divide_no_nan(tf.reduce_sum(_top_k(maps), axis=-1), tf.reduce_sum(maps, axis=-1))


def segment_count(maps: tf.Tensor, threshold: float = HIGH_ATTENTION) -> tf.Tensor:
    """Number of contiguous runs of bins with ``map >= threshold``; ``(batch,)`` float32."""
    high = tf.cast(maps >= threshold, tf.int32)
    starts = high[:, 1:] * (1 - high[:, :-1])
    return tf.cast(high[:, 0] + tf.reduce_sum(starts, axis=-1), tf.float32)


def segments(maps: tf.Tensor, threshold: float = HIGH_ATTENTION) -> tf.Tensor:
    """``(1 - coverage) / n_segments``: few, narrow high-attention segments score high.

    ``coverage`` is the fraction of bins ``>= threshold``. One narrow peak -> ~1;
    a noisy map (many segments) or a broad plateau (high coverage) -> low;
    no high-attention bin -> 0.
    """
    maps = tf.cast(maps, tf.float32)
    count = segment_count(maps, threshold)
    coverage = tf.reduce_mean(tf.cast(maps >= threshold, tf.float32), axis=-1)
    return tf.math.divide_no_nan(1.0 - coverage, count)


FOCUS_SCORES = {
    "top10_mean": top10_mean,
    "entropy": entropy,
    "gini": gini,
    "topk_mass": topk_mass,
    "segments": segments,
}


def get(name: str):
    """The focus function called ``name`` (one of ``FOCUS_SCORES``)."""
    try:
        return FOCUS_SCORES[name]
    except KeyError:
        raise KeyError(f"unknown focus score {name!r}; choose one of {', '.join(FOCUS_SCORES)}") from None


def all_scores(maps: tf.Tensor) -> dict[str, tf.Tensor]:
    """Every focus score of ``maps`` ``(batch, time')``, as ``{name: (batch,)}``."""
    return {name: fn(maps) for name, fn in FOCUS_SCORES.items()}


