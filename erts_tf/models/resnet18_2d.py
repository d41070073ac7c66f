"""ResNet-18 on the lead image, from scratch, as the ERTS reference runs it.

ResNet-18 is not in ``keras.applications``; this is torchvision's layout:
``lead_image`` (10 zero rows above and below the leads: 32 x L for 12 leads,
21 x L for 1 lead; ResNet-18 has no minimum size) -> stem (conv 7x7 s2 + BN +
ReLU + maxpool 3x3 s2) -> ``layer1``..``layer4`` of two BasicBlocks each
(64, 128, 256, 512 filters; stride 1, 2, 2, 2) -> the reference head (global
average pool -> Dense 128 -> ReLU -> Dropout 0.3 -> Dense ``n_classes``
logits). Convolutions use ``padding="same"``, so every stride-2 step keeps at
least one row (ceil division), and the torchvision initialisation (He normal,
fan-out) and batch-norm settings (momentum 0.1, i.e. Keras 0.9; epsilon 1e-5).

The Grad-CAM target is ``layer3`` (the second-to-last stage, stride 16), as in
the reference: ``(batch, 2, 63, 256)`` for a ``(1000, 12)`` input (32 rows ->
2 rows), ``(batch, 2, 225, 256)`` for ``(3600, 1)`` (21 rows -> 2 rows).
"""

from __future__ import annotations

import keras
from keras import layers

from erts_tf.models.lead_image import LeadImage, reference_head
from erts_tf.models.registry import register

TARGET_LAYER = "layer3"
_STAGE_FILTERS = (64, 128, 256, 512)
_STAGE_STRIDES = (1, 2, 2, 2)
_BLOCKS_PER_STAGE = 2


def _conv(filters: int, kernel_size: int, stride: int, name: str) -> layers.Conv2D:
    """torchvision's ResNet convolution: no bias, He normal initialisation with fan_out."""
    he_normal_fan_out = keras.initializers.VarianceScaling(2.0, "fan_out", "untruncated_normal")
    return layers.Conv2D(filters, kernel_size, strides=stride, padding="same", use_bias=False,
                         kernel_initializer=he_normal_fan_out, name=name)


def _bn(name: str) -> layers.BatchNormalization:
    return layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name)


def _basic_block(x, filters: int, stride: int, name: str):
    """torchvision BasicBlock: two 3x3 convolutions plus a (1x1-projected) shortcut."""
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = _bn(f"{name}_downsample_bn")(_conv(filters, 1, stride, f"{name}_downsample")(x))
    y = _conv(filters, 3, stride, f"{name}_conv1")(x)
    y = layers.Activation("relu", name=f"{name}_relu1")(_bn(f"{name}_bn1")(y))
    y = _bn(f"{name}_bn2")(_conv(filters, 3, 1, f"{name}_conv2")(y))
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return y


@register("resnet18_2d", TARGET_LAYER, "ResNet-18 on the 32 x L lead image (paper); Grad-CAM at layer3 (stride 16)")
def build_resnet18_2d(input_shape: tuple[int, int], n_classes: int) -> keras.Model:
    """Builds ResNet-18 on the lead image: ``(batch, time, leads) -> (batch, n_classes)`` logits."""
    inputs = keras.Input(shape=input_shape, name="signal")
    x = LeadImage(name="lead_image")(inputs)
    x = _conv(64, 7, 2, "stem_conv")(x)
    x = layers.Activation("relu", name="stem_relu")(_bn("stem_bn")(x))
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    for stage, (filters, stride) in enumerate(zip(_STAGE_FILTERS, _STAGE_STRIDES), start=1):
        for block in range(_BLOCKS_PER_STAGE):
            name = f"layer{stage}_{block}"
            x = _basic_block(x, filters, stride if block == 0 else 1, name)
            last = block == _BLOCKS_PER_STAGE - 1
            x = layers.Activation("relu", name=f"layer{stage}" if last else f"{name}_relu")(x)
    logits = reference_head(x, n_classes)
    return keras.Model(inputs, logits, name="resnet18_2d")
