"""Focus scores on hand-built maps: a sharp peak must beat a flat noisy map."""

import numpy as np
import pytest
import tensorflow as tf

from erts_tf.explain import focus
from erts_tf.explain.gradcam import minmax_normalise

WIDTH = 63
CONCENTRATION = ["entropy", "gini", "topk_mass", "segments"]


def _peak_and_noise():
    peak = np.zeros(WIDTH, np.float32)
    peak[30] = 1.0
    peak[29] = peak[31] = 0.5  # 3 bins wide: narrower than 10 % of the axis
    rng = np.random.default_rng(0)
    noise = 0.8 + 0.2 * rng.random(WIDTH).astype(np.float32)  # flat with small noise
    maps = minmax_normalise(tf.constant(np.stack([peak, noise])))
    return maps


@pytest.mark.parametrize("name", CONCENTRATION)
def test_sharp_peak_is_more_focused_than_flat_noise(name):
    scores = focus.get(name)(_peak_and_noise()).numpy()
    assert scores[0] > scores[1] + 0.2, scores


def test_top10_mean_ranks_flat_noise_above_a_sharp_peak():
    """The reference's score gets it backwards (docs/METHOD.md, shortcoming 3)."""
    scores = focus.top10_mean(_peak_and_noise()).numpy()
    assert scores[1] > scores[0], scores


@pytest.mark.parametrize("name", list(focus.FOCUS_SCORES))
def test_all_zero_and_constant_maps_score_zero_without_nan(name):
    maps = minmax_normalise(tf.constant([[0.0] * WIDTH, [0.7] * WIDTH]))
    scores = focus.get(name)(maps).numpy()
    assert np.all(np.isfinite(scores)) and np.allclose(scores, 0.0), scores


def test_known_values():
    one_bin = np.zeros((1, 10), np.float32)
    one_bin[0, 3] = 1.0
    assert focus.entropy(tf.constant(one_bin)).numpy()[0] == pytest.approx(1.0)
    assert focus.gini(tf.constant(one_bin)).numpy()[0] == pytest.approx(0.9)
    assert focus.topk_mass(tf.constant(one_bin)).numpy()[0] == pytest.approx(1.0)
    flat = np.ones((1, 10), np.float32)
    assert focus.entropy(tf.constant(flat)).numpy()[0] == pytest.approx(0.0, abs=1e-6)
    assert focus.gini(tf.constant(flat)).numpy()[0] == pytest.approx(0.0, abs=1e-6)


def test_segment_count_counts_runs():
    maps = tf.constant([[0, 1, 1, 0, 0, 1, 0, 1, 1, 1]], tf.float32)
    assert focus.segment_count(maps).numpy()[0] == 3
    assert focus.segments(maps).numpy()[0] == pytest.approx((1 - 0.6) / 3)


def test_unknown_name_lists_choices():
    with pytest.raises(KeyError, match="entropy"):
        focus.get("nope")
