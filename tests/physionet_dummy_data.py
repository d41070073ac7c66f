"""Tiny dummy PhysioNet databases for the builder tests, written in each database's real layout.

Nothing here is copied from the real data: signals are random, tables are
made up. Each ``write_*`` function writes one database's layout into a folder
and returns what the builder should make of it, so tests can check the
builders against an independent expectation. Also the helpers shared by the
``tests/test_dataset_*.py`` modules (path of the real archives, building a
builder, zipping a folder).

As a script, writes every dummy database into a folder::

    python tests/physionet_dummy_data.py /tmp/dummy
"""

from __future__ import annotations

import csv
import pathlib
import shutil
import sys
import tarfile
import zipfile

import numpy as np

# The real archives (../shared/data from the repository root); tests skip when absent.
SHARED_DATA = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"

TWELVE = ("I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6")
CHALLENGE_LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")


def shared_archive(name: str) -> pathlib.Path:
    """Path of a real archive in ../shared/data, or ``pytest.skip`` with the reason."""
    import pytest

    path = SHARED_DATA / name
    if not path.is_file():
        pytest.skip(f"real data not available: {path} is absent (the shared data folder lives beside the repository)")
    return path


def build(name: str, config, data_dir, manual_dir, **kwargs):
    """Builds dataset ``name`` (config name or BuilderConfig object) from ``manual_dir``; returns the builder."""
    import tensorflow_datasets as tfds

    from erts_tf.data import registry

    cls = registry.builder_module(name).Builder
    builder = cls(config=config, data_dir=str(data_dir), **kwargs)
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
    return builder


def examples(builder, split: str) -> list[dict]:
    """All examples of a split as numpy dicts, sorted by sample_id."""
    out = list(builder.as_dataset(split=split).as_numpy_iterator())
    return sorted(out, key=lambda ex: int(ex["sample_id"]))


def tfds_testing():
    """``tensorflow_datasets.testing``, or None when its dependency ``dill`` (TFDS's test extra) is missing."""
    import importlib.util

    if importlib.util.find_spec("dill") is None:
        return None
    from tensorflow_datasets import testing

    return testing


TFDS_TESTING_MISSING = (
    "tfds.testing.DatasetBuilderTestCase needs `dill` (tensorflow-datasets' test extra), which is not installed; "
    "the same conventions are checked by the test_conventions tests"
)


def check_conventions(name: str, config, manual_dir, data_dir, splits: dict, builder=None) -> object:
    """The checks of ``tfds.testing.DatasetBuilderTestCase``, without its ``dill`` dependency.

    Builds ``config`` from ``manual_dir`` (or takes ``builder``, already built); checks the builder's metadata
    (registered, version with release notes, manual-download instructions,
    configs with descriptions and a valid default, README/CITATIONS read), the
    number of examples per split, that every split reads back with the
    declared features, that no example is in two splits, that ``sample_id``
    is 0..N-1 in each split, and that a reloaded builder reports the same.
    """
    import hashlib

    import tensorflow_datasets as tfds

    from erts_tf.data import registry

    cls = registry.builder_module(name).Builder
    assert name in tfds.list_builders(with_community_datasets=False)
    assert str(cls.VERSION) in cls.RELEASE_NOTES
    assert cls.MANUAL_DOWNLOAD_INSTRUCTIONS and "http" in cls.MANUAL_DOWNLOAD_INSTRUCTIONS
    config_names = [c.name for c in cls.BUILDER_CONFIGS]
    assert cls.DEFAULT_CONFIG_NAME in config_names and len(set(config_names)) == len(config_names)
    assert all(c.description for c in cls.BUILDER_CONFIGS)
    if builder is None:
        builder = build(name, config, data_dir, manual_dir)
    else:
        data_dir = builder.data_dir_root
    info = builder.info
    assert info.description and info.citation and info.homepage.startswith("https://physionet.org/")
    assert {s: i.num_examples for s, i in info.splits.items()} == splits
    assert info.supervised_keys is not None
    seen = {}
    for split in splits:
        dataset = builder.as_dataset(split=split)
        spec = dataset.element_spec
        for key in ("sample_id", "signal", "label"):
            assert key in spec, key
        assert spec["signal"].shape == info.features["signal"].shape
        ids, digests = [], set()
        for example in dataset.as_numpy_iterator():
            ids.append(int(example["sample_id"]))
            digests.add(hashlib.md5(example["signal"].tobytes() + repr(sorted(
                (k, v.tobytes() if hasattr(v, "tobytes") else v) for k, v in example.items() if k != "sample_id"
            )).encode()).hexdigest())
        assert sorted(ids) == list(range(splits[split])), split
        for other, other_digests in seen.items():
            assert not digests & other_digests, f"examples in both {split} and {other}"
        seen[split] = digests
    reloaded = cls(config=config, data_dir=str(data_dir))
    assert {s: i.num_examples for s, i in reloaded.info.splits.items()} == splits
    assert reloaded.info.features["signal"].shape == info.features["signal"].shape
    return builder


def zip_folder(folder: pathlib.Path, archive: pathlib.Path) -> pathlib.Path:
    """Zips ``folder`` with its own name as the top folder, as PhysioNet's archives are laid out."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, pathlib.Path(folder.name) / path.relative_to(folder))
    return archive


def tar_folder(folder: pathlib.Path, archive: pathlib.Path) -> pathlib.Path:
    with tarfile.open(archive, "w:gz") as tf_:
        tf_.add(folder, arcname=folder.name)
    return archive


# ---------------------------------------------------------------------------
# PTB-XL
# ---------------------------------------------------------------------------

# (code, description, diagnostic, diagnostic_class) rows of a made-up scp_statements.csv.
PTBXL_STATEMENTS = (
    ("NDT", "non-diagnostic T abnormalities", 1.0, "STTC"),
    ("NORM", "normal ECG", 1.0, "NORM"),
    ("IMI", "inferior myocardial infarction", 1.0, "MI"),
    ("ASMI", "anteroseptal myocardial infarction", 1.0, "MI"),
    ("LVH", "left ventricular hypertrophy", 1.0, "HYP"),
    ("CLBBB", "complete left bundle branch block", 1.0, "CD"),
    ("ISC_", "non-specific ischemic", 1.0, "STTC"),
    ("SR", "sinus rhythm", None, None),
    ("PVC", "ventricular premature complex", None, None),
)

# (scp_codes, reference label, multi-hot over NORM MI STTC CD HYP): the label rule's cases.
PTBXL_CASES = (
    ({"NORM": 100.0, "SR": 0.0}, "NORM", (1, 0, 0, 0, 0)),
    ({"IMI": 50.0, "LVH": 50.0}, "MI", (0, 1, 0, 0, 1)),  # tie: first code in dict order
    ({"LVH": 50.0, "IMI": 50.0}, "HYP", (0, 1, 0, 0, 1)),
    ({"NDT": 0.0, "SR": 0.0}, "STTC", (0, 0, 1, 0, 0)),  # likelihood 0 still counts
    ({"SR": 0.0, "PVC": 100.0}, "NORM", (0, 0, 0, 0, 0)),  # no diagnostic statement -> NORM
    ({"ASMI": 15.0, "CLBBB": 100.0}, "CD", (0, 1, 0, 1, 0)),
    ({"ISC_": 0.0, "LVH": 0.0}, "STTC", (0, 0, 1, 0, 1)),
    ({"PVC": 0.0, "IMI": 35.0, "NORM": 80.0}, "NORM", (1, 1, 0, 0, 0)),
)
PTBXL_RHYTHM = ("SR",)  # the rhythm statements of PTBXL_STATEMENTS (PVC is a form statement)
PTBXL_FLAGS = ("baseline_drift", "static_noise", "burst_noise", "electrodes_problems")
PTBXL_COLUMNS = (
    "ecg_id", "patient_id", "age", "sex", "height", "weight", "nurse", "site", "device", "recording_date",
    "report", "scp_codes", "heart_axis", "infarction_stadium1", "infarction_stadium2", "validated_by",
    "second_opinion", "initial_autogenerated_report", "validated_by_human", "baseline_drift", "static_noise",
    "burst_noise", "electrodes_problems", "extra_beats", "pacemaker", "strat_fold", "filename_lr", "filename_hr",
)  # fmt: skip


def _wfdb_12lead(folder: pathlib.Path, name: str, fs: int, n: int, rng, *, d_signal=None, leads=TWELVE) -> None:
    import wfdb

    folder.mkdir(parents=True, exist_ok=True)
    if d_signal is None:
        d_signal = rng.integers(-800, 800, size=(n, len(leads)), dtype=np.int64).astype(np.int32)
    wfdb.wrsamp(
        name,
        fs=fs,
        units=["mV"] * len(leads),
        sig_name=list(leads),
        d_signal=d_signal,
        fmt=["16"] * len(leads),
        adc_gain=[1000.0] * len(leads),
        baseline=[0] * len(leads),
        write_dir=str(folder),
    )


def write_ptbxl(root: pathlib.Path, *, per_fold: int = 2, rates=(100, 500), seed: int = 0) -> dict:
    """A PTB-XL-like folder: ptbxl_database.csv, scp_statements.csv, records100/ (and records500/).

    ``per_fold`` records in each of the 10 folds, ecg_ids 1, 2, ... in fold
    order; their scp_codes cycle through :data:`PTBXL_CASES`. Returns
    ``{ecg_id: {"label", "superclasses", "fold", "flags", "scp_codes"}}``.
    """
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "scp_statements.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["", "description", "diagnostic", "form", "rhythm", "diagnostic_class", "diagnostic_subclass"])
        for code, description, diagnostic, cls in PTBXL_STATEMENTS:
            writer.writerow([code, description, diagnostic or "", "", 1.0 if code in PTBXL_RHYTHM else "", cls or "",
                             cls or ""])
    expected, rows = {}, []
    ecg_id = 0
    for fold in range(1, 11):
        for _ in range(per_fold):
            ecg_id += 1
            codes, label, hot = PTBXL_CASES[(ecg_id - 1) % len(PTBXL_CASES)]
            flags = {flag: ("" if rng.random() < 0.6 else rng.choice([" , III,AVR", "V1", "alles"])) for flag in PTBXL_FLAGS}
            lr = f"records100/00000/{ecg_id:05d}_lr"
            hr = f"records500/00000/{ecg_id:05d}_hr"
            row = dict.fromkeys(PTBXL_COLUMNS, "")
            row.update(
                ecg_id=ecg_id, patient_id=f"{1000.0 + ecg_id:.1f}", age="63.0", sex="1", scp_codes=repr(codes),
                strat_fold=fold, filename_lr=lr, filename_hr=hr, **flags,
            )  # fmt: skip
            rows.append(row)
            if 100 in rates:
                _wfdb_12lead(root / "records100" / "00000", f"{ecg_id:05d}_lr", 100, 1000, rng)
            if 500 in rates:
                _wfdb_12lead(root / "records500" / "00000", f"{ecg_id:05d}_hr", 500, 5000, rng)
            expected[ecg_id] = {
                "label": label, "superclasses": hot, "fold": fold, "scp_codes": codes,
                "flags": {k: v != "" for k, v in flags.items()},
            }  # fmt: skip
    with open(root / "ptbxl_database.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=PTBXL_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return expected


def ptbxl_record(root: pathlib.Path, ecg_id: int, rate: int = 100) -> pathlib.Path:
    suffix = "lr" if rate == 100 else "hr"
    return root / f"records{rate}" / "00000" / f"{ecg_id:05d}_{suffix}"


# ---------------------------------------------------------------------------
# PhysioNet/CinC Challenge 2020 (CPSC 2018, Georgia)
# ---------------------------------------------------------------------------


def write_challenge_record(
    folder: pathlib.Path,
    name: str,
    dx: str,
    *,
    n: int = 1200,
    rng=None,
    leads=CHALLENGE_LEADS,
    fs: int = 500,
    val=None,
    header_samples: int | None = None,
) -> np.ndarray:
    """One record as the Challenge ships it: ``<name>.hea`` (with ``#Dx:``) + ``<name>.mat`` (``val``, int16)."""
    import scipy.io

    rng = rng if rng is not None else np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    if val is None:
        val = rng.integers(-2000, 2000, size=(len(leads), n)).astype(np.int16)
    scipy.io.savemat(folder / f"{name}.mat", {"val": val}, format="4")
    samples = val.shape[1] if header_samples is None else header_samples
    checksums = rng.integers(-30000, 30000, size=len(leads))  # not checked by readers
    lines = [f"{name} {len(leads)} {fs} {samples} 05-Feb-2020 11:39:16"]
    for lead, checksum, first in zip(leads, checksums, val[:, 0] if val.size else [0] * len(leads)):
        lines.append(f"{name}.mat 16+24 1000/mV 16 0 {int(first)} {int(checksum)} 0 {lead}")
    lines += ["#Age: 74", "#Sex: Male", f"#Dx: {dx}", "#Rx: Unknown", "#Hx: Unknown", "#Sx: Unknown"]
    (folder / f"{name}.hea").write_text("\n".join(lines) + "\n")
    return val


# (Dx line, reference label, multi-hot over NORM AF LBBB RBBB ST AVB PVC OTHER)
CHALLENGE_CASES = (
    ("426783006", "NORM", (1, 0, 0, 0, 0, 0, 0, 0)),
    ("164889003,59118001", "AF", (0, 1, 0, 1, 0, 0, 0, 0)),
    ("59118001,164889003", "RBBB", (0, 1, 0, 1, 0, 0, 0, 0)),
    ("251146004,164909002", "LBBB", (0, 0, 1, 0, 0, 0, 0, 1)),  # unknown code first: skipped for the label
    ("111975006", "OTHER", (0, 0, 0, 0, 0, 0, 0, 1)),  # unknown code only -> OTHER
    ("270492004,429622005", "AVB", (0, 0, 0, 0, 1, 1, 0, 0)),
    ("17338001", "PVC", (0, 0, 0, 0, 0, 0, 1, 0)),
    ("164931005,426783006", "ST", (1, 0, 0, 0, 1, 0, 0, 0)),
    ("713427006", "RBBB", (0, 0, 0, 1, 0, 0, 0, 0)),
    ("195042002", "AVB", (0, 0, 0, 0, 0, 1, 0, 0)),
)


def write_challenge(
    root: pathlib.Path,
    *,
    prefix: str = "A",
    digits: int = 4,
    per_case: int = 10,
    groups: int = 2,
    n: int = 1200,
    seed: int = 0,
) -> dict:
    """A Challenge-2020-like folder ``root/g1/``, ``root/g2/``...: ``per_case`` records per entry of
    :data:`CHALLENGE_CASES`, lengths cycling around ``n``. Returns ``{name: {"label", "multi_hot", "dx", "n"}}``."""
    rng = np.random.default_rng(seed)
    expected = {}
    index = 0
    for _ in range(per_case):
        for dx, label, hot in CHALLENGE_CASES:
            index += 1
            name = f"{prefix}{index:0{digits}d}"
            length = n + 250 * (index % 3) - 250
            group = root / f"g{1 + index % groups}"
            write_challenge_record(group, name, dx, n=length, rng=rng)
            expected[name] = {"label": label, "multi_hot": hot, "dx": dx, "n": length, "path": group / name}
    return expected


# ---------------------------------------------------------------------------
# MIT-BIH Arrhythmia Database
# ---------------------------------------------------------------------------

MITBIH_SYMBOLS = ("N", "N", "A", "N", "V", "+", "N", "F", "L", "~", "R", "j", "E", "S", "N", "/", "Q", "|", "e", "a")


def write_mitbih_record(
    folder: pathlib.Path, name: str, *, seconds: int = 12, leads=("MLII", "V1"), seed: int = 0, first: int = 60
) -> list[tuple[int, str]]:
    """One MIT-BIH-like record (format 212, 360 Hz, 2 leads) and its ``atr`` annotations.

    Returns the annotations ``(sample, symbol)``; beat annotations every ~300
    samples starting at sample ``first`` (so the first beat's window may leave
    the record), non-beat symbols interleaved.
    """
    import wfdb

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    n = 360 * seconds
    d_signal = rng.integers(-300, 300, size=(n, len(leads))).astype(np.int32) + 1024
    wfdb.wrsamp(
        name,
        fs=360,
        units=["mV"] * len(leads),
        sig_name=list(leads),
        d_signal=d_signal,
        fmt=["212"] * len(leads),
        adc_gain=[200.0] * len(leads),
        baseline=[1024] * len(leads),
        write_dir=str(folder),
    )
    samples, symbols = [], []
    position, k = first, 0
    while position < n - 5:
        samples.append(position)
        symbols.append(MITBIH_SYMBOLS[k % len(MITBIH_SYMBOLS)])
        position += int(rng.integers(250, 330)) if symbols[-1] not in "+~|" else 7
        k += 1
    wfdb.wrann(name, "atr", np.array(samples), symbol=symbols, write_dir=str(folder))
    return list(zip(samples, symbols))


def write_mitbih(root: pathlib.Path, records=("100", "101", "114")) -> dict:
    """MIT-BIH-like records (record 114 stores MLII second, like the real one). Returns annotations per record."""
    return {
        name: write_mitbih_record(
            root, name, seed=i, leads=("V5", "MLII") if name == "114" else ("MLII", "V1"), first=60 + 100 * (i % 2)
        )
        for i, name in enumerate(records)
    }


# ---------------------------------------------------------------------------
# PhysioNet/CinC Challenge 2017
# ---------------------------------------------------------------------------


def write_cinc2017(root: pathlib.Path, *, per_class: int = 10, seed: int = 0) -> dict:
    """A training2017-like folder: ``ANNNNN.mat`` (``val``, int16, 1 x length) and ``REFERENCE.csv``.

    Returns ``{name: {"label", "n", "val"}}``; lengths vary around 30 s at 300 Hz.
    """
    import scipy.io

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    expected = {}
    labels = ["N", "A", "O", "~"] * per_class
    for i, label in enumerate(labels, start=1):
        name = f"A{i:05d}"
        n = int(rng.choice([2700, 9000, 9000, 12000]))
        val = rng.integers(-500, 500, size=(1, n)).astype(np.int16)
        scipy.io.savemat(root / f"{name}.mat", {"val": val}, format="4")
        expected[name] = {"label": label, "n": n, "val": val}
    with open(root / "REFERENCE.csv", "w", newline="") as f:
        for name, info in expected.items():
            f.write(f"{name},{info['label']}\n")
    return expected


def main(out: str) -> None:
    out = pathlib.Path(out)
    shutil.rmtree(out, ignore_errors=True)
    write_ptbxl(out / "ptbxl" / "ptb-xl-dummy")
    write_challenge(out / "cpsc2018" / "cpsc_2018", prefix="A", digits=4)
    write_challenge(out / "georgia" / "georgia", prefix="E", digits=5)
    write_mitbih(out / "mitbih_arrhythmia" / "mit-bih-dummy")
    write_cinc2017(out / "cinc2017" / "training2017")
    print(f"dummy databases written to {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "dummy_data")
