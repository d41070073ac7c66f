"""``--data_backend=lazy``: records read by sample id from ArrayRecord give what the memory backend gives."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

import run_helpers
from erts_tf.data import augment, lazy, pipeline
from erts_tf.training import run
from erts_tf.training.config import RunConfig


@pytest.fixture(scope="module")
def lazy_data(tfds_dir, tiny_data):
    """``synthetic_ecg/tiny`` on the lazy backend (its ArrayRecord copy written into the session's data dir)."""
    return run.load_data(RunConfig(output_dir="unused", dataset_config="tiny", data_dir=tfds_dir, data_backend="lazy"))


class _CountingSource:
    """A data source that records which positions were read."""

    def __init__(self, source):
        self.source, self.read = source, []

    def __getitems__(self, positions):
        self.read.extend(positions)
        return self.source.__getitems__(positions)


def _batches(ds):
    return [tuple(t.numpy() for t in batch) for batch in ds]


def test_a_lazy_split_holds_the_memory_split_without_its_signal(lazy_data, tiny_data):
    for name in ("train", "validation", "test"):
        lazy_split, memory = getattr(lazy_data, name), getattr(tiny_data, name)
        assert isinstance(lazy_split.signal, lazy.LazySignal)
        assert lazy_split.signal.shape == memory.signal.shape and lazy_split.input_shape == memory.input_shape
        np.testing.assert_array_equal(lazy_split.label, memory.label)
        assert lazy_split.extras.keys() == memory.extras.keys() and lazy_split.extra_names == memory.extra_names
        for key, values in memory.extras.items():
            np.testing.assert_array_equal(lazy_split.extras[key], values)
        # the same z-scored records, read by sample id (int, slice, ids, mask)
        np.testing.assert_array_equal(lazy_split.signal[np.arange(memory.n)], memory.signal)
    signal = lazy_data.train.signal
    np.testing.assert_array_equal(signal[7], tiny_data.train.signal[7])
    np.testing.assert_array_equal(signal[10:20], tiny_data.train.signal[10:20])
    mask = tiny_data.train.label == 1
    np.testing.assert_array_equal(signal[mask], tiny_data.train.signal[mask])
    with pytest.raises(TypeError, match="index it"):
        np.asarray(signal)


def _counted(split):
    """``split`` reading through a ``_CountingSource`` (returned too)."""
    source = _CountingSource(split.signal.source)
    return dataclasses.replace(split, signal=lazy.LazySignal(source, split.signal.positions,
                                                             split.signal.record_shape, split.signal.decode)), source


def test_exclude_classes_selects_without_reading(lazy_data, tiny_data):
    name = tiny_data.train.class_names[1]
    split, source = _counted(lazy_data.train)
    out = pipeline.exclude_classes(split, (name,))
    assert source.read == []
    expected = pipeline.exclude_classes(tiny_data.train, (name,))
    np.testing.assert_array_equal(out.label, expected.label)
    np.testing.assert_array_equal(out.signal[np.arange(out.n)], expected.signal)


def test_both_backends_give_identical_batches_and_read_counts(lazy_data, tiny_data):
    n = tiny_data.train.n
    keep = tf.Variable(np.random.default_rng(0).random(n) < 0.4)
    results = {}
    for backend, split in (("memory", tiny_data.train), ("lazy", lazy_data.train)):
        reads = tf.Variable(tf.constant(0, tf.int64))
        ds = pipeline.train_dataset(split, keep, 8, seed=1, epoch=2, read_counter=reads,
                                    augmentations=augment.AUGMENTATIONS)
        results[backend] = (_batches(ds), int(reads.numpy()), int(ds.cardinality()))
    (memory, memory_reads, memory_steps), (lazy_batches, lazy_reads, lazy_steps) = results["memory"], results["lazy"]
    assert memory_reads == lazy_reads == int(keep.numpy().sum()) and memory_steps == lazy_steps == len(memory)
    for a, b in zip(memory, lazy_batches, strict=True):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    for a, b in zip(_batches(pipeline.eval_dataset(tiny_data.validation, 5)),
                    _batches(pipeline.eval_dataset(lazy_data.validation, 5)), strict=True):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)


def test_a_dropped_record_is_never_read_from_disk(lazy_data):
    split = lazy_data.train
    counted, source = _counted(split)
    keep = np.zeros(split.n, bool)
    keep[[3, 17, 40, 41, 95]] = True
    reads = tf.Variable(tf.constant(0, tf.int64))
    ids = np.concatenate([b[2] for b in _batches(pipeline.train_dataset(counted, tf.Variable(keep), 2, 0, 0, reads))])
    assert sorted(ids) == [3, 17, 40, 41, 95] and int(reads.numpy()) == 5
    assert sorted(source.read) == sorted(split.signal.positions[keep].tolist())  # each kept record once, nothing else


def test_augmenting_a_batch_equals_augmenting_each_record(tiny_data):
    signal = tf.constant(tiny_data.train.signal[:4])
    ids = tf.constant([5, 0, 9, 2], tf.int64)
    batch = augment.augment_batch(signal, augment.AUGMENTATIONS, 3, 1, ids).numpy()
    for k in range(4):
        one = augment.augment(signal[k], augment.AUGMENTATIONS, augment.sample_seed(3, 1, ids[k])).numpy()
        np.testing.assert_array_equal(batch[k], one)


def test_training_decisions_and_resume_are_identical_on_both_backends(tiny_config, tiny_data, lazy_data, tmp_path):
    memory = run.run(tiny_config(mode="erts_smrd", output_dir=str(tmp_path / "memory")), tiny_data)
    lazy_run = run.run(tiny_config(mode="erts_smrd", output_dir=str(tmp_path / "lazy"), data_backend="lazy"), lazy_data)
    audit = (tmp_path / "memory" / "audit.csv").read_text()
    assert (tmp_path / "lazy" / "audit.csv").read_text() == audit and audit.count("\n") > 1
    assert run_helpers.decisions(lazy_run) == run_helpers.decisions(memory)  # keep-masks (crc32), samples_read and every counter
    assert len({e["keep_crc32"] for e in memory["epochs"]}) > 1
    assert lazy_run["test"]["macro_f1"] == memory["test"]["macro_f1"]

    killed = tiny_config(mode="erts_smrd", output_dir=str(tmp_path / "killed"), data_backend="lazy")
    with pytest.raises(run_helpers.Killed):
        run.run(killed, lazy_data, extra_callbacks=[run_helpers.StopAfter(2)])
    assert not (tmp_path / "killed" / "summary.json").exists()
    resumed = run.run(dataclasses.replace(killed, resume=True), lazy_data)
    assert (tmp_path / "killed" / "audit.csv").read_text() == audit
    assert run_helpers.decisions(resumed) == run_helpers.decisions(memory)


@pytest.mark.parametrize("encoding", [None, "BYTES"])
def test_the_signal_decoder_parses_what_tfds_serialized(encoding):
    """Records of several lengths, stored as a float list or as raw bytes, come back zero-padded to the longest."""
    import tensorflow_datasets as tfds

    kwargs = {"encoding": tfds.features.Encoding.BYTES} if encoding else {}
    feature = tfds.features.FeaturesDict({"signal": tfds.features.Tensor(shape=(None, 2), dtype=np.float32, **kwargs)})
    records = [np.arange(6, dtype=np.float32).reshape(3, 2) + 0.5, -np.ones((5, 2), np.float32)]
    serialized = tf.constant([feature.serialize_example({"signal": r}) for r in records])
    got = lazy.SignalDecoder(feature["signal"])(serialized).numpy()
    assert got.shape == (2, 5, 2)
    np.testing.assert_array_equal(got[0, :3], records[0])
    np.testing.assert_array_equal(got[0, 3:], 0.0)
    np.testing.assert_array_equal(got[1], records[1])
    assert lazy.SignalDecoder(feature["signal"])(tf.constant([], tf.string)).shape[0] == 0


def test_a_compressed_signal_is_refused_by_name():
    import tensorflow_datasets as tfds

    feature = tfds.features.Tensor(shape=(10, 1), dtype=np.float32, encoding=tfds.features.Encoding.ZLIB)
    with pytest.raises(ValueError, match="raw bytes"):
        lazy.SignalDecoder(feature)
