"""Augmentation: deterministic by (seed, epoch, sample_id), different across them, shape-preserving."""

import numpy as np
import pytest
import tensorflow as tf

from erts_tf.data import augment, pipeline


@pytest.fixture
def record():
    t = np.linspace(0, 10, 1000, dtype=np.float32)
    return np.stack([np.sin(2 * np.pi * 1.2 * t + k) for k in range(3)], axis=-1)  # (1000, 3)


@pytest.mark.parametrize("name", [n for n in augment.AUGMENTATIONS if n != "channel_drop"])
def test_each_augmentation_is_deterministic_in_seed_epoch_and_sample(name, record):
    def run(seed, epoch, sample_id):
        return augment.augment(record, (name,), augment.sample_seed(seed, epoch, sample_id)).numpy()

    a = run(0, 3, 17)
    assert a.shape == record.shape and np.isfinite(a).all()
    assert np.array_equal(a, run(0, 3, 17))
    assert not np.allclose(a, record)  # it changes the record
    for other in (run(1, 3, 17), run(0, 4, 17), run(0, 3, 18)):
        assert not np.array_equal(a, other)


def test_channel_drop_zeroes_whole_channels_at_its_rate_never_all_and_deterministically(record):
    def run(seed, epoch, sample_id, signal=record):
        return augment.augment(signal, ("channel_drop",), augment.sample_seed(seed, epoch, sample_id)).numpy()

    outs = [run(0, 3, i) for i in range(400)]
    dropped = np.array([[np.all(o[:, c] == 0) for c in range(3)] for o in outs])
    for o, d in zip(outs, dropped):  # a channel is either zeroed or untouched
        assert np.array_equal(o[:, ~d], record[:, ~d])
    assert not dropped.all(axis=1).any()  # never every channel
    assert abs(dropped.mean() - augment.CHANNEL_DROP_PROBABILITY) < 0.05  # 1,200 draws: about 0.2 (less the all-dropped)
    assert all(np.array_equal(run(0, 3, i), outs[i]) for i in range(20))
    masks = lambda seed, epoch: [tuple(np.all(run(seed, epoch, i)[:, c] == 0) for c in range(3)) for i in range(40)]
    assert masks(0, 3) != masks(1, 3) and masks(0, 3) != masks(0, 4)
    one = record[:, :1]
    assert all(np.array_equal(run(0, 3, i, one), one) for i in range(20))  # one channel: never dropped


def test_shift_leaves_zeros_where_the_record_moved_away(record):
    out = augment.augment(record, ("shift",), augment.sample_seed(0, 0, 5)).numpy()
    shifted = np.flatnonzero(np.all(out == 0, axis=1))
    assert 0 < len(shifted) <= 100  # at most 10 % of 1000 samples
    assert shifted[0] == 0 or shifted[-1] == len(record) - 1  # the vacated part is at one end


def test_unknown_augmentation_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown augmentation.*blur"):
        augment.parse("shift,blur")
    assert augment.parse(" noise, shift ") == ("noise", "shift")
    assert augment.parse("") == ()


def test_pipeline_augments_kept_records_the_same_way_on_a_resumed_epoch(tiny_data):
    keep = tf.Variable(np.ones(tiny_data.train.n, bool))
    names = augment.AUGMENTATIONS

    def epoch_signals(epoch):
        ds = pipeline.train_dataset(tiny_data.train, keep, 8, seed=3, epoch=epoch, augmentations=names)
        return {int(i): x for xb, _, ib in ds for x, i in zip(xb.numpy(), ib.numpy())}

    first, again, later = epoch_signals(2), epoch_signals(2), epoch_signals(3)
    assert all(np.array_equal(first[i], again[i]) for i in first)  # a resumed epoch sees the same records
    assert any(not np.array_equal(first[i], later[i]) for i in first)
    assert any(not np.allclose(first[i], tiny_data.train.signal[i]) for i in first)
