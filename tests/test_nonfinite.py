"""Non-finite loss or gradients: a clear error naming epoch, step and sample ids, or a counted skip."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from erts_tf import models
from erts_tf.training.model import ERTSModel


def _model(skip):
    keras.utils.set_random_seed(0)
    backbone = models.build("resnet1d", (128, 2), 3)
    model = ERTSModel(backbone, "stage3", n_train=8, class_weights=np.ones(3), skip_nonfinite=skip)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3))
    model.optimizer.build(backbone.trainable_variables)
    return model


def _data(poison):
    x = np.random.default_rng(0).normal(size=(8, 128, 2)).astype(np.float32)
    if poison:
        x[5, 3, 0] = np.nan
    return tf.data.Dataset.from_tensor_slices((x, np.arange(8) % 3, np.arange(8, dtype=np.int64))).batch(4)


def test_nonfinite_batch_fails_naming_epoch_step_and_ids():
    model = _model(skip=False)
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        model.fit(_data(poison=True), epochs=1, verbose=0)
    message = str(error.value)
    assert "non-finite loss or gradient at epoch" in message and "sample_ids" in message
    assert "[4 5 6 7]" in message  # the second batch holds the NaN


def test_skip_nonfinite_skips_and_counts_and_weights_stay_finite():
    model = _model(skip=True)
    model.fit(_data(poison=True), epochs=1, verbose=0)
    assert model.state.counters["skipped_batches"].numpy() == 1
    assert model.state.counters["optimizer_steps"].numpy() == 1
    assert all(np.isfinite(w.numpy()).all() for w in model.backbone.weights)  # incl. batch-norm statistics
    counts = model.state.backprop_count.numpy()
    assert counts[:4].tolist() == [1] * 4 and counts[4:].tolist() == [0] * 4


def test_a_skipped_batch_records_no_scores_and_keeps_the_loss_finite():
    model = _model(skip=True)
    history = model.fit(_data(poison=True), epochs=1, verbose=0)
    state = model.state
    assert state.scored_epoch.numpy().tolist() == [0] * 4 + [-1] * 4  # the poisoned batch left no score
    assert (state.p_true.numpy()[4:] == -1).all() and np.isfinite(state.p_true.numpy()[:4]).all()
    assert np.isfinite(history.history["loss"][-1])  # the metric never took the NaN
