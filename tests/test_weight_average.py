"""``--ema_momentum``: the run validates, keeps and saves a moving average of the weights it trains,
without changing the training itself, and a resumed run averages as an uninterrupted one."""

import dataclasses

import keras
import numpy as np
import pytest

from erts_tf import run_folder
from erts_tf.training import run

import run_helpers

MOMENTUM = 0.8


class RawWeights(keras.callbacks.Callback):
    """The backbone's trainable weights after every training step (the raw weights: training updates them)."""

    def __init__(self):
        super().__init__()
        self.steps = []

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append([w.numpy().copy() for w in self.model.backbone.trainable_weights])


def _moving_average(steps, momentum):
    """Keras's ``use_ema`` rule: the first step's weights, then ``m * average + (1 - m) * weights``."""
    average = [w.copy() for w in steps[0]]
    for weights in steps[1:]:
        average = [momentum * a + (1 - momentum) * w for a, w in zip(average, weights)]
    return average


def _saved_weights(out):
    return [w.numpy() for w in run_folder.load_model(str(out)).trainable_weights]


def _config(tiny_config, tmp_path, name, **overrides):
    return tiny_config(mode="full", epochs=3, lr=3e-3, keep_weights="last", output_dir=str(tmp_path / name),
                       **overrides)


def test_the_saved_model_is_the_moving_average_of_an_unchanged_training(tiny_config, tiny_data, tmp_path):
    plain_steps, averaged_steps = RawWeights(), RawWeights()
    plain = run.run(_config(tiny_config, tmp_path, "plain"), tiny_data, extra_callbacks=[plain_steps])
    averaged = run.run(_config(tiny_config, tmp_path, "averaged", ema_momentum=MOMENTUM), tiny_data,
                       extra_callbacks=[averaged_steps])

    # training steps see the raw weights, epoch after epoch, exactly as without the average
    assert len(averaged_steps.steps) == len(plain_steps.steps) > 6
    for plain_step, averaged_step in zip(plain_steps.steps, averaged_steps.steps):
        for p, a in zip(plain_step, averaged_step):
            np.testing.assert_array_equal(a, p)

    expected = _moving_average(averaged_steps.steps, MOMENTUM)
    saved = _saved_weights(tmp_path / "averaged")
    assert not np.allclose(saved[0], averaged_steps.steps[-1][0])  # the average is not the last step's weights
    for s, e in zip(saved, expected):
        np.testing.assert_allclose(s, e, rtol=1e-5, atol=1e-6)
    for s, p in zip(_saved_weights(tmp_path / "plain"), plain_steps.steps[-1]):
        np.testing.assert_array_equal(s, p)

    # every validation during training scored the averaged weights: the last one equals the saved model's
    val = [e["val_macro_f1"] for e in averaged["epochs"]]
    assert averaged["validation"]["macro_f1"] == pytest.approx(val[-1], abs=1e-6)
    assert plain["validation"]["macro_f1"] == pytest.approx(plain["epochs"][-1]["val_macro_f1"], abs=1e-6)


def test_a_resumed_run_saves_the_average_of_an_uninterrupted_one(tiny_config, tiny_data, tmp_path):
    whole = run.run(_config(tiny_config, tmp_path, "whole", ema_momentum=MOMENTUM), tiny_data)
    killed = _config(tiny_config, tmp_path, "killed", ema_momentum=MOMENTUM)
    with pytest.raises(run_helpers.Killed):
        run.run(killed, tiny_data, extra_callbacks=[run_helpers.StopAfter(1)])
    resumed = run.run(dataclasses.replace(killed, resume=True), tiny_data)
    for r, w in zip(_saved_weights(tmp_path / "killed"), _saved_weights(tmp_path / "whole")):
        np.testing.assert_array_equal(r, w)
    assert [e["val_macro_f1"] for e in resumed["epochs"]] == [e["val_macro_f1"] for e in whole["epochs"]]
