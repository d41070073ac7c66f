"""cpsc2018 builder (PhysioNet/CinC Challenge 2020 layout): conventions, labels, split, zip/tar, bad input.

CPSC 2018 is not available to the project: every test writes its own small
records in the layout the Challenge ships (``g1/A0001.hea`` with ``#Dx:``,
``g1/A0001.mat`` with ``val``).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

import dataset_helpers as helpers
import physionet_dummy_data as dummy
from erts_tf.data import registry
from erts_tf.data.physionet import builder_base, challenge2020, manual_download

cpsc = registry.builder_module("cpsc2018")
CONFIGS = ("10s", "paper_crop", "full")
DUMMY_SPLITS = {"train": 80, "validation": 10, "test": 10}

dummy_manual = helpers.cached_manual(
    "cpsc2018_dummy_", lambda manual: dummy.write_challenge(manual / "training" / "cpsc_2018", prefix="A", digits=4)
)
built = helpers.built_fixture("cpsc2018", CONFIGS, dummy_manual)
TestCpsc2018Builder, test_conventions = helpers.conventions_tests(cpsc.Builder, CONFIGS, dummy_manual, DUMMY_SPLITS)


@pytest.mark.parametrize("dx, label, hot", dummy.CHALLENGE_CASES)
def test_first_matching_code_wins(dx, label, hot):
    codes = challenge2020.dx_codes([f"Dx: {dx}"])
    assert challenge2020.unified_label(codes) == label
    assert tuple(challenge2020.unified_multi_hot(codes)) == hot


def test_dx_line_variants():
    assert challenge2020.dx_codes(["Age: 74", "Dx: 426783006, 164889003 ", "Rx: x"]) == ["426783006", "164889003"]
    assert challenge2020.dx_codes(["# Dx: 59118001"]) == ["59118001"]
    assert challenge2020.dx_codes(["Age: 74"]) == []
    assert challenge2020.unified_label([]) == "OTHER"
    assert tuple(challenge2020.unified_multi_hot([])) == (0, 0, 0, 0, 0, 0, 0, 1)


def reference_table_split(expected: dict) -> dict:
    """The reference's own split: sorted headers in a DataFrame, train_test_split twice (seed 42)."""
    from sklearn.model_selection import train_test_split

    df = pd.DataFrame(
        [{"record": n, "label": challenge2020.UNIFIED_CLASSES.index(expected[n]["label"])} for n in sorted(expected)]
    )
    train, rest = train_test_split(df, test_size=0.2, random_state=42, stratify=df["label"])
    validation, test = train_test_split(rest, test_size=0.5, random_state=42, stratify=rest["label"])
    return {"train": set(train.record), "validation": set(validation.record), "test": set(test.record)}


@pytest.mark.parametrize("config, length", [("paper_crop", 1000), ("10s", 5000), ("full", None)])
def test_dummy_values_and_reference_split(config, length, built):
    _, expected = dummy_manual()
    names = helpers.check_challenge_examples(built[config], expected, length)
    reference = reference_table_split(expected)
    assert names == {split: sorted(reference[split]) for split in helpers.SPLITS}


def test_archives_as_distributed(tmp_path):
    """The Challenge zip (all databases, training/<db>/gN/) and a database tarball; other databases ignored."""
    source = tmp_path / "src" / "classification-of-12-lead-ecgs-1.0.2"
    dummy.write_challenge(source / "training" / "cpsc_2018", prefix="A", digits=4, per_case=10)
    dummy.write_challenge(source / "training" / "georgia", prefix="E", digits=5, per_case=1)
    dummy.write_challenge(source / "training" / "cpsc_2018_extra", prefix="Q", digits=4, per_case=1)
    for kind in ("zip", "tar.gz"):
        manual = tmp_path / f"manual_{kind.replace('.', '')}"
        manual.mkdir()
        if kind == "zip":
            dummy.zip_folder(source, manual / f"{source.name}.zip")
        else:
            dummy.tar_folder(source / "training" / "cpsc_2018", manual / "PhysioNetChallenge2020_Training_CPSC.tar.gz")
        builder = dummy.build("cpsc2018", "paper_crop", tmp_path / f"data_{kind}", manual)
        assert {s: i.num_examples for s, i in builder.info.splits.items()} == DUMMY_SPLITS
        records = {ex["record"].decode() for s in DUMMY_SPLITS for ex in dummy.examples(builder, s)}
        assert all(r.startswith("A") for r in records)
        extracted = tmp_path / f"data_{kind}" / "downloads" / manual_download.EXTRACT_DIR_NAME
        members = [p.name for p in extracted.rglob("*") if p.is_file() and not p.name.startswith(".")]
        assert members and all(m.startswith("A") for m in members)  # only CPSC records were extracted


def test_bad_records_are_skipped_counted_and_reported(tmp_path, caplog):
    folder = tmp_path / "manual" / "g1"
    dummy.write_challenge(tmp_path / "manual", prefix="A", digits=4)
    rng = np.random.default_rng(5)
    (folder / "A0100.hea").unlink()  # signal without header (write_challenge puts even numbers in g1/)
    dummy.write_challenge_record(folder, "A0101", "426783006", rng=rng)
    (folder / "A0101.mat").unlink()  # header without signal
    dummy.write_challenge_record(folder, "A0102", "426783006", rng=rng)
    (folder / "A0102.mat").write_bytes(b"\x00garbage" * 100)  # unreadable .mat
    dummy.write_challenge_record(folder, "A0103", "426783006", rng=rng, header_samples=7500)  # length mismatch
    dummy.write_challenge_record(folder, "A0104", "426783006", rng=rng, leads=dummy.CHALLENGE_LEADS[:11])
    dummy.write_challenge_record(folder, "A0105", "426783006", rng=rng, fs=250)
    dummy.write_challenge_record(folder, "A0106", "426783006", rng=rng, val=np.full((12, 1200), 3, np.int16))
    dummy.write_challenge_record(folder, "A0107", "999999999,426783006", rng=rng)  # unknown code first: fine
    dummy.write_challenge_record(folder, "A0108", "426783006", rng=rng)
    header = folder / "A0108.hea"
    header.write_text(header.read_text().replace("1000/mV", "1000/uV"))  # other units
    with caplog.at_level(logging.WARNING):
        builder = dummy.build("cpsc2018", "paper_crop", tmp_path / "data", tmp_path / "manual", max_skip_fraction=0.1)
    skips = builder.info.metadata["skips"]
    reasons = {s["record"]: s["reason"] for s in skips["skipped"]}
    assert skips["num_considered"] == 108 and skips["num_skipped"] == 8, reasons
    assert "missing header A0100.hea" in reasons["A0100"]
    assert "missing signal file A0101.mat" in reasons["A0101"]
    assert "unreadable MATLAB file" in reasons["A0102"] and "A0102.mat" in reasons["A0102"]
    assert "header/signal length mismatch" in reasons["A0103"]
    assert "wrong lead count" in reasons["A0104"] and "11 leads" in reasons["A0104"]
    assert "250 Hz" in reasons["A0105"]
    assert "constant signal" in reasons["A0106"]
    assert "record A0108: leads in uV, expected mV" in reasons["A0108"]
    assert "cpsc2018/paper_crop: skipped 8 of 108 records" in caplog.text
    found = {ex["record"].decode(): ex for s in DUMMY_SPLITS for ex in dummy.examples(builder, s)}
    assert len(found) == 100 and challenge2020.UNIFIED_CLASSES[found["A0107"]["label"]] == "NORM"
    with pytest.raises(builder_base.TooManySkipsError, match=r"skipped \d of 108 records"):
        dummy.build("cpsc2018", "10s", tmp_path / "data", tmp_path / "manual")
    assert not (tmp_path / "data" / "cpsc2018" / "10s" / "1.0.0").exists()


def test_missing_data_and_duplicates_are_clear_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("nothing here")
    with pytest.raises(manual_download.ManualDataError, match=r"no records .*physionet\.org/content/challenge-2020"):
        dummy.build("cpsc2018", "10s", tmp_path / "data", empty)
    manual = tmp_path / "manual"
    dummy.write_challenge_record(manual / "a", "A0001", "426783006")
    dummy.write_challenge_record(manual / "b", "A0001", "426783006")
    with pytest.raises(manual_download.ManualDataError, match=r"record A0001 found 2 times"):
        dummy.build("cpsc2018", "10s", tmp_path / "data", manual)


def test_too_few_records_for_the_split_is_a_clear_error(tmp_path):
    manual = tmp_path / "manual"
    for i, dx in enumerate(["426783006", "164889003", "426783006"], start=1):
        dummy.write_challenge_record(manual, f"A{i:04d}", dx)
    with pytest.raises(ValueError, match="cannot make a stratified 80/10/10 split of 3 records"):
        dummy.build("cpsc2018", "10s", tmp_path / "data", manual)
