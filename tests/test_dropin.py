"""The drop-in API on models the test defines itself (Sequential and functional)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

import erts_tf


def _data(n=64, length=128, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(size=(n, length, 2)).astype(np.float32)
    for i, c in enumerate(y):  # class evidence: a local bump at a class-dependent place
        x[i, 20 + 40 * c : 30 + 40 * c, 0] += 4.0
    return tf.data.Dataset.from_tensor_slices((x, y)), n


def _sequential():
    return keras.Sequential([
        keras.Input((128, 2)),
        layers.Conv1D(8, 5, padding="same", activation="relu", name="block1"),
        layers.Conv1D(8, 5, strides=2, padding="same", activation="relu", name="block3"),
        layers.GlobalAveragePooling1D(),
        layers.Dense(3),
    ])


def _functional():
    inputs = keras.Input((128, 2))
    x = layers.Conv1D(8, 5, padding="same", activation="relu")(inputs)
    x = layers.Conv1D(8, 5, strides=2, padding="same", activation="relu", name="block3")(x)
    return keras.Model(inputs, layers.Dense(3)(layers.GlobalAveragePooling1D()(x)))


@pytest.mark.parametrize("make_model", [_sequential, _functional])
def test_three_lines_train_with_batch_level_erts(make_model):
    keras.utils.set_random_seed(0)
    ds, n = _data()
    ds = erts_tf.with_sample_ids(ds)
    model = erts_tf.ERTS(make_model(), target_layer="block3", mode="erts", n_samples=n,
                         warm_up_epochs=1, cam_start_epoch=1, tau=0.9)
    model.compile(optimizer="adamw")
    history = model.fit(ds.batch(16), epochs=4, callbacks=[model.selection_callback()], verbose=0)
    assert len(history.history["loss"]) == 4
    state = model.state
    counts = state.backprop_count.numpy()
    assert counts.min() >= 1 and counts.max() <= 4  # warm-up trained every sample once
    assert counts.sum() < 4 * n  # selection dropped some back-propagations
    assert (state.scored_epoch.numpy() == 3).all()  # batch level scores everything each epoch
    assert np.isfinite(state.focus.numpy()).all() and state.focus.numpy().max() > 0


def test_epoch_level_select_filters_the_pipeline():
    ds, n = _data()
    ds = erts_tf.with_sample_ids(ds)
    model = erts_tf.ERTS(_functional(), target_layer="block3", mode="srd", level="epoch", n_samples=n,
                         warm_up_epochs=1, decay=0.5, min_keep_frac=0.0)  # the reference srd rule
    model.compile()
    model.fit(model.select(ds).batch(16), epochs=3, callbacks=[model.selection_callback()], verbose=0)
    counts = model.state.backprop_count.numpy()
    assert counts.sum() == n + int(0.5 * n) + int(0.25 * n)  # srd keeps floor(decay**epoch * n)


def test_erts_rejects_an_unbuilt_model():
    with pytest.raises(ValueError, match="built"):
        erts_tf.ERTS(keras.Sequential([layers.Dense(3)]), target_layer="x", n_samples=4)


def test_runnable_example_from_the_readme():
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[1] / "examples" / "dropin.py"
    spec = importlib.util.spec_from_file_location("dropin_example", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    counts = example.main(["--epochs", "5"])
    assert counts.shape == (600,)
    assert counts.sum() > 3 * 600  # 3 warm-up epochs on every sample, then selection epochs add some
    assert counts.sum() < 5 * 600  # ... but not all
