"""ERTS added to a plain Keras training script, beside the same script without it; runnable as is.

    python examples/dropin.py [--epochs 10]

The data are random 2-lead signals ``(time=256, leads=2)`` in 3 classes whose evidence is a short
event whose shape is the class: 600 training records, 10 % of them with a wrong label, and 300
held-out records with clean labels. The same architecture, from the same initial weights, is
trained for the same epochs twice: by a plain ``keras`` ``model.fit``, and with ERTS at epoch level
(the three marked lines; a dropped record is not even read). Each epoch line says which samples
its training metrics cover. The last lines give each run's held-out macro-F1 and its cost: the
samples back-propagated (ERTS: ``model.state.counters["backward"]``) and the wall-clock of ``fit``
(with its per-epoch held-out evaluation, the same in both). On data this small the wall-clock is
mostly fixed cost (tracing the Grad-CAM step and the re-scoring pass), so the back-propagations
ERTS saves show in the first cost, not yet in the second.
"""

import argparse
import time

import keras
import numpy as np
import tensorflow as tf
from keras import layers

import erts_tf


def make_data(n, length=256, noise=0.1, seed=0):
    """``(x (n, length, 2) float32, y (n,) int)``: each record holds one 24-sample event on lead 0 at a
    random time whose shape is the class (0: up, 1: down, 2: oscillation); a share ``noise`` of the
    labels is wrong."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(size=(n, length, 2)).astype(np.float32)
    shapes = [np.full(24, 2.0), np.full(24, -2.0), 2.0 * np.sin(np.arange(24) * np.pi / 3)]
    for i, c in enumerate(y):
        start = rng.integers(0, length - 24)
        x[i, start:start + 24, 0] += shapes[c]
    flipped = rng.random(n) < noise
    y[flipped] = (y[flipped] + 1) % 3
    return x, y


def make_model(length=256):
    """``(batch, length, 2) -> (batch, 3)`` logits; ``block3`` is the last layer with a time axis."""
    inputs = keras.Input((length, 2))
    x = layers.Conv1D(16, 7, padding="same", activation="relu")(inputs)
    x = layers.Conv1D(32, 7, strides=2, padding="same", activation="relu", name="block3")(x)
    x = layers.GlobalAveragePooling1D()(x)
    return keras.Model(inputs, layers.Dense(3)(x))


def macro_f1(model, x, y):
    """Macro-F1 of ``model``'s argmax predictions on ``x (n, time, leads)`` against ``y (n,)``."""
    metric = keras.metrics.F1Score(average="macro")
    metric.update_state(keras.ops.one_hot(y, 3), model.predict(x, batch_size=256, verbose=0))
    return float(metric.result())


class EpochLine(keras.callbacks.Callback):
    """Prints one line per epoch: the training loss over the samples trained on, named by
    ``trained_on(epoch)``, and the held-out macro-F1."""

    def __init__(self, name, trained_on, x_held_out, y_held_out):
        super().__init__()
        self.name, self.trained_on, self.held_out = name, trained_on, (x_held_out, y_held_out)

    def on_epoch_end(self, epoch, logs=None):
        print(f"{self.name} epoch {epoch}: loss {logs['loss']:.3f} over {self.trained_on(epoch)} | "
              f"held-out macro-F1 {macro_f1(self.model, *self.held_out):.3f}", flush=True)


def main(argv=None):
    """Trains both runs and prints their epoch lines and results; returns ``{run: {"macro_f1",
    "backpropagated", "wall_s"}}`` and, for ERTS, ``"trained_per_epoch"`` (samples trained on)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args(argv)
    x, y = make_data(600)
    x_held_out, y_held_out = make_data(300, noise=0.0, seed=1)
    n = len(y)

    keras.utils.set_random_seed(0)
    plain = make_model()
    plain.compile(optimizer="adamw", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    start = time.perf_counter()
    plain.fit(x, y, batch_size=32, epochs=args.epochs, verbose=0,
              callbacks=[EpochLine("plain", lambda e: f"all {n} samples", x_held_out, y_held_out)])
    wall_s = time.perf_counter() - start
    results = {"plain": {"macro_f1": macro_f1(plain, x_held_out, y_held_out), "backpropagated": args.epochs * n,
                         "wall_s": wall_s}}

    keras.utils.set_random_seed(0)  # the same initial weights
    signals, labels = tf.constant(x), tf.constant(y)

    def load(i):  # sample id -> one record (x (time, leads), y): read when trained on or re-scored  # 1
        return tf.gather(signals, i), tf.gather(labels, i)

    model = erts_tf.ERTS(make_model(), target_layer="block3", mode="erts", n_samples=n, level="epoch",
                         warm_up_epochs=3, cam_start_epoch=1)                                         # 2
    model.compile(optimizer="adamw")
    trained = []  # samples back-propagated per epoch (the kept ones)

    def trained_on(epoch):
        trained.append(int(model.state.counters["backward"].numpy()) - sum(trained))
        return f"the {trained[-1]} kept of {n} samples" if trained[-1] < n else f"all {n} samples"

    start = time.perf_counter()
    model.fit(model.records(load, batch_size=32), epochs=args.epochs, verbose=0,
              callbacks=[model.selection_callback(), EpochLine("erts", trained_on, x_held_out, y_held_out)])  # 3
    wall_s = time.perf_counter() - start
    results["erts"] = {"macro_f1": macro_f1(model, x_held_out, y_held_out),
                       "backpropagated": int(model.state.counters["backward"].numpy()), "wall_s": wall_s,
                       "trained_per_epoch": trained}

    print(f"{'run':<6}{'held-out macro-F1':>19}{'back-propagated samples':>26}{'wall-clock':>12}")
    for name, r in results.items():
        share = r["backpropagated"] / (args.epochs * n)
        print(f"{name:<6}{r['macro_f1']:>19.3f}{r['backpropagated']:>19d} ({share:>4.0%}){r['wall_s']:>11.1f}s")
    return results


if __name__ == "__main__":
    main()
