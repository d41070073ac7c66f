"""Shared fixtures: the tiny synthetic dataset, built once per test session."""

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def tfds_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tfds"))


@pytest.fixture(scope="session")
def tiny_data(tfds_dir):
    """Train/validation/test ``SplitArrays`` of ``synthetic_ecg/tiny`` (96/32/32)."""
    from erts_tf.training import run
    from erts_tf.training.config import RunConfig

    return run.load_data(RunConfig(output_dir="unused", dataset_config="tiny", data_dir=tfds_dir))


@pytest.fixture
def tiny_config(tmp_path, tfds_dir):
    """A RunConfig on the tiny dataset: 5 short epochs, every phase of the schedule."""
    from erts_tf.training.config import RunConfig

    def make(**overrides):
        base = dict(output_dir=str(tmp_path / "run"), dataset_config="tiny", data_dir=tfds_dir, epochs=5,
                    batch_size=16, warm_up_epochs=1, cam_start_epoch=1, start_revision=4, rescore_every=2,
                    tau=0.5, verbose=0, model="tiny_cnn", report=False, tensorboard_images_every=0)
        base.update(overrides)
        return RunConfig(**base)

    return make


@pytest.fixture(scope="session", autouse=True)
def tiny_backbone():
    """A small 1-D CNN registered as ``tiny_cnn``: keeps end-to-end tests fast on 2 CPU cores."""
    import keras
    from keras import layers

    from erts_tf import models
    from erts_tf.models import registry

    if "tiny_cnn" not in models.names():

        @registry.register("tiny_cnn", "block2", "test-only 1-D CNN; Grad-CAM at block2 (stride 8)")
        def build(input_shape, n_classes):
            inputs = keras.Input(shape=input_shape)
            x = layers.Conv1D(8, 9, strides=4, padding="same", activation="relu")(inputs)
            x = layers.Conv1D(16, 9, strides=2, padding="same")(x)
            x = layers.BatchNormalization()(x)
            x = layers.Activation("relu", name="block2")(x)
            x = layers.Conv1D(16, 5, strides=2, padding="same", activation="relu")(x)
            x = layers.GlobalAveragePooling1D()(x)
            return keras.Model(inputs, layers.Dense(n_classes)(x))

    return "tiny_cnn"
