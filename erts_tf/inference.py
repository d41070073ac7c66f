"""Class probabilities of a backbone: the one prediction that training, evaluation, export and benchmarks share.

``activation``: ``softmax`` (a single-label run) or ``sigmoid`` (a multi-label run, ``--task=multi``): the
output function of the run's task (``training.task``), applied to the logits.
"""

from __future__ import annotations

import numpy as np

ACTIVATIONS = ("softmax", "sigmoid")


def activation_fn(activation: str):
    """``logits (batch, C) -> probabilities (batch, C)`` float32 of ``activation`` (one of ``ACTIVATIONS``)."""
    import tensorflow as tf

    if activation == "softmax":
        return lambda logits: tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
    if activation == "sigmoid":
        return lambda logits: tf.sigmoid(tf.cast(logits, tf.float32))
    raise ValueError(f"unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}")


def predict_probs(backbone, signal: np.ndarray, batch_size: int = 64, activation: str = "softmax") -> np.ndarray:
    """Softmax (``activation``: or sigmoid) probabilities ``(n, n_classes)`` float32 of a logits backbone on ``signal`` ``(n, time, leads)``.

    ``signal`` is what the backbone was trained on (the z-scored split of
    ``pipeline.load_split``; ``pipeline.zscore`` of raw records): a NumPy array,
    or a ``lazy.LazySignal``, which reads each batch's records as it is sliced
    (``--data_backend=lazy``: scoring streams, one batch in memory). Batches of
    ``batch_size`` in order, in inference mode (``training=False``: batch-norm moving
    statistics, no dropout). A plain loop on this process, not ``Model.predict``:
    under a multi-worker strategy that would return only this worker's shard.
    """
    import tensorflow as tf

    output = activation_fn(activation)
    probabilities = tf.function(lambda x: output(backbone(x, training=False)), reduce_retracing=True)
    batches = [probabilities(tf.convert_to_tensor(signal[start:start + batch_size], tf.float32)).numpy()
               for start in range(0, len(signal), batch_size)]
    return np.concatenate(batches) if batches else np.zeros([0, int(backbone.outputs[0].shape[-1])], np.float32)


def split_probs(backbone, arrays, batch_size: int = 64, activation: str = "softmax") -> np.ndarray:
    """Softmax (``activation``: or sigmoid) probabilities ``(n, n_classes)`` of every record of ``arrays`` (``pipeline.SplitArrays``).

    Whole records: ``predict_probs`` of ``arrays.signal``. With ``arrays.window``: every record's evaluation
    windows (``pipeline.eval_dataset``, ``batch_size`` records a batch) scored in inference mode and their
    probabilities aggregated per record (``windows.aggregate``, ``arrays.window.aggregate``).
    """
    if arrays.window is None:
        return predict_probs(backbone, arrays.signal, batch_size, activation)
    import tensorflow as tf

    from erts_tf.data import pipeline, windows

    output = activation_fn(activation)

    def probs_of(x):
        return output(backbone(x, training=False))

    record_probs = tf.function(lambda w, valid: windows.record_probs(probs_of, w, valid, arrays.window.aggregate),
                               reduce_retracing=True)
    batches = [record_probs(w, valid).numpy() for (w, valid), _, _ in pipeline.eval_dataset(arrays, batch_size)]
    return np.concatenate(batches) if batches else np.zeros([0, int(backbone.outputs[0].shape[-1])], np.float32)


def recording_probs(probs_of, recording: np.ndarray, window) -> np.ndarray:
    """Probabilities ``(n_classes,)`` of one RAW recording ``(time, leads)`` of any length, as a run on windows
    scores a record: its evaluation windows (``windows.eval_starts``), each given to ``probs_of``
    (``(k, window, leads) raw -> (k, n_classes)`` softmax probabilities: the exported model, which z-scores
    each window itself), aggregated by ``window.aggregate`` (a ``windows.WindowSpec``: the run's
    ``--window_s``, ``--eval_window_stride_s`` and ``--window_aggregate``).
    """
    import tensorflow as tf

    from erts_tf.data import windows

    recording = np.asarray(recording, np.float32)
    starts, _ = windows.eval_starts(tf.constant([len(recording)]), window.length, window.stride)
    probs = np.asarray(probs_of(windows.slice_windows(recording, starts.numpy()[0], window.length)), np.float32)
    return windows.aggregate(tf.constant(probs[None]), tf.ones([1, len(probs)], tf.bool), window.aggregate).numpy()[0]
