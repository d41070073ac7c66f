"""Every registered backbone: builds, names its Grad-CAM target, trains with Grad-CAM, exports.

Kept small for CPU (batch 2). Each (backbone, input shape) model is built once
and shared (no test depends on its weight values). Most of the time goes into
tracing and optimising the graphs of the big models, so the module turns
Grappler off (it only speeds up repeated execution) and uses SGD (a smaller
update graph than Adam). Marked ``slow`` (run with ``-m slow``): the
(3600, 1) training step of the three models slowest to trace, whose graphs are
their (1000, 12) ones with other shapes (their (3600, 1) forward pass, target
shape and lead image are still tested), and the export of xresnet1d101, whose
layer types the xresnet1d export already covers.
"""

from __future__ import annotations

import functools

import keras
import numpy as np
import pytest
import tensorflow as tf

from erts_tf import models
from erts_tf.explain.gradcam import gradcam_over_time, true_class_logit_sum
from erts_tf.models.lead_image import LeadImage

N_CLASSES = 5
BATCH = 2
SHAPES = [(1000, 12), (3600, 1)]
BACKBONES = models.names()

# Documented target-layer output shapes (without the batch axis).
EXPECTED_TARGET_SHAPES = {
    "resnet18_2d": {(1000, 12): (2, 63, 256), (3600, 1): (2, 225, 256)},
    "mobilenetv2_2d": {(1000, 12): (1, 32, 320), (3600, 1): (1, 113, 320)},
    "efficientnetv2s_2d": {(1000, 12): (1, 32, 256), (3600, 1): (1, 113, 256)},
    "inception1d": {(1000, 12): (1000, 128), (3600, 1): (3600, 128)},
    "xresnet1d": {(1000, 12): (63, 64), (3600, 1): (225, 64)},
    "resnet1d": {(1000, 12): (63, 128), (3600, 1): (225, 128)},
    "resnet1d5": {(1000, 12): (32, 160), (3600, 1): (113, 160)},
    "resnet1d5_pool2": {(1000, 12): (16, 160), (3600, 1): (57, 160)},
    "resnet1d5_pool3": {(1000, 12): (11, 160), (3600, 1): (38, 160)},
    "xresnet1d101": {(1000, 12): (63, 256), (3600, 1): (225, 256)},
}
TWO_D = ("resnet18_2d", "mobilenetv2_2d", "efficientnetv2s_2d")
SLOW_TO_TRACE = ("efficientnetv2s_2d", "mobilenetv2_2d", "xresnet1d101")


@pytest.fixture(scope="module", autouse=True)
def _no_grappler():
    previous = tf.config.optimizer.get_experimental_options().get("disable_meta_optimizer", False)
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    yield
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": previous})


@functools.cache
def _model(name: str, shape: tuple[int, int]) -> keras.Model:
    keras.utils.set_random_seed(0)
    return models.build(name, shape, N_CLASSES)


def _batch(shape: tuple[int, int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((BATCH, *shape)).astype("float32")
    y = rng.integers(0, N_CLASSES, size=BATCH).astype("int32")
    return x, y


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("name", BACKBONES)
def test_builds_and_gives_logits(name, shape):
    model = _model(name, shape)
    x, _ = _batch(shape)
    logits = model(x, training=False)
    assert tuple(logits.shape) == (BATCH, N_CLASSES)
    assert np.all(np.isfinite(keras.ops.convert_to_numpy(logits)))


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("name", BACKBONES)
def test_target_layer_keeps_time_axis(name, shape):
    model = _model(name, shape)
    target_shape = tuple(model.get_layer(models.get(name).target_layer).output.shape)
    assert len(target_shape) in (3, 4), target_shape
    assert target_shape[-2] >= 8, f"{name}: time axis {target_shape[-2]} < 8"
    if len(target_shape) == 4:
        assert target_shape[1] >= 1, f"{name}: lead axis collapsed"
    if name in EXPECTED_TARGET_SHAPES:
        assert target_shape[1:] == EXPECTED_TARGET_SHAPES[name][shape]


@pytest.mark.parametrize("name, receptive_field", [("resnet1d", 753), ("resnet1d5", 1521),
                                                           ("resnet1d5_pool2", 3042), ("resnet1d5_pool3", 4563)])
def test_resnet1d_receptive_field(name, receptive_field):
    """The input samples one feature of the last stage depends on span the documented receptive field."""
    time = 8192  # longer than every receptive field measured here
    model = _model(name, (time, 1))
    last = model.get_layer("pool").input
    features = keras.Model(model.inputs, last)
    x = tf.constant(np.random.default_rng(0).standard_normal((1, time, 1)).astype("float32"))
    centre = int(last.shape[1]) // 2
    with tf.GradientTape() as tape:
        tape.watch(x)
        value = tf.reduce_sum(features(x, training=False)[0, centre])
    touched = np.flatnonzero(tape.gradient(value, x).numpy()[0, :, 0])
    span = touched[-1] - touched[0] + 1
    stride = time // int(last.shape[1])
    assert receptive_field - stride <= span <= receptive_field, span


@pytest.mark.parametrize(
    "name, shape",
    [
        pytest.param(name, shape, marks=pytest.mark.slow if name in SLOW_TO_TRACE and shape != SHAPES[0] else ())
        for name in BACKBONES
        for shape in SHAPES
    ],
    ids=lambda v: f"{v[0]}x{v[1]}" if isinstance(v, tuple) else v,
)
def test_training_step_with_gradcam(name, shape):
    """One compiled step as the ERTS training step does it: loss gradients and Grad-CAM from one tape."""
    model = _model(name, shape)
    aux = keras.Model(model.inputs, [model.get_layer(models.get(name).target_layer).output, model.output])
    optimizer = keras.optimizers.SGD(1e-2)
    optimizer.build(model.trainable_variables)

    @tf.function
    def step(x, y):
        with tf.GradientTape(persistent=True) as tape:
            activations, logits = aux(x, training=True)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
            cam_target = true_class_logit_sum(logits, y)
        weight_grads = tape.gradient(loss, model.trainable_variables)
        cam_grads = tape.gradient(cam_target, activations)
        del tape
        optimizer.apply(weight_grads, model.trainable_variables)
        return gradcam_over_time(activations, cam_grads), cam_grads, loss

    x, y = _batch(shape)
    before = [v.numpy().copy() for v in model.trainable_variables]
    maps, cam_grads, loss = step(tf.constant(x), tf.constant(y))
    maps = maps.numpy()

    time_bins = model.get_layer(models.get(name).target_layer).output.shape[-2]
    assert maps.shape == (BATCH, time_bins)
    assert np.all(np.isfinite(maps)) and np.isfinite(loss.numpy())
    assert maps.min() >= 0.0 and maps.max() <= 1.0
    assert np.any(cam_grads.numpy() != 0), "no gradient reached the target layer"
    assert any(not np.array_equal(b, v.numpy()) for b, v in zip(before, model.trainable_variables))


@pytest.mark.parametrize(
    "name", [pytest.param(name, marks=pytest.mark.slow if name == "xresnet1d101" else ()) for name in BACKBONES]
)
def test_savedmodel_export_round_trip(name, tmp_path):
    shape = SHAPES[0]
    model = _model(name, shape)
    x, _ = _batch(shape, seed=3)
    _set_batch_norm_statistics(model, x)
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    assert np.abs(expected).max() > 1e-2, "logits too small for the comparison to mean anything"
    path = str(tmp_path / name)
    model.export(path, verbose=False)
    reloaded = tf.saved_model.load(path)
    np.testing.assert_allclose(reloaded.serve(tf.constant(x)).numpy(), expected, atol=1e-4, rtol=0)


def _set_batch_norm_statistics(model: keras.Model, x: np.ndarray) -> None:
    """Sets every batch norm's moving statistics to those of ``x``.

    At initialisation (moving mean 0, variance 1) the inference-mode output of
    a deep network can vanish (MobileNetV2's logits are ~1e-12), which would
    make an export comparison trivially pass.
    """
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in norms]
    for layer in norms:
        layer.momentum = 0.0
    try:
        model(x, training=True)
    finally:
        for layer, momentum in zip(norms, momenta):
            layer.momentum = momentum


@pytest.mark.parametrize("name", [n for n in TWO_D if n in BACKBONES])
def test_two_d_models_start_with_the_lead_image(name):
    for shape in SHAPES:
        image = _model(name, shape).get_layer("lead_image").output
        rows = 32 if name != "resnet18_2d" else shape[1] + 20  # MobileNetV2 / EfficientNetV2 need >= 32 rows
        assert tuple(image.shape) == (None, rows, shape[0], 1)


def test_lead_image_is_the_padded_signal():
    leads, time = 12, 7
    signal = np.arange(2 * time * leads, dtype="float32").reshape(2, time, leads) + 1.0
    image = keras.ops.convert_to_numpy(LeadImage()(signal))
    assert image.shape == (2, 32, time, 1)
    np.testing.assert_array_equal(image[:, 10:22, :, 0], signal.transpose(0, 2, 1))  # row 10 + k is lead k
    assert not image[:, :10].any() and not image[:, 22:].any()


def test_lead_image_pads_to_a_minimum_height():
    layer = LeadImage(min_rows=32)
    signal = np.ones((1, 5, 1), "float32")
    image = keras.ops.convert_to_numpy(layer(signal))
    assert layer.row_padding(1) == (15, 16)  # 10 + 5 above, 10 + 6 below
    assert image.shape == (1, 32, 5, 1) == layer.compute_output_shape((1, 5, 1))
    assert image[0, 15, :, 0].tolist() == [1.0] * 5 and image.sum() == 5.0
    assert LeadImage(min_rows=32).row_padding(12) == (10, 10)  # 12 leads: the reference's 32 rows
    clone = LeadImage.from_config(layer.get_config())
    assert (clone.pad_rows, clone.min_rows) == (10, 32)
