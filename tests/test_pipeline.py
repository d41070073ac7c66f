"""Input pipeline: the keep-mask filter, reads counted, z-score, stable sample ids (on both data backends)."""

import numpy as np
import pytest
import tensorflow as tf

from erts_tf.data import pipeline, registry


@pytest.fixture(scope="module", params=pipeline.BACKENDS)
def train(request, tfds_dir, tiny_data):
    """The train split of ``synthetic_ecg/tiny`` on each data backend."""
    if request.param == "memory":
        return tiny_data.train
    return pipeline.load_split(pipeline.prepare("synthetic_ecg", "tiny", tfds_dir, backend="lazy"), "train", "lazy")


def _ids(ds):
    return np.concatenate([ids.numpy() for _, _, ids in ds])


def test_keep_mask_yields_exactly_the_kept_ids_and_knows_its_batch_count(train):
    n = train.n
    keep = tf.Variable(np.zeros(n, bool))
    reads = tf.Variable(tf.constant(0, tf.int64))
    chosen = np.array([3, 17, 40, 41, 95])
    keep.assign(np.isin(np.arange(n), chosen))
    ds = pipeline.train_dataset(train, keep, batch_size=2, seed=0, epoch=0, read_counter=reads)
    assert sorted(_ids(ds)) == chosen.tolist()
    assert int(reads.numpy()) == len(chosen)  # dropped records were never read
    assert int(ds.cardinality()) == 3  # 5 kept at batch 2: the progress bar and the step count agree
    keep.assign(np.ones(n, bool))  # a mask changed after the dataset was built fails loudly, never silently
    with pytest.raises(tf.errors.FailedPreconditionError):
        _ids(ds)
    fresh = pipeline.train_dataset(train, keep, batch_size=2, seed=0, epoch=0, read_counter=reads)
    assert sorted(_ids(fresh)) == list(range(n)) and int(fresh.cardinality()) == -(-n // 2)


def test_epoch_order_is_seeded_by_seed_and_epoch(train):
    keep = tf.Variable(np.ones(train.n, bool))
    a = _ids(pipeline.train_dataset(train, keep, 8, seed=1, epoch=2))
    b = _ids(pipeline.train_dataset(train, keep, 8, seed=1, epoch=2))
    c = _ids(pipeline.train_dataset(train, keep, 8, seed=1, epoch=3))
    assert (a == b).all() and (a != c).any()


def test_signals_and_labels_follow_their_sample_id(train, tiny_data):
    keep = tf.Variable(np.ones(train.n, bool))
    for signal, label, ids in pipeline.train_dataset(train, keep, 32, seed=0, epoch=0).take(1):
        np.testing.assert_array_equal(signal.numpy(), tiny_data.train.signal[ids.numpy()])
        np.testing.assert_array_equal(label.numpy(), tiny_data.train.label[ids.numpy()])


def test_zscore_of_constant_or_nan_lead_is_finite():
    signal = np.random.default_rng(0).normal(size=(2, 100, 3)).astype(np.float32)
    signal[0, :, 1] = 5.0
    signal[1, 10, 2] = np.nan
    z = pipeline.zscore(signal)
    assert np.isfinite(z).all()
    np.testing.assert_allclose(z[0, :, 1], 0.0)
    np.testing.assert_allclose(z[0, :, 0].std(), 1.0, rtol=1e-4)
    np.testing.assert_allclose(pipeline.zscore_tf(tf.constant(signal)).numpy(), z, atol=1e-5)


@pytest.mark.parametrize("backend", pipeline.BACKENDS)
def test_sample_ids_and_records_are_stable_across_two_builds(backend, tmp_path, tiny_data):
    builder = pipeline.prepare("synthetic_ecg", "tiny", str(tmp_path), backend=backend)
    again = pipeline.load_split(builder, "train", backend)
    np.testing.assert_array_equal(again.label, tiny_data.train.label)
    np.testing.assert_array_equal(again.signal[np.arange(again.n)], tiny_data.train.signal)
    np.testing.assert_array_equal(again.extras["corruption"], tiny_data.train.extras["corruption"])


def test_unknown_dataset_names_the_choices():
    import pytest

    with pytest.raises(FileNotFoundError, match="synthetic_ecg"):
        registry.builder("no_such_dataset")


def test_exclude_classes_removes_a_class_and_renumbers_the_rest(train, tiny_data):
    name = train.class_names[1]
    out = pipeline.exclude_classes(train, (name,))
    assert out.class_names == [c for c in train.class_names if c != name]
    assert out.n == int(np.sum(train.label != 1)) and out.n < train.n
    kept = train.label != 1
    np.testing.assert_array_equal(out.signal[np.arange(out.n)], tiny_data.train.signal[kept])
    # every remaining sample keeps its class name
    assert [out.class_names[c] for c in out.label] == [train.class_names[c] for c in train.label[kept]]
    for key, values in out.extras.items():
        np.testing.assert_array_equal(values, train.extras[key][kept])
    with pytest.raises(ValueError, match="no class X"):
        pipeline.exclude_classes(train, ("X",))


def test_worker_shards_split_each_global_batch_and_read_only_their_part(train):
    """Two workers of two replicas each: interleaved by global batch, their replicas' parts are the one-device
    batches, and each worker reads only its records."""
    keep = tf.Variable(np.random.default_rng(1).random(train.n) < 0.7)
    whole = [ids.numpy() for _, _, ids in pipeline.train_dataset(train, keep, 10, seed=2, epoch=3)]
    parts, reads = [], []
    for worker in range(2):
        counter = tf.Variable(tf.constant(0, tf.int64))
        shard = pipeline.Shard((2 * worker, 2 * worker + 1), 4)
        ds = pipeline.train_dataset(train, keep, 10, seed=2, epoch=3, read_counter=counter, shard=shard)
        parts.append([ids.numpy() for _, _, ids in ds])
        assert int(ds.cardinality()) == 2 * len(whole)
        reads.append(int(counter.numpy()))
    for g, batch in enumerate(whole):
        replicas = parts[0][2 * g:2 * g + 2] + parts[1][2 * g:2 * g + 2]
        np.testing.assert_array_equal(np.concatenate(replicas), batch)
        assert [len(p) for p in replicas] == [(q + 1) * len(batch) // 4 - q * len(batch) // 4 for q in range(4)]
    assert sum(reads) == int(keep.numpy().sum()) and max(reads) < int(keep.numpy().sum())


def test_a_prepared_dataset_is_read_without_taking_the_preparing_lock(tfds_dir, tiny_data, monkeypatch):
    """A prepared data_dir is only read (it may be read-only), so the lock file is neither made nor needed."""
    from erts_tf.data import file_lock

    def refuse(path):
        raise AssertionError(f"took the lock {path} for a prepared dataset")

    monkeypatch.setattr(file_lock, "exclusive", refuse)
    builder = pipeline.prepare("synthetic_ecg", "tiny", tfds_dir)  # prepared by tiny_data
    assert builder.is_prepared() and builder.info.splits["train"].num_examples == tiny_data.train.n
    with pytest.raises(AssertionError, match="took the lock"):  # one that is not prepared takes it
        pipeline.prepare("synthetic_ecg", "quickstart", tfds_dir + "_fresh")
