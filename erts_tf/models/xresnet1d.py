"""xresnet1d: the 1-D XResNet of the PTB-XL benchmark (Strodthoff et al., fastai).

Layout for an input ``(batch, time, leads)``:
stem of three conv-BN-ReLU (k5; 32, 32, 64 filters; the first stride 2) ->
maxpool 3 s2 -> four stages of ResBlocks (stride 1, 2, 2, 2; 64 filters x
``expansion``, the benchmark's narrow widths) -> head (concat of global max and
average pooling -> BN -> Dropout 0.25 -> Dense 128 -> ReLU -> BN -> Dropout 0.5
-> Dense ``n_classes`` logits; the benchmark's ``lin_ftrs_head=[128]``).
A ResBlock is two k5 convolutions (``expansion`` 1) or a 1-k5-1 bottleneck
(``expansion`` 4), the last batch norm initialised to zero; its shortcut is
average pooling (k2 s2) when strided, then a 1x1 conv + BN when the width
changes (the "bag of tricks" ResNet-D shortcut).

``depth`` picks the configuration: 18 ``[2,2,2,2]``, 34 ``[3,4,6,3]`` (both
expansion 1), 50 ``[3,4,6,3]``, 101 ``[3,4,23,3]``, 152 ``[3,8,36,3]``
(expansion 4). Registered: ``xresnet1d`` (depth 18, CPU-friendly) and
``xresnet1d101`` (the benchmark's best model).

The Grad-CAM target is ``stage3`` (second-to-last stage, stride 16):
``(batch, 63, 64 x expansion)`` for 1000 samples, ``(batch, 225, ...)`` for 3600.
"""

from __future__ import annotations

import keras
from keras import layers

from erts_tf.models.registry import register

TARGET_LAYER = "stage3"
CONFIGS = {  # depth -> (expansion, blocks per stage)
    18: (1, (2, 2, 2, 2)),
    34: (1, (3, 4, 6, 3)),
    50: (4, (3, 4, 6, 3)),
    101: (4, (3, 4, 23, 3)),
    152: (4, (3, 8, 36, 3)),
}
_STEM_FILTERS = (32, 32, 64)
_STAGE_WIDTH = 64  # the benchmark's block_szs [64, 64, 64, 64] (not 64-128-256-512)
_STAGE_STRIDES = (1, 2, 2, 2)


def _bn(name: str, zero: bool = False) -> layers.BatchNormalization:
    """fastai's BatchNorm: torch momentum 0.1 / eps 1e-5, beta 1e-3, gamma 1 (or 0 for the last BN of a block)."""
    return layers.BatchNormalization(
        momentum=0.9,
        epsilon=1e-5,
        beta_initializer=keras.initializers.Constant(1e-3),
        gamma_initializer="zeros" if zero else "ones",
        name=name,
    )


def _conv_layer(x, filters: int, kernel_size: int, name: str, stride: int = 1, relu: bool = True, zero_bn: bool = False):
    """fastai ConvLayer: conv (He normal, no bias) -> BN -> [ReLU]."""
    x = layers.Conv1D(
        filters,
        kernel_size,
        strides=stride,
        padding="same",
        use_bias=False,
        kernel_initializer=keras.initializers.VarianceScaling(2.0, "fan_in", "untruncated_normal"),
        name=f"{name}_conv",
    )(x)
    x = _bn(f"{name}_bn", zero=zero_bn)(x)
    return layers.Activation("relu", name=f"{name}_relu")(x) if relu else x


def _res_block(x, expansion: int, width: int, stride: int, kernel_size: int, name: str):
    """ResBlock ``(batch, t, ch) -> (batch, ceil(t / stride), width * expansion)``."""
    out_filters = width * expansion
    if expansion == 1:
        y = _conv_layer(x, width, kernel_size, f"{name}_a", stride=stride)
        y = _conv_layer(y, out_filters, kernel_size, f"{name}_b", relu=False, zero_bn=True)
    else:
        y = _conv_layer(x, width, 1, f"{name}_a")
        y = _conv_layer(y, width, kernel_size, f"{name}_b", stride=stride)
        y = _conv_layer(y, out_filters, 1, f"{name}_c", relu=False, zero_bn=True)
    shortcut = x
    if stride != 1:
        shortcut = layers.AveragePooling1D(2, strides=stride, padding="same", name=f"{name}_id_pool")(shortcut)
    if x.shape[-1] != out_filters:
        shortcut = _conv_layer(shortcut, out_filters, 1, f"{name}_id", relu=False)
    return layers.Add(name=f"{name}_add")([y, shortcut])


def ptbxl_head(features, n_classes: int):
    """The PTB-XL benchmark's head (fastai ``create_head1d``, ``lin_ftrs=[128]``, ``ps=0.5``).

    ``(batch, time', ch)`` -> concat(global max, global average) -> BN ->
    Dropout 0.25 -> Dense 128 -> ReLU -> BN -> Dropout 0.5 -> Dense ``n_classes``.
    """
    pooled_max = layers.GlobalMaxPooling1D(name="head_max_pool")(features)
    pooled_avg = layers.GlobalAveragePooling1D(name="head_avg_pool")(features)
    x = layers.Concatenate(name="head_concat_pool")([pooled_max, pooled_avg])
    x = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name="head_bn1")(x)
    x = layers.Dropout(0.25, name="head_dropout1")(x)
    x = layers.Dense(128, name="head_dense")(x)
    x = layers.Activation("relu", name="head_relu")(x)
    x = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name="head_bn2")(x)
    x = layers.Dropout(0.5, name="head_dropout2")(x)
    return layers.Dense(n_classes, name="logits")(x)


def build_xresnet1d(input_shape: tuple[int, int], n_classes: int, depth: int = 18, kernel_size: int = 5) -> keras.Model:
    """Builds xresnet1d``depth``: ``(batch, time, leads) -> (batch, n_classes)`` logits."""
    if depth not in CONFIGS:
        raise ValueError(f"xresnet1d depth must be one of {sorted(CONFIGS)}; got {depth}")
    expansion, blocks = CONFIGS[depth]
    inputs = keras.Input(shape=input_shape, name="signal")
    x = inputs
    for index, filters in enumerate(_STEM_FILTERS, start=1):
        x = _conv_layer(x, filters, kernel_size, f"stem{index}", stride=2 if index == 1 else 1)
    x = layers.MaxPooling1D(3, strides=2, padding="same", name="stem_pool")(x)
    for stage, (n_blocks, stride) in enumerate(zip(blocks, _STAGE_STRIDES), start=1):
        for block in range(n_blocks):
            x = _res_block(x, expansion, _STAGE_WIDTH, stride if block == 0 else 1, kernel_size, f"stage{stage}_{block}")
            last = block == n_blocks - 1
            x = layers.Activation("relu", name=f"stage{stage}" if last else f"stage{stage}_{block}_out")(x)
    logits = ptbxl_head(x, n_classes)
    return keras.Model(inputs, logits, name=f"xresnet1d{depth}")


@register("xresnet1d", TARGET_LAYER, "xresnet1d18 (PTB-XL benchmark widths); Grad-CAM at stage3 (stride 16)")
def build_xresnet1d18(input_shape: tuple[int, int], n_classes: int) -> keras.Model:
    """xresnet1d18: ``(batch, time, leads) -> (batch, n_classes)`` logits."""
    return build_xresnet1d(input_shape, n_classes, depth=18)


@register("xresnet1d101", TARGET_LAYER, "xresnet1d101 (PTB-XL benchmark's best); Grad-CAM at stage3 (stride 16)")
def build_xresnet1d101(input_shape: tuple[int, int], n_classes: int) -> keras.Model:
    """xresnet1d101: ``(batch, time, leads) -> (batch, n_classes)`` logits."""
    return build_xresnet1d(input_shape, n_classes, depth=101)
