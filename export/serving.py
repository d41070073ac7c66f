"""The serving function: RAW signal ``(batch, time, leads)`` -> class probabilities.

One ``tf.function`` with a fixed input signature (dynamic batch) is built
once, registered as the SavedModel endpoint and converted to ONNX, so the two
artefacts are the same computation:

    signal (batch, time, leads) float32, raw units
      -> per-sample, per-lead z-score (``erts_tf.data.pipeline.zscore_tf``;
         flat leads -> 0)
      -> backbone (inference mode) -> logits (batch, n_classes)
      -> softmax (a multi-label run, ``--task=multi``: sigmoid) -> {"probabilities": (batch, n_classes)}

Backbones with a 2-D lead image carry the ``LeadImage`` layer inside the
model, so the function is the same for every backbone.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from erts_tf import inference
from erts_tf.data import pipeline

INPUT_NAME = "signal"
OUTPUT_NAME = "probabilities"
ENDPOINT = "serve"


def input_spec(backbone: keras.Model) -> tf.TensorSpec:
    """``(None, time, leads)`` float32 spec named ``signal`` for ``backbone``'s input shape."""
    shape = tuple(backbone.inputs[0].shape[1:])
    if len(shape) != 2 or None in shape:
        raise ValueError(f"the backbone must take (batch, time, leads) with a fixed time and lead axis; got {shape}")
    return tf.TensorSpec((None, *shape), tf.float32, name=INPUT_NAME)


def serve_raw(backbone: keras.Model, activation: str = "softmax"):
    """The Python serving function (not yet a tf.function); ``activation``: ``softmax`` or ``sigmoid``
    (``inference.ACTIVATIONS``, the run's task)."""
    output = inference.activation_fn(activation)

    def serve(signal):
        return {OUTPUT_NAME: output(backbone(pipeline.zscore_tf(signal), training=False))}

    return serve


def serving_function(backbone: keras.Model, activation: str = "softmax"):
    """The serving ``tf.function`` with its fixed input signature (for tests and tf2onnx)."""
    return tf.function(serve_raw(backbone, activation), input_signature=[input_spec(backbone)], autograph=False)


def export_saved_model(backbone: keras.Model, path: str, activation: str = "softmax"):
    """Writes a SavedModel serving the raw signal at ``path``; returns its ``tf.function``.

    The endpoint is ``serve`` and, as the first endpoint, also ``serving_default``
    (``keras.export.ExportArchive``). The returned function is the one exported:
    convert it, not a re-trace, to ONNX.
    """
    archive = keras.export.ExportArchive()
    archive.track(backbone)
    fn = archive.add_endpoint(ENDPOINT, serve_raw(backbone, activation), input_signature=[input_spec(backbone)])
    archive.write_out(path, verbose=False)
    return fn


def saved_model_predict(path: str, signal) -> "tf.Tensor":
    """Probabilities ``(n, n_classes)`` from the ``serving_default`` signature of a SavedModel."""
    loaded = tf.saved_model.load(path)
    out = loaded.signatures["serving_default"](**{INPUT_NAME: tf.convert_to_tensor(signal, tf.float32)})
    return out[OUTPUT_NAME].numpy()
