"""ERTS added to a plain Keras training script: the three drop-in lines, runnable as is.

    python examples/dropin.py [--epochs 8]

The data are 600 random 2-lead signals (batch, time=256, leads=2) in 3 classes whose evidence is
a short event whose shape is the class; 10 % of them get a wrong label. Everything except the
three marked lines is ordinary Keras.
"""

import argparse

import keras
import numpy as np
import tensorflow as tf
from keras import layers

import erts_tf


def make_data(n=600, length=256, seed=0):
    """``(x (n, length, 2) float32, y (n,) int)``: each record holds one 24-sample event on lead 0 at a
    random time whose shape is the class (0: up, 1: down, 2: oscillation); 10 % of labels are flipped."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(size=(n, length, 2)).astype(np.float32)
    shapes = [np.full(24, 4.0), np.full(24, -4.0), 4.0 * np.sin(np.arange(24) * np.pi / 3)]
    for i, c in enumerate(y):
        start = rng.integers(0, length - 24)
        x[i, start:start + 24, 0] += shapes[c]
    flipped = rng.random(n) < 0.1
    y[flipped] = (y[flipped] + 1) % 3
    return x, y


def make_model(length=256):
    inputs = keras.Input((length, 2))
    x = layers.Conv1D(16, 7, padding="same", activation="relu")(inputs)
    x = layers.Conv1D(32, 7, strides=2, padding="same", activation="relu", name="block3")(x)
    x = layers.GlobalAveragePooling1D()(x)
    return keras.Model(inputs, layers.Dense(3)(x))  # logits


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args(argv)
    keras.utils.set_random_seed(0)
    x, y = make_data()
    ds = tf.data.Dataset.from_tensor_slices((x, y))

    ds = erts_tf.with_sample_ids(ds)                                                    # 1
    model = erts_tf.ERTS(make_model(), target_layer="block3", mode="erts", n_samples=len(y),
                         warm_up_epochs=3, cam_start_epoch=1)                           # 2
    model.compile(optimizer="adamw")
    model.fit(ds.shuffle(1024, seed=0).batch(32), epochs=args.epochs,
              callbacks=[model.selection_callback()], verbose=2)                       # 3

    counts = model.state.backprop_count.numpy()
    print(f"back-propagated sample-passes: {counts.sum()} of {args.epochs * len(y)} "
          f"({counts.sum() / (args.epochs * len(y)):.0%}); effective epochs {counts.sum() / len(y):.2f}")
    return counts


if __name__ == "__main__":
    main()
