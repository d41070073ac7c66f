"""MobileNetV2 on the lead image, from scratch, as the ERTS reference runs it.

Layout for an input ``(batch, time, leads)``: ``lead_image`` (10 zero rows
above and below the leads, at least 32 rows: Keras's MobileNetV2 rejects
inputs under 32 x 32, so a 1-lead signal's 21 rows are padded to 32) ->
``keras.applications.MobileNetV2`` (``weights=None``, ``include_top=False``,
one input channel, built flat on the lead image so its layers are reachable
by name) -> the reference head (global average pool -> Dropout 0.3 ->
Dense 128 -> ReLU -> Dropout 0.3 -> Dense ``n_classes`` logits).

The Grad-CAM target is ``block_16_project_BN``, the output of the last
inverted-residual block (320 channels) before the 1x1 ``Conv_1`` head
convolution: the Keras counterpart of torchvision's ``features[-2]`` that the
reference uses. Stride 32: ``(batch, 1, 32, 320)`` for a ``(1000, 12)`` input
(32 rows -> 1 row), ``(batch, 1, 113, 320)`` for ``(3600, 1)``.

Batch norm: the Keras application uses momentum 0.999 and epsilon 1e-3; the
reference (torchvision) uses momentum 0.1 (Keras 0.9) and epsilon 1e-5. We set
the torchvision values, since with 0.999 the moving statistics of a network
trained from scratch for a few thousand steps lag far behind the weights.
"""

from __future__ import annotations

import keras
from keras import layers

from erts_tf.models.lead_image import application_on_lead_image, reference_head
from erts_tf.models.registry import register

TARGET_LAYER = "block_16_project_BN"
MIN_ROWS = 32  # keras.applications.MobileNetV2 min_size


@register("mobilenetv2_2d", TARGET_LAYER, "MobileNetV2 on the 32 x L lead image (paper); Grad-CAM at the last block (stride 32)")
def build_mobilenetv2_2d(input_shape: tuple[int, int], n_classes: int) -> keras.Model:
    """Builds MobileNetV2 on the lead image: ``(batch, time, leads) -> (batch, n_classes)`` logits."""
    inputs, backbone = application_on_lead_image(keras.applications.MobileNetV2, input_shape, MIN_ROWS)
    for layer in backbone.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.momentum, layer.epsilon = 0.9, 1e-5
    logits = reference_head(backbone.output, n_classes, extra_dropout=True)
    return keras.Model(inputs, logits, name="mobilenetv2_2d")
