"""The ERTS paper's 2-D view of an ECG: a one-channel "lead image", built inside the model.

``LeadImage`` maps a signal ``(batch, time, leads)`` to ``(batch, rows, time, 1)``:
row ``r`` holds lead ``r - top`` (lead order unchanged, lead 0 on top), with
``pad_rows`` zero rows above and below the leads (the reference pads 12 leads
by 10 rows on each side: 32 x L). If that is fewer than ``min_rows`` rows (a
network's minimum input size, e.g. 32 for the Keras MobileNetV2 and
EfficientNetV2 applications, which a 1-lead signal's 21 rows miss), extra zero
rows are split between top and bottom (the top gets the smaller half).

It uses only transpose, expand_dims and pad, so SavedModel and tf2onnx export
carry it with the model.

Example:
  >>> image = LeadImage()(keras.ops.ones((2, 1000, 12)))   # (2, 32, 1000, 1)
"""

from __future__ import annotations

import keras
from keras import layers, ops

REFERENCE_PAD_ROWS = 10


@keras.saving.register_keras_serializable(package="erts_tf")
class LeadImage(layers.Layer):
    """``(batch, time, leads) -> (batch, rows, time, 1)`` zero-padded lead image.

    Args:
      pad_rows: zero rows added above and below the leads (reference: 10).
      min_rows: pad further (split top/bottom) until the image has this many rows.
    """

    def __init__(self, pad_rows: int = REFERENCE_PAD_ROWS, min_rows: int = 0, **kwargs):
        super().__init__(**kwargs)
        if pad_rows < 0 or min_rows < 0:
            raise ValueError(f"pad_rows and min_rows must be >= 0; got {pad_rows}, {min_rows}")
        self.pad_rows = int(pad_rows)
        self.min_rows = int(min_rows)

    def row_padding(self, leads: int) -> tuple[int, int]:
        """``(top, bottom)`` zero rows for ``leads`` leads."""
        extra = max(0, self.min_rows - (leads + 2 * self.pad_rows))
        return self.pad_rows + extra // 2, self.pad_rows + extra - extra // 2

    def call(self, signal):
        leads = signal.shape[-1]
        if leads is None:
            raise ValueError("LeadImage needs a static lead axis: input (batch, time, leads)")
        top, bottom = self.row_padding(leads)
        image = ops.expand_dims(ops.transpose(signal, (0, 2, 1)), -1)  # (batch, leads, time, 1)
        return ops.pad(image, [[0, 0], [top, bottom], [0, 0], [0, 0]])

    def compute_output_shape(self, input_shape):
        batch, time, leads = input_shape
        top, bottom = self.row_padding(leads)
        return (batch, leads + top + bottom, time, 1)

    def get_config(self):
        return {**super().get_config(), "pad_rows": self.pad_rows, "min_rows": self.min_rows}


def application_on_lead_image(application, input_shape: tuple[int, int], min_rows: int, **kwargs):
    """``(inputs, backbone)``: a ``keras.applications`` constructor built from scratch
    (``weights=None``, ``include_top=False``) flat on the lead image of a ``(batch, time, leads)``
    input named ``signal``, so that its layers are reachable by name for Grad-CAM."""
    inputs = keras.Input(shape=input_shape, name="signal")
    image = LeadImage(min_rows=min_rows, name="lead_image")(inputs)
    backbone = application(input_shape=tuple(image.shape[1:]), input_tensor=image, include_top=False, weights=None,
                           **kwargs)
    return inputs, backbone


def reference_head(features, n_classes: int, extra_dropout: bool = False):
    """The reference's 2-D head: logits ``(batch, n_classes)`` from ``(batch, rows, time', ch)``.

    Global average pool -> [Dropout 0.3 if ``extra_dropout`` (MobileNetV2)] ->
    Dense 128 -> ReLU -> Dropout 0.3 -> Dense ``n_classes`` (no softmax).
    """
    x = layers.GlobalAveragePooling2D(name="head_pool")(features)
    if extra_dropout:
        x = layers.Dropout(0.3, name="head_dropout0")(x)
    x = layers.Dense(128, name="head_dense")(x)
    x = layers.Activation("relu", name="head_relu")(x)
    x = layers.Dropout(0.3, name="head_dropout")(x)
    return layers.Dense(n_classes, name="logits")(x)
