"""inception1d: InceptionTime for ECG, as in the PTB-XL benchmark (Strodthoff et al.).

Layout for an input ``(batch, time, leads)``: six inception modules, each
``(batch, time, ch) -> (batch, time, 128)``: a 1x1 bottleneck to 32 channels
feeding three parallel convolutions of kernel 39, 19 and 9 (32 filters each),
beside a maxpool-3 -> 1x1 conv (32) branch; concatenated -> BN -> ReLU.
Every third module gets a residual shortcut from the previous residual's
output (1x1 conv -> BN), added, then ReLU. No downsampling anywhere: the time
axis keeps the input length. Head: the benchmark's (concat of global max and
average pooling -> BN -> Dropout 0.25 -> Dense 128 -> ReLU -> BN -> Dropout 0.5
-> Dense ``n_classes`` logits).

The Grad-CAM target is ``residual2``, the output of the last residual block
(module 6): ``(batch, time, 128)``, i.e. 1000 time bins for 1000 samples and
3600 for 3600. The strided backbones take the second-to-last stage to keep
time resolution; this network never downsamples, so the last convolutional
feature map (the classic CAM layer of InceptionTime) already has full
resolution and the most class-specific features.
"""

from __future__ import annotations

import keras
from keras import layers

from erts_tf.models.registry import register
from erts_tf.models.xresnet1d import ptbxl_head

TARGET_LAYER = "residual2"
_DEPTH = 6
_BOTTLENECK = 32
_FILTERS = 32


def _kernel_sizes(kernel_size: int) -> tuple[int, ...]:
    """40 -> (39, 19, 9): k, k/2, k/4 made odd."""
    return tuple(k - 1 if k % 2 == 0 else k for k in (kernel_size, kernel_size // 2, kernel_size // 4))


def _conv(filters: int, kernel_size: int, name: str) -> layers.Conv1D:
    return layers.Conv1D(filters, kernel_size, padding="same", use_bias=False, name=name)


def _bn(name: str) -> layers.BatchNormalization:
    return layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name)


def _inception_module(x, kernel_sizes: tuple[int, ...], name: str):
    """``(batch, time, ch) -> (batch, time, (len(kernel_sizes) + 1) * 32)``."""
    bottled = _conv(_BOTTLENECK, 1, f"{name}_bottleneck")(x)
    branches = [_conv(_FILTERS, k, f"{name}_conv{k}")(bottled) for k in kernel_sizes]
    pooled = layers.MaxPooling1D(3, strides=1, padding="same", name=f"{name}_maxpool")(x)
    branches.append(_conv(_FILTERS, 1, f"{name}_pool_conv")(pooled))
    y = layers.Concatenate(name=f"{name}_concat")(branches)
    return layers.Activation("relu", name=name)(_bn(f"{name}_bn")(y))


@register("inception1d", TARGET_LAYER, "InceptionTime (PTB-XL benchmark), no downsampling; Grad-CAM at residual2 (full time resolution)")
def build_inception1d(input_shape: tuple[int, int], n_classes: int, kernel_size: int = 40) -> keras.Model:
    """Builds inception1d: ``(batch, time, leads) -> (batch, n_classes)`` logits."""
    kernel_sizes = _kernel_sizes(kernel_size)
    channels = (len(kernel_sizes) + 1) * _FILTERS
    inputs = keras.Input(shape=input_shape, name="signal")
    x = residual_input = inputs
    for module in range(_DEPTH):
        x = _inception_module(x, kernel_sizes, f"inception{module + 1}")
        if module % 3 == 2:
            index = module // 3 + 1
            shortcut = _bn(f"residual{index}_bn")(_conv(channels, 1, f"residual{index}_conv")(residual_input))
            x = layers.Add(name=f"residual{index}_add")([x, shortcut])
            x = residual_input = layers.Activation("relu", name=f"residual{index}")(x)
    logits = ptbxl_head(x, n_classes)
    return keras.Model(inputs, logits, name="inception1d")
