"""Training-time augmentation of one z-scored record, seeded by ``(seed, epoch, sample_id)``.

Pure TensorFlow, stateless: the same ``(seed, epoch, sample_id)`` gives the same
augmented record, so determinism and resume hold. Applied in the input pipeline
after the keep-mask filter (a dropped record is not augmented either). Amplitudes
are in the units of the z-scored signal (one per-lead standard deviation).

  shift:  a random time shift of up to 10 % of the record, the vacated part zero.
  scale:  each lead's amplitude times ``exp(U(-0.2, 0.2))`` (about 0.82 to 1.22).
  wander: baseline wander, one sinusoid per lead of 0.5 to 3 cycles per record and
          amplitude up to 0.2.
  noise:  Gaussian noise of standard deviation up to 0.05.
  channel_drop: each channel (a lead, or a rhythm channel of mitbih_arrhythmia's
          ``*_rhythm*`` configs) set to zero, its z-scored mean, with probability
          0.2, but never every channel (a record with one channel is left as it is):
          a model cannot lean on one channel alone, e.g. on a beat's shape when its
          timing against the rhythm tells its class.
"""

from __future__ import annotations

import math

import tensorflow as tf

AUGMENTATIONS = ("shift", "scale", "wander", "noise", "channel_drop")
CHANNEL_DROP_PROBABILITY = 0.2


def parse(names: str | None) -> tuple[str, ...]:
    """``"shift,noise"`` -> ``("shift", "noise")``; ``ValueError`` naming an unknown one."""
    chosen = tuple(n.strip() for n in (names or "").split(",") if n.strip())
    unknown = [n for n in chosen if n not in AUGMENTATIONS]
    if unknown:
        raise ValueError(f"unknown augmentation(s) {', '.join(unknown)}; choose from {', '.join(AUGMENTATIONS)}")
    return chosen


def sample_seed(seed: int, epoch: int | tf.Tensor, sample_id: tf.Tensor) -> tf.Tensor:
    """``(2,)`` int64 stateless seed of one sample in one epoch (``epoch``: an int or an int64 scalar tensor)."""
    return tf.stack([tf.constant(seed * 1_000_003, tf.int64) + tf.cast(epoch, tf.int64), tf.cast(sample_id, tf.int64)])


def augment(signal: tf.Tensor, names: tuple[str, ...], seed: tf.Tensor) -> tf.Tensor:
    """Applies ``names`` (in ``AUGMENTATIONS`` order) to ``signal`` ``(time, leads)``; ``seed`` ``(2,)``."""
    signal = tf.convert_to_tensor(signal, tf.float32)
    time_steps, leads = tf.shape(signal)[0], tf.shape(signal)[1]
    for k, name in enumerate(AUGMENTATIONS):
        if name not in names:
            continue
        s = tf.random.experimental.stateless_fold_in(seed, k)
        if name == "shift":
            limit = tf.maximum(1, time_steps // 10)
            shift = tf.random.stateless_uniform([], s, minval=-limit, maxval=limit + 1, dtype=tf.int32)
            index = tf.range(time_steps) - shift
            valid = tf.logical_and(index >= 0, index < time_steps)
            signal = tf.where(valid[:, None], tf.roll(signal, shift, axis=0), 0.0)
        elif name == "scale":
            signal = signal * tf.exp(tf.random.stateless_uniform([1, leads], s, -0.2, 0.2))
        elif name == "wander":
            s1, s2, s3 = tf.unstack(tf.random.experimental.stateless_split(s, 3))
            cycles = tf.random.stateless_uniform([], s1, 0.5, 3.0)
            phase = tf.random.stateless_uniform([1, leads], s2, 0.0, 2 * math.pi)
            amplitude = tf.random.stateless_uniform([1, leads], s3, 0.0, 0.2)
            t = tf.cast(tf.range(time_steps), tf.float32)[:, None] / tf.cast(time_steps, tf.float32)
            signal = signal + amplitude * tf.sin(2 * math.pi * cycles * t + phase)
        elif name == "noise":
            s1, s2 = tf.unstack(tf.random.experimental.stateless_split(s, 2))
            sigma = tf.random.stateless_uniform([], s1, 0.0, 0.05)
            signal = signal + sigma * tf.random.stateless_normal(tf.shape(signal), s2)
        elif name == "channel_drop":
            kept = tf.random.stateless_uniform([leads], s) >= CHANNEL_DROP_PROBABILITY
            kept = tf.logical_or(kept, tf.logical_not(tf.reduce_any(kept)))  # all dropped: keep all
            signal = signal * tf.cast(kept, tf.float32)[None, :]
    return signal


def augment_batch(signal: tf.Tensor, names: tuple[str, ...], seed: int, epoch: int | tf.Tensor, sample_ids: tf.Tensor) -> tf.Tensor:
    """``augment`` of every record of ``signal`` ``(batch, time, leads)``, each seeded by ``(seed, epoch, sample_id)``
    (``sample_ids`` ``(batch,)``): the same records as augmenting them one by one."""
    return tf.map_fn(lambda record: augment(record[0], names, sample_seed(seed, epoch, record[1])),
                     (signal, sample_ids), fn_output_signature=tf.float32)
