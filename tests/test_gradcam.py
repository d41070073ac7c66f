"""Grad-CAM: per-sample channel weights, the TRUE class, finite maps in [0, 1]."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from erts_tf import models
from erts_tf.explain import focus
from erts_tf.explain.gradcam import gradcam_over_time, minmax_normalise, true_class_logit_sum
from erts_tf.training.model import ERTSModel


def test_channel_weights_are_pooled_per_sample_not_over_the_batch():
    rng = np.random.default_rng(0)
    acts = tf.constant(rng.random((4, 20, 6)), tf.float32)
    grads = tf.constant(rng.normal(size=(4, 20, 6)), tf.float32)
    batch = gradcam_over_time(acts, grads).numpy()
    single = np.concatenate([gradcam_over_time(acts[i : i + 1], grads[i : i + 1]).numpy() for i in range(4)])
    np.testing.assert_allclose(batch, single, atol=1e-6)
    pooled = tf.reduce_mean(grads, axis=[0, 1], keepdims=True)  # what batch pooling would give
    wrong = minmax_normalise(tf.nn.relu(tf.reduce_sum(pooled * acts, -1))).numpy()
    assert np.abs(wrong - batch).max() > 0.1


def test_2d_maps_are_averaged_over_the_lead_rows():
    acts = tf.ones((1, 2, 5, 1))
    grads = tf.ones((1, 2, 5, 1))
    acts = acts * tf.constant([1.0, 2, 3, 4, 5])[None, None, :, None]
    cam = gradcam_over_time(acts, grads).numpy()
    assert cam.shape == (1, 5)
    np.testing.assert_allclose(cam[0], [0, 0.25, 0.5, 0.75, 1.0], atol=1e-6)


def _model(n_classes=4):
    keras.utils.set_random_seed(1)
    backbone = models.build("resnet1d", (256, 3), n_classes)
    return ERTSModel(backbone, "stage3", n_train=8, class_weights=np.ones(n_classes))


def _manual_focus(model, x, labels):
    with tf.GradientTape() as tape:
        acts, logits = model.cam_model(x, training=False)
        target = true_class_logit_sum(logits, labels)
    maps = gradcam_over_time(acts, tape.gradient(target, acts))
    return focus.entropy(maps).numpy(), maps.numpy()


def test_score_explains_the_true_class_not_the_prediction():
    model = _model()
    x = tf.constant(np.random.default_rng(2).normal(size=(8, 256, 3)), tf.float32)
    predicted = tf.argmax(model.backbone(x, training=False), -1, output_type=tf.int32)
    labels = (predicted + 1) % 4  # every label differs from the prediction
    p_true, correct, scored = model.score(x, labels, training=False, cam=True)
    expected, maps = _manual_focus(model, x, labels)
    from_prediction, _ = _manual_focus(model, x, predicted)
    np.testing.assert_allclose(scored.numpy(), expected, atol=1e-5)
    assert np.abs(scored.numpy() - from_prediction).max() > 1e-3
    assert not correct.numpy().any()
    assert maps.shape == (8, 16) and np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1


def test_inference_mode_maps_do_not_depend_on_the_batch():
    """In inference mode samples do not interact: a sample's map is the same alone or in a batch."""
    model = _model()
    x = tf.constant(np.random.default_rng(3).normal(size=(6, 256, 3)), tf.float32)
    labels = tf.constant([0, 1, 2, 3, 0, 1])
    _, batch_maps = _manual_focus(model, x, labels)
    for i in range(6):
        _, alone = _manual_focus(model, x[i : i + 1], labels[i : i + 1])
        np.testing.assert_allclose(alone[0], batch_maps[i], atol=1e-4)
