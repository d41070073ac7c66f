"""``python -m export.predict``: records on disk -> the model's input (leads, rate, length) -> probabilities."""

import csv
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import physionet_dummy_data as dummy
from deploy_fixtures import TWELVE_LEADS, exported_tiny_run

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tfds_dir, tiny_data, tiny_backbone):
    return exported_tiny_run(tmp_path_factory, tfds_dir, tiny_data, tiny_backbone)


def _predict_cli(*args):
    return subprocess.run([sys.executable, "-m", "export.predict", *map(str, args)], capture_output=True, text=True,
                          env=ENV, timeout=300)


def _error_lines(result):
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def _write_wfdb(folder, name, signal, leads, fs):
    import wfdb

    folder.mkdir(parents=True, exist_ok=True)
    wfdb.wrsamp(name, fs=fs, units=["mV"] * len(leads), sig_name=list(leads), p_signal=signal,
                fmt=["16"] * len(leads), write_dir=str(folder))
    return folder / name


def _read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_500hz_record_is_resampled_for_the_100hz_model_as_by_hand(exported, tmp_path):
    """Leads in another order plus one the model does not use, at 500 Hz, 12 s: picked by name, resampled, cropped."""
    import scipy.signal
    import wfdb

    from export.onnx_export import onnx_predict
    from export.records import conform, read_record

    _, export_dir, result = exported
    rng = np.random.default_rng(1)
    leads = ["V6", "X", *TWELVE_LEADS[:-1][::-1]]  # every model lead, shuffled, and an extra one
    stem = _write_wfdb(tmp_path, "rec500", rng.standard_normal((6000, len(leads))) * 0.5, leads, 500)

    on_disk, fields = wfdb.rdsamp(str(stem))
    assert fields["fs"] == 500
    by_hand = scipy.signal.resample_poly(on_disk[:, [leads.index(n) for n in TWELVE_LEADS]], 1, 5, axis=0)
    assert by_hand.shape == (1200, 12)
    by_hand = by_hand[:1000].astype(np.float32)  # the model takes the first 10 s

    conformed = conform(read_record(stem), result["metadata"]["input"])
    np.testing.assert_allclose(conformed, by_hand, rtol=0, atol=1e-5)

    out = tmp_path / "p.csv"
    ok = _predict_cli(f"--model={export_dir}", f"--record={stem}.hea", f"--csv={out}")
    assert ok.returncode == 0, ok.stderr[-2000:]
    (row,) = _read_csv(out)
    classes = result["metadata"]["output"]["classes"]
    assert (row["record"], row["sampling_rate_hz"], row["samples"]) == (str(stem), "500", "6000")
    got = np.array([float(row[c]) for c in classes])
    expected = onnx_predict(str(export_dir / "model.onnx"), by_hand[None])[0]
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert row["predicted"] == classes[int(np.argmax(expected))]


def test_record_missing_a_lead_is_a_clear_error(exported, tmp_path):
    _, export_dir, _ = exported
    leads = [n for n in TWELVE_LEADS if n not in ("aVL", "V4")]
    stem = _write_wfdb(tmp_path, "ten_leads", np.random.default_rng(2).standard_normal((1000, 10)), leads, 100)
    bad = _predict_cli(f"--model={export_dir}", f"--record={stem}")
    assert bad.returncode == 2 and not bad.stdout
    assert _error_lines(bad) == [f"error: record {stem} lacks the lead(s) aVL, V4 that the model needs "
                                 f"(it has {', '.join(leads)})"]


def test_unreadable_files_and_unconvertible_rates_are_clear_errors(exported, tmp_path):
    import onnx

    _, export_dir, _ = exported
    signal = np.random.default_rng(3).standard_normal((1000, 12))
    odd = _write_wfdb(tmp_path / "odd", "odd_rate", signal, TWELVE_LEADS, 123.457)
    bad = _predict_cli(f"--model={export_dir}", f"--record={odd}")
    assert bad.returncode == 2
    assert _error_lines(bad) == [f"error: record {odd}: sampling rate 123.457 Hz cannot be converted to 100 Hz "
                                 "(ratio 100000/123457 needs a polyphase factor above 10000)"]

    cut = _write_wfdb(tmp_path / "cut", "truncated", signal, TWELVE_LEADS, 100)
    data = cut.with_suffix(".dat")
    data.write_bytes(data.read_bytes()[:500])
    bad = _predict_cli(f"--model={export_dir}", f"--record={cut}")
    assert bad.returncode == 2 and len(_error_lines(bad)) == 1
    assert _error_lines(bad)[0].startswith(f"error: truncated signal file {data}:")

    orphan = tmp_path / "orphan"
    orphan.mkdir()
    (orphan / "A0001.mat").write_bytes(b"\0" * 64)
    bad = _predict_cli(f"--model={export_dir}", f"--record={orphan}")
    assert _error_lines(bad) == [f"error: {orphan / 'A0001.mat'}: no header A0001.hea beside it "
                                 "(the sampling rate and lead names would be unknown)"]

    plain = onnx.load(str(export_dir / "model.onnx"))
    del plain.metadata_props[:]
    onnx.save(plain, str(tmp_path / "plain.onnx"))
    bad = _predict_cli(f"--model={tmp_path / 'plain.onnx'}", f"--record={cut}")
    assert bad.returncode == 2
    assert _error_lines(bad)[0].startswith(f"error: {tmp_path / 'plain.onnx'} carries no erts-tf metadata")

    bad = _predict_cli(f"--model={export_dir}", f"--record={tmp_path / 'nowhere'}")
    assert _error_lines(bad) == [f"error: {tmp_path / 'nowhere'}: no such record or folder"]


def test_challenge_mat_records_in_a_folder(exported, tmp_path):
    """PhysioNet/CinC 2020 layout (.hea + MATLAB v4 .mat, 500 Hz, gain 1000/mV): read with loadmat, every record."""
    import scipy.signal

    from export.onnx_export import onnx_predict

    _, export_dir, result = exported
    rng = np.random.default_rng(4)
    folder = tmp_path / "challenge"
    values = {name: dummy.write_challenge_record(folder, name, "426783006", n=n, rng=rng)
              for name, n in (("A0002", 4000), ("A0001", 5500))}  # 8 s (padded) and 11 s (cropped)
    out = tmp_path / "challenge.csv"
    ok = _predict_cli(f"--model={export_dir}", f"--record={folder}", "--variant=float16", f"--csv={out}")
    assert ok.returncode == 0, ok.stderr[-2000:]
    rows = _read_csv(out)
    assert [r["record"] for r in rows] == [str(folder / "A0001"), str(folder / "A0002")]
    classes = result["metadata"]["output"]["classes"]
    for row in rows:
        val = values[os.path.basename(row["record"])]
        assert row["samples"] == str(val.shape[1]) and row["sampling_rate_hz"] == "500"
        by_hand = scipy.signal.resample_poly(val.T / 1000.0, 1, 5, axis=0)[:1000]
        by_hand = np.pad(by_hand, ((0, 1000 - len(by_hand)), (0, 0))).astype(np.float32)
        expected = onnx_predict(str(export_dir / "model.float16.onnx"), by_hand[None])[0]
        np.testing.assert_allclose([float(row[c]) for c in classes], expected, atol=1e-5)


# ---------------------------------------------------------------------------
# Real data: PTB-XL records from ../shared/data against the evaluate path
# ---------------------------------------------------------------------------

N_REAL = 24


@pytest.fixture(scope="module")
def ptbxl_export(tmp_path_factory, tiny_backbone):
    """tiny_cnn trained for one epoch on the real PTB-XL subset, exported (float32 only)."""
    from erts_tf.training import run
    from erts_tf.training.config import RunConfig
    from export.run import export_run

    archive = dummy.shared_archive("ptb-xl-1.0.3-every5th.zip")
    base = tmp_path_factory.mktemp("ptbxl_deploy")
    config = RunConfig(output_dir=str(base / "run"), dataset="ptbxl", dataset_config="100hz", data_dir=str(base / "tfds"),
                       manual_dir=str(archive.parent), model=tiny_backbone, epochs=1, batch_size=64, mode="full",
                       overwrite=True, verbose=0, report=False, tensorboard_images_every=0)
    run.run(config)
    result = export_run(config.output_dir, str(base / "export"), n_samples=16, data_dir=config.data_dir, variants=())
    return config, base / "export", result, archive


def test_predict_on_real_ptbxl_records_equals_the_evaluate_path(ptbxl_export, tmp_path):
    """WFDB files of test-fold records, read as PhysioNet ships them, give evaluate's probabilities."""
    import pandas as pd

    from erts_tf.data import pipeline
    from erts_tf.data.label_sets import read_feature
    from erts_tf.inference import predict_probs
    from erts_tf.run_data import prepare_builder
    from erts_tf.run_folder import load_model
    from export.predict import predict

    config, export_dir, result, archive = ptbxl_export
    meta = result["metadata"]
    assert meta["input"]["sampling_rate_hz"] == 100 and meta["input"]["sources"]["sampling_rate_hz"] == \
        "ptbxl builder config '100hz'"
    assert meta["input"]["lead_names"] == list(TWELVE_LEADS)  # the builder's LEADS; the headers say AVR, AVL, AVF

    builder = prepare_builder(config)
    arrays = pipeline.load_split(builder, "test")  # the evaluate path: z-scored split, Keras backbone, softmax
    reference = predict_probs(load_model(config.output_dir), arrays.signal)
    row_of = {int(e): i for i, e in enumerate(read_feature(builder, "test", "ecg_id"))}

    with zipfile.ZipFile(archive) as zf:
        table = pd.read_csv(zf.open("ptb-xl-1.0.3-every5th/ptbxl_database.csv"))
        stems = table[table["strat_fold"] == 10]["filename_lr"].head(N_REAL).tolist()
        for stem in stems:
            for ext in (".hea", ".dat"):
                zf.extract(f"ptb-xl-1.0.3-every5th/{stem}{ext}", tmp_path)
    folder = tmp_path / "ptb-xl-1.0.3-every5th" / "records100"
    got = predict(str(export_dir), str(folder))
    assert len(got["rows"]) == N_REAL and got["classes"] == arrays.class_names
    for row in got["rows"]:
        ecg_id = int(os.path.basename(row["record"]).split("_")[0])
        np.testing.assert_allclose(row["probabilities"], reference[row_of[ecg_id]], atol=1e-4)
    assert np.ptp([r["probabilities"] for r in got["rows"]], axis=0).max() > 0.01, "uninformative probabilities"


def test_decision_at_the_validation_operating_point(exported, tmp_path):
    """``--decision=validation_offsets`` predicts ``argmax(log p + offset)`` with the metadata's offsets; the
    probabilities are the model's either way; a model without an operating point is a clear error."""
    from erts_tf import metrics
    from export.predict import decision_offsets, predict

    _, export_dir, result = exported
    rng = np.random.default_rng(3)
    for i in range(6):
        _write_wfdb(tmp_path, f"r{i}", rng.standard_normal((1000, 12)) * 0.5, TWELVE_LEADS, 100)
    plain = predict(str(export_dir), str(tmp_path))
    tuned = predict(str(export_dir), str(tmp_path), decision="validation_offsets")
    metadata = result["metadata"]
    offsets = np.array([metadata["test_metrics"]["operating_point"]["offsets"][c] for c in plain["classes"]])
    np.testing.assert_array_equal(decision_offsets(metadata, "validation_offsets"), offsets)
    for a, b in zip(plain["rows"], tuned["rows"], strict=True):
        np.testing.assert_array_equal(a["probabilities"], b["probabilities"])
        assert a["predicted"] == plain["classes"][int(np.argmax(a["probabilities"]))]
        at_offsets = metrics.offset_probs(np.asarray(b["probabilities"])[None], offsets)[0]
        assert b["predicted"] == plain["classes"][int(np.argmax(at_offsets))]
    assert any(a["predicted"] != b["predicted"] for a, b in zip(plain["rows"], tuned["rows"]))  # measured: 2 of 6
    without = dict(metadata, test_metrics={k: v for k, v in metadata["test_metrics"].items() if k != "operating_point"})
    from export.errors import PredictError

    with pytest.raises(PredictError, match="no operating point chosen on validation"):
        decision_offsets(without, "validation_offsets")
    ok = _predict_cli(f"--model={export_dir}", f"--record={tmp_path}", "--decision=validation_offsets",
                      f"--csv={tmp_path / 'p.csv'}")
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert [r["predicted"] for r in _read_csv(tmp_path / "p.csv")] == [r["predicted"] for r in tuned["rows"]]
