"""``inference.predict_probs``: batched softmax of the backbone in inference mode, in input order."""

import numpy as np
import pytest

from erts_tf import inference


@pytest.fixture(scope="module")
def backbone():
    """A logits model ``(batch, 32, 2) -> (batch, 3)`` whose output depends on the mode (dropout, batch norm)."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(32, 2))
    x = layers.Conv1D(8, 5, padding="same", activation="relu")(inputs)
    x = layers.BatchNormalization(momentum=0.0)(x)
    x = layers.Dropout(0.5)(x)
    model = keras.Model(inputs, layers.Dense(3)(layers.GlobalAveragePooling1D()(x)))
    model(np.random.default_rng(1).standard_normal((8, 32, 2)).astype(np.float32) * 3 + 1, training=True)
    return model


def _signal(n):
    return np.random.default_rng(0).standard_normal((n, 32, 2)).astype(np.float32)


def test_probabilities_are_the_inference_mode_softmax_in_input_order(backbone):
    import tensorflow as tf

    signal = _signal(11)
    probs = inference.predict_probs(backbone, signal, batch_size=4)  # 11 = 4 + 4 + 3
    expected = tf.nn.softmax(backbone(signal, training=False)).numpy()
    assert probs.shape == (11, 3) and probs.dtype == np.float32
    np.testing.assert_allclose(probs, expected, atol=1e-6)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(inference.predict_probs(backbone, signal, batch_size=64), probs, atol=1e-6)
    training = tf.nn.softmax(backbone(signal, training=True)).numpy()
    assert np.abs(training - probs).max() > 1e-3  # the modes differ: the match above says inference mode


def test_an_empty_signal_gives_no_rows_of_every_class(backbone):
    assert inference.predict_probs(backbone, _signal(0)).shape == (0, 3)
