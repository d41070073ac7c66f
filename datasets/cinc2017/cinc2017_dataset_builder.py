"""cinc2017: PhysioNet/CinC Challenge 2017 AF classification, single-lead 300 Hz ECGs (manual download).

Labels from ``REFERENCE.csv`` (``REFERENCE-v3.csv`` when present): N normal,
A atrial fibrillation, O other rhythm, ~ noisy. ``~`` stays a class and is
also exposed as ``is_noisy``. Signals are in millivolts (the ``.mat`` files'
adu divided by their gain, 1000 adu/mV). Records (9-61 s) are cropped (from the start) or
zero-padded (at the end) to the config's length; ``num_samples`` keeps the
original length. Config ``full`` writes every recording whole, each of its own
length (train on windows of them: ``--window_s``). Stratified 80/10/10 split, seed 42 (records sorted by name).
"""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np
import pandas as pd
import tensorflow_datasets as tfds

from erts_tf.data.physionet import builder_base, features, manual_download, readers

CLASSES = ("N", "A", "O", "~")
SAMPLING_RATE = 300
GAIN = 1000.0  # adu per mV, as in the Challenge's headers
UNITS = "mV"  # of the stored signal: the .mat's adu divided by GAIN
SPLIT_SEED = 42

SOURCE = manual_download.Source(
    dataset="cinc2017",
    title="PhysioNet/CinC Challenge 2017 training set 1.0.0",
    url="https://physionet.org/content/challenge-2017/1.0.0/",
    archive_name="training2017.zip",
    archive_patterns=("training2017*.zip", "training2017*.tar.gz"),
    markers=("REFERENCE*.csv", "A[0-9][0-9][0-9][0-9][0-9].mat"),
)


@dataclasses.dataclass
class Cinc2017Config(tfds.core.BuilderConfig):
    """Fixed signal length in samples at 300 Hz (crop from the start / zero-pad at the end); None: whole records."""

    length: int | None = 9000


class Builder(builder_base.PhysioNetBuilder):
    """DatasetBuilder for cinc2017."""

    SOURCE = SOURCE
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: N/A/O/~ labels, is_noisy, crop/pad configs, stratified split."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
    Download training2017.zip from {SOURCE.url} (files/challenge-2017/1.0.0/)
    and put it, unchanged, or the folder extracted from it (training2017/
    holding ANNNNN.mat and REFERENCE.csv) in manual_dir. Optionally put
    REFERENCE-v3.csv (the final labels, same page) beside it: it is then used
    instead of REFERENCE.csv.
    """
    BUILDER_CONFIGS = [
        Cinc2017Config(name="30s", description="Crop/pad to 30 s (9000 samples).", length=9000),
        Cinc2017Config(name="9s", description="Crop to 9 s (2700 samples, the shortest record).", length=2700),
        Cinc2017Config(name="61s", description="Pad to 61 s (18300 samples): nothing cropped.", length=18300),
        Cinc2017Config(name="full", description="Whole recordings (9-61 s), unpadded: train on windows (--window_s).",
                       length=None),
    ]
    DEFAULT_CONFIG_NAME = "30s"

    def _example_features(self) -> dict:
        return {
            "record": tfds.features.Text(),
            "signal": features.signal_feature((self.builder_config.length, 1)),
            "label": tfds.features.ClassLabel(names=CLASSES),
            "is_noisy": np.bool_,
            "num_samples": np.int64,
        }

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        root = self._locate_root(dl_manager)
        reference = self._reference_file(root, manual_download.manual_dir(dl_manager, SOURCE))
        labels = read_reference(reference)
        mats = {p.stem: p for p in root.glob("A[0-9][0-9][0-9][0-9][0-9].mat")}
        self._total_records = len(set(labels) | set(mats))
        for name in sorted(set(mats) - set(labels)):
            self.skip_log.skip(name, f"{mats[name].name} has no label in {reference.name}")
        names = []
        for name in sorted(labels):
            if name not in mats:
                self.skip_log.skip(name, f"missing signal file {root / (name + '.mat')} (listed in {reference.name})")
            else:
                names.append(name)
        if not names:
            raise manual_download.ManualDataError(f"cinc2017: no record of {reference} has its .mat file in {root}")
        splits = features.reference_split([CLASSES.index(labels[n]) for n in names], seed=SPLIT_SEED)
        return {
            split: self._generate_examples(split, [n for n, s in zip(names, splits) if s == split], mats, labels)
            for split in ("train", "validation", "test")
        }

    @staticmethod
    def _reference_file(root: pathlib.Path, manual: pathlib.Path) -> pathlib.Path:
        for candidate in (root / "REFERENCE-v3.csv", manual / "REFERENCE-v3.csv", root / "REFERENCE.csv"):
            if candidate.is_file():
                return candidate
        raise manual_download.ManualDataError(
            f"cinc2017: missing file {root / 'REFERENCE.csv'} (the labels), part of {SOURCE.archive_name} "
            f"from {SOURCE.url}."
        )

    def _generate_examples(self, split: str, names: list[str], mats: dict, labels: dict):
        length = self.builder_config.length

        def make_example(name: str) -> dict:
            matrix = readers.read_mat(mats[name])
            if matrix.shape[0] != 1:
                raise readers.RecordError(
                    f"wrong lead count: {mats[name].name} holds {matrix.shape[0]} leads x {matrix.shape[1]} samples, "
                    "expected 1 lead"
                )
            signal = (matrix.T / GAIN).astype(np.float32)
            readers.check_signal(signal, name)
            return {
                "record": name,
                "signal": features.fix_length(signal, length),
                "label": labels[name],
                "is_noisy": labels[name] == "~",
                "num_samples": signal.shape[0],
            }

        yield from self._iterate_records(split, names, make_example)


def read_reference(path: pathlib.Path) -> dict:
    """``{record: label}`` from a Challenge 2017 ``REFERENCE*.csv`` (no header line)."""
    table = pd.read_csv(path, header=None, names=["record", "label"], dtype=str, keep_default_na=False)
    table["record"] = table["record"].str.strip()
    table["label"] = table["label"].str.strip()
    bad = table[~table["label"].isin(CLASSES)]
    if len(bad):
        raise manual_download.ManualDataError(
            f"cinc2017: {path} has labels outside {CLASSES}: {bad.head(3).to_dict('records')}"
        )
    duplicated = table["record"][table["record"].duplicated()]
    if len(duplicated):
        raise manual_download.ManualDataError(f"cinc2017: {path} lists records twice: {sorted(set(duplicated))[:5]}")
    return dict(zip(table["record"], table["label"]))
