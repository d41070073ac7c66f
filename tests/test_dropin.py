"""The drop-in API on models the test defines itself (Sequential and functional); what epoch level
reads is counted by the user's own loader."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

import erts_tf
from erts_tf.selection.policies import Reason


def _arrays(n=64, length=128, seed=0):
    """``(x (n, length, 2) float32, y (n,) int)``: class evidence is a local bump at a class-dependent place."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(size=(n, length, 2)).astype(np.float32)
    for i, c in enumerate(y):
        x[i, 20 + 40 * c : 30 + 40 * c, 0] += 4.0
    return x, y


def _data(n=64):
    x, y = _arrays(n)
    return tf.data.Dataset.from_tensor_slices((x, y)), n


def _sequential():
    return keras.Sequential([
        keras.Input((128, 2)),
        layers.Conv1D(8, 5, padding="same", activation="relu", name="block1"),
        layers.Conv1D(8, 5, strides=2, padding="same", activation="relu", name="block3"),
        layers.GlobalAveragePooling1D(),
        layers.Dense(3),
    ])


def _functional():
    inputs = keras.Input((128, 2))
    x = layers.Conv1D(8, 5, padding="same", activation="relu")(inputs)
    x = layers.Conv1D(8, 5, strides=2, padding="same", activation="relu", name="block3")(x)
    return keras.Model(inputs, layers.Dense(3)(layers.GlobalAveragePooling1D()(x)))


@pytest.mark.parametrize("make_model", [_sequential, _functional])
def test_three_lines_train_with_batch_level_erts(make_model):
    keras.utils.set_random_seed(0)
    ds, n = _data()
    ds = erts_tf.with_sample_ids(ds)
    model = erts_tf.ERTS(make_model(), target_layer="block3", mode="erts", n_samples=n,
                         warm_up_epochs=1, cam_start_epoch=1, tau=0.9)
    model.compile(optimizer="adamw")
    history = model.fit(ds.batch(16), epochs=4, callbacks=[model.selection_callback()], verbose=0)
    assert len(history.history["loss"]) == 4
    state = model.state
    counts = state.backprop_count.numpy()
    assert counts.min() >= 1 and counts.max() <= 4  # warm-up trained every sample once
    assert counts.sum() < 4 * n  # selection dropped some back-propagations
    assert (state.scored_epoch.numpy() == 3).all()  # batch level scores everything each epoch
    assert np.isfinite(state.focus.numpy()).all() and state.focus.numpy().max() > 0


def _reads_per_epoch(model, reads):
    """A callback that records, per epoch, the reads since the previous epoch ended (the epoch's
    re-scoring and its training), the samples it trained on, and the keep-mask."""
    log = {"reads": [], "trained": [], "keep": []}

    def on_epoch_end(epoch, logs):
        log["reads"].append(int(reads.numpy()) - sum(log["reads"]))
        log["trained"].append(int(model.state.counters["backward"].numpy()) - sum(log["trained"]))
        log["keep"].append(model.state.keep.numpy().copy())

    return keras.callbacks.LambdaCallback(on_epoch_end=on_epoch_end), log


def _loader(x, y, reads, flipped=None):
    """The user's ``load(sample_id) -> (x (time, leads), y ())``; counts each call in ``reads``; a
    sample with ``flipped[id]`` gets the next class as its label."""
    signals, labels = tf.constant(x), tf.constant(y)

    def load(i):
        reads.assign_add(1)
        label = tf.gather(labels, i)
        if flipped is not None:
            label = tf.where(tf.gather(flipped, i), (label + 1) % 3, label)
        return tf.gather(signals, i), label

    return load


def _srd(n, rescore_every):
    return erts_tf.ERTS(_functional(), target_layer="block3", mode="srd", level="epoch", n_samples=n,
                        warm_up_epochs=1, decay=0.5, min_keep_frac=0.0, rescore_every=rescore_every)


@pytest.mark.parametrize("rescore_every", [0, 1])
def test_epoch_level_records_reads_only_the_kept_samples_and_the_rescored(rescore_every):
    x, y = _arrays()
    n = len(y)
    reads = tf.Variable(0, dtype=tf.int64)
    model = _srd(n, rescore_every)
    model.compile()
    counter, log = _reads_per_epoch(model, reads)
    model.fit(model.records(_loader(x, y, reads), batch_size=16), epochs=4,
              callbacks=[model.selection_callback(), counter], verbose=0)
    kept = [int(k.sum()) for k in log["keep"]]
    assert kept == [n, n // 2, n // 4, n // 8]  # srd keeps floor(decay**epoch * n)
    assert log["trained"] == kept
    # selection epochs after the first re-score the samples the previous epoch dropped
    rescored = [0, 0] + ([n - k for k in kept[1:3]] if rescore_every else [0, 0])
    assert log["reads"] == [k + r for k, r in zip(kept, rescored)]
    assert model.state.counters["samples_read"].numpy() == reads.numpy()
    assert model.state.counters["forward_score"].numpy() == sum(rescored)


def test_batch_level_records_reads_every_record():
    x, y = _arrays()
    n = len(y)
    reads = tf.Variable(0, dtype=tf.int64)
    model = erts_tf.ERTS(_functional(), target_layer="block3", mode="srd", n_samples=n, warm_up_epochs=1, decay=0.5)
    model.compile()
    counter, log = _reads_per_epoch(model, reads)
    model.fit(model.records(_loader(x, y, reads), batch_size=16), epochs=3,
              callbacks=[model.selection_callback(), counter], verbose=0)
    assert log["reads"] == [n] * 3  # the batch-level policy scores every record
    assert log["trained"][0] == n and all(k < n for k in log["trained"][1:])


@pytest.mark.parametrize("rescore_every", [0, 1])
def test_a_dropped_sample_comes_back_after_rescoring(rescore_every):
    """dbpd with tau 0 keeps the misclassified samples. The correctly classified ones dropped in the
    first selection epoch get another label (their record changed: the model now gets them
    wrong). Re-scoring reads them again and brings back those now misclassified; without it
    their stale scores keep them dropped."""
    keras.utils.set_random_seed(0)
    x, y = _arrays()
    n = len(y)
    reads = tf.Variable(0, dtype=tf.int64)
    flipped = tf.Variable(tf.zeros([n], tf.bool))
    model = erts_tf.ERTS(_functional(), target_layer="block3", mode="dbpd", level="epoch", n_samples=n, tau=0.0,
                         warm_up_epochs=2, min_keep_frac=0.0, rescore_every=rescore_every)
    model.compile()
    dropped, decided = [], {}

    def flip_the_dropped(epoch, logs):
        if epoch == 2:
            dropped.extend(np.flatnonzero(~model.state.keep.numpy()))
            flipped.assign(~model.state.keep)

    def snapshot_the_decision(epoch, logs):  # epoch 3's decision, before its training scores anything
        if epoch == 3:
            decided.update(model.state.snapshot())

    model.fit(model.records(_loader(x, y, reads, flipped), batch_size=16), epochs=4, verbose=0,
              callbacks=[model.selection_callback(),
                         keras.callbacks.LambdaCallback(on_epoch_end=flip_the_dropped,
                                                        on_epoch_begin=snapshot_the_decision)])
    assert len(dropped) > 0
    came_back = decided["keep"][dropped] & (decided["reason"][dropped] == int(Reason.HARD))
    if rescore_every:
        assert (decided["scored_epoch"][dropped] == 3).all()  # re-scored before epoch 3's decision
        assert came_back.sum() > 0
        assert (came_back == ~decided["correct"][dropped]).all()  # exactly the ones now misclassified
    else:
        assert (decided["scored_epoch"][dropped] == 1).all()  # scores from the last warm-up epoch
        assert not came_back.any()


@pytest.mark.parametrize("load, error, match", [
    (lambda i: tf.zeros([128, 2]), TypeError, r"must return \(x, y\)"),
    (lambda i: (tf.zeros([64, 2]), tf.constant(0)), ValueError, r"x of shape \(64, 2\)"),
    (lambda i: (tf.zeros([128, 2]), tf.constant([0])), ValueError, r"y of shape \(1,\)"),
])
def test_records_rejects_a_loader_that_does_not_return_one_record(load, error, match):
    model = _srd(4, rescore_every=1)
    model.compile()
    with pytest.raises(error, match=match):
        model.fit(model.records(load), epochs=1, verbose=0)


def test_select_reads_every_record_and_rescoring_reads_them_again():
    """``select(ds)`` filters after the user's pipeline: it saves forwards and backwards, not reads."""
    x, y = _arrays()
    n = len(y)
    reads = tf.Variable(0, dtype=tf.int64)

    def read(signal, label):
        reads.assign_add(1)
        return signal, label

    ds = erts_tf.with_sample_ids(tf.data.Dataset.from_tensor_slices((x, y)).map(read))
    model = _srd(n, rescore_every=1)
    model.compile()
    counter, log = _reads_per_epoch(model, reads)
    model.fit(model.select(ds).batch(16), epochs=3, callbacks=[model.selection_callback(), counter], verbose=0)
    assert log["trained"] == [n, n // 2, n // 4]
    assert log["reads"] == [n, n, 2 * n]  # epoch 2 re-reads the whole dataset to re-score the dropped
    assert model.state.counters["samples_read"].numpy() == reads.numpy()
    assert model.state.counters["forward_score"].numpy() == n - n // 2


def test_select_refuses_batch_level():
    model = erts_tf.ERTS(_functional(), target_layer="block3", n_samples=4)
    with pytest.raises(ValueError, match="epoch-level keep-mask"):
        model.select(erts_tf.with_sample_ids(tf.data.Dataset.from_tensor_slices((np.zeros((4, 128, 2)), [0] * 4))))


def test_rescoring_needs_the_records():
    ds, n = _data()
    model = _srd(n, rescore_every=1)
    model.compile()
    with pytest.raises(RuntimeError, match=r"model\.records\(load\)"):
        model.fit(erts_tf.with_sample_ids(ds).batch(16), epochs=3, callbacks=[model.selection_callback()], verbose=0)


def test_erts_rejects_an_unbuilt_model():
    with pytest.raises(ValueError, match="built"):
        erts_tf.ERTS(keras.Sequential([layers.Dense(3)]), target_layer="x", n_samples=4)


def test_runnable_example_from_the_readme(capsys):
    """The example prints, per epoch, which samples the training loss covers and the held-out macro-F1,
    then each run's held-out macro-F1 and cost; the printed numbers are the runs' own."""
    import importlib.util
    import pathlib
    import re

    path = pathlib.Path(__file__).resolve().parents[1] / "examples" / "dropin.py"
    spec = importlib.util.spec_from_file_location("dropin_example", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    epochs, n = 5, 600
    results = example.main(["--epochs", str(epochs)])
    out = capsys.readouterr().out

    trained = results["erts"]["trained_per_epoch"]
    assert trained[:3] == [n] * 3  # warm-up: every sample
    assert all(0 < k < n for k in trained[3:])  # selection epochs: the kept ones only
    assert sum(trained) == results["erts"]["backpropagated"]
    for epoch, k in enumerate(trained):
        covered = f"all {n} samples" if k == n else f"the {k} kept of {n} samples"
        assert re.search(rf"^erts epoch {epoch}: loss [0-9.]+ over {covered} \| held-out macro-F1 [0-9.]+$", out, re.M)
        assert re.search(rf"^plain epoch {epoch}: loss [0-9.]+ over all {n} samples \| held-out macro-F1 [0-9.]+$",
                         out, re.M)
    assert results["plain"]["backpropagated"] == epochs * n
    for name, r in results.items():
        row = re.search(rf"^{name}\s+([0-9.]+)\s+(\d+) \(\s*(\d+)%\)\s+([0-9.]+)s$", out, re.M)
        assert row, f"no result row for {name} in:\n{out}"
        assert float(row[1]) == pytest.approx(r["macro_f1"], abs=5e-4)
        assert int(row[2]) == r["backpropagated"]
        assert float(row[4]) == pytest.approx(r["wall_s"], abs=0.05)
        assert r["macro_f1"] > 0.6  # well above chance (1/3) on the clean held-out records
    assert results["erts"]["backpropagated"] < results["plain"]["backpropagated"]


def test_multi_label_drop_in_trains_on_multi_hot_targets():
    """``task="multi"``: multi-hot labels, sigmoid BCE through the same step; selection runs on membership."""
    x, y = _arrays()
    hot = np.eye(3, dtype=np.int32)[y]
    hot[::4, (y[::4] + 1) % 3] = 1  # some records carry two classes
    n = len(y)
    model = erts_tf.ERTS(_functional(), target_layer="block3", mode="erts", level="batch", n_samples=n,
                         warm_up_epochs=1, cam_start_epoch=0, tau=0.0, task="multi")
    model.compile()
    ds = tf.data.Dataset.from_tensor_slices((x, hot, np.arange(n))).batch(16)
    history = model.fit(ds, epochs=2, callbacks=[model.selection_callback()], verbose=0)
    assert model.task.name == "multi" and np.isfinite(history.history["loss"]).all()
    assert "macro_auc" in history.history
    assert model.state.label.numpy().shape == (n, 3) and (model.state.label.numpy() == hot).all()
    probs = model.predict(x[:4], verbose=0)
    np.testing.assert_allclose(probs, tf.sigmoid(model.backbone(x[:4])).numpy(), atol=1e-6)
