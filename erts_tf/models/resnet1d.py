"""A compact 1-D ResNet for ECG (in the spirit of antonior92's ``get_model``).

Layout for an input ``(batch, time, leads)``:
stem (conv k15 s2 + BN + ReLU + maxpool 2) -> four residual stages (one block
each, stride 1, 2, 2, 2) -> global average pooling -> dense logits.
The Grad-CAM target is ``stage3`` (the second-to-last stage, stride 16):
``(batch, ceil(time / 16), 128)``; 63 time bins for 1000 samples.
Its receptive field is 753 samples (2.5 s at 300 Hz): a feature of the last
stage sees two or three beats, so an irregular rhythm shows in it as at most
one or two RR intervals that differ.

``resnet1d5`` adds a fifth stage (192 filters, stride 2, so stride 64 in all):
a receptive field of 1,521 samples (5.1 s at 300 Hz), five or six beats, for
rhythm classes (atrial fibrillation) on single-lead records such as CinC 2017's.
Its Grad-CAM target is its second-to-last stage, ``stage4`` (stride 32,
160 filters).

``resnet1d5_pool2`` is resnet1d5 on its input average-pooled by 2 (half the
sampling rate, a two-tap low-pass before the decimation): the same layers and
parameters, half the computation, and twice the receptive field in seconds,
3,042 samples (10.1 s at 300 Hz, ten or more beats). Its Grad-CAM target,
``stage4``, has stride 64. The exported model still takes the dataset's rate.
``resnet1d5_pool3`` pools by 3 (a third of the rate, 100 Hz for 300 Hz input):
4,563 samples (15.2 s at 300 Hz), stride 96 at ``stage4``.

Batch-norm momentum is 0.9 (PyTorch's 0.1), not Keras's default 0.99: with
0.99 the running statistics average over ~100 steps, several epochs of a
small or pruned training set, and lag the weights; validation macro-F1 then
swings from epoch to epoch (measured on the synthetic quickstart).
"""

from __future__ import annotations

import keras
from keras import layers

from erts_tf.models.registry import register

TARGET_LAYER = "stage3"
BN_MOMENTUM = 0.9
_STAGE_FILTERS = (32, 64, 128, 160, 192)
_STAGE_STRIDES = (1, 2, 2, 2, 2)


def _residual_block(x, filters: int, stride: int, kernel_size: int, name: str):
    """Two convolutions with a (projected) shortcut; output ``(batch, time/stride, filters)``."""
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = layers.Conv1D(filters, 1, strides=stride, use_bias=False, name=f"{name}_proj")(x)
        shortcut = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_proj_bn")(shortcut)
    y = layers.Conv1D(filters, kernel_size, strides=stride, padding="same", use_bias=False, name=f"{name}_conv1")(x)
    y = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn1")(y)
    y = layers.Activation("relu", name=f"{name}_relu1")(y)
    y = layers.Conv1D(filters, kernel_size, padding="same", use_bias=False, name=f"{name}_conv2")(y)
    y = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn2")(y)
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.Activation("relu", name=name)(y)


def _build(input_shape: tuple[int, int], n_classes: int, stages: int, name: str, kernel_size: int = 9,
           input_pool: int = 1) -> keras.Model:
    """The stem and the first ``stages`` residual stages: ``(batch, time, leads) -> (batch, n_classes)`` logits.

    ``input_pool`` > 1 average-pools the input by that factor before the stem (a lower sampling rate).
    """
    inputs = keras.Input(shape=input_shape, name="signal")
    x = inputs
    if input_pool > 1:
        x = layers.AveragePooling1D(input_pool, padding="same", name="input_pool")(x)
    x = layers.Conv1D(_STAGE_FILTERS[0], 15, strides=2, padding="same", use_bias=False, name="stem_conv")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name="stem_bn")(x)
    x = layers.Activation("relu", name="stem_relu")(x)
    x = layers.MaxPooling1D(2, padding="same", name="stem_pool")(x)
    for index, (filters, stride) in enumerate(zip(_STAGE_FILTERS[:stages], _STAGE_STRIDES[:stages]), start=1):
        x = _residual_block(x, filters, stride, kernel_size, name=f"stage{index}")
    x = layers.GlobalAveragePooling1D(name="pool")(x)
    logits = layers.Dense(n_classes, name="logits")(x)
    return keras.Model(inputs, logits, name=name)


@register("resnet1d", TARGET_LAYER, "compact 1-D ResNet, 4 stages; Grad-CAM at stage3 (stride 16)")
def build_resnet1d(input_shape: tuple[int, int], n_classes: int) -> keras.Model:
    """Builds the 1-D ResNet: ``(batch, time, leads) -> (batch, n_classes)`` logits."""
    return _build(input_shape, n_classes, stages=4, name="resnet1d")


@register("resnet1d5", "stage4", "resnet1d with a fifth stage (receptive field 5.1 s at 300 Hz); Grad-CAM at stage4 (stride 32)")
def build_resnet1d5(input_shape: tuple[int, int], n_classes: int) -> keras.Model:
    """Builds the 5-stage 1-D ResNet: ``(batch, time, leads) -> (batch, n_classes)`` logits."""
    return _build(input_shape, n_classes, stages=5, name="resnet1d5")


@register("resnet1d5_pool2", "stage4",
          "resnet1d5 on the input average-pooled by 2 (receptive field 10.1 s at 300 Hz, half the computation); "
          "Grad-CAM at stage4 (stride 64)")
def build_resnet1d5_pool2(input_shape: tuple[int, int], n_classes: int) -> keras.Model:
    """Builds resnet1d5 behind a 2x average pool of the input: ``(batch, time, leads) -> (batch, n_classes)`` logits."""
    return _build(input_shape, n_classes, stages=5, name="resnet1d5_pool2", input_pool=2)


@register("resnet1d5_pool3", "stage4",
          "resnet1d5 on the input average-pooled by 3 (receptive field 15.2 s at 300 Hz, a third of the computation); "
          "Grad-CAM at stage4 (stride 96)")
def build_resnet1d5_pool3(input_shape: tuple[int, int], n_classes: int) -> keras.Model:
    """Builds resnet1d5 behind a 3x average pool of the input: ``(batch, time, leads) -> (batch, n_classes)`` logits."""
    return _build(input_shape, n_classes, stages=5, name="resnet1d5_pool3", input_pool=3)
