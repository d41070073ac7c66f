"""The test-only backbone ``tiny_cnn``: a small 1-D CNN that keeps end-to-end tests fast on 2 CPU cores.

Registered by ``conftest.py`` for the test process and by ``distributed_worker.py`` for subprocesses.
"""

import keras
from keras import layers

from erts_tf import models
from erts_tf.models import registry

NAME = "tiny_cnn"


def register() -> str:
    """Registers ``tiny_cnn`` (Grad-CAM at ``block2``, stride 8) once; returns its name."""
    if NAME not in models.names():

        @registry.register(NAME, "block2", "test-only 1-D CNN; Grad-CAM at block2 (stride 8)")
        def build(input_shape, n_classes):
            inputs = keras.Input(shape=input_shape)
            x = layers.Conv1D(8, 9, strides=4, padding="same", activation="relu")(inputs)
            x = layers.Conv1D(16, 9, strides=2, padding="same")(x)
            x = layers.BatchNormalization()(x)
            x = layers.Activation("relu", name="block2")(x)
            x = layers.Conv1D(16, 5, strides=2, padding="same", activation="relu")(x)
            x = layers.GlobalAveragePooling1D()(x)
            return keras.Model(inputs, layers.Dense(n_classes)(x))

    return NAME
