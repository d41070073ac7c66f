"""The PhysioNet/CinC Challenge 2020 release (CPSC 2018, Georgia): SNOMED-CT labels and the shared builder.

Each record is a WFDB header with a ``#Dx:`` line of SNOMED-CT codes and a
MATLAB v4 signal (``val``, int16, 12 x length). The label is one of the ERTS
reference's 8 unified classes: the first code (header order) found in
:data:`SNOMED_TO_UNIFIED` wins, unknown codes are OTHER (:func:`unified_label`);
:func:`unified_multi_hot` marks every code's class. :class:`Challenge2020Builder`
is the builder of ``cpsc2018`` and ``georgia``; :func:`source` and
:func:`manual_download_instructions` say where each database comes from.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re
from collections.abc import Sequence

import numpy as np
import tensorflow_datasets as tfds

from erts_tf.data.physionet import features, readers
from erts_tf.data.physionet.builder_base import PhysioNetBuilder
from erts_tf.data.physionet.manual_download import ManualDataError, Source

URL = "https://physionet.org/content/challenge-2020/1.0.2/"
ARCHIVE_NAME = "classification-of-12-lead-ecgs-the-physionetcomputing-in-cardiology-challenge-2020-1.0.2.zip"
# Names of the whole Challenge's archive (and the 2021 Challenge's, which holds the same databases).
RELEASE_ARCHIVE_PATTERNS = ("classification-of-12-lead-ecgs*", "*challenge-2020*", "*challenge-2021*")

UNIFIED_CLASSES = ("NORM", "AF", "LBBB", "RBBB", "ST", "AVB", "PVC", "OTHER")
SNOMED_TO_UNIFIED = {
    "426783006": "NORM",
    "164889003": "AF",
    "164890007": "AF",
    "270492004": "AVB",
    "195042002": "AVB",
    "27885002": "AVB",
    "164909002": "LBBB",
    "59118001": "RBBB",
    "713427006": "RBBB",
    "284470004": "PVC",
    "63593006": "PVC",
    "427172004": "PVC",
    "17338001": "PVC",
    "429622005": "ST",
    "164931005": "ST",
}
TWELVE_LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
_DX_LINE = re.compile(r"^\s*#?\s*dx\s*:\s*(.*)$", re.IGNORECASE)


def dx_codes(comments: Sequence[str]) -> list[str]:
    """SNOMED-CT codes of the header's ``#Dx:`` line, in header order (empty if none)."""
    for comment in comments:
        match = _DX_LINE.match(comment)
        if match:
            return [c.strip() for c in match.group(1).split(",") if c.strip()]
    return []


def unified_label(codes: Sequence[str]) -> str:
    """The reference's single label: the class of the first code (header order) in the map, else OTHER."""
    for code in codes:
        if code in SNOMED_TO_UNIFIED:
            return SNOMED_TO_UNIFIED[code]
    return "OTHER"


def unified_multi_hot(codes: Sequence[str]) -> np.ndarray:
    """8-class multi-hot: every code's class, unknown codes -> OTHER (OTHER alone when no code)."""
    hot = np.zeros(len(UNIFIED_CLASSES), dtype=np.int8)
    for code in codes:
        hot[UNIFIED_CLASSES.index(SNOMED_TO_UNIFIED.get(code, "OTHER"))] = 1
    if not codes:
        hot[UNIFIED_CLASSES.index("OTHER")] = 1
    return hot


def source(dataset: str, database: str, archive_patterns: Sequence[str]) -> Source:
    """Where ``database`` comes from: the Challenge's page and zip, or the database's own ``archive_patterns``.

    Args:
      dataset: builder name, e.g. ``"cpsc2018"``.
      database: the database as the Challenge names it, e.g. ``"CPSC 2018 (cpsc_2018)"``.
      archive_patterns: names of the database's own archives (its tarball), besides the Challenge's zip.
    """
    return Source(
        dataset=dataset,
        title=f"PhysioNet/CinC Challenge 2020 training data, {database}",
        url=URL,
        archive_name=ARCHIVE_NAME,
        archive_patterns=(*archive_patterns, *RELEASE_ARCHIVE_PATTERNS),
    )


def manual_download_instructions(folder: str, tarball: str, records: str) -> str:
    """The builder's ``MANUAL_DOWNLOAD_INSTRUCTIONS``.

    Args:
      folder: the database's folder in the Challenge's zip, e.g. ``"cpsc_2018"``.
      tarball: the database's own archive, e.g. ``"CPSC tarball, e.g. PhysioNetChallenge2020_Training_CPSC.tar.gz"``.
      records: the record names, e.g. ``"A0001-A6877"``.
    """
    return f"""\
    Download the PhysioNet/CinC Challenge 2020 training data from {URL}
    ({ARCHIVE_NAME}, or only its training/{folder}/ folder, or the
    Challenge's {tarball})
    and put the archive, unchanged, or the extracted folder in manual_dir.
    Records {records} (.hea + .mat) are found in any sub-folder (g1/, g2/ ...).
    """


@dataclasses.dataclass
class Challenge2020Config(tfds.core.BuilderConfig):
    """Fixed length (samples at 500 Hz) after the reference's crop/pad; None: whole recordings (variable length)."""

    length: int | None = 5000


class Challenge2020Builder(PhysioNetBuilder, skip_registration=True):
    """PhysioNet/CinC Challenge 2020 release of a 12-lead database (WFDB header + MATLAB v4 ``val``).

    Subclasses set ``SOURCE``, ``RECORD_REGEX``, ``VERSION``, ``RELEASE_NOTES``,
    ``MANUAL_DOWNLOAD_INSTRUCTIONS``, ``BUILDER_CONFIGS``. The signal is in
    ``UNITS``: the ``val`` samples converted with each lead's gain and
    baseline, from headers that declare these units (others are skipped).
    """

    RECORD_REGEX: str
    SAMPLING_RATE = 500
    UNITS = "mV"
    SPLIT_SEED = 42

    def _example_features(self) -> dict:
        return {
            "record": tfds.features.Text(),
            "signal": features.signal_feature((self.builder_config.length, 12)),
            "label": tfds.features.ClassLabel(names=UNIFIED_CLASSES),
            "multi_hot": tfds.features.Tensor(shape=(len(UNIFIED_CLASSES),), dtype=np.int8),
            "dx": tfds.features.Text(),
            "num_samples": np.int64,
        }

    def _read_header(self, hea: pathlib.Path):
        """The header of ``<record>.hea``, checked: 12 leads at ``SAMPLING_RATE`` in ``UNITS``."""
        header = readers.read_header(hea.with_suffix(""))
        if header.n_sig != 12:
            raise readers.RecordError(f"wrong lead count: {hea} declares {header.n_sig} leads, expected 12")
        if header.fs != self.SAMPLING_RATE:
            raise readers.RecordError(f"{hea} declares {header.fs} Hz, expected {self.SAMPLING_RATE} Hz")
        readers.check_units(header.units, self.UNITS, hea.stem)
        return header

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        found = self._locate_records(dl_manager, self.RECORD_REGEX)
        self._total_records = len(found)
        names, labels, headers = [], [], {}
        for name, files in found.items():
            if ".hea" not in files:
                self.skip_log.skip(name, f"missing header {name}.hea beside {files['.mat']}")
                continue
            if ".mat" not in files:
                self.skip_log.skip(name, f"missing signal file {name}.mat beside {files['.hea']}")
                continue
            try:
                header = self._read_header(files[".hea"])
            except readers.RecordError as err:
                self.skip_log.skip(name, str(err))
                continue
            codes = dx_codes(header.comments or [])
            headers[name] = (files[".mat"], header, codes)
            names.append(name)
            labels.append(UNIFIED_CLASSES.index(unified_label(codes)))
        if not names:
            raise ManualDataError(f"{self._log_name}: no usable record: {self.skip_log.summary()}")
        splits = features.reference_split(labels, seed=self.SPLIT_SEED)
        return {
            split: self._generate_examples(split, [n for n, s in zip(names, splits) if s == split], headers)
            for split in ("train", "validation", "test")
        }

    def _generate_examples(self, split: str, names: list[str], headers: dict):
        def make_example(name: str) -> dict:
            mat_path, header, codes = headers[name]
            signal = readers.read_mat_signal(mat_path, header, name)
            readers.check_signal(signal, name)
            signal = readers.order_leads(signal, header.sig_name, TWELVE_LEADS, name)
            return {
                "record": name,
                "signal": features.fix_length(signal, self.builder_config.length),
                "label": unified_label(codes),
                "multi_hot": unified_multi_hot(codes),
                "dx": ",".join(codes),
                "num_samples": signal.shape[0],
            }

        yield from self._iterate_records(split, names, make_example)
