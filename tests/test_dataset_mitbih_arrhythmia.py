"""mitbih_arrhythmia builder: TFDS conventions on dummy records, beat windows, bad input, the real database.

The full real build of config mlii (about 100k beats, under a minute) runs in
the default suite; the full two_leads build is marked slow.
"""

from __future__ import annotations

import collections
import pathlib
import zipfile

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import dataset_helpers as helpers
import physionet_dummy_data as dummy
from erts_tf.data import registry
from erts_tf.data.physionet import manual_download

mitbih = registry.builder_module("mitbih_arrhythmia")


def tiny_config(name="tiny", two_leads=False, **splits):
    records = {"train_records": ("101",), "validation_records": ("114",), "test_records": ("100",), **splits}
    return mitbih.MitbihConfig(name=name, description="test records", two_leads=two_leads, **records)


# The one- and two-lead tiny configs, on three dummy records.
TINY_CONFIGS = (tiny_config("tiny"), tiny_config("tiny_two", two_leads=True))

dummy_manual = helpers.cached_manual(
    "mitbih_dummy_", lambda manual: dummy.write_mitbih(manual / "mit-bih-dummy", records=("100", "101", "114"))
)


def expected_beats(annotations, record, before=128, after=128, n=360 * 12):
    """(sample, symbol, index) of the beats the builder should keep, computed from the written annotations."""
    return [
        (s, sym, i)
        for i, (s, sym) in enumerate(annotations[record])
        if sym in mitbih.AAMI and s - before >= 0 and s + after <= n
    ]


def dummy_splits():
    _, annotations = dummy_manual()
    return {split: len(expected_beats(annotations, r)) for split, r in (("train", "101"), ("validation", "114"), ("test", "100"))}


built = helpers.built_fixture("mitbih_arrhythmia", TINY_CONFIGS, dummy_manual)
TestMitbihBuilder, test_conventions = helpers.conventions_tests(
    mitbih.Builder, TINY_CONFIGS, dummy_manual, dummy_splits
)


@pytest.mark.parametrize("two_leads", [False, True])
def test_dummy_beats(two_leads, built):
    import wfdb

    manual, annotations = dummy_manual()
    builder = built["tiny_two" if two_leads else "tiny"]
    dropped = {}
    for split, record in (("train", "101"), ("validation", "114"), ("test", "100")):
        found = dummy.examples(builder, split)
        want = expected_beats(annotations, record)
        assert [int(ex["sample"]) for ex in found] == [s for s, _, _ in want]
        assert [int(ex["beat_index"]) for ex in found] == [i for _, _, i in want]
        assert [mitbih.CLASSES[ex["label"]] for ex in found] == [mitbih.AAMI[sym] for _, sym, _ in want]
        assert [ex["symbol"].decode() for ex in found] == [sym for _, sym, _ in want]
        beats = [s for s, sym in annotations[record] if sym in mitbih.AAMI]
        dropped[split] = len(beats) - len(want)
        direct = wfdb.rdrecord(str(manual / "mit-bih-dummy" / record))
        names = list(direct.sig_name)
        order = [names.index("MLII")] + ([1 - names.index("MLII")] if two_leads else [])
        for ex in found:
            peak = int(ex["sample"])
            np.testing.assert_allclose(ex["signal"], direct.p_signal[peak - 128 : peak + 128, order], atol=1e-6)
            position = beats.index(peak)
            rr = (peak - beats[position - 1]) / 360 if position else 0.0
            assert ex["rr_previous"] == pytest.approx(rr, abs=1e-5)
        assert ex["leads"].decode().split(",")[0] == "MLII"
    assert builder.info.metadata["dropped_edge_beats"] == dropped
    assert builder.info.features["signal"].shape == (256, 2 if two_leads else 1)


def test_missing_or_bad_record_is_an_error(tmp_path):
    manual = tmp_path / "manual"
    folder = manual / "mit-bih-dummy"
    dummy.write_mitbih(folder, records=("100", "101", "114"))
    (folder / "101.atr").unlink()
    with pytest.raises(
        manual_download.ManualDataError, match=r"missing file\(s\) .*101\.atr.*physionet\.org/content/mitdb"
    ):
        dummy.build("mitbih_arrhythmia", tiny_config(), tmp_path / "data", manual)
    dummy.write_mitbih(folder, records=("101",))
    dat = folder / "114.dat"
    dat.write_bytes(dat.read_bytes()[:1000])
    with pytest.raises(ValueError, match=r"record 114 cannot be used: truncated signal file .*114\.dat"):
        dummy.build("mitbih_arrhythmia", tiny_config(), tmp_path / "data", manual)
    dummy.write_mitbih(folder, records=("114",))
    hea = folder / "114.hea"
    hea.write_text(hea.read_text().replace("/mV", "/uV"))
    with pytest.raises(ValueError, match=r"record 114 cannot be used: record 114: leads in uV, expected mV"):
        dummy.build("mitbih_arrhythmia", tiny_config(), tmp_path / "data", manual)
    assert not (tmp_path / "data" / "mitbih_arrhythmia" / "tiny" / "1.0.0").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(manual_download.ManualDataError, match=r"mit-bih-arrhythmia-database-1\.0\.0\.zip"):
        dummy.build("mitbih_arrhythmia", "mlii", tmp_path / "data2", empty)


def test_default_splits_are_de_chazal():
    config = next(c for c in mitbih.Builder.BUILDER_CONFIGS if c.name == "mlii")
    assert set(config.train_records) | set(config.validation_records) == set(mitbih.DS1)
    assert not set(config.train_records) & set(config.validation_records)
    assert config.test_records == mitbih.DS2 and len(mitbih.DS1) == len(mitbih.DS2) == 22
    assert not set(mitbih.PACED) & set(mitbih.DS1 + mitbih.DS2)


# ---------------------------------------------------------------------------
# Real data: MIT-BIH Arrhythmia Database 1.0.0, complete (../shared/data)
# ---------------------------------------------------------------------------

FULL_SIZES = {"train": 43039, "validation": 7961, "test": 49693}
FULL_COUNTS = {
    "train": {"N": 38904, "S": 721, "V": 3015, "F": 391, "Q": 8},
    "validation": {"N": 6942, "S": 223, "V": 773, "F": 23},
    "test": {"N": 44241, "S": 1837, "V": 3220, "F": 388, "Q": 7},
}


def _extract_record(archive: pathlib.Path, record: str, into: pathlib.Path) -> pathlib.Path:
    with zipfile.ZipFile(archive) as zf:
        for ext in ("hea", "dat", "atr"):
            zf.extract(f"mit-bih-arrhythmia-database-1.0.0/{record}.{ext}", into)
    return into / "mit-bih-arrhythmia-database-1.0.0" / record


def _check_against_wfdb(builder, archive, records_by_split, into, two_leads):
    """Every kept beat of the records equals wfdb's annotations; one window per record equals wfdb's signal."""
    import wfdb

    for split, records in records_by_split.items():
        dataset = builder.as_dataset(split=split).filter(lambda ex: tf.reduce_any(ex["record"] == list(records)))
        found = sorted(dataset.as_numpy_iterator(), key=lambda ex: int(ex["sample_id"]))
        expected = []
        for record in records:
            path = _extract_record(archive, record, into)
            ann = wfdb.rdann(str(path), "atr")
            signal = wfdb.rdrecord(str(path))
            n = signal.p_signal.shape[0]
            keep = [(int(s), sym) for s, sym in zip(ann.sample, ann.symbol) if sym in mitbih.AAMI and 128 <= s <= n - 128]
            expected += [(record, s, mitbih.AAMI[sym]) for s, sym in keep]
            names = list(signal.sig_name)
            columns = [names.index("MLII")] + ([1 - names.index("MLII")] if two_leads else [])
            for probe in [ex for ex in found if ex["record"].decode() == record][:: 500]:
                peak = int(probe["sample"])
                np.testing.assert_allclose(probe["signal"], signal.p_signal[peak - 128 : peak + 128, columns], atol=1e-6)
                assert probe["leads"].decode() == ",".join(names[c] for c in columns)
        assert [(ex["record"].decode(), int(ex["sample"]), mitbih.CLASSES[ex["label"]]) for ex in found] == expected


@pytest.fixture(scope="session")
def real_full(tmp_path_factory):
    """Config mlii on all 44 records (~100k beats, about a minute), built once per session."""
    archive = dummy.shared_archive("mit-bih-arrhythmia-database-1.0.0.zip")
    builder = dummy.build("mitbih_arrhythmia", "mlii", tmp_path_factory.mktemp("mitbih_real"), archive.parent)
    return builder, archive


def test_real_full_sizes_and_labels(real_full):
    builder, _ = real_full
    assert {s: i.num_examples for s, i in builder.info.splits.items()} == FULL_SIZES
    # DS1 holds 51,021 and DS2 49,712 annotated AAMI beats (de Chazal et al.); 40 leave the record's edges.
    assert builder.info.metadata["dropped_edge_beats"] == {"train": 19, "validation": 2, "test": 19}
    for split, counts in FULL_COUNTS.items():
        labels, ids, records = collections.Counter(), [], set()
        only = tfds.decode.PartialDecoding({"label": True, "sample_id": True, "record": True})
        for batch in builder.as_dataset(split=split, batch_size=8192, decoders=only).as_numpy_iterator():
            labels.update(mitbih.CLASSES[i] for i in batch["label"])
            ids.extend(batch["sample_id"].tolist())
            records.update(r.decode() for r in batch["record"])
        assert dict(labels) == counts
        assert sorted(ids) == list(range(FULL_SIZES[split]))
        assert records == set(getattr(builder.builder_config, f"{split}_records"))


def test_real_full_matches_wfdb(real_full, tmp_path):
    builder, archive = real_full
    _check_against_wfdb(builder, archive, {"validation": ("114",)}, tmp_path, two_leads=False)


@pytest.mark.slow
def test_real_full_two_leads(tmp_path):
    """Config two_leads on all 44 records: the same beats as mlii, MLII first (record 114 stores it second)."""
    archive = dummy.shared_archive("mit-bih-arrhythmia-database-1.0.0.zip")
    builder = dummy.build("mitbih_arrhythmia", "two_leads", tmp_path / "data", archive.parent)
    assert {s: i.num_examples for s, i in builder.info.splits.items()} == FULL_SIZES
    assert builder.info.features["signal"].shape == (256, 2)
    _check_against_wfdb(builder, archive, {"validation": ("114",)}, tmp_path / "records", two_leads=True)


def test_context_window_holds_the_neighbouring_beats(tmp_path):
    """A 2 s window (config mlii_context's before/after) is the signal around the R peak; beats too near an
    edge for it are dropped and counted."""
    import wfdb

    shipped = next(c for c in mitbih.Builder.BUILDER_CONFIGS if c.name == "mlii_context")
    assert (shipped.before, shipped.after, shipped.two_leads) == (360, 360, False)
    manual, annotations = dummy_manual()
    config = mitbih.MitbihConfig(name="tiny_context", description="test records", before=360, after=360,
                                 train_records=("101",), validation_records=("114",), test_records=("100",))
    builder = dummy.build("mitbih_arrhythmia", config, tmp_path / "data", manual)
    assert builder.info.features["signal"].shape == (720, 1)
    found = dummy.examples(builder, "test")
    want = expected_beats(annotations, "100", before=360, after=360)
    assert [int(ex["sample"]) for ex in found] == [s for s, _, _ in want]
    assert len(want) < len(expected_beats(annotations, "100"))  # the wider window drops more edge beats
    direct = wfdb.rdrecord(str(manual / "mit-bih-dummy" / "100"))
    mlii = list(direct.sig_name).index("MLII")
    for ex in found:
        peak = int(ex["sample"])
        np.testing.assert_allclose(ex["signal"][:, 0], direct.p_signal[peak - 360: peak + 360, mlii], atol=1e-6)


def test_rhythm_channel_marks_each_r_peak_at_its_time():
    """One bump per R peak within the half width, at its place on the squeezed axis; a premature beat's bump
    sits nearer the previous one."""
    beats = np.array([0, 300, 600, 900, 1200, 1500, 1800, 2400])  # regular at 300 samples, one outside 900 +- 900
    channel = mitbih.rhythm_channel(900, beats, 181, 900)  # 10 samples per point
    assert channel.shape == (181,) and channel.dtype == np.float32
    peaks = [i for i in range(1, 180) if channel[i] > channel[i - 1] and channel[i] >= channel[i + 1]]
    assert peaks == [30, 60, 90, 120, 150] and channel[0] > 0.99 and channel[180] > 0.99  # and at both ends
    premature = mitbih.rhythm_channel(900, np.array([300, 600, 780, 1200, 1500]), 181, 900)
    assert int(np.argmax(premature[65:100])) + 65 == 78  # 780 -> point 78: nearer 60 (600) than 120 (1200)


def test_interval_channel_is_a_box_as_wide_as_the_interval():
    """An axis of 201 points over peak +- 1000 samples (10 samples per point, the peak at point 100): the previous
    RR interval 600 samples is the box of points 40..100, a shorter one a narrower box; none without a neighbour."""
    before = mitbih.interval_channel(400, 1000, 1000, 201, 1000)
    assert before.shape == (201,) and before.dtype == np.float32 and set(np.unique(before)) == {0.0, 1.0}
    assert np.flatnonzero(before).tolist() == list(range(40, 101))
    premature = mitbih.interval_channel(700, 1000, 1000, 201, 1000)
    assert np.flatnonzero(premature).tolist() == list(range(70, 101))
    after = mitbih.interval_channel(1000, 1500, 1000, 201, 1000)
    assert np.flatnonzero(after).tolist() == list(range(100, 151))
    assert np.flatnonzero(mitbih.interval_channel(1000, 5000, 1000, 201, 1000)).tolist() == list(range(100, 201))
    assert not mitbih.interval_channel(None, 1000, 1000, 201, 1000).any()
    assert not mitbih.interval_channel(1000, None, 1000, 201, 1000).any()


def test_mean_rr_is_the_mean_interval_of_the_peaks_within_the_half_width():
    beats = np.array([0, 300, 600, 800, 1000, 1500, 5000])
    assert mitbih.mean_rr(700, beats, 700) == pytest.approx((1000 - 0) / 4)  # 0..1000: 4 intervals
    assert mitbih.mean_rr(1000, beats, 500) == pytest.approx((1500 - 600) / 3)
    assert mitbih.mean_rr(5000, beats, 1000) == 1000.0  # alone: the half width, longer than any RR within it


def test_each_shipped_config_declares_its_leads_and_rhythm_channels(tmp_path):
    shapes = {"mlii": (256, 1), "two_leads": (256, 2), "mlii_rhythm": (256, 2), "mlii_rhythm_relative": (256, 3),
              "mlii_rhythm_intervals": (256, 5), "two_leads_rhythm_relative": (256, 4), "mlii_context": (720, 1)}
    assert {c.name for c in mitbih.Builder.BUILDER_CONFIGS} == set(shapes)
    for name, shape in shapes.items():
        assert mitbih.Builder(config=name, data_dir=tmp_path).info.features["signal"].shape == shape, name


@pytest.mark.parametrize("two_leads", [False, True])
def test_rhythm_configs_add_the_rhythm_channels(two_leads, tmp_path, built):
    shipped = {c.name: c for c in mitbih.Builder.BUILDER_CONFIGS}
    assert (shipped["mlii_rhythm"].before, shipped["mlii_rhythm"].after, shipped["mlii_rhythm"].two_leads) == (128, 128, False)
    assert (shipped["mlii_rhythm"].rhythm_s, shipped["mlii_rhythm"].relative_rhythm_beats) == (5.0, 0.0)
    for name in ("mlii_rhythm_relative", "mlii_rhythm_intervals", "two_leads_rhythm_relative"):
        assert (shipped[name].rhythm_s, shipped[name].relative_rhythm_beats) == (5.0, 4.0)
        assert shipped[name].two_leads == name.startswith("two_leads")
        assert shipped[name].interval_beats == (2.0 if name == "mlii_rhythm_intervals" else 0.0)
    manual, annotations = dummy_manual()
    config = mitbih.MitbihConfig(name="tiny_rhythm", description="test records", rhythm_s=5.0,
                                 relative_rhythm_beats=4.0, interval_beats=2.0, two_leads=two_leads,
                                 train_records=("101",), validation_records=("114",), test_records=("100",))
    builder = dummy.build("mitbih_arrhythmia", config, tmp_path / "data", manual)
    leads = 2 if two_leads else 1
    assert builder.info.features["signal"].shape == (256, leads + 4)
    plain = {int(ex["sample"]): ex for ex in dummy.examples(built["tiny_two" if two_leads else "tiny"], "test")}
    beats = np.array([s for s, sym in annotations["100"] if sym in mitbih.AAMI])
    rr = (beats[-1] - beats[0]) / (len(beats) - 1)  # the dummy record (12 s) is inside 5 min of every beat
    found = dummy.examples(builder, "test")
    assert [int(ex["sample"]) for ex in found] == sorted(plain)  # the same beats as mlii
    for ex in found:
        peak = int(ex["sample"])
        position = int(np.searchsorted(beats, peak))
        neighbours = (int(beats[position - 1]) if position else None,
                      int(beats[position + 1]) if position + 1 < len(beats) else None)
        np.testing.assert_array_equal(ex["signal"][:, :leads], plain[peak]["signal"])
        np.testing.assert_array_equal(ex["signal"][:, leads + 2],
                                      mitbih.interval_channel(neighbours[0], peak, peak, 256, round(2 * rr)))
        np.testing.assert_array_equal(ex["signal"][:, leads + 3],
                                      mitbih.interval_channel(peak, neighbours[1], peak, 256, round(2 * rr)))
        assert ex["signal"][:, leads + 2].sum() == pytest.approx((peak - neighbours[0]) / (4 * rr) * 255, abs=1.5)
        np.testing.assert_allclose(ex["signal"][:, leads], mitbih.rhythm_channel(peak, beats, 256, 1800), atol=1e-6)
        np.testing.assert_allclose(ex["signal"][:, leads + 1], mitbih.rhythm_channel(peak, beats, 256, round(4 * rr)),
                                   atol=1e-6)
        for channel in (leads, leads + 1):  # the beat itself: the middle
            assert abs(int(np.argmax(ex["signal"][120:136, channel])) + 120 - 127.5) <= 0.5
        assert ex["leads"].decode() == plain[peak]["leads"].decode() + ",rhythm,rhythm_relative,rr_before,rr_after"
