"""Windows of records (``--window_s``): crops seeded by (seed, epoch, sample_id), evaluation over several
windows, both backends on whole recordings of several lengths (cinc2017 ``full`` on dummy data)."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

import physionet_dummy_data as dummy
import run_helpers
from erts_tf import inference
from erts_tf.data import flat, lazy, pipeline, windows
from erts_tf.training import run
from erts_tf.training.config import RunConfig

SPEC = windows.WindowSpec(900, 450, "mean")  # 3 s at 300 Hz, evaluation windows every 1.5 s


@pytest.fixture(scope="module")
def full_cinc(tmp_path_factory):
    """``(tfds_dir, manual_dir)`` of cinc2017 ``full`` built from dummy records of 2700-12000 samples."""
    manual = tmp_path_factory.mktemp("cinc_manual")
    dummy.write_cinc2017(manual / "training2017", per_class=10)
    data_dir = str(tmp_path_factory.mktemp("cinc_tfds"))
    pipeline.prepare("cinc2017", "full", data_dir, str(manual), backend="lazy")
    return data_dir, str(manual)


def _split(full_cinc, backend, split="train", window=SPEC):
    builder = pipeline.prepare("cinc2017", "full", full_cinc[0], full_cinc[1], backend=backend)
    return pipeline.load_split(builder, split, backend, window)


def _record(split, i):
    """The raw record ``(time, leads)`` of sample id ``i`` of a memory-backend split on windows."""
    store = split.signal
    return store.flat[store.offsets[i]:store.offsets[i] + store.lengths[i]]


def _batches(ds):
    return [tf.nest.map_structure(lambda t: t.numpy(), batch) for batch in ds]


# -- pure rules ----------------------------------------------------------------------------------------
def test_crop_starts_depend_on_seed_epoch_and_sample_id_only():
    lengths = tf.constant([1000, 1000, 1000, 300, 250], tf.int64)
    ids = tf.constant([4, 9, 2, 7, 3], tf.int64)
    starts = windows.crop_starts(lengths, 250, 0, 1, ids).numpy()
    assert ((starts >= 0) & (starts <= lengths.numpy() - 250)).all() and starts[-1] == 0
    # the same ids in another batch, another order: the same starts (what a resumed run reads)
    again = windows.crop_starts(tf.gather(lengths, [3, 0, 2]), 250, 0, 1, tf.gather(ids, [3, 0, 2])).numpy()
    np.testing.assert_array_equal(again, starts[[3, 0, 2]])
    many = tf.fill([200], tf.constant(1000, tf.int64))
    by_epoch = [windows.crop_starts(many, 250, 0, e, tf.range(200, dtype=tf.int64)).numpy() for e in (1, 2)]
    by_seed = windows.crop_starts(many, 250, 1, 1, tf.range(200, dtype=tf.int64)).numpy()
    assert (by_epoch[0] != by_epoch[1]).mean() > 0.9 and (by_epoch[0] != by_seed).mean() > 0.9
    assert by_epoch[0].min() < 100 and by_epoch[0].max() > 650  # spread over 0..750


def test_evaluation_windows_cover_every_record_to_its_end():
    starts, valid = windows.eval_starts(tf.constant([1000, 1010, 100]), 250, 125)
    starts, valid = starts.numpy(), valid.numpy()
    np.testing.assert_array_equal(starts[0][valid[0]], [0, 125, 250, 375, 500, 625, 750])  # the PTB-XL benchmark's 7
    np.testing.assert_array_equal(starts[1][valid[1]], [0, 125, 250, 375, 500, 625, 750, 760])  # last ends at 1010
    np.testing.assert_array_equal(starts[2][valid[2]], [0])  # shorter than the window: one, zero-padded
    np.testing.assert_array_equal(windows.window_counts(np.array([1000, 1010, 100]), 250, 125), [7, 8, 1])


def test_aggregation_by_hand():
    probs = tf.constant([[[0.6, 0.4], [0.2, 0.8], [0.9, 0.1]],
                         [[0.3, 0.7], [1.0, 0.0], [1.0, 0.0]]])
    valid = tf.constant([[True, True, True], [True, False, False]])
    np.testing.assert_allclose(windows.aggregate(probs, valid, "mean"), [[1.7 / 3, 1.3 / 3], [0.3, 0.7]], rtol=1e-6)
    np.testing.assert_allclose(windows.aggregate(probs, valid, "max"), [[0.9, 0.8], [0.3, 0.7]])
    np.testing.assert_allclose(windows.aggregate_valid(tf.constant([[1.0, 2.0, 6.0], [4.0, 9.0, 9.0]]), valid), [3, 4])


def test_bad_windows_are_refused():
    with pytest.raises(ValueError, match="exceeds the window"):
        windows.WindowSpec(250, 300)
    with pytest.raises(ValueError, match="aggregate"):
        windows.WindowSpec(250, 125, "median")
    with pytest.raises(ValueError, match="sampling rate"):
        windows.from_seconds(2.5, 0, "mean", None)
    assert windows.from_seconds(2.5, 0, "max", 100) == windows.WindowSpec(250, 125, "max")
    assert windows.from_seconds(0, 0, "mean", 100) is None


def test_flat_store_windows_are_the_records_slices():
    rng = np.random.default_rng(0)
    records = [rng.normal(size=(n, 2)).astype(np.float32) for n in (10, 4, 7)]
    store = flat.FlatSignal(np.concatenate(records), [0, 10, 14], [10, 4, 7]).take(np.array([2, 0, 1]))
    starts = np.array([[3, 0], [6, 1], [0, 0]])
    got = store.window_reader(5)(tf.constant([0, 1, 2]), tf.constant(starts)).numpy()
    for i, record in enumerate([records[2], records[0], records[1]]):
        np.testing.assert_array_equal(got[i], windows.slice_windows(record, starts[i], 5))
    assert not got[0, 0, 4:].any() and not got[2, 0, 4:].any()  # zero past the end (7 - 3 = 4; 4 samples)


# -- both backends on records of several lengths ------------------------------------------------------------
def test_both_backends_give_identical_windowed_batches_and_reads(full_cinc):
    memory, lazy_split = _split(full_cinc, "memory"), _split(full_cinc, "lazy")
    assert isinstance(memory.signal, flat.FlatSignal) and isinstance(lazy_split.signal, lazy.LazySignal)
    assert len(set(memory.lengths.tolist())) > 1 and memory.input_shape == lazy_split.input_shape == (900, 1)
    np.testing.assert_array_equal(memory.lengths, lazy_split.lengths)
    keep = tf.Variable(np.arange(memory.n) % 3 != 0)
    results = []
    for split in (memory, lazy_split):
        reads = tf.Variable(tf.constant(0, tf.int64))
        batches = _batches(pipeline.train_dataset(split, keep, 4, seed=1, epoch=2, read_counter=reads,
                                                  augmentations=("scale", "noise")))
        results.append((batches, int(reads.numpy())))
        assert batches[0][0].shape == (4, 900, 1)
    assert results[0][1] == results[1][1] == int(keep.numpy().sum())
    for a, b in zip(results[0][0], results[1][0], strict=True):
        tf.nest.map_structure(np.testing.assert_array_equal, a, b)
    evaluated = [_batches(pipeline.eval_dataset(s, 5)) for s in (memory, lazy_split)]
    for a, b in zip(*evaluated, strict=True):
        tf.nest.map_structure(np.testing.assert_array_equal, a, b)
    (w, valid), _, ids = evaluated[0][0]
    np.testing.assert_array_equal(valid.sum(1), windows.window_counts(memory.lengths[ids], 900, 450))


def test_one_stream_gives_every_epoch_what_a_fresh_pipeline_gives(full_cinc):
    """A run's pipeline is built once (``TrainStream``): each epoch's order, crops, augmentation and keep-mask
    (changed between epochs) are those of a pipeline built for that epoch alone, and so are the reads."""
    split = _split(full_cinc, "memory")
    keep = tf.Variable(np.ones(split.n, bool))
    stream_reads, fresh_reads = tf.Variable(tf.constant(0, tf.int64)), tf.Variable(tf.constant(0, tf.int64))
    stream = pipeline.TrainStream(split, keep, 4, seed=5, read_counter=stream_reads, augmentations=("shift", "noise"))
    for epoch, kept in enumerate([np.ones(split.n, bool), np.arange(split.n) % 3 == 1, np.arange(split.n) < 7]):
        keep.assign(kept)
        from_stream = _batches(stream.epoch_dataset(epoch))
        fresh = _batches(pipeline.train_dataset(split, keep, 4, seed=5, epoch=epoch, read_counter=fresh_reads,
                                                augmentations=("shift", "noise")))
        assert len(from_stream) == len(fresh) == -(-int(kept.sum()) // 4)
        for a, b in zip(from_stream, fresh, strict=True):
            tf.nest.map_structure(np.testing.assert_array_equal, a, b)
        assert int(stream_reads.numpy()) == int(fresh_reads.numpy())
    assert sorted(np.concatenate([ids for _, _, ids in from_stream]).tolist()) == list(range(7))


def test_a_crop_is_the_records_window_z_scored(full_cinc):
    split = _split(full_cinc, "memory")
    ((x, _, ids),) = _batches(pipeline.train_dataset(split, None, split.n, seed=0, epoch=3))
    starts = windows.crop_starts(tf.constant(split.lengths[ids]), 900, 0, 3, tf.constant(ids)).numpy()
    for k in (0, 5, 17):
        i = ids[k]
        record = _record(split, i)
        np.testing.assert_allclose(x[k], pipeline.zscore(record[starts[k]:starts[k] + 900]), atol=1e-5)


def test_rescoring_reads_the_epochs_training_crop(full_cinc):
    """Dropped records are re-scored on the crop the training step of that epoch would read (before augmentation)."""
    split = _split(full_cinc, "memory")
    ids = np.array([5, 0, 3])
    (signal, label, got_ids), = _batches(pipeline.rescore_dataset(split, 8, ids, seed=0, epoch=2))
    np.testing.assert_array_equal(got_ids, ids)
    trained = {}
    for x, _, i in _batches(pipeline.train_dataset(split, None, 8, seed=0, epoch=2)):
        trained.update(zip(i.tolist(), x))
    assert signal.shape == (3, 900, 1)
    for row, i in zip(signal, ids):
        np.testing.assert_allclose(row, trained[int(i)], rtol=1e-6, atol=1e-6)


def test_a_dropped_record_is_never_read_when_cropping(full_cinc):
    split = _split(full_cinc, "lazy")
    read = []

    class Counting:
        def __getitems__(self, positions):
            read.extend(positions)
            return split.signal.source.__getitems__(positions)

    counted = dataclasses.replace(split, signal=lazy.LazySignal(Counting(), split.signal.positions,
                                                                split.signal.record_shape, split.signal.decode))
    keep = np.zeros(split.n, bool)
    keep[[1, 8, 20]] = True
    _batches(pipeline.train_dataset(counted, tf.Variable(keep), 2, 0, 0))
    assert sorted(read) == sorted(split.signal.positions[keep].tolist())


def test_split_probabilities_aggregate_the_windows_by_hand(full_cinc):
    split = _split(full_cinc, "lazy", "validation")
    inputs = keras.Input((900, 1))
    logits = keras.layers.Dense(4, kernel_initializer="glorot_uniform")(keras.layers.Flatten()(inputs))
    backbone = keras.Model(inputs, logits)
    memory = _split(full_cinc, "memory", "validation")
    for how in windows.AGGREGATES:
        got = inference.split_probs(backbone, dataclasses.replace(split, window=dataclasses.replace(SPEC, aggregate=how)), 3)
        for i in range(memory.n):
            record = _record(memory, i)
            starts = np.minimum(np.arange(windows.window_counts(memory.lengths[i:i + 1], 900, 450)[0]) * 450,
                                max(memory.lengths[i] - 900, 0))
            each = tf.nn.softmax(backbone(pipeline.zscore(windows.slice_windows(record, starts, 900)))).numpy()
            expected = each.mean(0) if how == "mean" else each.max(0)
            np.testing.assert_allclose(got[i], expected, rtol=1e-5, atol=1e-6)


def test_whole_records_of_several_lengths_need_windows(full_cinc):
    builder = pipeline.prepare("cinc2017", "full", full_cinc[0], full_cinc[1])
    with pytest.raises(ValueError, match="--window_s"):
        pipeline.load_split(builder, "train", "memory")


# -- a run on windows --------------------------------------------------------------------------------------
def _config(full_cinc, tmp_path, name, **overrides):
    base = dict(output_dir=str(tmp_path / name), dataset="cinc2017", dataset_config="full", data_dir=full_cinc[0],
                manual_dir=full_cinc[1], window_s=3.0, eval_window_stride_s=1.5, epochs=4, batch_size=8,
                warm_up_epochs=1, cam_start_epoch=1, start_revision=-1, rescore_every=1, tau=0.6, mode="erts_smrd",
                model="tiny_cnn", augment="shift", verbose=0, report=False, tensorboard_images_every=0)
    return RunConfig(**{**base, **overrides})


def test_a_windowed_run_is_identical_on_both_backends_and_after_resume(full_cinc, tmp_path):
    memory = run.run(_config(full_cinc, tmp_path, "memory"))
    lazy_run = run.run(_config(full_cinc, tmp_path, "lazy", data_backend="lazy"))
    assert run_helpers.decisions(lazy_run) == run_helpers.decisions(memory) and lazy_run["test"] == memory["test"]
    assert len({e["keep_crc32"] for e in memory["epochs"]}) > 1  # selection dropped records
    assert memory["dataset"]["input_shape"] == [900, 1]
    rescored = [e for e in memory["epochs"] if e["forward_score"]]
    assert rescored, "no epoch re-scored its dropped records"
    for e in rescored:  # one forward (and Grad-CAM) per re-scored record: its crop, not every evaluation window
        assert e["forward_score"] == e["samples_read"] - e["kept"] and e["gradcam"] >= e["forward_score"]
    killed = _config(full_cinc, tmp_path, "killed", data_backend="lazy")
    with pytest.raises(run_helpers.Killed):
        run.run(killed, extra_callbacks=[run_helpers.StopAfter(1)])
    resumed = run.run(dataclasses.replace(killed, resume=True))
    # the same crops, so the same scores and decisions
    assert run_helpers.decisions(resumed) == run_helpers.decisions(memory)
    assert (tmp_path / "killed" / "audit.csv").read_text() == (tmp_path / "memory" / "audit.csv").read_text()


def test_a_raw_recording_is_scored_as_evaluation_scores_it(full_cinc):
    """``inference.recording_probs`` with a model that z-scores its raw input (as the exported one does) gives
    the probabilities evaluation gives the same record."""
    split = _split(full_cinc, "memory", "test")
    inputs = keras.Input((900, 1))
    backbone = keras.Model(inputs, keras.layers.Dense(4)(keras.layers.Flatten()(inputs)))
    evaluated = inference.split_probs(backbone, split, 4)

    def served(raw):
        return tf.nn.softmax(backbone(pipeline.zscore_tf(raw))).numpy()

    for i in range(split.n):
        record = _record(split, i)
        np.testing.assert_allclose(inference.recording_probs(served, record, SPEC), evaluated[i], rtol=1e-5, atol=1e-6)


def test_windows_need_a_sampling_rate_and_must_fit_fixed_length_records(tfds_dir, tiny_data):
    with pytest.raises(run.RunError, match="sampling rate"):  # synthetic_ecg declares none
        run.load_data(RunConfig(output_dir="unused", dataset_config="tiny", data_dir=tfds_dir, window_s=2.0))
    builder = pipeline.prepare("synthetic_ecg", "tiny", tfds_dir)
    time_steps = tiny_data.train.signal.shape[1]
    with pytest.raises(ValueError, match="longer than the records"):
        pipeline.load_split(builder, "train", "memory", windows.WindowSpec(time_steps + 1, 10))
    fixed = pipeline.load_split(builder, "train", "memory", windows.WindowSpec(time_steps // 4, time_steps // 8))
    assert isinstance(fixed.signal, flat.FlatSignal) and fixed.input_shape == (time_steps // 4, 12)
    np.testing.assert_array_equal(fixed.lengths, time_steps)


def test_export_of_a_run_on_windows_serves_a_window(full_cinc, tmp_path):
    """The exported model takes a raw window of the trained length; its parity is checked on raw windows."""
    from export.run import export_run

    config = _config(full_cinc, tmp_path, "export", epochs=1, mode="full")
    run.run(config)
    parity = export_run(config.output_dir, variants=(), n_samples=3, calibration_samples=4)
    assert parity["passed"] and parity["input_shape"] == [None, 900, 1]
    first = _split(full_cinc, "memory", "test")
    assert parity["n"] == windows.window_counts(first.lengths[:3], 900, 450).sum()  # every window of 3 records
    assert parity["metadata"]["input"]["length_samples"] == 900 and parity["metadata"]["input"]["duration_s"] == 3.0


def test_predict_scores_a_whole_recording_on_the_runs_windows(full_cinc, tmp_path):
    """``export.predict`` on a WFDB file of a test recording gives the probabilities evaluation gave that
    record (every window of it, mean-aggregated), not those of its first window."""
    import wfdb

    from erts_tf import run_folder
    from export.predict import predict
    from export.run import export_run

    config = _config(full_cinc, tmp_path, "predict", epochs=3, mode="full", lr=0.01)
    run.run(config)
    export_dir = tmp_path / "predict_export"
    export_run(config.output_dir, str(export_dir), variants=(), n_samples=2, calibration_samples=4,
               facts={"sampling_rate_hz": 300, "lead_names": ["ECG"]})
    split = _split(full_cinc, "memory", "test")
    evaluated = inference.split_probs(run_folder.load_model(config.output_dir), split, 4)
    long_ones = [i for i in range(split.n) if split.lengths[i] > 2 * 900][:2]
    assert long_ones, "the dummy test split holds no recording longer than two windows"
    for i in long_ones:
        record = _record(split, i)
        wfdb.wrsamp(f"rec{i}", fs=300, units=["mV"], sig_name=["ECG"], p_signal=record.astype(np.float64),
                    fmt=["32"], write_dir=str(tmp_path))
        (row,) = predict(str(export_dir), str(tmp_path / f"rec{i}.hea"))["rows"]
        assert row["samples"] == len(record)
        np.testing.assert_allclose(row["probabilities"], evaluated[i], atol=1e-4)


def test_a_cross_validation_fold_of_windowed_records_reads_their_windows(full_cinc, tmp_path):
    from erts_tf import run_data
    from erts_tf.data import folds

    whole = _config(full_cinc, tmp_path, "unused")
    builder = run_data.prepare_builder(whole)
    splits = [run_data.load_split(builder, whole, s) for s in ("train", "validation")]
    first_windows = np.concatenate([s.model_inputs(np.arange(s.n)) for s in splits])
    lengths = np.concatenate([s.lengths for s in splits])
    groups = np.concatenate([s.extras["record"] for s in splits])
    for fold in range(3):
        held = folds.group_folds(groups, 3) == fold
        train, held_out, _ = run_data.load_splits(builder, dataclasses.replace(whole, cv_folds=3, cv_fold=fold))
        assert held_out.window == SPEC and held.sum() == held_out.n
        for part, mask in ((held_out, held), (train, ~held)):
            np.testing.assert_array_equal(part.lengths, lengths[mask])
            np.testing.assert_array_equal(part.model_inputs(np.arange(part.n)), first_windows[mask])
