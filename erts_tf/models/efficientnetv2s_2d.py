"""EfficientNetV2-S on the lead image, from scratch, as the ERTS reference runs it.

Layout for an input ``(batch, time, leads)``: ``lead_image`` (10 zero rows
above and below the leads, at least 32 rows: Keras's EfficientNetV2 rejects
inputs under 32 x 32, so a 1-lead signal's 21 rows are padded to 32) ->
``keras.applications.EfficientNetV2S`` (``weights=None``,
``include_top=False``, ``include_preprocessing=False`` since the signal is
already z-scored, one input channel, stochastic depth 0.2 as torchvision's,
built flat on the lead image so its layers are reachable by name) -> the
reference head (global average pool -> Dense 128 -> ReLU -> Dropout 0.3 ->
Dense ``n_classes`` logits).

The Grad-CAM target is ``block6o_add``, the output of the last MBConv block of
the last stage (256 channels) before the 1x1 ``top_conv`` head convolution:
the Keras counterpart of torchvision's ``features[-2]`` that the reference
uses. Stride 32: ``(batch, 1, 32, 256)`` for a ``(1000, 12)`` input (32 rows ->
1 row), ``(batch, 1, 113, 256)`` for ``(3600, 1)``.
"""

from __future__ import annotations

import keras

from erts_tf.models.lead_image import application_on_lead_image, reference_head
from erts_tf.models.registry import register

TARGET_LAYER = "block6o_add"
MIN_ROWS = 32  # keras.applications.EfficientNetV2 min_size


@register("efficientnetv2s_2d", TARGET_LAYER, "EfficientNetV2-S on the 32 x L lead image (paper); Grad-CAM at the last stage (stride 32)")
def build_efficientnetv2s_2d(input_shape: tuple[int, int], n_classes: int) -> keras.Model:
    """Builds EfficientNetV2-S on the lead image: ``(batch, time, leads) -> (batch, n_classes)`` logits."""
    inputs, backbone = application_on_lead_image(keras.applications.EfficientNetV2S, input_shape, MIN_ROWS,
                                                 include_preprocessing=False)
    logits = reference_head(backbone.output, n_classes)
    return keras.Model(inputs, logits, name="efficientnetv2s_2d")
