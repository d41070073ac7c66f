"""erts-tf: explainability-based reliability training signal (ERTS) for ECG classifiers.

Drop-in API: ``erts_tf.ERTS`` (its model reads the training records by id with ``model.records(load)``)
and ``erts_tf.with_sample_ids`` (see ``erts_tf.dropin``).
"""


def __getattr__(name):  # lazy: importing the package does not import TensorFlow
    if name in ("ERTS", "with_sample_ids"):
        from erts_tf import dropin

        return getattr(dropin, name)
    raise AttributeError(name)
