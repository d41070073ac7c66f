"""cinc2017 builder: TFDS conventions on dummy data, crop/pad, bad input, and the real every-3rd subset."""

from __future__ import annotations

import collections
import logging
import zipfile

import numpy as np
import pytest
import scipy.io

import dataset_helpers as helpers
import physionet_dummy_data as dummy
from erts_tf.data import registry
from erts_tf.data.physionet import builder_base, features, manual_download

cinc = registry.builder_module("cinc2017")
CONFIGS = ("30s", "9s", "61s", "full")
DUMMY_SPLITS = {"train": 32, "validation": 4, "test": 4}

dummy_data = helpers.cached_manual(
    "cinc2017_dummy_", lambda manual: dummy.write_cinc2017(manual / "training2017", per_class=10)
)
built = helpers.built_fixture("cinc2017", CONFIGS, dummy_data)
TestCinc2017Builder, test_conventions = helpers.conventions_tests(cinc.Builder, CONFIGS, dummy_data, DUMMY_SPLITS)


@pytest.mark.parametrize("config, length", [("30s", 9000), ("9s", 2700), ("61s", 18300), ("full", None)])
def test_dummy_values_crop_pad_and_split(config, length, built):
    _, expected = dummy_data()
    builder = built[config]
    names = sorted(expected)
    splits = features.reference_split([cinc.CLASSES.index(expected[n]["label"]) for n in names], seed=42)
    for split in ("train", "validation", "test"):
        found = dummy.examples(builder, split)
        records = [ex["record"].decode() for ex in found]
        assert records == [n for n, s in zip(names, splits) if s == split]  # sorted, stratified, seed 42
        for ex in found:
            want = expected[ex["record"].decode()]
            assert cinc.CLASSES[ex["label"]] == want["label"]
            assert bool(ex["is_noisy"]) == (want["label"] == "~")
            assert int(ex["num_samples"]) == want["n"]
            n = want["n"] if length is None else min(want["n"], length)
            np.testing.assert_allclose(ex["signal"][:n, 0], want["val"][0, :n] / 1000.0, rtol=1e-6)
            assert not ex["signal"][n:].any()  # zero padding at the end
            assert len(ex["signal"]) == (want["n"] if length is None else length)
    labels = collections.Counter(
        cinc.CLASSES[ex["label"]] for split in ("train", "validation", "test") for ex in dummy.examples(builder, split)
    )
    assert labels == {"N": 10, "A": 10, "O": 10, "~": 10}


def test_zip_input_and_reference_v3(built, tmp_path):
    manual, expected = dummy_data()
    builder = built["30s"]
    zipped = tmp_path / "manual"
    zipped.mkdir()
    dummy.zip_folder(manual / "training2017", zipped / "training2017.zip")
    from_zip = dummy.build("cinc2017", "30s", tmp_path / "data", zipped)
    for split in ("train", "validation", "test"):
        a, b = dummy.examples(builder, split), dummy.examples(from_zip, split)
        assert [x["record"] for x in a] == [x["record"] for x in b]
        assert all(np.array_equal(x["signal"], y["signal"]) for x, y in zip(a, b))
    # REFERENCE-v3.csv beside the archive takes precedence over the archive's REFERENCE.csv.
    relabelled = {name: ("~" if info["label"] == "O" else info["label"]) for name, info in expected.items()}
    (zipped / "REFERENCE-v3.csv").write_text("".join(f"{n},{lab}\n" for n, lab in relabelled.items()))
    v3 = dummy.build("cinc2017", "9s", tmp_path / "data_v3", zipped)
    counts = collections.Counter(
        cinc.CLASSES[ex["label"]] for split in ("train", "validation", "test") for ex in dummy.examples(v3, split)
    )
    assert counts == {"N": 10, "A": 10, "~": 20}
    assert v3.info.features["signal"].shape == (2700, 1)


def test_bad_records_are_skipped_counted_and_reported(tmp_path, caplog):
    root = tmp_path / "manual" / "training2017"
    dummy.write_cinc2017(root, per_class=10)
    (root / "A00001.mat").unlink()  # listed in REFERENCE.csv, no signal
    scipy.io.savemat(root / "A00099.mat", {"val": np.ones((1, 3000), np.int16)}, format="4")  # no label
    (root / "A00002.mat").write_bytes(b"this is not a MATLAB file at all" * 10)  # unreadable
    scipy.io.savemat(root / "A00003.mat", {"val": np.ones((2, 3000), np.int16)}, format="4")  # two leads
    scipy.io.savemat(root / "A00004.mat", {"val": np.full((1, 3000), 7, np.int16)}, format="4")  # flat
    scipy.io.savemat(root / "A00005.mat", {"ecg": np.ones((1, 3000), np.int16)}, format="4")  # no `val`
    with caplog.at_level(logging.WARNING):
        builder = dummy.build("cinc2017", "30s", tmp_path / "data", root.parent, max_skip_fraction=0.2)
    skips = builder.info.metadata["skips"]
    assert skips["num_considered"] == 41 and skips["num_skipped"] == 6
    reasons = {s["record"]: s["reason"] for s in skips["skipped"]}
    assert "missing signal file" in reasons["A00001"] and "A00001.mat" in reasons["A00001"]
    assert "no label" in reasons["A00099"]
    assert "unreadable MATLAB file" in reasons["A00002"]
    assert "wrong lead count" in reasons["A00003"]
    assert "constant signal" in reasons["A00004"]
    assert "no variable 'val'" in reasons["A00005"]
    assert sum(i.num_examples for i in builder.info.splits.values()) == 35
    assert "cinc2017/30s: skipped 6 of 41 records" in caplog.text
    with pytest.raises(builder_base.TooManySkipsError):
        dummy.build("cinc2017", "9s", tmp_path / "data", root.parent)


def test_missing_reference_or_records_is_a_clear_error(tmp_path):
    root = tmp_path / "manual" / "training2017"
    dummy.write_cinc2017(root, per_class=2)
    (root / "REFERENCE.csv").unlink()
    with pytest.raises(
        manual_download.ManualDataError, match=r"training2017\.zip.*physionet\.org/content/challenge-2017"
    ):
        dummy.build("cinc2017", "30s", tmp_path / "data", root.parent)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(manual_download.ManualDataError, match=r"training2017\.zip"):
        dummy.build("cinc2017", "30s", tmp_path / "data", empty)


# ---------------------------------------------------------------------------
# Real data: Challenge 2017 training set, every 3rd record (../shared/data)
# ---------------------------------------------------------------------------

PROBE = "A00003"


@pytest.fixture(scope="session")
def real_cinc2017(tmp_path_factory):
    archive = dummy.shared_archive("training2017-every3rd.zip")
    builder = dummy.build("cinc2017", "30s", tmp_path_factory.mktemp("cinc_real"), archive.parent)
    keys = ("sample_id", "label", "is_noisy", "num_samples", "record")
    summary = helpers.split_columns(builder, keys, lambda ex: ex["record"].decode() == PROBE)
    return builder, summary, archive


def test_real_split_sizes_and_labels(real_cinc2017):
    builder, summary, _ = real_cinc2017
    sizes = {s: i.num_examples for s, i in builder.info.splits.items()}
    assert sizes == {"train": 2273, "validation": 284, "test": 285}
    total = collections.Counter()
    for split, rows in summary.items():
        assert sorted(rows["sample_id"].tolist()) == list(range(sizes[split]))
        counts = collections.Counter(cinc.CLASSES[i] for i in rows["label"])
        total += counts
        assert np.array_equal(rows["is_noisy"], rows["label"] == cinc.CLASSES.index("~"))
        # Stratified: each split's class shares within 1.5 points of the whole set's.
        for label, n in counts.items():
            assert abs(n / sizes[split] - {"N": 1724, "A": 241, "O": 780, "~": 97}[label] / 2842) < 0.015
    assert total == {"N": 1724, "A": 241, "O": 780, "~": 97}
    lengths = np.concatenate([rows["num_samples"] for rows in summary.values()])
    assert lengths.min() >= 2700 and lengths.max() <= 18300  # 9-61 s at 300 Hz
    assert builder.info.metadata["skips"]["num_skipped"] == 0


def test_real_record_matches_loadmat(real_cinc2017, tmp_path):
    _, summary, archive = real_cinc2017
    split = next(s for s, rows in summary.items() if PROBE in rows["record"])
    (signal,) = summary[split]["probe"]
    with zipfile.ZipFile(archive) as zf:
        path = zf.extract(f"training2017-every3rd/{PROBE}.mat", tmp_path)
    val = scipy.io.loadmat(path)["val"]
    n = min(val.shape[1], 9000)
    np.testing.assert_allclose(signal[:n, 0], val[0, :n] / 1000.0, rtol=1e-6)
    assert not signal[n:].any()


def test_real_full_records_train_on_windows(tmp_path_factory, tmp_path):
    """Config ``full`` of the real subset: whole recordings (9-61 s) read as 9 s windows, on both backends."""
    from erts_tf.data import pipeline, windows
    from erts_tf.training import run
    from erts_tf.training.config import RunConfig

    archive = dummy.shared_archive("training2017-every3rd.zip")
    data_dir = str(tmp_path_factory.mktemp("cinc_real_full"))
    builder = pipeline.prepare("cinc2017", "full", data_dir, str(archive.parent), backend="lazy")
    assert builder.info.features["signal"].shape == (None, 1)
    spec = windows.WindowSpec(2700, 1350)
    memory, lazy_split = (pipeline.load_split(builder, "validation", b, spec) for b in ("memory", "lazy"))
    np.testing.assert_array_equal(memory.lengths, memory.extras["num_samples"])  # stored whole
    assert memory.lengths.min() >= 2700 and memory.lengths.max() > 9000
    ((w_memory, valid), labels, _), ((w_lazy, valid_lazy), labels_lazy, _) = (
        next(iter(pipeline.eval_dataset(s, 16))) for s in (memory, lazy_split))
    np.testing.assert_array_equal(w_memory, w_lazy)
    np.testing.assert_array_equal(valid, valid_lazy)
    np.testing.assert_array_equal(labels, labels_lazy)
    assert w_memory.shape[2:] == (2700, 1) and valid.numpy().sum() > 16  # several windows a record
    config = RunConfig(output_dir=str(tmp_path / "run"), dataset="cinc2017", dataset_config="full", data_dir=data_dir,
                       manual_dir=str(archive.parent), window_s=9.0, eval_window_stride_s=4.5, epochs=1,
                       batch_size=64, mode="full", model="tiny_cnn", verbose=0, report=False,
                       tensorboard_images_every=0)
    summary = run.run(config)
    assert summary["dataset"]["input_shape"] == [2700, 1] and summary["dataset"]["train"] == 2273
    assert summary["epochs"][0]["samples_read"] == 2273 and summary["test"]["n"] == 285
