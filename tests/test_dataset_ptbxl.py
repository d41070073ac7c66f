"""ptbxl builder: TFDS conventions on dummy data, the label rule, bad input, and the real 1.0.3 subset."""

from __future__ import annotations

import ast
import collections
import csv
import io
import logging
import pathlib
import zipfile

import numpy as np
import pytest
import tensorflow_datasets as tfds

import dataset_helpers as helpers
import physionet_dummy_data as dummy
from erts_tf.data import registry
from erts_tf.data.physionet import builder_base, manual_download

ptbxl = registry.builder_module("ptbxl")
CONFIGS = ("100hz", "500hz")
DUMMY_SPLITS = {"train": 16, "validation": 2, "test": 2}

# A manual dir holding a dummy PTB-XL folder with records100/ and records500/ (written once), and its truth.
dummy_data = helpers.cached_manual(
    "ptbxl_dummy_", lambda manual: dummy.write_ptbxl(manual / "ptb-xl-dummy", per_fold=2, rates=(100, 500))
)
built = helpers.built_fixture("ptbxl", CONFIGS, dummy_data)
TestPtbxlBuilder, test_conventions = helpers.conventions_tests(ptbxl.Builder, CONFIGS, dummy_data, DUMMY_SPLITS)


# ---------------------------------------------------------------------------
# Label rule
# ---------------------------------------------------------------------------

DIAGNOSTIC = {code: cls for code, _, diagnostic, cls in dummy.PTBXL_STATEMENTS if diagnostic == 1.0}


@pytest.mark.parametrize("codes, label, hot", dummy.PTBXL_CASES)
def test_reference_label_and_multi_hot(codes, label, hot):
    assert ptbxl.reference_label(codes, DIAGNOSTIC) == label
    assert tuple(ptbxl.superclass_multi_hot(codes, DIAGNOSTIC)) == hot


def test_reference_label_edge_cases():
    assert ptbxl.reference_label({}, DIAGNOSTIC) == "NORM"
    assert ptbxl.reference_label({"UNKNOWN": 100.0}, DIAGNOSTIC) == "NORM"
    # A higher likelihood later wins; an equal one does not.
    assert ptbxl.reference_label({"NDT": 0.0, "LVH": 0.0, "IMI": 1.0}, DIAGNOSTIC) == "MI"
    assert ptbxl.reference_label({"NDT": 0.0, "LVH": 0.0}, DIAGNOSTIC) == "STTC"


# ---------------------------------------------------------------------------
# Dummy builds: values, zip input, bad input
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("config", ["100hz", "500hz"])
def test_dummy_values(config, built):
    import wfdb

    manual, expected = dummy_data()
    builder, root, rate = built[config], manual / "ptb-xl-dummy", int(config[:3])
    for split, folds in (("train", range(1, 9)), ("validation", [9]), ("test", [10])):
        found = dummy.examples(builder, split)
        ids = [int(ex["ecg_id"]) for ex in found]
        assert ids == sorted(i for i, e in expected.items() if e["fold"] in folds)
        assert [int(ex["sample_id"]) for ex in found] == list(range(len(found)))
        for ex in found:
            want = expected[int(ex["ecg_id"])]
            assert ptbxl.SUPERCLASSES[ex["label"]] == want["label"]
            assert tuple(ex["superclasses"]) == want["superclasses"]
            assert bool(ex["has_diagnostic_label"]) == any(want["superclasses"])
            assert int(ex["strat_fold"]) == want["fold"]
            assert int(ex["patient_id"]) == 1000 + int(ex["ecg_id"])
            for flag, value in want["flags"].items():
                assert bool(ex[flag]) == value, (flag, int(ex["ecg_id"]))
            direct, _ = wfdb.rdsamp(str(dummy.ptbxl_record(root, int(ex["ecg_id"]), rate)))
            np.testing.assert_allclose(ex["signal"], direct, atol=1e-6)
            assert ex["signal"].shape == (10 * rate, 12)


def test_zip_input_gives_the_same_dataset(built, tmp_path):
    root = dummy_data()[0] / "ptb-xl-dummy"
    builder = built["100hz"]
    manual = tmp_path / "manual"
    manual.mkdir()
    dummy.zip_folder(root, manual / "ptb-xl-dummy-1.0.3.zip")
    from_zip = dummy.build("ptbxl", "100hz", tmp_path / "data", manual)
    for split in ("train", "validation", "test"):
        a, b = dummy.examples(builder, split), dummy.examples(from_zip, split)
        assert [int(x["ecg_id"]) for x in a] == [int(x["ecg_id"]) for x in b]
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x["signal"], y["signal"])
            assert x["label"] == y["label"]
    # Only records100/ was extracted, once, into the download dir (beside it: the hidden lock file of its extraction).
    extracted = [
        p for p in (tmp_path / "data" / "downloads" / manual_download.EXTRACT_DIR_NAME).iterdir()
        if not p.name.startswith(".")
    ]
    assert [p.name for p in extracted] == ["ptb-xl-dummy-1.0.3.zip.records100"]


def _break_records(root: pathlib.Path) -> dict:
    """Damages records 1-8 (all in the train folds) in eight different ways; returns reason keywords."""
    rng = np.random.default_rng(1)
    rec = lambda i: dummy.ptbxl_record(root, i)  # noqa: E731
    dat = pathlib.Path(f"{rec(1)}.dat")
    dat.write_bytes(dat.read_bytes()[:10000])
    dat = pathlib.Path(f"{rec(2)}.dat")
    dat.write_bytes(dat.read_bytes() + b"\0" * 2400)
    nan = rng.integers(-500, 500, size=(1000, 12)).astype(np.int32)
    nan[10:20, 4] = -32768  # WFDB's missing-sample value in format 16
    dummy._wfdb_12lead(rec(3).parent, rec(3).name, 100, 1000, rng, d_signal=nan)
    dummy._wfdb_12lead(rec(4).parent, rec(4).name, 100, 1000, rng, d_signal=np.zeros((1000, 12), np.int32))
    dummy._wfdb_12lead(rec(5).parent, rec(5).name, 100, 1000, rng, leads=dummy.TWELVE[:11])
    pathlib.Path(f"{rec(6)}.hea").unlink()
    pathlib.Path(f"{rec(7)}.hea").unlink()
    pathlib.Path(f"{rec(7)}.dat").unlink()
    hea = pathlib.Path(f"{rec(8)}.hea")
    hea.write_text(hea.read_text().replace("/mV", "/uV"))
    return {
        "1": "truncated signal file",
        "2": "header/signal length mismatch",
        "3": "NaN",
        "4": "constant signal",
        "5": "wrong leads",
        "6": "missing header",
        "7": "missing header",
        "8": "leads in uV, expected mV",
    }


def test_bad_records_are_skipped_counted_and_reported(tmp_path, caplog):
    root = tmp_path / "manual" / "ptb-xl-dummy"
    dummy.write_ptbxl(root, per_fold=2, rates=(100,))
    reasons = _break_records(root)
    with caplog.at_level(logging.WARNING):
        builder = dummy.build("ptbxl", "100hz", tmp_path / "data", root.parent, max_skip_fraction=0.5)
    assert {s: i.num_examples for s, i in builder.info.splits.items()} == {"train": 8, "validation": 2, "test": 2}
    skips = builder.info.metadata["skips"]
    assert skips["num_skipped"] == 8 and skips["num_considered"] == 20
    by_record = {s["record"]: s for s in skips["skipped"]}
    assert set(by_record) == set(reasons)
    for record, keyword in reasons.items():
        assert keyword in by_record[record]["reason"], by_record[record]
        assert by_record[record]["split"] == "train"
    assert "ptbxl/100hz: skipped 8 of 20 records" in caplog.text
    assert "00001_lr.dat" in caplog.text  # the file is named
    # Reloading keeps the report; sample_id stays 0..N-1.
    reloaded = registry.builder("ptbxl", "100hz", data_dir=str(tmp_path / "data"))
    assert reloaded.info.metadata["skips"]["num_skipped"] == 8
    assert [int(ex["sample_id"]) for ex in dummy.examples(reloaded, "train")] == list(range(8))


def _no_dataset_written(data_dir: pathlib.Path, config: str) -> bool:
    folder = data_dir / "ptbxl" / config
    return not folder.exists() or not any(p.name.startswith("1.0.0") or "incomplete" in p.name for p in folder.iterdir())


def test_too_many_bad_records_write_nothing(tmp_path):
    root = tmp_path / "manual" / "ptb-xl-dummy"
    dummy.write_ptbxl(root, per_fold=2, rates=(100,))
    _break_records(root)
    # Records 6 and 7 have missing files: caught before anything is generated.
    with pytest.raises(
        manual_download.ManualDataError, match=r"files of 2 of the 20 records .* are missing.*00006_lr\.hea"
    ):
        dummy.build("ptbxl", "100hz", tmp_path / "data", root.parent)
    assert _no_dataset_written(tmp_path / "data", "100hz")
    # Signal problems are found while generating: the build stops and writes nothing.
    with pytest.raises(builder_base.TooManySkipsError, match=r"skipped 8 of 20 records.*nothing was written"):
        dummy.build("ptbxl", "100hz", tmp_path / "data", root.parent, max_skip_fraction=0.15)
    assert _no_dataset_written(tmp_path / "data", "100hz")


@pytest.mark.parametrize("make_dir", [False, True])
def test_missing_manual_download_names_archive_and_url(tmp_path, make_dir):
    manual = tmp_path / "manual"
    if make_dir:
        manual.mkdir()
        (manual / "unrelated.txt").write_text("x")
    with pytest.raises(manual_download.ManualDataError) as err:
        dummy.build("ptbxl", "100hz", tmp_path / "data", manual)
    message = str(err.value)
    assert ptbxl.SOURCE.archive_name in message and "https://physionet.org/content/ptb-xl/1.0.3/" in message


def test_missing_statements_file_is_named(tmp_path):
    root = tmp_path / "manual" / "ptb-xl-dummy"
    dummy.write_ptbxl(root, per_fold=1, rates=(100,))
    (root / "scp_statements.csv").unlink()
    with pytest.raises(manual_download.ManualDataError, match=r"missing file .*scp_statements\.csv.*physionet\.org"):
        dummy.build("ptbxl", "100hz", tmp_path / "data", root.parent)


def test_500hz_without_records500_is_a_clear_error(tmp_path):
    root = tmp_path / "manual" / "ptb-xl-dummy"
    dummy.write_ptbxl(root, per_fold=1, rates=(100,))
    with pytest.raises(
        manual_download.ManualDataError, match=r"missing folder .*records500.*physionet\.org/content/ptb-xl"
    ):
        dummy.build("ptbxl", "500hz", tmp_path / "data", root.parent)
    assert not (tmp_path / "data" / "ptbxl" / "500hz" / "1.0.0").exists()


def test_truncated_archive_is_a_clear_error(tmp_path):
    root = dummy_data()[0] / "ptb-xl-dummy"
    manual = tmp_path / "manual"
    manual.mkdir()
    archive = dummy.zip_folder(root, tmp_path / "ptb-xl-dummy.zip")
    (manual / archive.name).write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(manual_download.ManualDataError, match=r"truncated or corrupt"):
        dummy.build("ptbxl", "100hz", tmp_path / "data", manual)


def test_listed_archive_checksum(tmp_path, caplog):
    archive = tmp_path / "ptb-xl-test.zip"
    archive.write_bytes(b"0123456789")
    listing = tmp_path / "checksums.tsv"
    digest = manual_download.sha256sum(archive)
    listing.write_text(f"# comment\nptb-xl-test.zip\t10\t{digest}\tptb-xl-test.zip\n")
    manual_download.verify_archive(archive, ptbxl.SOURCE, listing)  # matches
    listing.write_text(f"ptb-xl-test.zip\t10\t{'0' * 64}\tptb-xl-test.zip\n")
    with pytest.raises(manual_download.ManualDataError, match="sha256"):
        manual_download.verify_archive(archive, ptbxl.SOURCE, listing)
    listing.write_text(f"ptb-xl-test.zip\t11\t{'0' * 64}\tptb-xl-test.zip\n")
    with caplog.at_level(logging.WARNING):
        manual_download.verify_archive(archive, ptbxl.SOURCE, listing)  # another archive under that name: warned
    assert "not checksummed" in caplog.text


def test_shipped_checksums_match_the_shared_archive():
    archive = dummy.shared_archive("ptb-xl-1.0.3-every5th.zip")
    listed = manual_download.load_checksums(ptbxl.Builder.code_path.parent / "checksums.tsv")
    assert listed[archive.name][0] == archive.stat().st_size


# ---------------------------------------------------------------------------
# Real data: PTB-XL 1.0.3, every 5th record (../shared/data)
# ---------------------------------------------------------------------------

FOLD_SIZES = {1: 426, 2: 439, 3: 443, 4: 455, 5: 405, 6: 438, 7: 437, 8: 436, 9: 416, 10: 464}
LABELS = {
    "train": {"NORM": 1500, "MI": 638, "STTC": 582, "CD": 557, "HYP": 202},
    "validation": {"NORM": 192, "MI": 68, "STTC": 70, "CD": 61, "HYP": 25},
    "test": {"NORM": 204, "MI": 87, "STTC": 72, "CD": 75, "HYP": 26},
}
PROBE_ECG_ID = 5  # fold 4 -> train


@pytest.fixture(scope="session")
def real_ptbxl(tmp_path_factory):
    """The 100hz build of the real subset, built once per session; summaries of every split."""
    archive = dummy.shared_archive("ptb-xl-1.0.3-every5th.zip")
    builder = dummy.build("ptbxl", "100hz", tmp_path_factory.mktemp("ptbxl_real"), archive.parent)
    keys = ("sample_id", "ecg_id", "label", "strat_fold", "has_diagnostic_label", *ptbxl.QUALITY_FLAGS)
    summary = helpers.split_columns(builder, keys, lambda ex: int(ex["ecg_id"]) == PROBE_ECG_ID)
    return builder, summary, archive


def test_real_split_and_fold_sizes(real_ptbxl):
    builder, summary, _ = real_ptbxl
    sizes = {s: i.num_examples for s, i in builder.info.splits.items()}
    assert sizes == {"train": 3479, "validation": 416, "test": 464}
    folds = collections.Counter(int(f) for s in summary.values() for f in s["strat_fold"])
    assert dict(folds) == FOLD_SIZES
    for split, rows in summary.items():
        assert sorted(rows["sample_id"].tolist()) == list(range(sizes[split]))
        assert len(set(rows["ecg_id"].tolist())) == sizes[split]
    assert builder.info.metadata["skips"]["num_skipped"] == 0


def test_real_label_distribution(real_ptbxl):
    _, summary, _ = real_ptbxl
    for split, rows in summary.items():
        counts = collections.Counter(ptbxl.SUPERCLASSES[i] for i in rows["label"])
        assert dict(counts) == LABELS[split]
    no_diagnostic = sum(int((~s["has_diagnostic_label"]).sum()) for s in summary.values())
    assert no_diagnostic == 74  # labelled NORM by the reference rule
    flags = {f: sum(int(s[f].sum()) for s in summary.values()) for f in ptbxl.QUALITY_FLAGS}
    assert flags == {"baseline_drift": 329, "static_noise": 615, "burst_noise": 124, "electrodes_problems": 5}


def test_real_record_matches_wfdb(real_ptbxl, tmp_path):
    import wfdb

    _, summary, archive = real_ptbxl
    (signal,) = summary["train"]["probe"]
    stem = f"ptb-xl-1.0.3-every5th/records100/00000/{PROBE_ECG_ID:05d}_lr"
    with zipfile.ZipFile(archive) as zf:
        for ext in (".hea", ".dat"):
            zf.extract(stem + ext, tmp_path)
    direct, fields = wfdb.rdsamp(str(tmp_path / stem))
    assert fields["sig_name"] == ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]
    assert signal.shape == (1000, 12) and signal.dtype == np.float32
    np.testing.assert_allclose(signal, direct, atol=1e-6)


def test_real_500hz_is_a_clear_error(tmp_path):
    archive = dummy.shared_archive("ptb-xl-1.0.3-every5th.zip")
    with pytest.raises(manual_download.ManualDataError, match=r"records500.*physionet\.org/content/ptb-xl/1\.0\.3"):
        dummy.build("ptbxl", "500hz", tmp_path / "data", archive.parent)


def test_registry_finds_builder():
    assert "ptbxl" in registry.names()
    builder = registry.builder("ptbxl", "500hz", data_dir="/nonexistent")
    assert builder.info.features["signal"].shape == (5000, 12)
    assert isinstance(builder.info.features["label"], tfds.features.ClassLabel)


def _statement_table(archive) -> tuple[dict, list[dict]]:
    """``scp_statements.csv`` (code -> row) and ``ptbxl_database.csv`` rows of the archive, read with csv."""
    with zipfile.ZipFile(archive) as zf:
        def rows(name):
            member = next(m for m in zf.namelist() if m.endswith(name))
            return list(csv.DictReader(io.TextIOWrapper(zf.open(member), encoding="utf-8")))

        statements = {row[""]: row for row in rows("scp_statements.csv")}
        return statements, rows("ptbxl_database.csv")


def test_real_multi_label_counts_match_the_csv_files(real_ptbxl):
    """The label sets' positives per split, checked against the archive's CSV files read independently."""
    from erts_tf.data import label_sets

    builder, _, archive = real_ptbxl
    statements, database = _statement_table(archive)
    defined = {
        "diagnostic": [c for c, r in statements.items() if r["diagnostic"] and float(r["diagnostic"]) == 1],
        "rhythm": [c for c, r in statements.items() if r["rhythm"] and float(r["rhythm"]) == 1],
        "all_statements": list(statements),
    }
    assert {k: len(v) for k, v in defined.items()} == {"diagnostic": 44, "rhythm": 12, "all_statements": 71}
    superclass = {c: statements[c]["diagnostic_class"] for c in defined["diagnostic"]}
    split_of = {**{f: "train" for f in range(1, 9)}, 9: "validation", 10: "test"}
    for feature in ("superclasses", "diagnostic", "rhythm", "all_statements"):
        names = label_sets.class_names(builder, feature)
        for split in ("train", "validation", "test"):
            want = collections.Counter()
            empty = 0
            for row in database:
                if split_of[int(float(row["strat_fold"]))] != split:
                    continue
                codes = ast.literal_eval(row["scp_codes"])
                if feature == "superclasses":
                    present = {superclass[c] for c in codes if c in superclass}
                else:
                    present = {c for c in codes if c in defined[feature]}
                want.update(present)
                empty += not present
            got = label_sets.read_feature(builder, split, feature)
            assert dict(zip(names, got.sum(axis=0).tolist())) == {n: want.get(n, 0) for n in names}, (feature, split)
            assert int((~got.any(axis=1)).sum()) == empty, (feature, split)
    assert sorted(label_sets.class_names(builder, "rhythm")) == sorted(defined["rhythm"])


def test_real_rhythm_set_leaves_out_records_without_a_rhythm_statement(real_ptbxl, caplog):
    """At load time: records with no rhythm statement are left out of the rhythm set (and the count logged)."""
    from erts_tf import run_data
    from erts_tf.data import label_sets
    from erts_tf.training.config import RunConfig

    builder, _, _ = real_ptbxl
    config = RunConfig(output_dir="unused", dataset="ptbxl", dataset_config="100hz", task="multi",
                       label_feature="rhythm")
    with caplog.at_level(logging.INFO, logger="erts_tf.data.label_sets"):
        test = run_data.load_split(builder, config, "test")
    stored = label_sets.read_feature(builder, "test", "rhythm")
    assert test.n == int(stored.any(axis=1).sum()) < len(stored)
    assert test.label.shape == (test.n, 12) and test.label.any(axis=1).all()
    assert any(f"{len(stored) - test.n} of {len(stored)} records have no label" in r.getMessage()
               for r in caplog.records)
