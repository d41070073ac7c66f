"""Per-sample loss weights: the one train_step applies them, at epoch and batch level and in the drop-in API."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

import erts_tf
from erts_tf.selection.policies import Reason
from erts_tf.training.selection_config import StepPlan


def _backbone():
    inputs = keras.Input((64, 2))
    x = layers.Conv1D(4, 5, padding="same", activation="relu", name="block")(inputs)
    return keras.Model(inputs, layers.Dense(3)(layers.GlobalAveragePooling1D()(x)))


def _batch(n=8, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 64, 2)).astype(np.float32)
    return tf.constant(x), tf.constant(rng.integers(0, 3, n)), tf.range(n, dtype=tf.int64)


def _step_delta(weights):
    """Weight change of one epoch-level train step (plain SGD) with the state's loss weights ``weights``."""
    keras.utils.set_random_seed(0)
    model = erts_tf.ERTS(_backbone(), target_layer="block", mode="full", n_samples=8, level="epoch")
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    model.state.weight.assign(np.asarray(weights, np.float32))
    before = [v.numpy().copy() for v in model.backbone.trainable_variables]
    model.train_step(_batch())
    return [v.numpy() - b for v, b in zip(model.backbone.trainable_variables, before)]


def test_epoch_level_step_scales_each_sample_by_its_weight():
    one = _step_delta(np.ones(8))
    two = _step_delta(np.full(8, 2.0))
    zero = _step_delta(np.zeros(8))
    for a, b, c in zip(one, two, zero):
        np.testing.assert_allclose(b, 2 * a, rtol=1e-4, atol=1e-7)  # the loss is linear in the weights
        np.testing.assert_allclose(c, 0.0, atol=1e-8)  # weight 0: no gradient at all
    half = _step_delta([1.0] * 4 + [0.0] * 4)
    assert any(not np.allclose(h, a) for h, a in zip(half, one))


def test_batch_level_infobatch_trains_with_its_weights():
    keras.utils.set_random_seed(0)
    model = erts_tf.ERTS(_backbone(), target_layer="block", mode="infobatch", n_samples=8, level="batch",
                         prune_ratio=0.5, min_keep_frac=0.0)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    x, y, ids = _batch()
    model.state.epoch.assign(3)
    model.set_plan(StepPlan(batch_select=True))
    model.train_step((x, y, ids))  # first scores: half of the well-learned reweighted by 1/(1 - 0.5)
    reason, weight, keep = model.state.reason.numpy(), model.state.weight.numpy(), model.state.keep.numpy()
    reweighted = reason == Reason.REWEIGHTED
    assert reweighted.any()
    n_well = reweighted.sum() + (reason == Reason.PRUNED).sum()
    assert weight[reweighted].sum() == pytest.approx(n_well)
    assert (weight[~keep] == 0).all() and (weight[reason == Reason.HARD] == 1).all()


def test_drop_in_epoch_level_infobatch_records_weights_and_prunes():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 96)
    x = rng.normal(size=(96, 64, 2)).astype(np.float32)
    for i, c in enumerate(y):
        x[i, 10 + 15 * c: 18 + 15 * c, 0] += 4.0
    ds = erts_tf.with_sample_ids(tf.data.Dataset.from_tensor_slices((x, y)))
    model = erts_tf.ERTS(_backbone(), target_layer="block", mode="infobatch", n_samples=96, level="epoch",
                         warm_up_epochs=1, prune_ratio=0.5)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(lambda epoch: model.select(ds).batch(16), epochs=3, callbacks=[model.selection_callback()], verbose=0)
    state = model.state
    keep, weight = state.keep.numpy(), state.weight.numpy()
    assert not keep.all() and (weight[~keep] == 0).all()
    assert np.allclose(weight[state.reason.numpy() == Reason.REWEIGHTED], weight.max()) and weight.max() > 1
